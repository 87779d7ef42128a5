"""The ccxt broker (resources.brokers.ccxt_broker) against the local venue through the real ccxt asyncio
client, the clock stepped by hand: orders, fills, balances and positions worked by hand; each fault of the
venue as the broker failure the executor must act on; the event stream and its disconnected/reconnected
marks; credentials that never show."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import ccxt
import pytest
from venue_setup import KEY_ENV, MINUTE, SECRET, SECRET_ENV, T0_MS, client_config, rest_client, running_venue

from resources.brokers.base import (
    Broker,
    BrokerEvent,
    BrokerUnavailable,
    OrderRejected,
    OrderRequest,
    OutcomeUnknown,
    VenueFill,
    VenueOrder,
)
from resources.brokers.ccxt_broker import CcxtBroker, CcxtBrokerConfig, failure_outcome
from resources.venues import CcxtVenue
from trading_assets.live.venue import LocalVenue
from trading_assets.orders import check_decimal

BTC = "BTC/USDT"
T0 = datetime(2025, 1, 1, tzinfo=UTC)
D = Decimal
S = timedelta(seconds=1)


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "test-key")
    monkeypatch.setenv(SECRET_ENV, SECRET)


def market(cid: str, side: str, quantity: str) -> OrderRequest:
    return OrderRequest(cid, BTC, side, "market", D(quantity))  # type: ignore[arg-type]


def limit(cid: str, side: str, quantity: str, price: str) -> OrderRequest:
    return OrderRequest(cid, BTC, side, "limit", D(quantity), D(price))  # type: ignore[arg-type]


def at(minutes: float) -> int:
    return T0_MS + int(minutes * MINUTE)


def trade(
    venue: LocalVenue, scenario: Callable[[CcxtBroker], Awaitable[Any]], client: CcxtVenue | None = None
) -> Any:
    """Run `scenario` with a broker on `venue` (symbol BTC/USDT, events stamped with the venue's clock)."""

    async def main() -> Any:
        config = CcxtBrokerConfig("local", client or client_config(venue), (BTC,), poll_s=0.05)
        async with CcxtBroker(config, clock=venue.now) as broker:
            return await scenario(broker)

    return asyncio.run(main())


def orders_at(venue: LocalVenue, cid: str) -> list[dict]:
    return [o for o in venue.state()["orders"] if o["clientOrderId"] == cid]


async def next_event(stream, timeout: float = 5.0) -> BrokerEvent:
    return await asyncio.wait_for(anext(stream), timeout)


def exact(*values: Decimal) -> None:
    for value in values:
        check_decimal("value", value, positive=False)


# -- orders, fills, balances --------------------------------------------------------------------------------


def test_the_ccxt_broker_is_a_broker() -> None:
    async def scenario(broker: CcxtBroker) -> bool:
        return isinstance(broker, Broker)

    with running_venue() as venue:
        assert trade(venue, scenario)


def test_a_market_buy_fills_at_the_last_close_and_shows_in_fills_balances_and_positions() -> None:
    async def scenario(broker: CcxtBroker) -> tuple:
        placed = await broker.submit(market("s1-b1-1", "buy", "0.5"))
        return placed, await broker.fills_since(BTC, T0), await broker.balances(), await broker.positions()

    with running_venue() as venue:
        venue.advance_to(at(2.5))  # the last closed bar is bar 1, close 102
        placed, fills, balances, positions = trade(venue, scenario)
    assert placed == VenueOrder("s1-b1-1", "1", BTC, "buy", "market", "closed", D("0.5"), D("0.5"), D(102))
    # 0.5 x 102 = 51 USDT, fee 0.1% = 0.051 USDT
    assert fills == [
        VenueFill(
            "local", "1", "s1-b1-1", "1", BTC, "buy", D("0.5"), D(102), D("0.051"), "USDT", T0 + 150 * S
        )
    ]
    assert (balances["USDT"], balances["BTC"]) == (D("9948.949"), D("1.5"))  # 10000 - 51 - 0.051; 1 + 0.5
    assert positions == {BTC: D("1.5")}
    exact(*balances.values(), fills[0].quantity, fills[0].price, fills[0].fee, placed.average_price)


def test_a_limit_order_rests_then_fills_at_its_price_on_a_bar_that_trades_through_it() -> None:
    async def scenario(broker: CcxtBroker) -> tuple:
        placed = await broker.submit(limit("s1-b2-1", "buy", "0.1", "102"))
        working = await broker.open_orders()
        venue.advance_to(at(3))  # bar 2 (low 101.5) closes
        return placed, working, await broker.order_status("s1-b2-1", BTC), await broker.fills_since(BTC, T0)

    with running_venue() as venue:
        venue.advance_to(at(2))
        placed, working, done, fills = trade(venue, scenario)
    assert (placed.status, placed.filled, placed.average_price) == ("open", 0, None)
    assert working == [placed]
    assert (done.status, done.filled, done.average_price) == ("closed", D("0.1"), D(102))
    # 0.1 x 102 = 10.2, fee 0.0102, at the bar's last millisecond
    assert [(f.client_order_id, f.price, f.fee, f.ts) for f in fills] == [
        ("s1-b2-1", D(102), D("0.0102"), T0 + 3 * 60 * S - timedelta(milliseconds=1))
    ]


def test_cancel_ends_a_working_order_and_answers_an_ended_ones_state() -> None:
    async def scenario(broker: CcxtBroker) -> tuple:
        await broker.submit(limit("rest", "buy", "0.1", "100"))  # no later bar trades below 101.5
        await broker.submit(market("done", "buy", "0.1"))
        canceled = await broker.cancel("rest", BTC)
        again = await broker.cancel("rest", BTC)
        filled = await broker.cancel("done", BTC)
        with pytest.raises(OrderRejected, match="knows no order"):
            await broker.cancel("never-sent", BTC)
        return canceled, again, filled, await broker.open_orders(BTC), await broker.balances()

    with running_venue() as venue:
        venue.advance_to(at(2))
        canceled, again, filled, working, balances = trade(venue, scenario)
    assert (canceled.client_order_id, canceled.status, canceled.filled) == ("rest", "canceled", 0)
    assert again == canceled
    assert (filled.status, filled.filled) == ("closed", D("0.1"))
    assert working == []
    assert balances["USDT"] == D("9989.7898")  # the cancel freed the lock; the market buy paid 10.2 + 0.0102


def test_a_partial_fill_now_and_the_rest_at_the_next_bar() -> None:
    async def scenario(broker: CcxtBroker) -> tuple:
        venue.partial_fill_next_order(share=0.5, rest="later")
        placed = await broker.submit(market("half", "buy", "0.4"))
        venue.advance_to(at(3))
        return placed, await broker.order_status("half", BTC), await broker.fills_since(BTC, T0)

    with running_venue() as venue:
        venue.advance_to(at(2))
        placed, done, fills = trade(venue, scenario)
    assert (placed.status, placed.filled, placed.average_price) == ("open", D("0.2"), D(102))
    assert (done.status, done.filled, done.average_price) == ("closed", D("0.4"), D("102.5"))
    assert [(f.trade_id, f.quantity, f.price, f.fee) for f in fills] == [
        ("1", D("0.2"), D(102), D("0.0204")),
        ("2", D("0.2"), D(103), D("0.0206")),
    ]


def test_a_fill_of_an_order_sent_elsewhere_names_its_client_order_id_as_the_venue_knows_it() -> None:
    with running_venue() as venue:
        venue.advance_to(at(2))
        with rest_client(venue) as exchange:  # Binance's trades carry the venue's order id only
            exchange.create_order(BTC, "market", "sell", 0.3, params={"clientOrderId": "s0-b1-1"})
        fills = trade(venue, lambda broker: broker.fills_since(BTC, T0 + 2 * 60 * S))
    assert [(f.client_order_id, f.venue_order_id, f.side, f.quantity, f.fee) for f in fills] == [
        ("s0-b1-1", "1", "sell", D("0.3"), D("0.0306"))  # 0.3 x 102 = 30.6, fee 0.0306
    ]


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        ("insufficient_funds", "Account has insufficient balance for requested action."),
        ("invalid_quantity", "Filter failure: LOT_SIZE"),
    ],
)
def test_a_refused_order_is_rejected_with_the_venues_reason(reason: str, words: str) -> None:
    async def scenario(broker: CcxtBroker) -> OrderRejected:
        venue.reject_next_order(reason)
        with pytest.raises(OrderRejected) as refused:
            await broker.submit(market("s1-b3-1", "buy", "0.1"))
        return refused.value

    with running_venue() as venue:
        venue.advance_to(at(2))
        refused = trade(venue, scenario)
        assert orders_at(venue, "s1-b3-1") == []
    assert (refused.client_order_id, refused.reason) == ("s1-b3-1", words)


