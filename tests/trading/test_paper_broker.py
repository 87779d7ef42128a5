"""The paper broker (resources.brokers.paper) on a real DuckDB store of recorded bars: orders, fills and
balances against hand-worked numbers, its account across a restart, and its event stream."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import pytest
from paper_setup import (
    MINUTE,
    SYMBOL,
    T0,
    TABLE,
    Clock,
    D,
    config,
    flat,
    limit,
    market,
    order_id,
    store_at,
    write_bars,
)

from resources.brokers.base import Broker, BrokerEvent, BrokerUnavailable, OrderRejected, VenueFill
from resources.brokers.paper import PaperBroker

run = asyncio.run


async def opened(tmp_path: Path, clock: Clock) -> PaperBroker:
    """The broker of the account in tmp_path, having taken the bars stored so far."""
    broker = PaperBroker(config(tmp_path / "paper.json"), store_at(tmp_path), clock)
    await broker.advance()
    return broker


async def next_event(stream, timeout: float = 5.0) -> BrokerEvent:
    return await asyncio.wait_for(anext(stream), timeout)


def test_the_paper_broker_is_a_broker(tmp_path: Path):
    assert isinstance(PaperBroker(config(tmp_path / "paper.json"), store_at(tmp_path)), Broker)


def test_a_market_buy_fills_at_the_first_open_after_its_latency_with_slippage_and_fee(tmp_path: Path):
    store, clock = store_at(tmp_path), Clock()
    write_bars(store, flat(0, 100.0))

    async def scenario() -> None:
        clock.at(1)  # bar 00:00 has closed; the order is active at 00:01:01, after bar 00:01 opened
        broker = await opened(tmp_path, clock)
        placed = await broker.submit(market(0, "buy", "2"))
        assert (placed.status, placed.filled, placed.venue_order_id) == ("open", 0, "paper-1")
        assert [o.client_order_id for o in await broker.open_orders(SYMBOL)] == [order_id(0)]
        write_bars(store, flat(1, 101.0), flat(2, 102.0))
        assert await broker.advance() == 2
        # 102 + 10 bps = 102.102; fee 0.1 % of 204.204 = 0.204204 USDT.
        assert await broker.fills_since(SYMBOL, T0) == [
            VenueFill(
                "paper",
                f"{order_id(0)}-1",
                order_id(0),
                "paper-1",
                SYMBOL,
                "buy",
                D(2),
                D("102.102"),
                D("0.204204"),
                "USDT",
                T0 + 2 * MINUTE,
            )
        ]
        done = await broker.order_status(order_id(0), SYMBOL)
        assert done is not None and (done.status, done.filled, done.average_price) == (
            "closed",
            2,
            D("102.102"),
        )
        assert await broker.open_orders() == []
        assert await broker.balances() == {"BTC": D(22), "USDT": D("9795.591796")}
        assert await broker.positions() == {SYMBOL: D(22)}
        assert await broker.fills_since(SYMBOL, T0 + 3 * MINUTE) == []

    run(scenario())


def test_a_limit_sell_fills_at_its_limit_on_the_bar_that_reaches_it(tmp_path: Path):
    store, clock = store_at(tmp_path), Clock()
    write_bars(store, flat(0, 100.0))

    async def scenario() -> None:
        clock.at(0, 30)
        broker = await opened(tmp_path, clock)
        await broker.submit(limit(0, "sell", "1", "105"))
        write_bars(store, (1, 101.0, 104.0, 100.0, 103.0, 10.0), (2, 103.0, 106.0, 102.0, 105.0, 10.0))
        await broker.advance()
        (fill,) = await broker.fills_since(SYMBOL, T0)
        assert (fill.ts, fill.quantity, fill.price, fill.fee) == (T0 + 2 * MINUTE, 1, 105, D("0.105"))
        assert await broker.balances() == {"BTC": D(19), "USDT": D("10104.895")}

    run(scenario())


def test_a_large_order_fills_partly_per_bar_and_a_cancel_ends_its_remainder(tmp_path: Path):
    store, clock = store_at(tmp_path), Clock()
    write_bars(store, flat(0))

    async def scenario() -> None:
        clock.at(1)
        broker = await opened(tmp_path, clock)
        await broker.submit(market(0, "sell", "15"))
        write_bars(store, flat(1), flat(2))  # half of 10 a bar; bar 00:01 opened before the order
        await broker.advance()
        partly = await broker.order_status(order_id(0), SYMBOL)
        assert partly is not None and (partly.status, partly.filled) == ("open", 5)
        clock.at(3)
        canceled = await broker.cancel(order_id(0), SYMBOL)
        assert (canceled.status, canceled.filled, canceled.average_price) == ("canceled", 5, D("99.9"))
        write_bars(store, flat(3), flat(4))
        await broker.advance()
        assert [f.quantity for f in await broker.fills_since(SYMBOL, T0)] == [5]
        # 5 x 99.9 = 499.5 less 0.4995 fee.
        assert await broker.balances() == {"BTC": D(15), "USDT": D("10499.0005")}
        assert await broker.open_orders() == []
        again = await broker.cancel(order_id(0), SYMBOL)
        assert again == canceled

    run(scenario())


def test_a_cancel_takes_the_bars_closed_before_it_first(tmp_path: Path):
    store, clock = store_at(tmp_path), Clock()
    write_bars(store, flat(-1))  # the bar before the order comes: closed by then

    async def scenario() -> None:
        clock.at(0, 30)
        broker = await opened(tmp_path, clock)
        await broker.submit(market(0, "buy", "1"))
        write_bars(store, flat(1))  # stored, but not polled yet when the cancel comes
        clock.at(2)
        canceled = await broker.cancel(order_id(0), SYMBOL)
        assert (canceled.status, canceled.filled) == ("closed", 1)

    run(scenario())


def test_refusals_carry_their_reason(tmp_path: Path):
    store, clock = store_at(tmp_path), Clock()
    write_bars(store, flat(0, 100.0))

    async def scenario() -> None:
        clock.at(1)
        broker = await opened(tmp_path, clock)

        async def refusal(request) -> str:
            with pytest.raises(OrderRejected) as refused:
                await broker.submit(request)
            assert refused.value.client_order_id == request.client_order_id
            return refused.value.reason

        # 100 BTC at 100.1 (the close + slippage) + 0.1 % = 10 020.01 USDT > 10 000.
        assert await refusal(market(0, "buy", "100")) == "insufficient funds: needs 10020.01, 10000 free"
        rejected = await broker.order_status(order_id(0), SYMBOL)
        assert (
            rejected is not None
            and rejected.status == "rejected"
            and rejected.reason.startswith("insufficient")
        )
        assert (await refusal(market(1, "sell", "0.0005"))).startswith("invalid quantity: 0.0005 is below")
        assert (await refusal(market(2, "sell", "1.0005"))).startswith(
            "invalid quantity: 1.0005 is not a multiple"
        )
        assert await refusal(market(3, "sell", "21")) == "insufficient funds: needs 21, 20 free"
        # A working buy holds 99 x 100 x 1.001 = 9 909.9 USDT, leaving 90.1 free.
        await broker.submit(limit(4, "buy", "99", "100"))
        assert await refusal(market(5, "buy", "1")) == "insufficient funds: needs 100.2001, 90.1 free"
        assert await refusal(limit(4, "sell", "1", "200")) == "duplicate client order id"
        assert await broker.balances() == {"BTC": D(20), "USDT": D(10_000)}
        assert await broker.order_status("demo-never-sent", SYMBOL) is None
        assert await broker.order_status(order_id(4), "ETH/USDT") is None
        with pytest.raises(OrderRejected, match="unknown order"):
            await broker.cancel("demo-never-sent", SYMBOL)

    run(scenario())


def test_the_seeded_draw_rejects_orders(tmp_path: Path):
    write_bars(store_at(tmp_path), flat(0))
    always = replace(config(tmp_path / "paper.json").fills, reject_probability=1.0)
    broker = PaperBroker(config(tmp_path / "paper.json", fills=always), store_at(tmp_path), Clock())

    with pytest.raises(OrderRejected, match=r"rejected by the venue \(simulated\)"):
        run(broker.submit(market(0, "sell", "1")))


def test_a_restarted_broker_is_the_venue_as_it_was_and_fills_the_bars_it_missed_once(tmp_path: Path):
    store, clock = store_at(tmp_path), Clock()
    write_bars(store, flat(0))

    async def scenario() -> None:
        clock.at(1)
        before = await opened(tmp_path, clock)
        await before.submit(market(0, "buy", "15"))
        await before.submit(limit(1, "sell", "3", "150"))
        write_bars(store, flat(1), flat(2))
        await before.advance()
        state = (
            await before.open_orders(),
            await before.fills_since(SYMBOL, T0),
            await before.balances(),
        )
        await before.close()
        assert [f.quantity for f in state[1]] == [5]
        assert not list(tmp_path.glob(".paper.json.tmp"))
        json.loads((tmp_path / "paper.json").read_text())

        write_bars(store, flat(3), flat(4), flat(5))  # while the executor was down
        after = PaperBroker(config(tmp_path / "paper.json"), store, clock)
        assert (
            await after.open_orders(),
            await after.fills_since(SYMBOL, T0),
            await after.balances(),
        ) == state
        assert await after.advance() == 3
        assert await after.advance() == 0
        fills = await after.fills_since(SYMBOL, T0)
        assert [(f.trade_id, f.ts, f.quantity) for f in fills] == [
            (f"{order_id(0)}-1", T0 + 2 * MINUTE, 5),
            (f"{order_id(0)}-2", T0 + 3 * MINUTE, 5),
            (f"{order_id(0)}-3", T0 + 4 * MINUTE, 5),
        ]

    run(scenario())


def test_a_restart_replays_missed_bars_exactly_as_an_uninterrupted_venue_fills_them(tmp_path: Path):
    clock = Clock()

    async def trade(directory: Path, restart: bool) -> list[VenueFill]:
        store = store_at(directory)
        write_bars(store, flat(0))
        clock.at(1)
        broker = await opened(directory, clock)
        await broker.submit(market(0, "buy", "15"))
        await broker.submit(market(1, "sell", "4"))
        for minute in range(1, 7):
            write_bars(store, flat(minute, 100.0 + minute))
            clock.at(minute + 1)
            if restart and minute in (3, 4):
                await broker.close()  # down while bars 3 and 4 close
                continue
            if restart and minute == 5:
                broker = PaperBroker(config(directory / "paper.json"), store, clock)
            await broker.advance()
        return await broker.fills_since(SYMBOL, T0)

    async def scenario() -> None:
        uninterrupted = await trade(tmp_path / "up", restart=False)
        # The buy takes the bar's half (5) on 00:02, 00:03, 00:04; the sell, behind it, fills on 00:05.
        assert [(f.client_order_id, f.ts) for f in uninterrupted] == [
            (order_id(0), T0 + 2 * MINUTE),
            (order_id(0), T0 + 3 * MINUTE),
            (order_id(0), T0 + 4 * MINUTE),
            (order_id(1), T0 + 5 * MINUTE),
        ]
        assert await trade(tmp_path / "restarted", restart=True) == uninterrupted

    run(scenario())


def test_a_crash_before_the_account_is_written_gives_the_same_fills_again(tmp_path: Path):
    store, clock = store_at(tmp_path), Clock()
    write_bars(store, flat(0))
    state = tmp_path / "paper.json"

    async def scenario() -> None:
        clock.at(1)
        broker = await opened(tmp_path, clock)
        await broker.submit(market(0, "buy", "12"))
        written = state.read_bytes()
        write_bars(store, flat(1), flat(2), flat(3), flat(4))
        await broker.advance()
        first = await broker.fills_since(SYMBOL, T0)
        state.write_bytes(written)  # the fills were lost with the process
        again = PaperBroker(config(state), store, clock)
        await again.advance()
        assert await again.fills_since(SYMBOL, T0) == first
        assert len({f.trade_id for f in first}) == len(first) == 3

    run(scenario())


def test_an_orders_fills_do_not_depend_on_the_other_orders(tmp_path: Path):
    clock = Clock()

    async def fills_of_order_0(directory: Path, others: bool) -> list[tuple]:
        store = store_at(directory)
        write_bars(store, flat(0))
        clock.at(0, 30)
        broker = await opened(directory, clock)
        if others:
            await broker.submit(limit(7, "buy", "1", "1"))
            await broker.submit(limit(8, "sell", "2", "500"))
        await broker.submit(market(0, "buy", "8"))
        write_bars(store, *(flat(m, 100.0 + m) for m in range(1, 4)))
        await broker.advance()
        fills = await broker.fills_since(SYMBOL, T0)
        return [
            (f.trade_id, f.ts, f.quantity, f.price, f.fee) for f in fills if f.client_order_id == order_id(0)
        ]

    async def scenario() -> None:
        alone = await fills_of_order_0(tmp_path / "alone", others=False)
        assert len(alone) == 2
        assert await fills_of_order_0(tmp_path / "crowd", others=True) == alone

    run(scenario())


def test_events_stream_the_orders_and_fills_as_the_bars_produce_them(tmp_path: Path):
    store, clock = store_at(tmp_path), Clock()
    write_bars(store, flat(-1))  # the bar before the order comes: closed by then

    async def scenario() -> None:
        clock.at(0, 30)
        broker = PaperBroker(config(tmp_path / "paper.json"), store, clock)
        stream = broker.events()
        await broker.start()
        await broker.submit(market(0, "buy", "7"))
        opened_event = await next_event(stream)
        assert (opened_event.kind, opened_event.order.status) == ("order", "open")
        write_bars(store, flat(1), flat(2))  # the poller finds them
        kinds = [
            (e.kind, e.fill.quantity if e.fill else e.order.filled)
            for e in [await next_event(stream) for _ in range(4)]
        ]
        assert kinds == [("fill", 5), ("order", 5), ("fill", 2), ("order", 7)]

        store.drop(TABLE)
        assert (await next_event(stream)).kind == "disconnected"
        with pytest.raises(BrokerUnavailable, match="cannot read bars"):
            await broker.submit(market(1, "buy", "1"))
        write_bars(store, flat(3))
        assert (await next_event(stream)).kind == "reconnected"
        await broker.close()
        assert [e async for e in stream] == []

    run(scenario())


def test_a_buy_the_account_can_no_longer_pay_for_fills_what_it_affords_then_expires(tmp_path: Path):
    store, clock = store_at(tmp_path), Clock()
    write_bars(store, flat(0, 100.0))

    async def scenario() -> None:
        clock.at(1)
        broker = await opened(tmp_path, clock)
        await broker.submit(market(0, "buy", "99"))  # 99 x 100.1 x 1.001 = 9 919.8... of 10 000: accepted
        # The market jumps: at 110.11 a unit costs 110.22011 with its fee; 10 000 pay for 90.727.
        write_bars(store, flat(1, 110.0, 1000.0), flat(2, 110.0, 1000.0), flat(3, 110.0, 1000.0))
        await broker.advance()
        order = await broker.order_status(order_id(0), SYMBOL)
        assert order is not None
        assert (order.status, order.filled, order.reason) == ("expired", D("90.727"), "insufficient funds")
        assert [f.quantity for f in await broker.fills_since(SYMBOL, T0)] == [D("90.727")]
        assert await broker.balances() == {"BTC": D("110.727"), "USDT": D("0.06008003")}

    run(scenario())


def test_an_order_never_arrives_before_the_close_of_the_last_bar_taken(tmp_path: Path):
    # The executor's clock may lag the venue's (an accelerated replay in another process): an order sent
    # after bar 0 was taken must not fill on bar 0, nor on bar 1 which opened before it arrived.
    store, clock = store_at(tmp_path), Clock()
    write_bars(store, flat(0, 100.0))

    async def scenario() -> None:
        clock.at(0, 10)  # behind: bar 0 has closed at the venue
        broker = await opened(tmp_path, clock)
        await broker.submit(market(0, "buy", "1"))
        write_bars(store, flat(1, 101.0), flat(2, 102.0))
        await broker.advance()
        (fill,) = await broker.fills_since(SYMBOL, T0)
        assert fill.ts == T0 + 2 * MINUTE and fill.price > D(102)

    run(scenario())
