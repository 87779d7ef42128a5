"""What the paper broker's tests share: a DuckDB store holding recorded bars of BTC/USDT, the account's
config and a clock the tests move."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa

from resources.brokers.base import OrderRequest
from resources.brokers.paper import PaperConfig
from resources.duckdb_store import DuckDBStore
from resources.timeseries import TS_TYPE
from trading_assets import naming
from trading_assets.bars.service import BARS_SCHEMA
from trading_assets.compute.fill_model import FillParams, Instrument
from trading_assets.orders import client_order_id

D = Decimal
T0 = datetime(2024, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
SYMBOL = "BTC/USDT"
TABLE = naming.live_bars_table("binance", SYMBOL, "1m")


def config(state_file: Path, **changes: object) -> PaperConfig:
    """10 000 USDT and 20 BTC; fee 0.1 %, slippage 10 bps, half of each bar's volume, 1 s latency."""
    base = PaperConfig(
        data_venue="binance",
        symbols=(SYMBOL,),
        instruments={SYMBOL: Instrument(step=D("0.001"), min_quantity=D("0.001"))},
        balances={"USDT": D(10_000), "BTC": D(20)},
        state_file=state_file,
        fills=FillParams(
            fee_rate=D("0.001"), slippage_bps=D(10), participation=D("0.5"), latency_s=(1.0, 1.0), seed=7
        ),
        poll_s=0.01,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def store_at(tmp_path: Path) -> DuckDBStore:
    return DuckDBStore(path=str(tmp_path / "timeseries.duckdb"))


def write_bars(store: DuckDBStore, *bars: tuple[int, float, float, float, float, float]) -> None:
    """Bars (minute after T0, open, high, low, close, volume) as the recorder stores them."""
    columns = list(zip(*bars, strict=True))
    data = pa.table(
        {
            "ts": pa.array([T0 + m * MINUTE for m in columns[0]], TS_TYPE),
            **{
                name: pa.array(values, pa.float64())
                for name, values in zip(BARS_SCHEMA.column_names[1:], columns[1:], strict=True)
            },
        }
    )
    store.write(TABLE, data, BARS_SCHEMA)


def flat(
    minute: int, price: float = 100.0, volume: float = 10.0
) -> tuple[int, float, float, float, float, float]:
    """A bar that opens, tops, bottoms and closes at `price`."""
    return (minute, price, price, price, price, volume)


@dataclass
class Clock:
    """The broker's clock, moved by the test: `at(m, s)` is m minutes s seconds after T0."""

    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def at(self, minutes: int, seconds: float = 0.0) -> None:
        self.now = T0 + timedelta(minutes=minutes, seconds=seconds)


def order_id(seq: int, minute: int = 0) -> str:
    return client_order_id("demo", T0 + minute * MINUTE, seq)


def market(seq: int, side: str, quantity: str) -> OrderRequest:
    return OrderRequest(order_id(seq), SYMBOL, side, "market", D(quantity))  # type: ignore[arg-type]


def limit(seq: int, side: str, quantity: str, price: str) -> OrderRequest:
    return OrderRequest(order_id(seq), SYMBOL, side, "limit", D(quantity), D(price))  # type: ignore[arg-type]
