"""QuestDB store throughput on the real server, side by side with the official client alone, in one run.

Needs a QuestDB server: `scripts/services.sh up` starts one (QUESTDB_ADDR, default 127.0.0.1:9000).
Data: `--rows` one-minute bars (ts + open, high, low, close, volume doubles), the same for every case.

- write: `QuestDBStore.write` (checks the rows, one ILP/HTTP transaction or staging + INSERT SELECT, waits
  until QuestDB has applied it) against the raw client: `Sender.dataframe()` of the same data as a ready
  pandas frame and one `flush()`, timed to the server's answer and again to WAL apply (what a reader needs).
- read: `QuestDBStore.read` into Arrow (Parquet pages from `/exp?fmt=parquet`) against the other paths the
  server offers for the same query: the CSV export parsed by pyarrow, and PGWire through psycopg (binary).

Each case runs `--repeat` times on a fresh table; the best time is printed.

    .venv/bin/python benchmarks/questdb_store.py [--rows 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from questdb import Sender

from resources.questdb_store import QuestDBStore, select_sql
from resources.timeseries import TS_TYPE, TableSchema

TABLE = "bench_questdb"
COLUMNS = ("open", "high", "low", "close", "volume")
SCHEMA = TableSchema(columns=tuple((c, "double") for c in COLUMNS))


def bars(rows: int) -> pa.Table:
    rng = np.random.default_rng(7)
    t0 = int(datetime(2020, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)
    close = 100.0 + np.cumsum(rng.normal(0, 0.01, rows))
    return pa.table(
        {
            "ts": pa.array(t0 + np.arange(rows, dtype=np.int64) * 60_000_000, TS_TYPE),
            "open": close,
            "high": close + 0.01,
            "low": close - 0.01,
            "close": close,
            "volume": rng.uniform(0, 10, rows),
        }
    )


def best(repeat: int, setup: Callable[[], None], case: Callable[[], object]) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        setup()
        started = time.perf_counter()
        result = case()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    host, _, port = os.environ.get("QUESTDB_ADDR", "127.0.0.1:9000").rpartition(":")
    store = QuestDBStore(host=host, http_port=int(port))
    version = store._rows("SELECT build();")[0][0]
    data = bars(args.rows)
    frame = data.to_pandas()
    print(f"machine        {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"server         {version.splitlines()[0]}")
    print(f"data           {args.rows:,} bars x (ts + {len(COLUMNS)} doubles), best of {args.repeat}")

    def fresh() -> None:
        store.drop(TABLE)
        store.ensure_table(TABLE, SCHEMA)

    def raw(wait: bool) -> Callable[[], None]:
        def send() -> None:
            conf = f"http::addr={host}:{port};protocol_version=2;auto_flush=off;max_buf_size=4000000000;"
            with Sender.from_conf(conf, request_timeout=timedelta(minutes=5)) as sender:
                sender.dataframe(frame, table_name=TABLE, at="ts")
                sender.flush()
            if wait:
                store._await_applied(TABLE)

        return send

    raw_answer, _ = best(args.repeat, fresh, raw(wait=False))
    raw_applied, _ = best(args.repeat, fresh, raw(wait=True))
    ours, _ = best(args.repeat, fresh, lambda: store.write(TABLE, data, SCHEMA))
    assert store.read(TABLE).equals(data), "the store did not read back what it wrote"
    print(f"\n{'write':<66} {'seconds':>8} {'rows/s':>12} {'vs raw':>7}")
    for label, seconds in (
        ("raw client: dataframe() + flush(), to the server's answer", raw_answer),
        ("raw client: dataframe() + flush(), to WAL applied", raw_applied),
        ("QuestDBStore.write (checked, one transaction, WAL applied)", ours),
    ):
        print(f"{label:<66} {seconds:8.2f} {args.rows / seconds:12,.0f} {raw_applied / seconds:7.0%}")

    sql = select_sql(TABLE, ["ts", *COLUMNS])

    def export(fmt: str) -> bytes:
        query = urllib.parse.urlencode({"query": sql, **({"fmt": fmt} if fmt else {})})
        with urllib.request.urlopen(f"http://{host}:{port}/exp?{query}", timeout=300) as response:
            return response.read()

    def pgwire() -> int:
        port_pg = os.environ.get("QUESTDB_PG_PORT", "8812")  # QuestDB's default PGWire credentials
        conninfo = f"host={host} port={port_pg} user=admin password=quest dbname=qdb"
        with psycopg.connect(conninfo) as conn, conn.cursor(binary=True) as cur:
            cur.execute(sql.rstrip(";"))
            return len(cur.fetchall())

    reads = [
        ("QuestDBStore.read -> Arrow (Parquet /exp, 1M-row pages)", lambda: store.read(TABLE).num_rows),
        ("/exp CSV parsed by pyarrow.csv", lambda: pacsv.read_csv(io.BytesIO(export(""))).num_rows),
        ("PGWire, psycopg binary cursor, fetchall (Python tuples)", pgwire),
    ]
    print(f"\n{'read':<66} {'seconds':>8} {'rows/s':>12}")
    for label, case in reads:
        seconds, rows = best(args.repeat, lambda: None, case)
        assert rows == args.rows, f"{label}: {rows} rows"
        print(f"{label:<66} {seconds:8.2f} {args.rows / seconds:12,.0f}")
    store.drop(TABLE)


if __name__ == "__main__":
    main()