def test_an_order_the_account_cannot_pay_or_off_the_markets_step_is_rejected() -> None:
    async def scenario(broker: CcxtBroker) -> tuple:
        with pytest.raises(OrderRejected) as funds:
            await broker.submit(market("big", "buy", "100"))
        with pytest.raises(OrderRejected) as step:  # the step is 0.00001: refused before sending
            await broker.submit(market("odd", "buy", "0.123456"))
        return funds.value.reason, step.value.reason

    with running_venue() as venue:
        venue.advance_to(at(2))
        funds, step = trade(venue, scenario)
        assert venue.state()["orders"] == []
    assert funds == "Account has insufficient balance for requested action."
    assert step == "quantity 0.123456 is off the market's precision (it would go as 0.12345)"


# -- ambiguous outcomes and outages -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["drop", "timeout"])
def test_a_lost_answer_is_outcome_unknown_and_the_order_is_found_by_its_id(mode: str) -> None:
    async def scenario(broker: CcxtBroker) -> VenueOrder | None:
        await broker.poll()
        venue.ambiguous_next_order(mode)
        with pytest.raises(OutcomeUnknown, match="never send it again"):
            await broker.submit(market("s1-b4-1", "buy", "0.1"))
        return await broker.order_status("s1-b4-1", BTC)

    with running_venue() as venue:
        venue.advance_to(at(2))
        quick = client_config(venue).model_copy(update={"timeout_ms": 300})  # the held answer times out
        found = trade(venue, scenario, quick)
        assert len(orders_at(venue, "s1-b4-1")) == 1  # sent once, never again
    assert (found.client_order_id, found.status, found.filled) == ("s1-b4-1", "closed", D("0.1"))


