"""The paper venue's fill model (trading_assets.compute.fill_model): hand-worked fills, rejections with their
reasons, and properties over random bars."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trading_assets.compute.fill_model import (
    INSUFFICIENT_FUNDS,
    INVALID_QUANTITY,
    SIMULATED_REJECTION,
    Bar,
    Fill,
    FillParams,
    Instrument,
    Order,
    affordable,
    draws,
    fills,
    rejection,
)

D = Decimal
T0 = datetime(2024, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
PARAMS = FillParams(
    fee_rate=D("0.001"), slippage_bps=D(10), participation=D("0.5"), latency_s=(1.0, 1.0), seed=7
)
UNIT = Instrument(step=D("0.01"), min_quantity=D("0.01"))


def bar(minute: int, open_: str, high: str, low: str, close: str, volume: str) -> Bar:
    return Bar(T0 + minute * MINUTE, D(open_), D(high), D(low), D(close), D(volume))


def order(side: str = "buy", quantity: str = "1", limit: str | None = None, at: float = 30.0) -> Order:
    """An order arriving `at` seconds into the first bar, active 1 s later (PARAMS' latency)."""
    return Order(
        "o1",
        side,  # type: ignore[arg-type]
        "market" if limit is None else "limit",
        D(quantity),
        T0 + timedelta(seconds=at + 1),
        None if limit is None else D(limit),
    )


BARS = [
    bar(0, "100", "102", "99", "101", "100"),
    bar(1, "101", "104", "100", "103", "100"),
    bar(2, "103", "106", "102", "105", "100"),
]


def test_a_market_buy_fills_at_the_next_open_plus_slippage_with_its_fee():
    # The bar at 00:00 opened before the order existed; 00:01 opens at 101, +10 bps = 101.101.
    assert fills(order("buy", "2"), BARS, UNIT, PARAMS) == [
        Fill("o1-1", T0 + MINUTE, D(2), D("101.101"), D("0.202202"))
    ]


def test_a_market_sell_fills_at_the_next_open_less_slippage():
    (fill,) = fills(order("sell", "2"), BARS, UNIT, PARAMS)
    assert (fill.price, fill.fee) == (D("100.899"), D("0.201798"))


def test_an_order_active_exactly_at_a_bars_open_fills_on_that_bar():
    early = Order("o1", "buy", "market", D(1), T0, None)
    assert fills(early, BARS, UNIT, PARAMS)[0].ts == T0


def test_a_limit_sell_fills_at_its_limit_on_the_first_bar_that_reaches_it():
    # 00:01 tops at 104 < 105; 00:02 reaches 106: filled at 105, not at the better high.
    assert fills(order("sell", "1", limit="105"), BARS, UNIT, PARAMS) == [
        Fill("o1-1", T0 + 2 * MINUTE, D(1), D(105), D("0.105"))
    ]


def test_a_limit_order_fills_at_the_open_when_the_open_is_already_better():
    (sell,) = fills(order("sell", "1", limit="100"), BARS, UNIT, PARAMS)
    (buy,) = fills(order("buy", "1", limit="102"), BARS, UNIT, PARAMS)
    assert (sell.ts, sell.price, buy.ts, buy.price) == (T0 + MINUTE, D(101), T0 + MINUTE, D(101))


def test_a_limit_buy_below_every_low_does_not_fill():
    assert fills(order("buy", "1", limit="99.99"), BARS, UNIT, PARAMS) == []


def test_an_order_of_three_times_the_participation_fills_over_three_bars():
    volume_10 = [bar(m, "100", "101", "99", "100", "10") for m in range(1, 5)]
    got = fills(order("buy", "15"), volume_10, UNIT, PARAMS)
    assert [(f.trade_id, f.ts, f.quantity) for f in got] == [
        ("o1-1", T0 + MINUTE, D(5)),
        ("o1-2", T0 + 2 * MINUTE, D(5)),
        ("o1-3", T0 + 3 * MINUTE, D(5)),
    ]


def test_fills_are_rounded_down_to_the_step():
    # 0.5 x 2.469 = 1.2345 -> 1.23 on a step of 0.01.
    got = fills(order("buy", "2"), [bar(1, "100", "100", "100", "100", "2.469")], UNIT, PARAMS)
    assert [f.quantity for f in got] == [D("1.23")]


def test_a_fill_below_the_minimum_waits_unless_it_completes_the_order():
    lots = Instrument(step=D("0.1"), min_quantity=D(1))
    thin = [
        bar(1, "100", "100", "100", "100", "1.8"),  # room 0.9 < 1: nothing
        bar(2, "100", "100", "100", "100", "2.4"),  # room 1.2
        bar(3, "100", "100", "100", "100", "1.0"),  # room 0.5: the last 0.3 completes the order
    ]
    got = fills(order("buy", "1.5"), thin, lots, PARAMS)
    assert [(f.ts, f.quantity) for f in got] == [(T0 + 2 * MINUTE, D("1.2")), (T0 + 3 * MINUTE, D("0.3"))]


def test_fees_are_the_rate_times_the_notional_in_the_quote_currency():
    free = FillParams(fee_rate=D("0.00075"), slippage_bps=D(0), participation=D(1), latency_s=(0, 0))
    (fill,) = fills(order("sell", "0.37"), [bar(1, "43210.5", "43300", "43000", "43250", "5")], UNIT, free)
    assert fill.fee == D("0.37") * D("43210.5") * D("0.00075") == D("11.990913750")


def test_what_an_account_affords_includes_the_fee():
    # 1000 / (101.101 x 1.001) = 9.88... -> 9.88; 9.89 would cost 1000.9...
    assert affordable("buy", D(1000), D("101.101"), UNIT, PARAMS) == D("9.88")
    assert affordable("sell", D("3.456"), D(100), UNIT, PARAMS) == D("3.45")


@pytest.mark.parametrize(
    ("quantity", "why"),
    [
        ("0.005", "0.005 is below the minimum 0.01"),
        ("1.005", "1.005 is not a multiple of the step 0.01"),
        ("-1", "quantity -1 must be > 0"),
    ],
)
def test_a_quantity_below_the_minimum_or_off_the_step_is_invalid(quantity: str, why: str):
    reason = rejection(order("sell", quantity), UNIT, PARAMS, free=D(10), price=None)
    assert reason is not None and reason.startswith(INVALID_QUANTITY) and why in reason


def test_a_buy_the_free_quote_cannot_pay_for_fee_included_is_refused_for_insufficient_funds():
    # 2 x 101.101 = 202.202, + 0.202202 fee = 202.404202.
    assert rejection(order("buy", "2"), UNIT, PARAMS, free=D("202.404202"), price=D("101.101")) is None
    reason = rejection(order("buy", "2"), UNIT, PARAMS, free=D("202.4042"), price=D("101.101"))
    assert reason == f"{INSUFFICIENT_FUNDS}: needs 202.404202, 202.4042 free"


def test_a_sell_of_more_than_the_free_base_is_refused_for_insufficient_funds():
    reason = rejection(order("sell", "2"), UNIT, PARAMS, free=D("1.99"), price=None)
    assert reason == f"{INSUFFICIENT_FUNDS}: needs 2, 1.99 free"


def test_a_market_buy_without_a_price_cannot_be_checked_and_is_refused():
    assert "no market price" in str(rejection(order("buy", "1"), UNIT, PARAMS, free=D(10**6), price=None))


def test_the_seeded_draw_rejects_with_its_probability():
    always = FillParams(reject_probability=1.0)
    never = FillParams(reject_probability=0.0)
    assert rejection(order("sell"), UNIT, always, free=D(1), price=None) == SIMULATED_REJECTION
    assert rejection(order("sell"), UNIT, never, free=D(1), price=None) is None
    some = FillParams(reject_probability=0.3, seed=1)
    rate = sum(draws(some, f"s-{i}").rejected for i in range(4000)) / 4000
    assert 0.27 < rate < 0.33


def test_the_deterministic_rules_come_before_the_draw():
    always = FillParams(reject_probability=1.0)
    assert str(rejection(order("sell", "5"), UNIT, always, free=D(1), price=None)).startswith(
        INSUFFICIENT_FUNDS
    )


def test_latency_is_drawn_in_its_range_the_same_for_the_same_seed_and_id():
    params = FillParams(latency_s=(0.1, 0.4), seed=3)
    latencies = [draws(params, f"id-{i}").latency for i in range(500)]
    assert all(timedelta(seconds=0.1) <= x <= timedelta(seconds=0.4) for x in latencies)
    assert latencies == [
        draws(FillParams(latency_s=(0.1, 0.4), seed=3), f"id-{i}").latency for i in range(500)
    ]
    # Independent per id: spread over the range, not one value; another seed gives other draws.
    assert len(set(latencies)) > 490
    assert sum(x < timedelta(seconds=0.25) for x in latencies) in range(200, 300)
    assert latencies != [
        draws(FillParams(latency_s=(0.1, 0.4), seed=4), f"id-{i}").latency for i in range(500)
    ]


# Properties over random bars and orders.
SETTINGS = settings(max_examples=200, deadline=None, derandomize=True)
prices = st.decimals(min_value=1, max_value=200, places=2)
volumes = st.decimals(min_value=0, max_value=50, places=3)


@st.composite
def random_bars(draw: st.DrawFn) -> list[Bar]:
    out = []
    for m in range(draw(st.integers(1, 12))):
        a, b, c, d = (draw(prices) for _ in range(4))
        low, high = min(a, b, c, d), max(a, b, c, d)
        out.append(Bar(T0 + m * MINUTE, c, high, low, d, draw(volumes)))
    return out


@st.composite
def random_orders(draw: st.DrawFn) -> Order:
    quantity = draw(st.decimals(min_value="0.01", max_value=100, places=2))
    limit = draw(st.none() | prices)
    return Order(
        draw(st.sampled_from(["a-1", "b-2", "c-3"])),
        draw(st.sampled_from(["buy", "sell"])),
        "market" if limit is None else "limit",
        quantity,
        T0 + timedelta(seconds=draw(st.integers(0, 300))),
        limit,
    )


participations = st.decimals(min_value="0.01", max_value=1, places=2)


@SETTINGS
@given(order=random_orders(), bars=random_bars(), participation=participations)
def test_fills_never_exceed_the_order_nor_the_participation_of_their_bar(
    order: Order, bars: list[Bar], participation: Decimal
):
    params = FillParams(participation=participation)
    got = fills(order, bars, UNIT, params)
    volume = {b.ts: b.volume for b in bars}
    assert sum(f.quantity for f in got) <= order.quantity
    for fill in got:
        assert 0 < fill.quantity <= participation * volume[fill.ts]
        assert fill.quantity % UNIT.step == 0
        assert fill.ts >= order.active_at


@SETTINGS
@given(order=random_orders(), bars=random_bars())
def test_cumulative_filled_never_decreases_and_each_bar_fills_once(order: Order, bars: list[Bar]):
    got = fills(order, bars, UNIT, PARAMS)
    cumulative = [sum(f.quantity for f in got[: i + 1]) for i in range(len(got))]
    assert cumulative == sorted(cumulative)
    assert [f.ts for f in got] == sorted({f.ts for f in got})
    assert [f.trade_id for f in got] == [f"{order.client_order_id}-{n}" for n in range(1, len(got) + 1)]


@SETTINGS
@given(order=random_orders(), bars=random_bars())
def test_limit_orders_fill_at_their_limit_or_better(order: Order, bars: list[Bar]):
    for fill in fills(order, bars, UNIT, PARAMS):
        if order.limit_price is not None:
            better = (
                fill.price <= order.limit_price if order.side == "buy" else fill.price >= order.limit_price
            )
            assert better


@SETTINGS
@given(order=random_orders(), bars=random_bars(), seed=st.integers(0, 2**32))
def test_the_same_seed_and_id_give_identical_fills(order: Order, bars: list[Bar], seed: int):
    params = FillParams(seed=seed, reject_probability=0.5, latency_s=(0.0, 120.0))
    assert draws(params, order.client_order_id) == draws(
        FillParams(seed=seed, reject_probability=0.5, latency_s=(0.0, 120.0)), order.client_order_id
    )
    assert fills(order, bars, UNIT, params) == fills(order, list(bars), UNIT, params)
