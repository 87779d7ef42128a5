"""`trading-assets indicators FILE.yaml`: an indicator set computed in the foreground, without the daemon.

The same file as the sets folder takes (name, indicators, datasets), run through the jobs the daemon
would: `add_indicator_set` registers the set for each dataset it names, as the launchpad does, then
`materialize_indicators` computes its partition dataset|version and runs its checks.
"""

import argparse
import json
import sys
import time
from typing import Any

import pyarrow.compute as pc

from trading_assets import settings as cfg
from trading_assets.cli.launcher import (
    Launcher,
    Progress,
    failure,
    foreground_launcher,
    interrupted,
    metadata,
    register,
)
from trading_assets.cli.tables import when
from trading_assets.records import IndicatorSetRecord


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    indicators = sub.add_parser(
        "indicators", help="compute an indicator set (a set file, as in the sets folder) in the foreground"
    )
    indicators.add_argument("file", help="YAML or JSON set file: name, indicators, datasets")
    indicators.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from trading_assets.compute.indicators import SpecError, load_set_file

    try:
        set_file = load_set_file(args.file)
    except SpecError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    launcher = foreground_launcher("put the file in the sets folder (TRADING_SETS_DIR) for the daemon")
    if isinstance(launcher, int):
        return launcher
    spec, datasets = set_file.spec, set_file.datasets
    print(f"indicator set {spec.name}: {len(spec.columns)} columns on {', '.join(datasets)}", flush=True)
    settings = cfg.Settings.from_env()
    with cfg.catalog(settings).process_config_and_initialize_cm() as catalog:
        computed: list[IndicatorSetRecord] = []
        progress = Progress(len(datasets), "set")
        current = None
        try:
            for dataset in datasets:
                current = None
                started = time.perf_counter()
                config = {"dataset": dataset, **json.loads(spec.to_json())}
                registered = register(
                    launcher, "add_indicator_set", "register_indicator_set", config, "indicator set"
                )
                if isinstance(registered, int):
                    progress.stop()
                    return registered
                current = _record(catalog, dataset, registered.output_for_node("register_indicator_set"))
                code = _materialise(launcher, current, progress, started)
                if code:
                    return code
                computed.append(catalog.get_indicator_set(dataset, current.version))
        except KeyboardInterrupt:
            progress.stop()
            _say_interrupted(catalog, current, len(computed), len(datasets))
            return 130
    with cfg.timeseries_store(settings).process_config_and_initialize_cm() as store:
        for record in computed:
            _print_columns(store, record)
    failed = [r for r in computed if r.status != "ready"]
    for record in failed:
        print(f"error: {record.measurement} is {record.status}: {record.message}", file=sys.stderr)
    return 1 if failed else 0


def _record(catalog: Any, dataset: str, measurement: str) -> IndicatorSetRecord:
    return next(r for r in catalog.list_indicator_sets(dataset) if r.measurement == measurement)


def _materialise(launcher: Launcher, record: IndicatorSetRecord, progress: Progress, started: float) -> int:
    """Compute the set's partition; 0, or the exit code after one line on stderr (KeyboardInterrupt if
    the computation was interrupted)."""
    from trading_assets.partitions import datasets, indicator_set_key

    # As the indicator_sets sensor does: a dataset imported outside the daemon (`ingest`) has no partition.
    if not launcher.instance.has_dynamic_partition(datasets.name, record.dataset):
        launcher.instance.add_dynamic_partitions(datasets.name, [record.dataset])
    result = launcher.execute(
        "materialize_indicators", partition_key=indicator_set_key(record.dataset, record.version)
    )
    if interrupted(result):
        raise KeyboardInterrupt
    if not result.success:
        progress.stop()
        print(f"error: computing {record.measurement} failed: {failure(result)}", file=sys.stderr)
        return 1
    meta = metadata(result, "indicators")
    summary = f"{record.measurement}, {meta['update']} update, {meta['rows_written']:,} rows written"
    progress.step(summary, time.perf_counter() - started)
    return 0


def _say_interrupted(catalog: Any, record: IndicatorSetRecord | None, done: int, total: int) -> None:
    """What the interrupt left: the set's catalog row is only written once its values are (its outcome),
    so it still describes the table as it was before the command."""
    left = ""
    if record is not None:
        now = catalog.get_indicator_set(record.dataset, record.version)
        held = "nothing stored yet" if now.status == "registered" else f"its {now.row_count:,} rows kept"
        left = f" {now.measurement} was not computed ({now.status}, {held})."
    print(
        f"interrupted: {done} of {total} sets computed.{left} To resume, run this command again (the same "
        f"spec keeps its version), or start the daemon (make dev): its indicator_sets sensor computes every "
        f"set registered and not computed",
        file=sys.stderr,
    )


def _print_columns(store: Any, record: IndicatorSetRecord) -> None:
    """The set's stored columns for people: warm-up, values held, first value, range."""
    rows = _column_rows(store, record)
    name = max(len("column"), *(len(c) for c in record.columns))
    print(
        f"{record.measurement}  ({record.label}, {record.status}; {record.row_count:,} rows, "
        f"{when(record.first_ts)} .. {when(record.last_ts)} UTC)"
    )
    header = f"{'lookback':>8}  {'values':>9}  {'first value (UTC)':<17}  {'min':>10}  {'max':>10}"
    print(f"  {'column':<{name}}  {header}")
    for column, lookback in zip(record.columns, record.lookbacks, strict=True):
        count, first, low, high = rows[column]
        print(
            f"  {column:<{name}}  {lookback:>8}  {count:>9,}  {when(first):<17}  {_number(low):>10}  "
            f"{_number(high):>10}"
        )


def _column_rows(store: Any, record: IndicatorSetRecord) -> dict[str, tuple[int, Any, Any, Any]]:
    """Per column of the stored table: values held (not null), the time of the first, min and max; read
    in batches, at flat memory."""
    rows: dict[str, list[Any]] = {c: [0, None, None, None] for c in record.columns}
    for batch in store.iter_batches(record.measurement, columns=["ts", *record.columns]):
        for column in record.columns:
            values, row = batch.column(column), rows[column]
            if (held := pc.count(values).as_py()) == 0:
                continue
            if row[1] is None:
                row[1] = batch.column("ts")[pc.index(pc.is_valid(values), True).as_py()].as_py()
            bounds = pc.min_max(values)
            low, high = bounds["min"].as_py(), bounds["max"].as_py()
            row[0] += held
            row[2] = low if row[2] is None else min(row[2], low)
            row[3] = high if row[3] is None else max(row[3], high)
    return {c: (r[0], r[1], r[2], r[3]) for c, r in rows.items()}


def _number(value: float | None) -> str:
    """Four significant digits; prices and other large values whole, never in exponent notation."""
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