def test_a_second_order_under_a_working_id_is_outcome_unknown_not_rejected() -> None:
    async def scenario(broker: CcxtBroker) -> VenueOrder | None:
        await broker.submit(limit("twice", "buy", "0.1", "100"))
        # Rejecting it would mark REJECTED an order that is working at the venue under this very id.
        with pytest.raises(OutcomeUnknown, match="Duplicate order sent"):
            await broker.submit(limit("twice", "buy", "0.1", "100"))
        return await broker.order_status("twice", BTC)

    with running_venue() as venue:
        venue.advance_to(at(2))
        assert trade(venue, scenario).status == "open"
        assert len(orders_at(venue, "twice")) == 1


@pytest.mark.parametrize(
    ("status", "failure"),
    [
        # Binance documents 5xx as UNKNOWN (the request may have been executed) except the 503 whose body
        # says "Service Unavailable": a failed operation, nothing processed. So a 503 gateway answer is
        # BrokerUnavailable (send again later, the same id), while 502 and 504 are OutcomeUnknown: ask.
        (503, BrokerUnavailable),
        (502, OutcomeUnknown),
        (504, OutcomeUnknown),
    ],
)
def test_a_5xx_on_submit_is_unavailable_only_when_the_venue_says_it_did_not_process_it(
    status: int, failure: type[Exception]
) -> None:
    async def scenario(broker: CcxtBroker) -> VenueOrder | None:
        await broker.poll()
        venue.fail_next_requests(1, status)
        with pytest.raises(failure, match="s1-b5-1"):
            await broker.submit(market("s1-b5-1", "buy", "0.1"))
        return await broker.order_status("s1-b5-1", BTC)

    with running_venue() as venue:
        venue.advance_to(at(2))
        # The venue's gateway answered before the venue saw the order: asking by its id resolves it, None.
        assert trade(venue, scenario) is None
        assert venue.state()["orders"] == []


