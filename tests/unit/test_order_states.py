"""The order state machine, client order ids and position arithmetic of trading_assets.orders, against a
hand-written table and independent oracles."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trading_assets.orders import (
    MAX_SEQ,
    TERMINAL,
    TRANSITIONS,
    IllegalTransition,
    OrderError,
    OrderEvent,
    OrderState,
    OrderStatus,
    Overfill,
    PositionState,
    client_order_id,
    fits,
    next_state,
    parse_client_order_id,
    position_after_fill,
)

SETTINGS = settings(max_examples=300, deadline=None, derandomize=True)
filled_amounts = st.decimals(min_value=0, max_value=10, places=3)
order_amounts = st.decimals(min_value="0.001", max_value=10, places=3)

# The machine as the docs (docs/live/orders.md) state it: from, event, to.
ORACLE = """
INITIALIZED      DENY           DENIED
INITIALIZED      SUBMIT         SUBMITTED
SUBMITTED        ACCEPT         ACCEPTED
SUBMITTED        REJECT         REJECTED
SUBMITTED        FILL           PARTIALLY_FILLED
SUBMITTED        FILL           FILLED
SUBMITTED        CANCEL_REQUEST PENDING_CANCEL
SUBMITTED        CANCEL         CANCELED
SUBMITTED        EXPIRE         EXPIRED
SUBMITTED        TIMEOUT        UNKNOWN
ACCEPTED         FILL           PARTIALLY_FILLED
ACCEPTED         FILL           FILLED
ACCEPTED         CANCEL_REQUEST PENDING_CANCEL
ACCEPTED         CANCEL         CANCELED
ACCEPTED         EXPIRE         EXPIRED
PARTIALLY_FILLED FILL           PARTIALLY_FILLED
PARTIALLY_FILLED FILL           FILLED
PARTIALLY_FILLED CANCEL_REQUEST PENDING_CANCEL
PARTIALLY_FILLED CANCEL         CANCELED
PARTIALLY_FILLED EXPIRE         EXPIRED
PENDING_CANCEL   FILL           PENDING_CANCEL
PENDING_CANCEL   FILL           FILLED
PENDING_CANCEL   CANCEL         CANCELED
PENDING_CANCEL   CANCEL_REJECT  ACCEPTED
PENDING_CANCEL   CANCEL_REJECT  PARTIALLY_FILLED
PENDING_CANCEL   EXPIRE         EXPIRED
PENDING_CANCEL   TIMEOUT        UNKNOWN
UNKNOWN          ACCEPT         ACCEPTED
UNKNOWN          ACCEPT         PARTIALLY_FILLED
UNKNOWN          FILL           PARTIALLY_FILLED
UNKNOWN          FILL           FILLED
UNKNOWN          CANCEL         CANCELED
UNKNOWN          REJECT         REJECTED
UNKNOWN          EXPIRE         EXPIRED
"""
ORACLE_TRIPLES = {tuple(line.split()) for line in ORACLE.strip().splitlines()}
# What each state holds of an order's quantity q, as the docs state it.
HOLDS = {
    "INITIALIZED": "none",
    "DENIED": "none",
    "SUBMITTED": "none",
    "ACCEPTED": "none",
    "REJECTED": "none",
    "PARTIALLY_FILLED": "some",
    "FILLED": "all",
    "PENDING_CANCEL": "less",
    "UNKNOWN": "less",
    "CANCELED": "less",
    "EXPIRED": "less",
}
# Binance's rule for newClientOrderId, as its API docs write it.
BINANCE_CLIENT_ORDER_ID = re.compile(r"^[a-zA-Z0-9-_]{1,36}$")


def oracle_holds(status: str, filled: Decimal, quantity: Decimal) -> bool:
    rule = HOLDS[status]
    return {
        "none": filled == 0,
        "some": 0 < filled < quantity,
        "all": filled == quantity,
        "less": filled < quantity,
    }[rule]


def test_the_transition_table_is_the_hand_written_one() -> None:
    assert {(start.value, event.value, to.value) for start, event, to in TRANSITIONS} == ORACLE_TRIPLES


def test_terminal_states_are_those_with_no_way_out() -> None:
    assert {s.value for s in TERMINAL} == {"DENIED", "REJECTED", "FILLED", "CANCELED", "EXPIRED"}
    assert not {start for start, _, _ in ORACLE_TRIPLES} & {s.value for s in TERMINAL}


def test_nothing_is_ever_submitted_again() -> None:
    # An ambiguous outcome (UNKNOWN) is resolved by query: no way leads back to SUBMITTED or INITIALIZED.
    assert {to for _, _, to in ORACLE_TRIPLES if to in ("SUBMITTED", "INITIALIZED")} == {"SUBMITTED"}
    assert {start for start, event, _ in ORACLE_TRIPLES if event == "SUBMIT"} == {"INITIALIZED"}


@SETTINGS
@given(
    st.decimals(min_value=0, max_value=10, places=3), st.decimals(min_value="0.001", max_value=10, places=3)
)
def test_the_state_holding_a_quantity_is_fitted_as_documented(filled: Decimal, quantity: Decimal) -> None:
    for status in OrderStatus:
        assert fits(status, filled, quantity) == (
            filled <= quantity and oracle_holds(status, filled, quantity)
        )


@SETTINGS
@given(
    st.decimals(min_value=0, max_value=10, places=3), st.decimals(min_value="0.001", max_value=10, places=3)
)
def test_an_event_leads_to_at_most_one_state_for_any_filled_quantity(
    filled: Decimal, quantity: Decimal
) -> None:
    for start in OrderStatus:
        for event in OrderEvent:
            targets = [to for s, e, to in TRANSITIONS if s is start and e is event]
            assert sum(fits(to, filled, quantity) for to in targets) <= 1, (start, event, filled, quantity)


QUANTITY = Decimal("1.000")
fill_quantities = st.sampled_from(
    [Decimal("0.001"), Decimal("0.25"), Decimal("0.5"), Decimal("0.999"), QUANTITY]
)
steps = st.lists(st.tuples(st.sampled_from(list(OrderEvent)), fill_quantities), max_size=25)


@SETTINGS
@given(steps)
def test_random_event_sequences_follow_the_table_or_are_refused(
    sequence: list[tuple[OrderEvent, Decimal]],
) -> None:
    order = OrderState("demo-0000000-000", QUANTITY)
    for event, quantity in sequence:
        fill = quantity if event is OrderEvent.FILL else None
        filled = order.filled_quantity + (fill or 0)
        allowed = [
            to
            for start, on, to in ORACLE_TRIPLES
            if start == order.status
            and on == event
            and filled <= QUANTITY
            and oracle_holds(to, filled, QUANTITY)
        ]
        if not allowed:
            with pytest.raises(OrderError, match=f"order demo-0000000-000: {event} in {order.status}"):
                next_state(order, event, fill)
            continue
        after = next_state(order, event, fill)
        assert [after.status.value] == allowed
        assert after.filled_quantity == filled
        assert order.filled_quantity <= after.filled_quantity <= after.quantity
        order = after


@pytest.mark.parametrize("status", sorted(TERMINAL))
@pytest.mark.parametrize("event", list(OrderEvent))
def test_a_terminal_state_accepts_no_event(status: OrderStatus, event: OrderEvent) -> None:
    filled = {OrderStatus.FILLED: QUANTITY, OrderStatus.CANCELED: Decimal("0.5")}.get(status, Decimal(0))
    order = OrderState("x", QUANTITY, status, filled)
    fill = Decimal("0.001") if event is OrderEvent.FILL else None
    with pytest.raises(IllegalTransition, match="a terminal state takes no event"):
        next_state(order, event, fill)


@pytest.mark.parametrize(
    "status", [OrderStatus.SUBMITTED, OrderStatus.ACCEPTED, OrderStatus.PENDING_CANCEL, OrderStatus.UNKNOWN]
)
def test_a_fill_past_the_quantity_is_an_overfill(status: OrderStatus) -> None:
    order = OrderState("x", QUANTITY, status)
    with pytest.raises(Overfill, match=r"order x: FILL in .*: 1.001 more would fill 1.001 of 1.000"):
        next_state(order, OrderEvent.FILL, Decimal("1.001"))


def test_a_rejection_after_fills_is_refused() -> None:
    order = OrderState("x", QUANTITY, OrderStatus.UNKNOWN, Decimal("0.5"))
    with pytest.raises(IllegalTransition, match=r"REJECT in UNKNOWN is not allowed with 0.5 filled of 1.000"):
        next_state(order, OrderEvent.REJECT)


def test_filled_quantities_add_exactly() -> None:
    order = OrderState("x", Decimal("0.3"), OrderStatus.ACCEPTED)
    order = next_state(order, OrderEvent.FILL, Decimal("0.1"))
    order = next_state(order, OrderEvent.FILL, Decimal("0.2"))
    assert order.status is OrderStatus.FILLED  # 0.1 + 0.2 as floats is not 0.3


@pytest.mark.parametrize("bad", [0.1, 1, Decimal("NaN"), Decimal("-1"), Decimal("1e-19"), Decimal("1e20")])
def test_quantities_are_decimals_the_catalog_stores_exactly(bad: object) -> None:
    with pytest.raises(OrderError):
        OrderState("x", bad)  # type: ignore[arg-type]


def test_only_a_fill_carries_a_quantity() -> None:
    with pytest.raises(OrderError, match="a fill needs its quantity"):
        next_state(OrderState("x", QUANTITY, OrderStatus.ACCEPTED), OrderEvent.FILL)
    with pytest.raises(OrderError, match="only a fill has a quantity"):
        next_state(OrderState("x", QUANTITY, OrderStatus.ACCEPTED), OrderEvent.CANCEL, Decimal(1))


names = st.from_regex(r"[a-z][a-z0-9_]{0,23}", fullmatch=True).filter(
    lambda name: "__" not in name and not name.endswith("_")
)
bar_times = st.integers(0, 36**7 - 1).map(lambda s: datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=s))
seqs = st.integers(0, MAX_SEQ)


@SETTINGS
@given(names, bar_times, seqs)
def test_client_order_ids_are_valid_for_binance_and_parse_back(name: str, bar: datetime, seq: int) -> None:
    cid = client_order_id(name, bar, seq)
    assert BINANCE_CLIENT_ORDER_ID.match(cid)
    assert parse_client_order_id(cid) == (name, bar, seq)


@SETTINGS
@given(st.tuples(names, bar_times, seqs), st.tuples(names, bar_times, seqs))
def test_client_order_ids_are_unique_per_strategy_bar_and_sequence(
    a: tuple[str, datetime, int], b: tuple[str, datetime, int]
) -> None:
    assert (client_order_id(*a) == client_order_id(*b)) == (a == b)


def test_a_client_order_id_is_the_same_in_every_process() -> None:
    bar = datetime(2024, 1, 1, tzinfo=UTC)
    # Pinned: ids already stored must keep parsing, so the format never changes silently.
    assert client_order_id("demo_btc", bar, 5) == "demo_btc-0s6k2o0-005"
    code = (
        "from datetime import datetime, UTC; from trading_assets.orders import client_order_id; "
        "print(client_order_id('demo_btc', datetime(2024, 1, 1, tzinfo=UTC), 5))"
    )
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={"PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        )
        assert out.stdout.strip() == "demo_btc-0s6k2o0-005"


@pytest.mark.parametrize(
    ("strategy", "bar", "seq"),
    [
        ("demo", datetime(2024, 1, 1), 0),  # naive
        ("demo", datetime(2024, 1, 1, 0, 0, 0, 500, tzinfo=UTC), 0),
        ("demo", datetime(1969, 12, 31, tzinfo=UTC), 0),
        ("demo", datetime(2024, 1, 1, tzinfo=UTC), MAX_SEQ + 1),
        ("demo", datetime(2024, 1, 1, tzinfo=UTC), -1),
        ("Demo", datetime(2024, 1, 1, tzinfo=UTC), 0),
        ("demo-x", datetime(2024, 1, 1, tzinfo=UTC), 0),
        ("a" * 25, datetime(2024, 1, 1, tzinfo=UTC), 0),
    ],
)
def test_client_order_ids_refuse_what_would_not_parse_back(strategy: str, bar: datetime, seq: int) -> None:
    with pytest.raises(ValueError):
        client_order_id(strategy, bar, seq)


@pytest.mark.parametrize(
    "text", ["demo-0s6k2o0-5", "x-demo-0s6k2o0-005", "demo_-0s6k2o0-005", "DEMO-0s6k2o0-005"]
)
def test_other_strings_are_not_client_order_ids(text: str) -> None:
    with pytest.raises(OrderError):
        parse_client_order_id(text)


prices = st.decimals(min_value="0.01", max_value=1000, places=2)
amounts = st.decimals(min_value="0.001", max_value=5, places=3)


@SETTINGS
@given(
    st.lists(st.tuples(st.sampled_from(["buy", "sell"]), amounts, prices), min_size=1, max_size=20), prices
)
def test_a_position_closed_flat_has_realised_the_cash_it_made(
    fills: list[tuple[str, Decimal, Decimal]], close_price: Decimal
) -> None:
    position = PositionState()
    cash = Decimal(0)
    for side, quantity, price in fills:
        position = position_after_fill(position, side, quantity, price)
        cash += quantity * price * (1 if side == "sell" else -1)
    assert position.quantity == sum(q if s == "buy" else -q for s, q, _ in fills)
    if position.quantity:
        closing = "sell" if position.quantity > 0 else "buy"
        cash += abs(position.quantity) * close_price * (1 if closing == "sell" else -1)
        position = position_after_fill(position, closing, abs(position.quantity), close_price)
    assert position == PositionState(Decimal(0), None, position.realised_pnl)
    # Average entries are rounded at 1e-18 per fill: the realised PnL is the cash to far below a cent.
    assert abs(position.realised_pnl - cash) < Decimal("1e-12")


def test_a_fill_across_zero_opens_the_rest_at_its_price() -> None:
    long = position_after_fill(PositionState(), "buy", Decimal(2), Decimal(100))
    flipped = position_after_fill(long, "sell", Decimal(3), Decimal(90))
    assert flipped == PositionState(Decimal(-1), Decimal(90), Decimal(-20))


def test_a_stored_history_replays_to_its_state_and_an_illegal_or_misrecorded_one_is_refused() -> None:
    from types import SimpleNamespace as Event

    from trading_assets.orders import replay_history

    def ev(event: str, to: str, quantity: str | None = None) -> Event:
        return Event(
            event=event, to_status=to, detail="{}" if quantity is None else f'{{"quantity": "{quantity}"}}'
        )

    history = [
        ev("CREATE", "INITIALIZED"),
        ev("SUBMIT", "SUBMITTED"),
        ev("ACCEPT", "ACCEPTED"),
        ev("FILL", "PARTIALLY_FILLED", "0.4"),
        ev("FILL", "FILLED", "0.6"),
    ]
    state = replay_history("s-1", Decimal("1"), history)
    assert (state.status, state.filled_quantity) == (OrderStatus.FILLED, Decimal("1"))
    with pytest.raises(OrderError, match="s-1: FILL leads to PARTIALLY_FILLED, the record says FILLED"):
        replay_history("s-1", Decimal("1"), [*history[:3], ev("FILL", "FILLED", "0.4")])
    with pytest.raises(OrderError, match="not allowed"):
        replay_history("s-1", Decimal("1"), [*history, ev("CANCEL", "CANCELED")])
    with pytest.raises(OrderError, match="before the order was created"):
        replay_history("s-1", Decimal("1"), history[1:])
