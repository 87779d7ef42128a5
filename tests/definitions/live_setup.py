"""A live desk for the live assets' tests: the research pipeline of tests/trading (a completed walkforward
run on the embedded default), a strategy promoted from it on a catalog of its own, bars recorded into a
store of its own, the real strategy runner, and the real executor on a paper account kept in a file."""

from __future__ import annotations

import shutil
import sys
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "trading"))

from research_setup import Research, build_research

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

__all__ = ["SYMBOL", "TABLE", "Desk", "Research", "build_research"]

D = Decimal
SYMBOL = "BTC/USDT"
TABLE = naming.live_bars_table("binance", SYMBOL, "1m")
HISTORY = 300


class Desk:
    """Strategy "demo" on account binance/paper, moved one recorded bar at a time on the bars' own clock."""

    def __init__(self, research: Research, root: Path) -> None:
        shutil.copy(research.catalog.path, root / "catalog.duckdb")
        self.catalog = DuckDBCatalog(path=str(root / "catalog.duckdb"))
        self.store = DuckDBStore(path=str(root / "ts.duckdb"))
        self.state_file = root / "paper.json"
        self.bars = research.later
        self.taken = HISTORY
        self.store.write(TABLE, self.bars.slice(0, HISTORY), BARS_SCHEMA)
        config = PromoteConfig(
            name="demo", run=research.run, symbol=SYMBOL, amount="0.5", account="paper", max_position="0.5"
        )
        promote(self.catalog, config)
        self.catalog.set_strategy_desired_state("demo", "running")
        self.runner = StrategyRunner(self.catalog, self.store)
        self.runner.tick()

    def now(self) -> datetime:
        """The venue's time: the close of the last recorded bar."""
        return self.bars.column("ts")[self.taken - 1].as_py() + timedelta(minutes=1)

    def broker(self) -> PaperBroker:
        config = PaperConfig(
            data_venue="binance",
            venue="binance",
            symbols=(SYMBOL,),
            instruments={SYMBOL: PaperInstrument(step=D("0.0001"), min_quantity=D("0.0001"))},
            balances={"USDT": D(1_000_000), "BTC": D(3)},
            state_file=self.state_file,
            fills=FillParams(
                fee_rate=D("0.001"), slippage_bps=D(5), participation=D("0.5"), latency_s=(0.0, 0.0)
            ),
        )
        return PaperBroker(config, self.store, clock=self.now)

    def executor(self, broker: PaperBroker) -> Executor:
        config = ExecutorConfig(
            "binance", "paper", {SYMBOL: Instrument(D("0.0001"), D("0.0001"))}, poll_s=0.01
        )
        return Executor(config, self.catalog, broker, self.store, clock=self.now)

    async def trade(self, bars: int) -> None:
        """`bars` more bars recorded: the runner signals each, the paper venue fills on it, the executor
        acts."""
        broker = self.broker()
        executor = self.executor(broker)
        try:
            for _ in range(bars):
                self.store.write(TABLE, self.bars.slice(self.taken, 1), BARS_SCHEMA)
                self.taken += 1
                self.runner.tick()
                await broker.advance()
                await executor.tick()
        finally:
            await broker.close()


def bars_ending(bars: pa.Table, last_open: datetime, count: int = 10) -> pa.Table:
    """`count` one-minute bars of `bars` moved in time so that the last one opens at `last_open`."""
    first = last_open - timedelta(minutes=count - 1)
    ts = pa.array([first + timedelta(minutes=i) for i in range(count)], type=bars.schema.field("ts").type)
    return bars.slice(0, count).set_column(bars.schema.get_field_index("ts"), "ts", ts)