def test_a_venue_that_refuses_connections_is_unavailable() -> None:
    async def scenario(broker: CcxtBroker) -> None:
        await broker.poll()  # the markets are loaded
        # Stopped from a thread, so the loop sees the idle connection close; a request on a connection that
        # the venue cut meanwhile would be OutcomeUnknown (sent, or not: aiohttp cannot tell).
        await asyncio.to_thread(venue.stop)
        with pytest.raises(BrokerUnavailable, match="not taken"):
            await broker.submit(market("s1-b6-1", "buy", "0.1"))

    with running_venue() as venue:
        venue.advance_to(at(2))
        trade(venue, scenario)


# -- events -------------------------------------------------------------------------------------------------


def test_events_stream_order_changes_and_each_fill_once() -> None:
    async def scenario(broker: CcxtBroker) -> list[BrokerEvent]:
        stream = broker.events()
        await broker.poll()  # takes the account as it is: the earlier trade is not an event
        await broker.submit(limit("s1-b7-1", "buy", "0.1", "102"))
        await broker.poll()  # nothing moved
        venue.advance_to(at(3))
        await broker.poll()
        await broker.poll()
        await broker.close()
        return [event async for event in stream]

    with running_venue() as venue:
        venue.advance_to(at(2))
        with rest_client(venue) as exchange:  # an earlier trade, before the broker
            exchange.create_order(BTC, "market", "buy", 0.1, params={"clientOrderId": "before"})
        events = trade(venue, scenario)
    assert [(e.kind, e.order and e.order.status, e.fill and e.fill.trade_id) for e in events] == [
        ("order", "open", None),
        ("fill", None, "2"),
        ("order", "closed", None),
    ]
    assert events[1].fill.client_order_id == "s1-b7-1"
    assert events[1].at == T0 + 3 * 60 * S  # stamped by the venue's clock


def test_the_stream_marks_disconnected_and_reconnected_around_a_burst_of_5xx_and_refuses_meanwhile() -> None:
    async def scenario(broker: CcxtBroker) -> tuple:
        await broker.poll()
        stream = broker.events()
        venue.fail_next_requests(3, 503)
        await broker.poll()
        with pytest.raises(BrokerUnavailable, match="disconnected"):
            await broker.submit(market("s1-b8-1", "buy", "0.1"))
        left = venue.state()["faults"]["server_errors_left"]
        await broker.poll()
        await broker.poll()
        down = [await next_event(stream)]
        await broker.poll()  # the burst is spent
        placed = await broker.submit(market("s1-b8-1", "buy", "0.1"))
        return [*down, await next_event(stream), await next_event(stream)], left, placed

    with running_venue() as venue:
        venue.advance_to(at(2))
        events, left, placed = trade(venue, scenario)
    assert [e.kind for e in events] == ["disconnected", "reconnected", "order"]
    assert "503" in events[0].detail
    assert left == 2  # the refused submit sent nothing
    assert placed.status == "closed"


def test_a_started_broker_polls_in_the_background() -> None:
    async def scenario(broker: CcxtBroker) -> list[str]:
        await broker.start()
        stream = broker.events()
        await broker.submit(market("s1-b9-1", "sell", "0.2"))
        kinds = [(await next_event(stream)).kind for _ in range(2)]
        venue.fail_next_requests(2, 503)
        return kinds + [(await next_event(stream)).kind for _ in range(2)]

    with running_venue() as venue:
        venue.advance_to(at(2))
        assert trade(venue, scenario) == ["order", "fill", "disconnected", "reconnected"]


# -- credentials --------------------------------------------------------------------------------------------


def test_a_wrong_secret_is_a_clear_error_naming_the_venue_and_never_the_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wrong = "wrong-secret-4f2a"
    monkeypatch.setenv(SECRET_ENV, wrong)

    async def scenario(broker: CcxtBroker) -> list[str]:
        with pytest.raises(BrokerUnavailable) as start:
            await broker.start()
        with pytest.raises(BrokerUnavailable) as submit:
            await broker.submit(market("s1-b10-1", "buy", "0.1"))
        return [str(start.value), str(submit.value), repr(broker.config)]

    with running_venue() as venue:
        venue.advance_to(at(2))
        messages = trade(venue, scenario)
    assert messages[0] == (
        "local: the venue refused the API credentials (from $VENUE_TEST_API_KEY and $VENUE_TEST_SECRET): "
        "Signature for this request is not valid."
    )
    assert all(wrong not in m and "test-key" not in m and "signature=" not in m for m in messages)


