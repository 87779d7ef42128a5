"""`trading-assets export TABLE`: stream a time-series table (or a window and columns of it) to Parquet or
CSV."""

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from trading_assets import settings as cfg


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    export = sub.add_parser(
        "export", help="stream a time-series table (or a window and columns of it) to Parquet or CSV"
    )
    export.add_argument("table")
    export.add_argument("--start", help="first timestamp, inclusive: 2025-01-01 (UTC) or 2025-01-01T09:30Z")
    export.add_argument("--end", help="end timestamp, exclusive; a date-time needs 'Z' or an offset")
    export.add_argument("--columns", help="comma-separated columns (ts is always included); default all")
    export.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    export.add_argument("--out", help="output file (default TABLE.FORMAT here); '-' is stdout, csv only")
    export.add_argument("--batch-rows", type=int, default=1_000_000, help="rows per streamed batch")
    export.set_defaults(run=run)


def _timestamp(text: str | None, flag: str) -> datetime | None:
    """An ISO 8601 bound: a date alone is 00:00 UTC; a date-time needs 'Z' or an offset, since the stores
    hold UTC and guessing a zone would shift the window without a word."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{flag} {text!r} is not an ISO 8601 date or timestamp") from None
    if value.tzinfo is None:
        if len(text) > 10:
            raise ValueError(f"{flag} {text!r} has no time zone; add 'Z' for UTC or an offset like +01:00")
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _export_columns(text: str | None) -> list[str] | None:
    """The --columns list, with `ts` first unless named: every exported row keeps its timestamp."""
    if text is None:
        return None
    names = [c.strip() for c in text.split(",") if c.strip()]
    if not names:
        raise ValueError("--columns names no column")
    return names if "ts" in names else ["ts", *names]


def _write_batches(fmt: str, sink: str | IO[bytes], schema: Any, batches: Iterable[Any]) -> int:
    """Stream `batches` into one Parquet or CSV file; only one batch is in memory at a time."""
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    writer = pq.ParquetWriter(sink, schema) if fmt == "parquet" else pcsv.CSVWriter(sink, schema)
    rows = 0
    with writer:
        for batch in batches:
            writer.write_batch(batch)
            rows += batch.num_rows
    return rows


def _write_file(fmt: str, out: Path, schema: Any, batches: Iterable[Any]) -> int:
    """Write to a temporary file beside `out`, then rename it: a failed export leaves no partial file."""
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial")
    os.close(fd)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; the export gets the usual permissions
        rows = _write_batches(fmt, tmp, schema, batches)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return rows


def run(args: argparse.Namespace) -> int:
    from resources.timeseries import StoreError
    from trading_assets import naming

    # A refusal (bad name, bound, column, unknown table) exits 2 before any file is opened; a failure
    # while writing exits 1 and leaves no file behind.
    try:
        table = naming.table_name(args.table)
        start, end = _timestamp(args.start, "--start"), _timestamp(args.end, "--end")
        if start is not None and end is not None and start >= end:
            raise ValueError(f"--start {args.start} is not before --end {args.end}")
        columns = _export_columns(args.columns)
        if args.batch_rows < 1:
            raise ValueError("--batch-rows must be at least 1")
        out = args.out or f"{table}.{args.format}"
        if out == "-" and args.format != "csv":
            raise ValueError("--out - (stdout) needs --format csv")
        store = cfg.timeseries_store(cfg.Settings.from_env()).process_config_and_initialize()
        started = time.perf_counter()
        batches = iter(store.iter_batches(table, start, end, columns, batch_rows=args.batch_rows))
        first = next(batches, None)  # the store checks the table and the columns here
        if first is None:  # nothing in the window: an empty file with the table's columns
            schema, rest = store.read(table, start, end, columns).schema, []
        else:
            schema, rest = first.schema, _chain(first, batches)
    except (ValueError, StoreError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        if out == "-":
            rows = _write_batches(args.format, sys.stdout.buffer, schema, rest)
            sys.stdout.buffer.flush()
        else:
            rows = _write_file(args.format, Path(out), schema, rest)
    except (OSError, RuntimeError, ValueError) as err:
        print(f"error: {err} (no file written)", file=sys.stderr)
        return 1
    where = "stdout" if out == "-" else out
    print(f"{table}: {rows} rows -> {where} ({time.perf_counter() - started:.2f}s)", file=sys.stderr)
    return 0


def _chain(first: Any, rest: Iterable[Any]) -> Iterable[Any]:
    yield first
    yield from rest
