"""`trading-assets ingest FILE`: import one export file as a dataset (the bars asset's code path)."""

import argparse
import sys
import time
from pathlib import Path

from trading_assets import settings as cfg


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    ingest = sub.add_parser("ingest", help="import one export file as a dataset (the bars asset's code path)")
    ingest.add_argument("file")
    ingest.add_argument("--dataset", help="dataset name (default: the file's stem)")
    ingest.add_argument("--tz", help="time zone of the file's timestamps (default: UTC or the sidecar's)")
    ingest.add_argument("--datetime-format", help="strptime format when detection is ambiguous")
    ingest.add_argument(
        "--replace",
        action="store_true",
        help="replace the stored dataset even where the file drops stored bars or changes their values",
    )
    ingest.add_argument(
        "--calendar", help="trading calendar for gaps: XNYS (any exchange_calendars code), 24/5 or 24/7"
    )
    ingest.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Imported here so `trading-assets --help` stays fast.
    from resources.landing import landing_file
    from trading_assets.bars.service import ingest_bars

    settings = cfg.Settings.from_env()
    path = Path(args.file)
    if not path.is_file():
        print(f"error: {path}: no such file", file=sys.stderr)
        return 2
    try:
        source = landing_file(path, args.dataset)
        options = source.read_options(args.tz, args.datetime_format, args.calendar)
        started = time.perf_counter()
        # The _cm forms close what they opened (a catalog's pool, Dagster's resource context) on every path.
        with (
            cfg.timeseries_store(settings).process_config_and_initialize_cm() as store,
            cfg.catalog(settings).process_config_and_initialize_cm() as catalog,
        ):
            result = ingest_bars(source, store, catalog, source.options().overridden(options, args.replace))
    except (ValueError, RuntimeError, OSError) as err:
        # BarFileError, InvalidNameError, StoreError, CatalogError, a lock timeout: the message says what.
        print(f"error: {err}", file=sys.stderr)
        return 1
    report = result.report
    print(
        f"{result.record.name}: {report.rows} bars "
        f"{report.first_ts:%Y-%m-%d %H:%M} .. {report.last_ts:%Y-%m-%d %H:%M} UTC, "
        f"interval {report.interval_s}s, {report.gap_count} gaps{_against(report.calendar)} -> table "
        f"{result.record.table_name}"
        f" ({result.change.kind}, {time.perf_counter() - started:.2f}s)"
    )
    return 0


def _against(calendar: str | None) -> str:
    return "" if calendar is None else f" on calendar {calendar}"