# -- the mapping --------------------------------------------------------------------------------------------


def _from(err: Exception, cause: BaseException) -> Exception:
    err.__cause__ = cause
    return err


@pytest.mark.parametrize(
    ("err", "answer", "outcome"),
    [
        (ccxt.InsufficientFunds("binance {}"), None, "rejected"),
        (ccxt.InvalidOrder("binance Filter failure: LOT_SIZE"), None, "rejected"),
        (ccxt.BadSymbol("binance Invalid symbol."), None, "rejected"),
        (ccxt.MarketClosed("binance Market is closed."), None, "rejected"),
        (ccxt.PermissionDenied("binance This symbol is not permitted"), None, "rejected"),
        (ccxt.OrderImmediatelyFillable("binance would immediately match"), None, "rejected"),
        (ccxt.DuplicateOrderId("okx duplicated clOrdId"), None, "unknown"),
        (ccxt.InvalidOrder('binance {"code":-2010,"msg":"Duplicate order sent."}'), None, "unknown"),
        (ccxt.AuthenticationError("binance Signature for this request is not valid."), None, "unavailable"),
        (ccxt.RateLimitExceeded("binance Too many requests"), None, "unavailable"),
        (ccxt.DDoSProtection("binance 418"), None, "unavailable"),
        (ccxt.OnMaintenance("binance System is under maintenance."), None, "unavailable"),
        (ccxt.InvalidNonce("binance -1021 outside of the recvWindow"), None, "unavailable"),
        (ccxt.RequestTimeout("binance POST /order"), None, "unknown"),
        (_from(ccxt.RequestTimeout("binance"), TimeoutError()), None, "unknown"),
        (_from(ccxt.ExchangeNotAvailable("binance"), socket.gaierror()), None, "unavailable"),
        (_from(ccxt.ExchangeNotAvailable("binance"), aiohttp.ServerDisconnectedError()), None, "unknown"),
        (_from(ccxt.ExchangeNotAvailable("binance"), ConnectionResetError()), None, "unknown"),
        (ccxt.ExchangeNotAvailable("binance POST /order 503"), "503 Service Unavailable.", "unavailable"),
        (ccxt.ExchangeNotAvailable("binance POST /order 503"), "503 Unknown error, please check", "unknown"),
        (ccxt.ExchangeNotAvailable("binance POST /order 500"), "500 Internal Server Error", "unknown"),
        (ccxt.OperationFailed('binance {"code":-1001,"msg":"Internal error"}'), None, "unavailable"),
        (ccxt.OperationFailed('binance {"code":-1008,"msg":"Server busy"}'), None, "unavailable"),
        (ccxt.OperationFailed('binance {"code":-1000,"msg":"An unknown error"}'), None, "unknown"),
        (ccxt.BadResponse('binance {"code":-1006,"msg":"Execution status unknown."}'), None, "unknown"),
        (ccxt.ExchangeError("binance something new"), None, "unknown"),
        (KeyError("status"), None, "unknown"),
    ],
)
def test_failure_outcome_maps_each_ccxt_error_by_what_the_venue_may_have_done(
    err: Exception, answer: str | None, outcome: str
) -> None:
    assert failure_outcome(err, answer) == outcome


def test_the_config_refuses_bad_values_naming_the_field() -> None:
    client = CcxtVenue(local_url="http://127.0.0.1:9")
    with pytest.raises(ValueError, match="symbols: 'BTC/USDT:USDT' is not a spot symbol"):
        CcxtBrokerConfig("local", client, ("BTC/USDT:USDT",))
    with pytest.raises(ValueError, match="venue 'Local Venue'"):
        CcxtBrokerConfig("Local Venue", client, (BTC,))
    with pytest.raises(ValueError, match="poll_s"):
        CcxtBrokerConfig("local", client, (BTC,), poll_s=0)
