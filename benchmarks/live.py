"""Live trading speed on the local venue: bars recorded per second, and an order's round trip.

    .venv/bin/python benchmarks/live.py                      # DuckDB and QuestDB (QUESTDB_ADDR) stores
    .venv/bin/python benchmarks/live.py --bars 5000 --orders 100

The local venue (trading-assets venue, in this process's thread, loopback) replays `--bars` one-minute bars;
the real ccxt client talks to it.
- recording: the recorder catches up the whole history over REST (pages of 1,000 bars) into the store,
  beside the floor: the same ccxt pages fetched and written with one `store.write` each, with none of the
  recorder's checks; then the venue runs at 3000x (fifty bars a second) and the recorder follows the
  stream for 20 s: bars written per second and its lag at the end;
- order round trip: `--orders` market orders through `CcxtBroker.submit` (the executor's path) beside
  ccxt's own `create_order` on the same venue, p50 and p95 milliseconds.
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from resources.brokers.base import OrderRequest  # noqa: E402
from resources.brokers.ccxt_broker import CcxtBroker, CcxtBrokerConfig  # noqa: E402
from resources.duckdb_store import DuckDBStore  # noqa: E402
from resources.timeseries import TS_TYPE, TimeSeriesStore  # noqa: E402
from resources.venues import CcxtVenue  # noqa: E402
from trading_assets import naming  # noqa: E402
from trading_assets.bars.service import BARS_SCHEMA  # noqa: E402
from trading_assets.compute.demo_data import generate_bars  # noqa: E402
from trading_assets.live.recorder import Recorder, RecorderConfig  # noqa: E402
from trading_assets.live.venue import LocalVenue, VenueSettings  # noqa: E402

SYMBOL = "ETH/USDT"
TABLE = naming.live_bars_table("binance", SYMBOL, "1m")
KEY_ENV, SECRET_ENV = "BENCH_VENUE_KEY", "BENCH_VENUE_SECRET"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bars", type=int, default=20_000, help="bars of history the venue replays")
    parser.add_argument("--orders", type=int, default=200, help="orders per round-trip case")
    args = parser.parse_args()
    os.environ[KEY_ENV], os.environ[SECRET_ENV] = "bench-key", "bench-secret"
    bars = generate_bars(n_rows=args.bars + 2_000, seed=5, n_gaps=0)
    print(
        f"local venue, {args.bars:,} one-minute bars of history; {os.cpu_count()} cores, {platform.machine()}"
    )
    with tempfile.TemporaryDirectory() as work:
        stores: list[tuple[str, TimeSeriesStore]] = [("duckdb", DuckDBStore(path=f"{work}/ts.duckdb"))]
        if os.environ.get("QUESTDB_ADDR"):
            from resources.questdb_store import QuestDBStore

            stores.append(("questdb", QuestDBStore(addr=os.environ["QUESTDB_ADDR"])))
        else:
            print("  (QUESTDB_ADDR not set: QuestDB left out; scripts/services.sh up starts one)")
        print(f"\nrecording: catch-up over REST of {args.bars:,} bars, then the stream at 3000x for 20 s")
        print(f"  {'store':<8} {'case':<44} {'seconds':>8} {'bars/s':>9}")
        for name, store in stores:
            asyncio.run(_recording(name, store, bars, args.bars))
    print(f"\norder round trip: {args.orders} market orders each, the venue on loopback")
    print(f"  {'case':<44} {'p50 ms':>8} {'p95 ms':>8}")
    asyncio.run(_round_trips(bars, args.orders))


def _venue(bars: pa.Table, start_ms: int, **settings: object) -> LocalVenue:
    base = {"api_key": "bench-key", "api_secret": "bench-secret", "start_ms": start_ms}
    return LocalVenue({SYMBOL: bars}, VenueSettings(**{**base, **settings}))  # type: ignore[arg-type]


def _client(venue: LocalVenue) -> CcxtVenue:
    return CcxtVenue(local_url=venue.url, api_key_env=KEY_ENV, secret_env=SECRET_ENV, timeout_ms=10_000)


async def _recording(name: str, store: TimeSeriesStore, bars: pa.Table, history: int) -> None:
    start_ms = int(bars.column("ts")[history].as_py().timestamp() * 1000)
    with _venue(bars, start_ms) as venue:
        # The floor: ccxt's pages written as they come, nothing checked.
        store.drop(TABLE)
        exchange = _client(venue).exchange("async")
        started = time.perf_counter()
        since, written = start_ms - history * 60_000, 0
        while True:
            page = await exchange.fetch_ohlcv(SYMBOL, "1m", since=since, limit=1000)
            closed = [c for c in page if c[0] + 60_000 <= start_ms]
            if closed:
                store.write(TABLE, _table(closed), BARS_SCHEMA)
                written += len(closed)
            if len(page) < 1000 or not closed:
                break
            since = closed[-1][0] + 1
        floor_s = time.perf_counter() - started
        await exchange.close()

        store.drop(TABLE)
        config = RecorderConfig(venue="binance", symbols=(SYMBOL,), history_bars=history, stall_s=10)
        recorder = Recorder(config, _client(venue).exchange("pro"), store)
        stop = asyncio.Event()
        started = time.perf_counter()
        task = asyncio.create_task(recorder.run(stop))
        while recorder.not_ready():
            await asyncio.sleep(0.01)
        catch_up_s = time.perf_counter() - started
        caught = store.read(TABLE).num_rows
        venue.set_speed(3000.0)
        following = time.perf_counter()
        await asyncio.sleep(20)
        venue.set_speed(0.0)
        follow_s = time.perf_counter() - following
        await asyncio.sleep(1.5)
        streamed = store.read(TABLE).num_rows - caught
        labels = {"venue": "binance", "symbol": SYMBOL}
        lag = recorder.registry.get_sample_value("live_bar_lag_bars", labels)
        stop.set()
        await task
        store.drop(TABLE)
    floor = "floor: ccxt pages + store.write, no checks"
    print(f"  {name:<8} {floor:<44} {floor_s:8.2f} {written / floor_s:9,.0f}")
    print(f"  {name:<8} {'recorder: REST catch-up':<44} {catch_up_s:8.2f} {caught / catch_up_s:9,.0f}")
    case = f"recorder: stream at 3000x (50 bars/s), lag {lag:.0f}"
    print(f"  {name:<8} {case:<44} {follow_s:8.2f} {streamed / follow_s:9,.1f}")


def _table(candles: list[list[float]]) -> pa.Table:
    columns = list(zip(*candles, strict=True))
    return pa.table(
        {
            "ts": pa.array([datetime.fromtimestamp(t / 1000, UTC) for t in columns[0]], TS_TYPE),
            **{k: pa.array(columns[i], pa.float64()) for i, k in enumerate(BARS_SCHEMA.column_names[1:], 1)},
        }
    )


async def _round_trips(bars: pa.Table, orders: int) -> None:
    start_ms = int(bars.column("ts")[100].as_py().timestamp() * 1000)
    with _venue(bars, start_ms, balances={"USDT": "100000000", "ETH": "0"}) as venue:
        exchange = _client(venue).exchange("async")
        await exchange.load_markets()
        raw = []
        for i in range(orders):
            started = time.perf_counter()
            await exchange.create_order(SYMBOL, "market", "buy", 0.001, params={"clientOrderId": f"raw-{i}"})
            raw.append((time.perf_counter() - started) * 1000)
        await exchange.close()
        broker = CcxtBroker(CcxtBrokerConfig(venue="binance", client=_client(venue), symbols=(SYMBOL,)))
        through = []
        for i in range(orders):
            request = OrderRequest(f"bench-{i}", SYMBOL, "buy", "market", Decimal("0.001"))
            started = time.perf_counter()
            await broker.submit(request)
            through.append((time.perf_counter() - started) * 1000)
        await broker.close()
    for case, times in (
        ("ccxt create_order (the floor)", raw),
        ("CcxtBroker.submit (the executor's path)", through),
    ):
        p50, p95 = statistics.median(times), float(np.percentile(times, 95))
        print(f"  {case:<44} {p50:8.1f} {p95:8.1f}")


if __name__ == "__main__":
    main()
