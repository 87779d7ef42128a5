"""Export memory: `trading-assets export` streams a 10M-row table in Arrow batches; peak RSS stays flat.

Side by side, in one run, on the same store (ts + 5 double columns, written once): the embedded DuckDB
(a temp dir) or, with `--store questdb`, the QuestDB server at QUESTDB_ADDR (`scripts/services.sh up`):
- trading-assets: `python -m trading_assets.cli export TABLE --batch-rows N` as a subprocess, Parquet
  and CSV.
- baseline: the store's `read` of the whole table into one Arrow table, then `pyarrow.parquet.write_table`,
  in another subprocess.
- floor: a subprocess that only imports what the CLI imports (dagster, the resources) and reads nothing.

Each subprocess's peak RSS comes from `os.wait4` (that child's own `ru_maxrss`), so the cases do not
mask each other as `RUSAGE_CHILDREN` (the maximum over all children) would.

    .venv/bin/python benchmarks/export.py [--store duckdb|questdb] [--rows 10000000] [--batch-rows 1000000]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from resources.timeseries import TableSchema, TimeSeriesStore
from trading_assets import settings

TABLE = "bench"
SCHEMA = TableSchema(columns=tuple((c, "double") for c in ("open", "high", "low", "close", "volume")))
CHUNK = 1_000_000

READ_ALL = """
import sys, pyarrow.parquet as pq
from trading_assets import settings
table = settings.timeseries_store(settings.Settings.from_env()).read(sys.argv[1])
pq.write_table(table, sys.argv[2])
print(table.num_rows)
"""

IMPORTS_ONLY = "from trading_assets import settings; from resources.timeseries import StoreError"


def write_table(store: TimeSeriesStore, rows: int) -> None:
    """`rows` one-second bars from 2020-01-01, written in chunks so this process stays small too."""
    rng = np.random.default_rng(7)
    t0 = int(datetime(2020, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)
    for lo in range(0, rows, CHUNK):
        n = min(CHUNK, rows - lo)
        ts = t0 + (np.arange(lo, lo + n, dtype=np.int64) * 1_000_000)
        close = 100.0 + np.cumsum(rng.normal(0, 0.01, n))
        data = {"ts": pa.array(ts, pa.timestamp("us", tz="UTC"))}
        data |= {"open": close, "high": close + 0.01, "low": close - 0.01, "close": close}
        data["volume"] = rng.uniform(0, 10, n)
        store.write(TABLE, pa.table(data), SCHEMA)


def measure(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MiB (Linux reports ru_maxrss in KiB) and stderr of one subprocess."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = proc.stderr.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err}")
    return seconds, usage.ru_maxrss / 1024, err.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--batch-rows", type=int, default=1_000_000)
    parser.add_argument("--store", choices=("duckdb", "questdb"), default="duckdb")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="export-bench-") as tmp:
        work = Path(tmp)
        env = {**os.environ, "TRADING_DATA_DIR": str(work), "TRADING_TIMESERIES": args.store}
        env["PYTHONPATH"] = os.pathsep.join(
            [str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")]
        )
        os.environ["TRADING_DATA_DIR"], os.environ["TRADING_TIMESERIES"] = str(work), args.store
        store = settings.timeseries_store(settings.Settings.from_env())
        store.drop(TABLE)
        started = time.perf_counter()
        write_table(store, args.rows)
        if args.store == "duckdb":
            stored = f"DuckDB file {(work / 'timeseries.duckdb').stat().st_size / 2**20:,.0f} MiB"
        else:
            stored = f"QuestDB at {store.host}:{store.http_port}"
        print(
            f"machine        {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
        )
        print(
            f"table          {TABLE}: {args.rows:,} rows x (ts + 5 doubles), "
            f"{args.rows * 48 / 2**20:,.0f} MiB as Arrow, {stored} "
            f"(written in {time.perf_counter() - started:.1f}s)"
        )
        cli = [sys.executable, "-m", "trading_assets.cli", "export", TABLE]
        cases = [
            ("imports only (floor)", [sys.executable, "-c", IMPORTS_ONLY], None),
            (
                f"export parquet, --batch-rows {args.batch_rows:,}",
                [*cli, "--batch-rows", str(args.batch_rows), "--out", "a.parquet"],
                "a.parquet",
            ),
            (
                f"export csv,     --batch-rows {args.batch_rows:,}",
                [*cli, "--format", "csv", "--batch-rows", str(args.batch_rows), "--out", "a.csv"],
                "a.csv",
            ),
            (
                f"export parquet, --batch-rows {args.batch_rows // 10:,}",
                [*cli, "--batch-rows", str(args.batch_rows // 10), "--out", "b.parquet"],
                "b.parquet",
            ),
            (
                "baseline: store.read() whole table + write_table",
                [sys.executable, "-c", READ_ALL, TABLE, "c.parquet"],
                "c.parquet",
            ),
        ]
        print(f"{'case':<50} {'seconds':>8} {'peak RSS MiB':>13} {'file MiB':>9}")
        for label, cmd, out in cases:
            seconds, rss, _ = measure(cmd, env, work)
            size = f"{(work / out).stat().st_size / 2**20:9.0f}" if out else f"{'-':>9}"
            print(f"{label:<50} {seconds:8.1f} {rss:13.0f} {size}")
        store.drop(TABLE)


if __name__ == "__main__":
    main()
