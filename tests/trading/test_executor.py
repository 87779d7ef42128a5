"""The executor on the paper broker over recorded bars: it reconciles before it trades, follows each new
signal with one order towards the strategy's target, records every fill once with its position, denies
what breaks a risk limit, obeys the kill switch, and after a restart (the paper venue kept in its file)
places no order twice and reconciles to the venue's state."""

from __future__ import annotations

import asyncio
import shutil
from datetime import timedelta
from decimal import Decimal

from research_setup import Research

from resources.brokers.paper import PaperBroker, PaperConfig
from resources.duckdb_catalog import DuckDBCatalog
from resources.duckdb_store import DuckDBStore
from trading_assets import naming
from trading_assets.bars.service import BARS_SCHEMA
from trading_assets.compute.fill_model import FillParams
from trading_assets.compute.fill_model import Instrument as PaperInstrument
from trading_assets.live.config import PromoteConfig
from trading_assets.live.executor import Executor, ExecutorConfig, Instrument
from trading_assets.live.runner import StrategyRunner
from trading_assets.live.service import promote
from trading_assets.orders import parse_client_order_id

D = Decimal
SYMBOL = "BTC/USDT"
TABLE = naming.live_bars_table("binance", SYMBOL, "1m")
HISTORY = 300


class Desk:
    """A strategy on recorded bars: the catalog, the store, the runner, a paper account and its executor,
    moved one recorded bar at a time on the bars' own clock."""

    def __init__(self, research: Research, tmp_path, **promote_overrides: object) -> None:  # type: ignore[no-untyped-def]
        shutil.copy(research.catalog.path, tmp_path / "catalog.duckdb")
        self.catalog = DuckDBCatalog(path=str(tmp_path / "catalog.duckdb"))
        self.store = DuckDBStore(path=str(tmp_path / "ts.duckdb"))
        self.bars = research.later
        self.taken = HISTORY
        self.store.write(TABLE, self.bars.slice(0, HISTORY), BARS_SCHEMA)
        settings = {"amount": "0.5", "account": "paper", "max_position": "0.5", **promote_overrides}
        promote(self.catalog, PromoteConfig(name="demo", run=research.run, symbol=SYMBOL, **settings))
        self.catalog.set_strategy_desired_state("demo", "running")
        self.runner = StrategyRunner(self.catalog, self.store)
        self.runner.tick()
        self.state_file = tmp_path / "paper.json"

    def now(self):  # type: ignore[no-untyped-def]
        """The venue's time: the close of the last recorded bar."""
        last = self.bars.column("ts")[self.taken - 1].as_py()
        return last + timedelta(minutes=1)

    def broker(self, **fills: object) -> PaperBroker:
        params = {
            "fee_rate": D("0.001"),
            "slippage_bps": D(5),
            "participation": D("0.5"),
            "latency_s": (0.0, 0.0),
        }
        config = PaperConfig(
            data_venue="binance",
            venue="binance",
            symbols=(SYMBOL,),
            instruments={SYMBOL: PaperInstrument(step=D("0.0001"), min_quantity=D("0.0001"))},
            balances={"USDT": D(1_000_000), "BTC": D(3)},
            state_file=self.state_file,
            fills=FillParams(**{**params, **fills}),  # type: ignore[arg-type]
        )
        return PaperBroker(config, self.store, clock=self.now)

    def executor(self, broker: PaperBroker) -> Executor:
        config = ExecutorConfig(
            "binance", "paper", {SYMBOL: Instrument(D("0.0001"), D("0.0001"))}, poll_s=0.01
        )
        return Executor(config, self.catalog, broker, self.store, clock=self.now)

    async def bar(self, broker: PaperBroker, executor: Executor) -> None:
        """One more bar recorded: the runner signals it, the paper venue fills on it, the executor acts."""
        self.store.write(TABLE, self.bars.slice(self.taken, 1), BARS_SCHEMA)
        self.taken += 1
        self.runner.tick()
        await broker.advance()
        await executor.tick()


