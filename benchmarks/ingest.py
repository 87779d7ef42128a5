"""Bars ingestion throughput: parse + validate + write of a 5M-bar export into DuckDB.

Side by side, in one run, on the same file:
- trading-assets: `ingest_bars` end to end (hash, detect, parse, validate, write to DuckDBStore, catalog row).
- baseline: `pandas.read_csv` + `pandas.to_datetime` + one DuckDB `CREATE TABLE AS` from the DataFrame,
  with no validation at all.

    .venv/bin/python benchmarks/ingest.py [--rows 5000000] [--repeat 3]

The export (MetaTrader 4 text, as `make demo` writes) is generated once into benchmarks/.cache/. The
last line says whether trading-assets met the aim of 3,000,000 rows/s and how it compares with the
baseline. On a shared machine the load averages (first and last lines) say how busy it was, and `cpu s`
(the CPU time of the total, all threads) says how much work each side did whatever the load.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

import duckdb
import pandas as pd

from resources.duckdb_catalog import DuckDBCatalog
from resources.duckdb_store import DuckDBStore
from resources.landing import landing_file
from trading_assets.bars.service import BARS_SCHEMA, ingest_bars
from trading_assets.compute.bar_checks import validate_bars
from trading_assets.compute.bar_format import read_bars
from trading_assets.compute.demo_data import generate_bars, write_export

CACHE = Path(__file__).parent / ".cache"
AIM_ROWS_PER_S = 3_000_000


def export_file(rows: int) -> Path:
    path = CACHE / f"bench{rows}.txt"
    if not path.exists():
        CACHE.mkdir(exist_ok=True)
        write_export(generate_bars(n_rows=rows), path)
    return path


def cpu_seconds() -> float:
    """CPU time of this process so far, every thread (DuckDB's, numba's, the hash's) included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def ours(path: Path, work: Path) -> dict[str, float]:
    store = DuckDBStore(path=str(work / "ts.duckdb"))
    catalog = DuckDBCatalog(path=str(work / "catalog.duckdb"))
    cpu, started = cpu_seconds(), time.perf_counter()
    ingest_bars(landing_file(path, "bench"), store, catalog)
    total, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    # The same stages once more, timed apart (the table is replaced, so this is the same work again).
    t0 = time.perf_counter()
    parsed = read_bars(path)
    t1 = time.perf_counter()
    validate_bars(parsed, path)
    t2 = time.perf_counter()
    store.replace("bench", parsed.table, BARS_SCHEMA)
    t3 = time.perf_counter()
    return {"total": total, "cpu": cpu, "parse": t1 - t0, "validate": t2 - t1, "write": t3 - t2}


def baseline(path: Path, work: Path) -> dict[str, float]:
    cpu, started = cpu_seconds(), time.perf_counter()
    df = pd.read_csv(
        path,
        header=None,
        names=["date", "time", "open", "high", "low", "close", "volume"],
        dtype={"date": str, "time": str},
    )
    df.insert(
        0, "ts", pd.to_datetime(df.pop("date") + " " + df.pop("time"), format="%Y.%m.%d %H:%M", utc=True)
    )
    parsed = time.perf_counter()
    con = duckdb.connect(str(work / "baseline.duckdb"))
    con.register("df", df)
    con.execute("CREATE OR REPLACE TABLE bench AS SELECT * FROM df")
    con.close()
    done = time.perf_counter()
    return {
        "total": done - started,
        "cpu": cpu_seconds() - cpu,
        "parse": parsed - started,
        "validate": 0.0,
        "write": done - parsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    path = export_file(args.rows)
    size_mb = path.stat().st_size / 1e6
    print(
        f"{args.rows:,} bars, {size_mb:.0f} MB ({path.name}); "
        f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(f"best of {args.repeat} runs each; rows/s = {args.rows:,} / total seconds")
    print(f"{'':<16}{'total s':>9}{'rows/s':>13}{'cpu s':>7}{'parse s':>9}{'validate s':>12}{'write s':>9}")
    totals = {}
    for label, run in (("trading-assets", ours), ("pandas+duckdb", baseline)):
        best: dict[str, float] | None = None
        for _ in range(args.repeat):
            work = Path(tempfile.mkdtemp(prefix="bench-"))
            try:
                result = run(path, work)
            finally:
                shutil.rmtree(work)
            if best is None or result["total"] < best["total"]:
                best = result
        assert best is not None
        totals[label] = best["total"]
        print(
            f"{label:<16}{best['total']:>9.2f}{args.rows / best['total']:>13,.0f}{best['cpu']:>7.2f}"
            f"{best['parse']:>9.2f}{best['validate']:>12.2f}{best['write']:>9.2f}"
        )
    rate = args.rows / totals["trading-assets"]
    speedup = totals["pandas+duckdb"] / totals["trading-assets"]
    print(
        f"aim ≥ {AIM_ROWS_PER_S:,} rows/s: {'met' if rate >= AIM_ROWS_PER_S else 'NOT met'} ({rate:,.0f}); "
        f"{speedup:.2f}x the pandas+duckdb baseline; load average now {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
