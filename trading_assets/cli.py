"""`trading-assets`: the command line.

trading-assets ingest FILE [--dataset NAME] [--tz ZONE] [--datetime-format FMT] [--calendar CAL] [--replace]
trading-assets demo [--rows N]
trading-assets demo-data --shape equity-daily|fx-hourly|crypto-minute [--rows N] [--seed S] [--out DIR]
trading-assets export TABLE [--start T] [--end T] [--columns a,b] [--format parquet|csv] [--out PATH]
trading-assets catalog [--dataset NAME]
trading-assets submit walkforward|simulation FILE.yaml [--requested-by NAME]
trading-assets requests [--status S] [--id N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from trading_assets import settings as cfg
from trading_assets.records import JOB_KINDS, JOB_STATUSES

DEMO_DATASET = "btc25"


def _ingest(args: argparse.Namespace) -> int:
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


def _demo(args: argparse.Namespace) -> int:
    import dagster as dg

    from trading_assets.compute.demo_data import generate_bars, write_export

    settings = cfg.Settings.from_env()
    os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home))
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    settings.landing_dir.mkdir(parents=True, exist_ok=True)
    export = settings.landing_dir / f"{DEMO_DATASET}.txt"
    started = time.perf_counter()
    if not export.exists():
        write_export(generate_bars(n_rows=args.rows), export)
        print(f"generated {export} ({args.rows} one-minute bars) in {time.perf_counter() - started:.1f}s")

    from trading_assets.definitions import defs

    instance = dg.DagsterInstance.get()
    if not instance.has_dynamic_partition("datasets", DEMO_DATASET):
        instance.add_dynamic_partitions("datasets", [DEMO_DATASET])
    result = defs.resolve_job_def("ingest_bars").execute_in_process(
        instance=instance,
        partition_key=DEMO_DATASET,
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )
    if not result.success:
        print(
            "error: the ingest_bars run failed; see the Dagster UI (make dev) for its logs", file=sys.stderr
        )
        return 1
    materialization = result.asset_materializations_for_node("bars")[0]
    meta = {k: v.value for k, v in materialization.metadata.items()}
    checks = result.get_asset_check_evaluations()
    print(f"dataset        {DEMO_DATASET}  (run {result.run_id[:8]}, {time.perf_counter() - started:.1f}s)")
    print(f"table          {meta['dagster/table_name']}  ({meta['dagster/row_count']} rows)")
    print(f"bar interval   {meta['bar_interval']}, {meta['gap_count']} gaps, largest {meta['largest_gap']}")
    for check in checks:
        print(f"check          {check.check_name}: {'passed' if check.passed else 'FAILED'}")
    # A catalog with a connection pool (Postgres) must be closed again, hence the context manager.
    with cfg.catalog(settings).process_config_and_initialize_cm() as catalog:
        passed = all(c.passed for c in checks) and _demo_indicators(defs, instance, catalog)
        run = _demo_walkforward(defs, instance, catalog) if passed else None
    passed = run is not None and _demo_simulation(defs, instance, run)
    print("UI             make dev, then open http://127.0.0.1:3000")
    return 0 if passed else 1


def _demo_data(args: argparse.Namespace) -> int:
    from trading_assets.compute.demo_data import SHAPES, shape_bars, write_shape

    shape = SHAPES[args.shape]
    if args.rows is not None and args.rows < 2:
        print("error: --rows must be at least 2", file=sys.stderr)
        return 2
    folder = Path(args.out) if args.out else cfg.Settings.from_env().landing_dir
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    bars = shape_bars(shape, args.rows, args.seed)
    export = write_shape(shape, folder, bars)
    first, last = bars["ts"][0].as_py(), bars["ts"][-1].as_py()
    print(
        f"{export}: {bars.num_rows} bars {first:%Y-%m-%d %H:%M} .. {last:%Y-%m-%d %H:%M} UTC, "
        f"shape {args.shape}; calendar {shape.calendar} in {shape.dataset}.json "
        f"({time.perf_counter() - started:.1f}s)"
    )
    return 0


def _demo_indicators(defs: object, instance: object, catalog: Any) -> bool:
    """Register the default indicator set on the demo dataset and compute it, as the sensor would."""
    from trading_assets.compute.indicators import default_spec
    from trading_assets.indicators.service import register_set
    from trading_assets.partitions import indicator_set_key, indicator_versions

    started = time.perf_counter()
    record, _ = register_set(catalog, DEMO_DATASET, default_spec())
    if not instance.has_dynamic_partition(indicator_versions.name, str(record.version)):
        instance.add_dynamic_partitions(indicator_versions.name, [str(record.version)])
    result = defs.resolve_job_def("materialize_indicators").execute_in_process(
        instance=instance,
        partition_key=indicator_set_key(DEMO_DATASET, record.version),
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )
    if not result.success:
        print(
            "error: the materialize_indicators run failed; see the Dagster UI for its logs", file=sys.stderr
        )
        return False
    meta = {k: v.value for k, v in result.asset_materializations_for_node("indicators")[0].metadata.items()}
    checks = result.get_asset_check_evaluations()
    print(
        f"indicators     {meta['dagster/table_name']}  ({len(record.columns)} columns of set "
        f"'{record.label}', {meta['update']} update, {time.perf_counter() - started:.1f}s)"
    )
    for check in checks:
        print(f"check          {check.check_name}: {'passed' if check.passed else 'FAILED'}")
    return all(c.passed for c in checks)


# The demo's walkforward: 12 folds of 14 days, each trained on the 60 days before it, predicting the
# log return 15 minutes ahead from every column of the default indicator set.
DEMO_WALKFORWARD = {
    "dataset": DEMO_DATASET,
    "indicator_version": 1,
    "target": {"kind": "regression", "horizon": 15},
    "folds": {"train": "60d", "test": "14d", "mode": "sliding", "max_folds": 12},
    "hyperparameters": {"n_estimators": 200, "max_depth": 4, "learning_rate": 0.05},
    "seed": 7,
}


def _demo_walkforward(defs: object, instance: object, catalog: Any) -> str | None:
    """Register the demo's walkforward run, train its folds one partition at a time, then assemble its
    predictions and thresholds: what the walkforward sensor asks for, run here in-process. The run's name
    if every step and check passed."""
    from trading_assets.partitions import fold_key

    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    started = time.perf_counter()
    registered = defs.resolve_job_def("start_walkforward").execute_in_process(
        instance=instance,
        raise_on_error=False,
        run_config={**quiet, "ops": {"register_walkforward_run": {"config": DEMO_WALKFORWARD}}},
    )
    if not registered.success:
        print("error: the start_walkforward run failed; see the Dagster UI for its logs", file=sys.stderr)
        return None
    run = registered.output_for_node("register_walkforward_run")
    folds = catalog.list_walkforward_folds(run)
    print(f"walkforward    {run}  ({len(folds)} folds, target {DEMO_WALKFORWARD['target']})")
    for fold in folds:
        result = defs.resolve_job_def("train_folds").execute_in_process(
            instance=instance,
            partition_key=fold_key(run, fold.window.fold),
            raise_on_error=False,
            run_config=quiet,
        )
        if not result.success:
            print(
                f"error: fold {fold.window.fold} of {run} failed; see the Dagster UI for its logs",
                file=sys.stderr,
            )
            return None
        meta = {
            k: v.value for k, v in result.asset_materializations_for_node("fold_models")[0].metadata.items()
        }
        print(
            f"fold {fold.window.fold:>2}        test {meta['test_window']}  IC {meta['ic']:+.3f}  "
            f"hit rate {meta['hit_rate']:.3f}  {meta['fit_rows']} rows, {meta['train_seconds']:.1f}s on "
            f"{meta['device']}"
        )
    result = defs.resolve_job_def("predict_walkforward").execute_in_process(
        instance=instance, partition_key=run, raise_on_error=False, run_config=quiet
    )
    if not result.success:
        print(f"error: the predict_walkforward run of {run} failed; see the Dagster UI", file=sys.stderr)
        return None
    meta = {k: v.value for k, v in result.asset_materializations_for_node("predictions")[0].metadata.items()}
    print(
        f"predictions    {meta['dagster/table_name']}  ({meta['dagster/row_count']} rows, IC "
        f"{meta['overall_ic']:+.3f}, hit rate {meta['overall_hit_rate']:.3f}, "
        f"{time.perf_counter() - started:.1f}s in all)"
    )
    checks = result.get_asset_check_evaluations()
    for check in checks:
        print(f"check          {check.check_name}: {'passed' if check.passed else 'FAILED'}")
    record = catalog.get_walkforward_run(run)
    print(f"thresholds     {len(catalog.list_walkforward_thresholds(run))} folds; run {record.status}")
    return run if all(c.passed for c in checks) else None


# The demo's simulation: the run's per-fold thresholds, all equity in each position, 1 bp fees and 1 bp
# slippage per fill, filled at the next bar's open.
DEMO_SIMULATION = {"thresholds": "run", "fee_bps": 1.0, "slippage_bps": 1.0}


def _demo_simulation(defs: object, instance: object, run: str) -> bool:
    """Register a simulation of the demo run and run it, then compare the dataset's simulations: what the
    simulation sensor asks for, run here in-process."""
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    started = time.perf_counter()
    registered = defs.resolve_job_def("start_simulation").execute_in_process(
        instance=instance,
        raise_on_error=False,
        run_config={**quiet, "ops": {"register_simulation_op": {"config": {"run": run, **DEMO_SIMULATION}}}},
    )
    if not registered.success:
        print("error: the start_simulation run failed; see the Dagster UI for its logs", file=sys.stderr)
        return False
    sim = registered.output_for_node("register_simulation_op")
    result = defs.resolve_job_def("simulate").execute_in_process(
        instance=instance, partition_key=sim, raise_on_error=False, run_config=quiet
    )
    if not result.success:
        print(f"error: the simulate run of {sim} failed; see the Dagster UI", file=sys.stderr)
        return False
    meta = {k: v.value for k, v in result.asset_materializations_for_node("simulation")[0].metadata.items()}
    print(
        f"simulation     {sim}  (run {run}, {meta['dagster/row_count']} bars, "
        f"{time.perf_counter() - started:.1f}s)"
    )
    print(
        f"metrics        total return {meta['total_return']:+.2%}, CAGR {meta['cagr']:+.2%}, Sharpe "
        f"{meta['sharpe']:.2f}, Sortino {meta['sortino']:.2f}, max drawdown {meta['max_drawdown']:.2%}"
    )
    print(
        f"               {meta['n_trades']} trades, win rate {meta['win_rate']:.1%}, profit factor "
        f"{meta['profit_factor']:.2f}, exposure {meta['exposure']:.1%}, SQN {meta['sqn']:.2f}"
    )
    checks = result.get_asset_check_evaluations()
    for check in checks:
        print(f"check          {check.check_name}: {'passed' if check.passed else 'FAILED'}")
    dataset = run.rsplit("_run", 1)[0]
    compared = defs.resolve_job_def("compare_simulations").execute_in_process(
        instance=instance, partition_key=dataset, raise_on_error=False, run_config=quiet
    )
    if compared.success:
        meta = {
            k: v.value
            for k, v in compared.asset_materializations_for_node("simulation_comparison")[0].metadata.items()
        }
        print(
            f"comparison     {meta['simulations']} simulations of {dataset}; best by Sharpe "
            f"{meta['best_by_sharpe']}"
        )
    return compared.success and all(c.passed for c in checks)


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


def _export(args: argparse.Namespace) -> int:
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


def _print_table(title: str, header: Sequence[str], rows: list[Sequence[object]]) -> None:
    """An aligned plain-text table, or a line saying there is none."""
    print(f"{title} ({len(rows)})")
    if not rows:
        print()
        return
    cells = [list(header)] + [["-" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for row in cells:
        print("  " + "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    print()


def _when(ts: datetime | None) -> str:
    return "-" if ts is None else f"{ts:%Y-%m-%d %H:%M}"


def _span(first: datetime | None, last: datetime | None) -> str:
    return "-" if first is None else f"{_when(first)} .. {_when(last)}"


def _catalog(args: argparse.Namespace) -> int:
    from trading_assets import naming

    dataset = naming.dataset_name(args.dataset) if args.dataset else None
    try:
        with cfg.catalog(cfg.Settings.from_env()).process_config_and_initialize_cm() as catalog:
            datasets = [d for d in catalog.list_datasets() if dataset is None or d.name == dataset]
            sets = catalog.list_indicator_sets(dataset)
            runs = catalog.list_walkforward_runs(dataset)
            sims = catalog.list_simulations(dataset)
    except (RuntimeError, OSError) as err:  # CatalogError, a lock timeout, no server
        print(f"error: {err}", file=sys.stderr)
        return 1
    _print_table(
        "datasets",
        ("name", "rows", "range (UTC)", "interval", "table"),
        [
            (d.name, d.row_count, _span(d.first_ts, d.last_ts), f"{d.bar_interval_s}s", d.table_name)
            for d in datasets
        ],
    )
    _print_table(
        "indicator sets",
        ("measurement", "label", "status", "rows", "range (UTC)", "columns"),
        [
            (s.measurement, s.label, s.status, s.row_count, _span(s.first_ts, s.last_ts), len(s.columns))
            for s in sets
        ],
    )
    _print_table(
        "walkforward runs",
        ("name", "status", "folds", "prediction rows", "range (UTC)"),
        [(r.name, r.status, r.fold_count, r.prediction_rows, _span(r.first_ts, r.last_ts)) for r in runs],
    )
    sim_rows = []
    for sim in sims:
        metrics = sim.metric_values() or {}
        ret, sharpe = metrics.get("total_return"), metrics.get("sharpe")
        sim_rows.append(
            (
                sim.name,
                sim.run,
                sim.status,
                sim.n_trades,
                None if ret is None else f"{ret:+.2%}",
                None if sharpe is None else f"{sharpe:.2f}",
            )
        )
    _print_table("simulations", ("name", "run", "status", "trades", "total return", "sharpe"), sim_rows)
    return 0


def _submit(args: argparse.Namespace) -> int:
    import getpass

    import yaml

    from trading_assets.requests.service import RequestInvalid, config_from_data

    path = Path(args.file)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        print(f"error: {path}: {err}", file=sys.stderr)
        return 2
    try:
        # The launchpad's typed config checks every field now; what depends on the data (the dataset, its
        # bars, a completed run) is checked by the sensor, which REJECTS the request with the message.
        config = config_from_data(args.kind, data, source=str(path))
    except RequestInvalid as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    requested_by = args.requested_by or getpass.getuser()
    try:
        with cfg.catalog(cfg.Settings.from_env()).process_config_and_initialize_cm() as catalog:
            request = catalog.submit_job_request(
                args.kind, json.dumps(config.model_dump(exclude_unset=True), sort_keys=True), requested_by
            )
    except (RuntimeError, OSError) as err:  # CatalogError, a lock timeout, no server
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"job request {request.id}: {request.kind} by {request.requested_by}, {request.status}")
    return 0


def _requests(args: argparse.Namespace) -> int:
    try:
        with cfg.catalog(cfg.Settings.from_env()).process_config_and_initialize_cm() as catalog:
            if args.id is not None:
                found = catalog.get_job_request(args.id)
                requests = [] if found is None else [found]
            else:
                requests = catalog.list_job_requests([args.status] if args.status else None)
            runs = {request.id: catalog.list_job_runs(request.id) for request in requests}
    except (RuntimeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    _print_table(
        "job requests",
        ("id", "kind", "by", "status", "target", "runs", "created (UTC)", "finished (UTC)", "message"),
        [
            (
                r.id,
                r.kind,
                r.requested_by,
                r.status,
                r.target,
                len(runs[r.id]),
                _when(r.created_at),
                _when(r.finished_at),
                r.message,
            )
            for r in requests
        ],
    )
    if args.id is not None:
        _print_table(
            "runs",
            ("run", "job", "partition", "status", "started (UTC)", "finished (UTC)", "link"),
            [
                (
                    j.run_id,
                    j.job_name,
                    j.partition,
                    j.status,
                    _when(j.started_at),
                    _when(j.finished_at),
                    j.url,
                )
                for j in runs.get(args.id, [])
            ],
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trading-assets", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
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
    ingest.set_defaults(run=_ingest)
    demo = sub.add_parser(
        "demo", help="generate the sample export and run the pipeline on the embedded default"
    )
    demo.add_argument("--rows", type=int, default=525_600)
    demo.set_defaults(run=_demo)
    demo_data = sub.add_parser(
        "demo-data",
        help="write a sample export of another shape (daily equity, hourly FX, crypto minutes) and its "
        "sidecar naming its trading calendar",
    )
    demo_data.add_argument("--shape", choices=("equity-daily", "fx-hourly", "crypto-minute"), required=True)
    demo_data.add_argument("--rows", type=int, help="the first N bars (default: the shape's whole span)")
    demo_data.add_argument("--seed", type=int, default=25)
    demo_data.add_argument("--out", help="folder (default: the landing folder, so `make dev` imports it)")
    demo_data.set_defaults(run=_demo_data)
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
    export.set_defaults(run=_export)
    listing = sub.add_parser(
        "catalog", help="list datasets, indicator sets, walkforward runs and simulations"
    )
    listing.add_argument("--dataset", help="only this dataset's entries")
    listing.set_defaults(run=_catalog)
    submit = sub.add_parser(
        "submit", help="queue a walkforward run or simulation (a YAML file of the launchpad's config)"
    )
    submit.add_argument("kind", choices=JOB_KINDS)
    submit.add_argument("file", help="YAML with the config's fields, as in the launchpad")
    submit.add_argument("--requested-by", help="who asks (default: the login name)")
    submit.set_defaults(run=_submit)
    requests = sub.add_parser("requests", help="list job requests and where they stand")
    requests.add_argument("--status", choices=JOB_STATUSES)
    requests.add_argument("--id", type=int, help="one request, with its runs and their links")
    requests.set_defaults(run=_requests)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except ValueError as err:  # e.g. TRADING_TIMESERIES=sqlite
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
