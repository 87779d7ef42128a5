"""The executor through the ccxt broker on the local venue (the real ccxt client), on the venue's hand-stepped
clock: an order whose answer is lost goes UNKNOWN and is resolved by asking the venue by its client order
id, never sent again; a venue that says it is unavailable leaves the order rejected and nothing at the
venue; a partial fill is followed to the end; a restart after all that reconciles and sends nothing."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal

from research_setup import Research
from venue_setup import KEY, KEY_ENV, SECRET, SECRET_ENV

from resources.brokers.ccxt_broker import CcxtBroker, CcxtBrokerConfig
from resources.duckdb_catalog import DuckDBCatalog
from resources.duckdb_store import DuckDBStore
from resources.venues import CcxtVenue
from trading_assets import naming
from trading_assets.bars.service import BARS_SCHEMA
from trading_assets.live.config import PromoteConfig
from trading_assets.live.executor import Executor, ExecutorConfig, Instrument
from trading_assets.live.runner import StrategyRunner
from trading_assets.live.service import promote
from trading_assets.live.venue import LocalVenue, VenueSettings
from trading_assets.records import NewOrder, OrderUpdate

D = Decimal
SYMBOL = "BTC/USDT"
TABLE = naming.live_bars_table("binance", SYMBOL, "1m")
HISTORY = 300


class Floor:
    """The research catalog's copy, a store of recorded bars, the runner, and the local venue replaying the
    same bars, moved one bar at a time: the venue's clock passes the bar's close, the bar is recorded (what
    the recorder does), the runner signals it and the executor acts."""

    def __init__(self, research: Research, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
        monkeypatch.setenv(KEY_ENV, KEY)
        monkeypatch.setenv(SECRET_ENV, SECRET)
        shutil.copy(research.catalog.path, tmp_path / "catalog.duckdb")
        self.catalog = DuckDBCatalog(path=str(tmp_path / "catalog.duckdb"))
        self.store = DuckDBStore(path=str(tmp_path / "ts.duckdb"))
        self.bars = research.later
        self.taken = HISTORY
        self.store.write(TABLE, self.bars.slice(0, HISTORY), BARS_SCHEMA)
        promote(
            self.catalog,
            PromoteConfig(name="venue_demo", run=research.run, symbol=SYMBOL, account="main", amount="0.5"),
        )
        self.catalog.set_strategy_desired_state("venue_demo", "running")
        self.runner = StrategyRunner(self.catalog, self.store)
        self.runner.tick()
        start = self.bars.column("ts")[HISTORY].as_py()
        settings = VenueSettings(
            api_key=KEY,
            api_secret=SECRET,
            start_ms=int(start.timestamp() * 1000),
            balances={"USDT": "1000000", "BTC": "0"},
        )
        self.venue = LocalVenue({SYMBOL: self.bars}, settings).start()
        client = CcxtVenue(
            local_url=self.venue.url, api_key_env=KEY_ENV, secret_env=SECRET_ENV, timeout_ms=3000
        )
        self.broker = CcxtBroker(
            CcxtBrokerConfig(venue="binance", client=client, symbols=(SYMBOL,)), clock=self.venue.now
        )
        config = ExecutorConfig(
            "binance", "main", {SYMBOL: Instrument(D("0.00001"), D("0.00001"))}, poll_s=0.01
        )
        self.executor = Executor(config, self.catalog, self.broker, self.store, clock=self.venue.now)

    async def bar(self, executor: Executor | None = None) -> None:
        """One bar on (recorded, signalled), and a poll of `executor` (the floor's own by default)."""
        self.venue.advance(timedelta(minutes=1))
        self.store.write(TABLE, self.bars.slice(self.taken, 1), BARS_SCHEMA)
        self.taken += 1
        self.runner.tick()
        await (executor or self.executor).tick()

    async def until_an_order(self) -> None:
        """Bars until the strategy sends an order (its target changes)."""
        before = len(self.catalog.list_orders("venue_demo"))
        for _ in range(200):
            await self.bar()
            if len(self.catalog.list_orders("venue_demo")) > before:
                return
        raise AssertionError("no order in 200 bars")

    def venue_orders(self) -> dict[str, dict]:
        return {o["clientOrderId"]: o for o in self.venue.state()["orders"]}


def test_an_answer_lost_is_resolved_by_asking_never_by_sending_again(research, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    floor = Floor(research, tmp_path, monkeypatch)

    async def scenario() -> None:
        await floor.executor.tick()
        assert floor.executor.reconciled
        floor.venue.ambiguous_next_order("drop")
        await floor.until_an_order()
        (order,) = floor.catalog.list_orders("venue_demo")
        assert order.status == "UNKNOWN"
        # The venue took it: the next poll asks by the same id and records what happened.
        assert list(floor.venue_orders()) == [order.client_order_id]
        await floor.executor.tick()
        resolved = floor.catalog.get_order(order.client_order_id)
        assert resolved.status == "FILLED" and resolved.filled_quantity == order.quantity
        events = [e.event for e in floor.catalog.list_order_events(order.client_order_id)]
        assert events == ["CREATE", "SUBMIT", "TIMEOUT", "FILL"]
        assert list(floor.venue_orders()) == [order.client_order_id]  # sent once
        await floor.broker.close()

    try:
        asyncio.run(scenario())
    finally:
        floor.venue.stop()


def test_unavailable_and_partial_fills_then_a_restart_sends_nothing(research, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    floor = Floor(research, tmp_path, monkeypatch)

    async def scenario() -> None:
        await floor.executor.tick()
        floor.venue.fail_next_requests(1, 503)
        await floor.until_an_order()
        (refused,) = floor.catalog.list_orders("venue_demo")
        assert refused.status == "REJECTED" and refused.reason.startswith("not sent")
        assert floor.venue_orders() == {}
        # A partial fill: 40 % now, the rest on the next bar.
        floor.venue.partial_fill_next_order(0.4, "later")
        await floor.until_an_order()
        partial = floor.catalog.list_orders("venue_demo")[-1]
        assert partial.status == "PARTIALLY_FILLED" and partial.filled_quantity == partial.quantity * D("0.4")
        await floor.bar()
        done = floor.catalog.get_order(partial.client_order_id)
        assert done.status == "FILLED"
        assert len(floor.catalog.list_fills(partial.client_order_id)) == 2
        held = floor.venue.state()["balances"]["BTC"]
        position = floor.catalog.get_position("binance", "main", SYMBOL)
        assert position.quantity == D(held["free"]) + D(held["locked"])
        await floor.broker.close()

        # A restart: a new broker and executor reconcile to the same state and send nothing new.
        client = floor.broker.config.client
        broker = CcxtBroker(
            CcxtBrokerConfig(venue="binance", client=client, symbols=(SYMBOL,)), clock=floor.venue.now
        )
        restarted = Executor(floor.executor.config, floor.catalog, broker, floor.store, clock=floor.venue.now)
        before = dict(floor.venue_orders())
        await restarted.tick()
        await restarted.tick()
        assert restarted.reconciled and floor.venue_orders() == before
        await broker.close()

    try:
        asyncio.run(scenario())
    finally:
        floor.venue.stop()


def _partially_filled(floor: Floor):  # type: ignore[no-untyped-def]
    """The strategy's first order, 40 % filled and the rest working at the venue (until the next bar)."""

    async def scenario():  # type: ignore[no-untyped-def]
        await floor.executor.tick()
        floor.venue.partial_fill_next_order(0.4, "later")
        await floor.until_an_order()
        (order,) = floor.catalog.list_orders("venue_demo")
        assert order.status == "PARTIALLY_FILLED"
        assert floor.venue_orders()[order.client_order_id]["status"] == "PARTIALLY_FILLED"
        return order

    return scenario()


def test_a_cancel_the_venue_never_received_leaves_the_order_working_then_cancelled(
    research, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    floor = Floor(research, tmp_path, monkeypatch)

    async def scenario() -> None:
        order = await _partially_filled(floor)
        floor.catalog.set_trading_halt("binance", "main", True, "checking", "test")
        # The venue turns away the next two requests: the poll's status query, then the cancel.
        floor.venue.fail_next_requests(2, 503)
        await floor.executor.tick()
        refused = floor.catalog.get_order(order.client_order_id)
        assert refused.status == "PARTIALLY_FILLED", "a cancel not sent must not leave it PENDING_CANCEL"
        await floor.executor.tick()
        cancelled = floor.catalog.get_order(order.client_order_id)
        theirs = floor.venue_orders()[order.client_order_id]
        assert (cancelled.status, theirs["status"]) == ("CANCELED", "CANCELED")
        assert cancelled.filled_quantity == D(theirs["executedQty"]) == order.filled_quantity
        events = [e.event for e in floor.catalog.list_order_events(order.client_order_id)]
        assert events[-4:] == ["CANCEL_REQUEST", "CANCEL_REJECT", "CANCEL_REQUEST", "CANCEL"]
        await floor.broker.close()

    try:
        asyncio.run(scenario())
    finally:
        floor.venue.stop()


def test_an_unknown_order_with_fills_that_the_venue_has_open_works_on_to_its_end(
    research, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    floor = Floor(research, tmp_path, monkeypatch)

    async def scenario() -> None:
        order = await _partially_filled(floor)
        floor.catalog.set_trading_halt("binance", "main", True, "checking", "test")
        # The status query fails, and the cancel's answer times out: the venue never saw the cancel.
        floor.venue.fail_next_requests(2, 504)
        await floor.executor.tick()
        assert floor.catalog.get_order(order.client_order_id).status == "UNKNOWN"
        floor.catalog.set_trading_halt("binance", "main", False, "checked", "test")
        await floor.executor.tick()
        working = floor.catalog.get_order(order.client_order_id)
        assert (working.status, working.filled_quantity) == ("PARTIALLY_FILLED", order.filled_quantity)
        await floor.bar()  # the venue fills the rest
        done = floor.catalog.get_order(order.client_order_id)
        theirs = floor.venue_orders()[order.client_order_id]
        assert (done.status, theirs["status"]) == ("FILLED", "FILLED")
        assert done.filled_quantity == D(theirs["executedQty"]) == order.quantity
        await floor.broker.close()

    try:
        asyncio.run(scenario())
    finally:
        floor.venue.stop()


def test_an_order_pending_cancel_that_the_venue_lost_is_cancelled(research, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    floor = Floor(research, tmp_path, monkeypatch)

    async def scenario() -> None:
        # An order the venue acknowledged, then lost (purged); its cancel was requested before a crash.
        bar = floor.bars.column("ts")[HISTORY - 1].as_py()
        new = NewOrder("venue_demo", bar, 0, "buy", "market", D("0.5"))
        order, _ = floor.catalog.create_order(new)
        for event in ("SUBMIT", "ACCEPT", "CANCEL_REQUEST"):
            floor.catalog.apply_order_event(
                order.client_order_id, OrderUpdate(event=event, venue_order_id="77")
            )
        assert floor.venue_orders() == {}
        await floor.executor.tick()
        lost = floor.catalog.get_order(order.client_order_id)
        assert lost.status == "CANCELED"
        assert floor.executor.reconciled
        await floor.broker.close()

    try:
        asyncio.run(scenario())
    finally:
        floor.venue.stop()


def test_a_second_executor_of_the_account_trades_nothing_until_the_first_lets_go(
    research, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    floor = Floor(research, tmp_path, monkeypatch)
    # Another process, on another host: the same account, its own holder.
    other = Executor(floor.executor.config, floor.catalog, floor.broker, floor.store, clock=floor.venue.now)
    other.holder = "elsewhere-4242-abcdef"

    async def scenario() -> None:
        try:
            await floor.executor.tick()
            assert floor.executor.reconciled
            for _ in range(60):
                await floor.bar(other)
                # The holder only keeps its lease (what each of its heartbeats does), and trades nothing.
                floor.executor._lease_checked = -1e9
                assert await floor.executor._hold_lease()
            assert not other.reconciled
            assert any("another executor holds binance/main" in r for r in other.not_ready())
            assert floor.catalog.list_orders("venue_demo") == [] and floor.venue_orders() == {}
            await floor.executor._release_lease()  # the holder stops (SIGTERM lets the account go)
            await other.tick()
            assert other.lease_problem is None and other.reconciled
            before = len(floor.catalog.list_orders("venue_demo"))
            for _ in range(200):
                await floor.bar(other)
                if len(floor.catalog.list_orders("venue_demo")) > before:
                    break
            assert len(floor.venue_orders()) == len(floor.catalog.list_orders("venue_demo")) > before
        finally:
            await floor.broker.close()

    try:
        asyncio.run(scenario())
    finally:
        floor.venue.stop()


def test_a_lease_left_by_a_process_of_this_host_that_is_gone_is_taken_over_at_once(
    research, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    floor = Floor(research, tmp_path, monkeypatch)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its pid no longer runs
    dead = f"{socket.gethostname()}-{gone.pid}-0a0b0c"
    assert floor.catalog.acquire_executor_lease("binance", "main", dead, 600).granted

    async def scenario() -> None:
        try:
            await floor.executor.tick()
            assert floor.executor.lease_problem is None and floor.executor.reconciled
            lease = floor.catalog.get_executor_lease("binance", "main")
            assert lease is not None and lease.holder == floor.executor.holder
        finally:
            await floor.broker.close()

    try:
        asyncio.run(scenario())
    finally:
        floor.venue.stop()