def test_it_trades_each_target_once_and_its_fills_and_position_equal_the_venues(research, tmp_path) -> None:  # type: ignore[no-untyped-def]
    desk = Desk(research, tmp_path)

    async def scenario() -> None:
        broker = desk.broker()
        executor = desk.executor(broker)
        await executor.tick()
        assert executor.reconciled and executor.not_ready() == []
        for _ in range(80):
            await desk.bar(broker, executor)
        # One more bar, with no signal taken from it: the last order fills on it.
        desk.store.write(TABLE, desk.bars.slice(desk.taken, 1), BARS_SCHEMA)
        desk.taken += 1
        await broker.advance()
        await executor.tick()

        orders = desk.catalog.list_orders("demo")
        signals = desk.catalog.list_signals("demo")
        assert len(signals) == 80
        # One order per bar at most, each under its deterministic id, all ended by now.
        ids = [o.client_order_id for o in orders]
        assert len(ids) == len(set(ids)) > 3
        assert all(parse_client_order_id(o.client_order_id) == ("demo", o.bar_ts, o.seq) for o in orders)
        assert {o.status for o in orders} <= {"FILLED"}
        # The repository's fills are the venue's, one for one; the position is what they add up to.
        venue_fills = await broker.fills_since(SYMBOL, desk.bars.column("ts")[0].as_py())
        stored = desk.catalog.list_fills(venue="binance")
        assert sorted((f.trade_id, f.quantity, f.price, f.fee) for f in stored) == sorted(
            (f.trade_id, f.quantity, f.price, f.fee) for f in venue_fills
        )
        position = desk.catalog.get_position("binance", "paper", SYMBOL).quantity
        assert (await broker.positions())[SYMBOL] == D(3) + position
        # The position follows the latest target, long only on a spot market: 0.5 or flat.
        assert position == D("0.5") * max(D(0), D(str(signals[-1].target)))
        assert {D(str(o.quantity)) for o in orders} == {D("0.5")}
        # A restart reconciles to the same state and sends nothing new.
        again = desk.executor(desk.broker())
        assert await again.reconcile()
        await again.tick()
        assert len(desk.catalog.list_orders("demo")) == len(orders)
        await broker.close()

    asyncio.run(scenario())


def test_risk_limits_deny_orders_with_the_reason_and_nothing_is_sent(research, tmp_path) -> None:  # type: ignore[no-untyped-def]
    desk = Desk(research, tmp_path, max_position="0.1")

    async def scenario() -> None:
        broker = desk.broker()
        executor = desk.executor(broker)
        for _ in range(20):
            await desk.bar(broker, executor)
        orders = desk.catalog.list_orders("demo")
        assert orders and {o.status for o in orders} == {"DENIED"}
        assert all(o.reason.startswith("max position: ") for o in orders)
        assert (
            await broker.open_orders() == []
            and await broker.fills_since(SYMBOL, desk.now() - timedelta(days=9)) == []
        )
        await broker.close()

    asyncio.run(scenario())


def test_the_kill_switch_stops_new_orders_until_it_is_lifted(research, tmp_path) -> None:  # type: ignore[no-untyped-def]
    desk = Desk(research, tmp_path)

    async def scenario() -> None:
        broker = desk.broker()
        executor = desk.executor(broker)
        desk.catalog.set_trading_halt("binance", "paper", True, "operator test", "tests")
        for _ in range(30):
            await desk.bar(broker, executor)
        # The strategy wanted a position while halted (so an order was held back), and none was stored.
        assert any(s.target > 0 for s in desk.catalog.list_signals("demo"))
        assert desk.catalog.list_orders("demo") == []
        desk.catalog.set_trading_halt("binance", "paper", False, "resumed", "tests")
        for _ in range(30):
            await desk.bar(broker, executor)
        assert desk.catalog.list_orders("demo") != []
        await broker.close()

    asyncio.run(scenario())


def test_a_rejection_is_recorded_with_the_venues_reason_and_not_retried_on_that_bar(
    research, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    desk = Desk(research, tmp_path)

    async def scenario() -> None:
        broker = desk.broker(reject_probability=1.0)
        executor = desk.executor(broker)
        for _ in range(20):
            await desk.bar(broker, executor)
        orders = desk.catalog.list_orders("demo")
        assert orders and {o.status for o in orders} == {"REJECTED"}
        bars = [o.bar_ts for o in orders]
        assert len(bars) == len(set(bars))  # one try per bar
        events = desk.catalog.list_order_events(orders[0].client_order_id)
        assert [e.event for e in events] == ["CREATE", "SUBMIT", "REJECT"]
        await broker.close()

    asyncio.run(scenario())


def test_a_position_the_repository_does_not_explain_fails_reconciliation_closed(research, tmp_path) -> None:  # type: ignore[no-untyped-def]
    desk = Desk(research, tmp_path)

    async def scenario() -> None:
        broker = desk.broker()
        executor = desk.executor(broker)
        await executor.tick()  # first reconciliation: the venue's 3 BTC are the baseline
        await broker.close()
        # Someone trades the account by hand while the executor is down: the venue now holds more BTC.
        manual = desk.broker()
        from resources.brokers.base import OrderRequest

        await manual.submit(OrderRequest("manual-1", SYMBOL, "buy", "market", D("0.2")))
        desk.store.write(TABLE, desk.bars.slice(desk.taken, 1), BARS_SCHEMA)
        desk.taken += 1
        await manual.advance()
        restarted = desk.executor(manual)
        await restarted.tick()
        assert not restarted.reconciled
        (reason,) = restarted.not_ready()
        assert "is no order of ours" in reason, reason
        for _ in range(5):
            await desk.bar(manual, restarted)
        assert desk.catalog.list_orders("demo") == []  # fails closed: nothing sent
        last = desk.catalog.list_reconciliations("binance", "paper")[-1]
        assert last.status == "mismatch"
        await manual.close()

    asyncio.run(scenario())
