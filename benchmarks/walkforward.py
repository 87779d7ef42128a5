"""Walkforward speed: XGBoost folds on 500k bars x 30 features, through Dagster and without it.

    .venv/bin/python benchmarks/walkforward.py [--rows 500000] [--folds 12] [--device cpu]
                                               [--trees 300] [--depth 6] [--keep DIR]
    .venv/bin/python benchmarks/walkforward.py --daemon     # submit -> COMPLETED through dagster-daemon

Everything happens in a temporary data folder and a temporary Dagster instance (SQLite, as the embedded
default), deleted at the end. Setup, timed but not compared: generate the demo bars, import them with the
`ingest_bars` job and compute the default indicator set with the `materialize_indicators` job, as
`trading-assets demo` does. Then the same walkforward run (the first 30 columns of the set, 15-bar
regression target, sliding folds of 100,000 training and 30,000 test bars) two ways:

- direct: the compute library alone, no Dagster and no catalog: bars and indicator columns read from the
  DuckDB store once and prepared (`walkforward.prepare`), then per fold `walkforward.train_fold`,
  `training.save_model` and `thresholds.quantile_thresholds`;
- Dagster: the `start_walkforward` job (registers the run), one `train_folds` run over the range of the
  run's fold cells (what the walkforward sensor asks for: one step reads the data once and trains the
  folds one after another) and the `predict_walkforward` run, each in-process (`execute_in_process`).

Overhead = (Dagster total - direct total) / Dagster total. The saved models of
both paths must be bit-identical (SHA-256). --rows below 500,000 shrinks the fold lengths in proportion
(a quick smoke run); --device cuda|auto trains both paths on the GPU; --trees and --depth make every
fold's model heavier or lighter (what Dagster adds stays the same, so its share changes).

--daemon measures what a user waits for instead: nine years of daily bars and 26 light folds, submitted
with `trading-assets submit` to a running `dagster-daemon` (the embedded default's instance, as `make`
writes it), timed until the run is COMPLETED, with every run the daemon launched on a timeline, and the same
folds through the compute library beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATASET = "btc25"
FULL_ROWS = 500_000
TRAIN_BARS = 100_000  # at FULL_ROWS; scaled down with --rows
TEST_BARS = 30_000
FEATURES = 30
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
EARLY_STOPPING_NOTE = (
    "early stopping off (early_stopping_rounds=None): on the random-walk demo bars it ends after a few\n"
    "trees, and the figure would then measure data loading, not a realistic training load. Without it no\n"
    "rows are held out, so the library refuses thresholds source 'validation': thresholds come from the\n"
    "fitted rows (source 'train'); validation_fraction 0.2 stays in the config but holds nothing out."
)


@dg.asset
def _noop() -> None:
    """Nothing: its run measures what Dagster itself costs per in-process run."""


def run_config(rows: int, folds: int, trees: int = 300, depth: int = 6) -> dict:
    scale = min(1.0, rows / FULL_ROWS)
    return {
        "dataset": DATASET,
        "indicator_version": 1,
        "features": [],  # filled in with the set's first FEATURES columns
        "target": {"kind": "regression", "horizon": 15},
        "folds": {
            "train": str(round(TRAIN_BARS * scale)),
            "test": str(round(TEST_BARS * scale)),
            "mode": "sliding",
            "max_folds": folds,
        },
        "hyperparameters": {
            "n_estimators": trees,
            "max_depth": depth,
            "learning_rate": 0.05,
            "early_stopping_rounds": None,
            "validation_fraction": 0.2,
        },
        "seed": 7,
        "thresholds": {"source": "train"},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--daemon",
        action="store_true",
        help="measure the daemon path instead: submit -> COMPLETED of 26 light folds on daily bars",
    )
    parser.add_argument("--rows", type=int, default=FULL_ROWS)
    parser.add_argument("--folds", type=int, default=12)
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu")
    parser.add_argument("--trees", type=int, default=300, help="n_estimators of every fold's model")
    parser.add_argument("--depth", type=int, default=6, help="max_depth of the trees")
    parser.add_argument(
        "--keep", type=Path, help="work in this new folder and keep it (data, instance, logs)"
    )
    args = parser.parse_args()
    script_started = time.perf_counter()
    if args.keep:
        args.keep.mkdir(parents=True)
        (daemon_path if args.daemon else bench)(args, args.keep.resolve())
    else:
        with tempfile.TemporaryDirectory(prefix="bench-walkforward-") as scratch:
            (daemon_path if args.daemon else bench)(args, Path(scratch))
    print(f"whole script   {time.perf_counter() - script_started:.1f} s (setup, both paths, checks)")


def bench(args: argparse.Namespace, work: Path) -> None:
    _environment(work, args.device)
    import numpy as np
    import pyarrow as pa
    import xgboost

    from resources.timeseries import TIMESTAMP_COLUMN
    from trading_assets import naming
    from trading_assets import settings as cfg
    from trading_assets.compute import thresholds, training, walkforward
    from trading_assets.compute.demo_data import generate_bars, write_export
    from trading_assets.definitions import defs
    from trading_assets.indicators.service import read_bars
    from trading_assets.partitions import fold_key
    from trading_assets.walkforward.config import WalkforwardConfig
    from trading_assets.walkforward.service import load_run, predict_run

    settings = cfg.Settings.from_env()
    store = cfg.timeseries_store(settings).process_config_and_initialize()
    catalog = cfg.catalog(settings).process_config_and_initialize()
    device = training.resolve_device(args.device)
    print(f"{args.rows:,} bars, {args.folds} folds; {_machine(device)}")

    # --- setup: bars and indicators, as `trading-assets demo` makes them -------------------------------
    started = time.perf_counter()
    settings.landing_dir.mkdir(parents=True)
    write_export(generate_bars(n_rows=args.rows), settings.landing_dir / f"{DATASET}.txt")
    generated = time.perf_counter() - started
    settings.dagster_home.mkdir(parents=True)
    # An empty dagster.yaml: SQLite storage in that folder, as the embedded default (Makefile) has it.
    (settings.dagster_home / "dagster.yaml").write_text("")
    instance = dg.DagsterInstance.local_temp(
        tempdir=str(settings.dagster_home), overrides={"telemetry": {"enabled": False}}
    )
    indicator_set, ingested, computed = _import_and_compute(defs, instance, catalog)
    print(
        f"setup          generate + write export {generated:.1f} s, ingest_bars {ingested:.1f} s, "
        f"materialize_indicators {computed:.1f} s ({len(indicator_set.columns)} columns)"
    )

    config = run_config(args.rows, args.folds, args.trees, args.depth)
    config["features"] = list(indicator_set.columns[:FEATURES])
    config["indicator_version"] = indicator_set.version
    spec = WalkforwardConfig(**config).spec()
    hp = spec.hyperparameters
    print(
        f"run            regression, horizon {spec.target.horizon}; folds train {config['folds']['train']} "
        f"test {config['folds']['test']} sliding, max {args.folds}; {len(spec.features)} features "
        f"({spec.features[0]} .. {spec.features[-1]})"
    )
    print(
        f"               n_estimators {hp.n_estimators}, max_depth {hp.max_depth}, learning_rate "
        f"{hp.learning_rate}, seed {spec.seed}, thresholds source '{spec.thresholds.source}'"
    )
    print("\n".join("               " + line for line in EARLY_STOPPING_NOTE.splitlines()))
    # XGBoost's first fit in a process pays one-off costs (OpenMP threads, allocator): not in either path.
    xgboost.train(
        {"tree_method": "hist", "device": device},
        xgboost.DMatrix(np.random.default_rng(0).random((1000, 4)), label=np.zeros(1000)),
        num_boost_round=2,
    )

    # --- Dagster: registration ---------------------------------------------------------------------------
    started = time.perf_counter()
    registered = defs.resolve_job_def("start_walkforward").execute_in_process(
        instance=instance,
        run_config={**QUIET, "ops": {"register_walkforward_run": {"config": config}}},
    )
    dagster_register = time.perf_counter() - started
    run = registered.output_for_node("register_walkforward_run")

    # --- direct: load and prepare once (what walkforward_runs._read_inputs does, without the catalog) ----
    started = time.perf_counter()
    bars = read_bars(store, naming.bars_table(DATASET))
    values = store.read(indicator_set.measurement, columns=[TIMESTAMP_COLUMN, *spec.features])
    ts = values.column(TIMESTAMP_COLUMN).cast(pa.int64()).to_numpy()
    assert np.array_equal(ts, bars[TIMESTAMP_COLUMN])
    indicators = {
        name: values.column(name).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        for name in spec.features
    }
    lookbacks = dict(zip(indicator_set.columns, indicator_set.lookbacks, strict=True))
    prepared = walkforward.prepare(ts, bars["close"], indicators, lookbacks, spec)
    direct_load = time.perf_counter() - started
    del bars, values, indicators
    if len(prepared.folds) != args.folds:
        sys.exit(f"error: the bars give {len(prepared.folds)} folds, not {args.folds}; use more --rows")

    # --- direct: the folds one after another -------------------------------------------------------------
    direct_dir = work / "direct_models"
    rows = []
    for fold in prepared.folds:
        k = fold.number
        started = time.perf_counter()
        outcome = walkforward.train_fold(prepared, spec, k, device=device, nthread=0)
        sha256 = training.save_model(outcome.model.booster, direct_dir / f"fold_{k:03d}.ubj")
        thresholds.quantile_thresholds(outcome.train_period_pred, spec.thresholds)
        direct_s = time.perf_counter() - started
        rows.append((k, outcome.model.fit_rows, outcome.model.seconds, direct_s, sha256))
        print(f"  fold {k:>2}: direct {direct_s:6.2f} s", flush=True)

    # --- Dagster: the run's folds in one train_folds run, the range of cells the walkforward sensor asks
    # for (its one step reads the data once and trains the folds one after another) ------------------------
    started = time.perf_counter()
    trained = defs.resolve_job_def("train_folds").execute_in_process(
        instance=instance,
        run_config=QUIET,
        tags={
            "dagster/asset_partition_range_start": fold_key(run, 0),
            "dagster/asset_partition_range_end": fold_key(run, args.folds - 1),
        },
    )
    dagster_folds = time.perf_counter() - started
    assert len(trained.asset_materializations_for_node("fold_models")) == args.folds

    # --- Dagster: predictions and thresholds of the run --------------------------------------------------
    started = time.perf_counter()
    defs.resolve_job_def("predict_walkforward").execute_in_process(
        instance=instance, partition_key=run, run_config=QUIET
    )
    dagster_predict = time.perf_counter() - started

    # --- where the Dagster path's extra time goes, each part timed again alone (not part of the totals) ---
    def median_of_3(fn: Callable[[], object]) -> float:
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - started)
        return statistics.median(runs)

    # What the fold step does first: the run and the feature rows of all its folds, prepared again; and
    # both predict_walkforward assets: the run with every row.
    fold_load_s = median_of_3(lambda: load_run(store, catalog, run, folds=range(args.folds)))
    load_run_s = median_of_3(lambda: load_run(store, catalog, run))
    loaded = load_run(store, catalog, run)
    # The floor of any in-process Dagster run on this instance: one asset that does nothing.
    bare_run_s = median_of_3(lambda: dg.materialize([_noop], instance=instance, run_config=QUIET))
    # The predictions asset predicts every fold's test rows again from the stored models (what train_fold
    # predicted already, in memory); the thresholds asset copies what the fold steps kept.
    started = time.perf_counter()
    predict_run(loaded)
    repredict_s = time.perf_counter() - started
    del loaded

    # --- report ------------------------------------------------------------------------------------------
    records = {f.window.fold: f for f in catalog.list_walkforward_folds(run)}
    stored = {k: f.result for k, f in records.items()}
    print()
    print("fit s: XGBoost's fit alone (FoldModel.seconds; Dagster's as the catalog recorded it)")
    print("other s: the rest of the fold's time (data, prediction, saving; for Dagster the catalog's")
    print("         start to finish of the fold's attempt: fit, prediction, saving, its catalog rows)")
    print(
        f"{'fold':>4}  {'train rows':>10}  {'direct s':>8}  {'dagster s':>9}  {'fit s':>13}  {'other s':>13}"
    )
    print(f"{'':>4}  {'':>10}  {'':>8}  {'':>9}  {'direct dagst':>13}  {'direct dagst':>13}")
    for k, fit_rows, fit_s, direct_s, _ in rows:
        dagster_fit = stored[k].train_seconds or 0.0
        attempt = records[k]
        dagster_s = (attempt.finished_at - attempt.started_at).total_seconds()
        print(
            f"{k:>4}  {fit_rows:>10,}  {direct_s:>8.2f}  {dagster_s:>9.2f}  {fit_s:>6.2f} "
            f"{dagster_fit:>6.2f}  {direct_s - fit_s:>6.2f} {dagster_s - dagster_fit:>6.2f}"
        )
    direct_folds = sum(r[3] for r in rows)
    direct_fit = sum(r[2] for r in rows)
    dagster_fit = sum(stored[r[0]].train_seconds or 0.0 for r in rows)
    print(
        f"{'all':>4}  {'':>10}  {direct_folds:>8.2f}  {dagster_folds:>9.2f}  {direct_fit:>6.2f} "
        f"{dagster_fit:>6.2f}  {direct_folds - direct_fit:>6.2f} {dagster_folds - dagster_fit:>6.2f}"
    )
    print(f"{'':>4}  {'':>10}  {'':>8}  (dagster: the whole train_folds run, one step for {len(rows)} folds)")
    print()
    direct_total = direct_load + direct_folds
    dagster_total = dagster_register + dagster_folds + dagster_predict
    print(
        f"direct total   {direct_total:7.2f} s = load + prepare {direct_load:.2f} s + folds "
        f"{direct_folds:.2f} s"
    )
    print(
        f"dagster total  {dagster_total:7.2f} s = start_walkforward {dagster_register:.2f} s + train_folds "
        f"{dagster_folds:.2f} s + predict_walkforward {dagster_predict:.2f} s"
    )
    overhead = (dagster_total - direct_total) / dagster_total
    print(
        f"overhead       {dagster_total - direct_total:7.2f} s = {overhead:.1%} of the Dagster total "
        f"(aim < 10%: {'met' if overhead < 0.10 else 'NOT met'})"
    )
    # The same, with each path's fit time replaced by the direct one: what is left is not XGBoost's noise
    # on a shared machine.
    steady = dagster_total - dagster_fit + direct_fit
    print(
        f"               {steady - direct_total:7.2f} s = {(steady - direct_total) / steady:.1%} with the "
        f"fits counted alike (Dagster's fits took {dagster_fit - direct_fit:+.2f} s against the direct ones)"
    )
    # What the train_folds run adds to the fits and the direct path's per-fold work.
    extra = dagster_folds - dagster_fit - (direct_folds - direct_fit)

    def line(label: str, seconds: float, text: str) -> None:
        print(f"  {label:<22}{seconds:6.2f} s  {text}".rstrip())

    print("where it goes (besides Dagster itself, that path stores what the direct one keeps in memory:")
    print("catalog rows, the predictions table, checks, charts)")
    line("start_walkforward", dagster_register, "reads + prepares the data, registers the run")
    line("train_folds, one run", extra, f"besides the fits and direct's per-fold work ({len(rows)} folds):")
    line("", fold_load_s, f"load_run: reads the folds' rows of {len(spec.features)} columns again, prepares")
    line("", bare_run_s, "a bare Dagster run (one asset that does nothing)")
    line("", extra - fold_load_s - bare_run_s, "the rest: catalog rows, the cells' events, metadata")
    line("predict_walkforward", dagster_predict, "")
    line("", repredict_s, "predictions: every fold's test rows predicted again")
    line("", load_run_s, "load_run: every row of the run (the thresholds asset reads the catalog only)")
    rest = dagster_predict - repredict_s - load_run_s
    line("", rest, "the rest: table write, checks, charts, catalog, two steps in one run")
    line("direct, once", direct_load, "load + prepare")
    differ = [k for k, *_, sha256 in rows if stored[k] is None or stored[k].model_sha256 != sha256]
    print(
        f"models identical: {'yes' if not differ else 'no'} ({len(rows) - len(differ)} of {len(rows)} folds)"
    )
    for k in differ:
        result = stored[k]
        print(
            f"  fold {k}: direct {rows[k][4][:16]}, dagster "
            f"{result.model_sha256[:16] if result and result.model_sha256 else None}"
        )


# The daemon path: nine years of daily bars, 26 light folds (a quant iterating on daily data).
DAILY_ROWS = 9 * 365
DAILY_FOLDS = 26
DAILY_CONFIG = {
    "dataset": DATASET,
    "indicator_version": 1,
    "features": [],  # the set's first FEATURES columns
    "target": {"kind": "regression", "horizon": 5},
    "folds": {"train": "1000", "test": "80", "mode": "sliding", "max_folds": DAILY_FOLDS},
    "hyperparameters": {"n_estimators": 100, "max_depth": 4, "learning_rate": 0.1},
    "seed": 7,
}


def _import_and_compute(
    defs: dg.Definitions, instance: dg.DagsterInstance, catalog: Any
) -> tuple[Any, float, float]:
    """The export in the landing folder imported by `ingest_bars` and the default indicator set registered
    and computed by `materialize_indicators`, as `trading-assets demo` does: the set's record and the two
    jobs' seconds."""
    from trading_assets.compute.indicators import default_spec
    from trading_assets.indicators.service import register_set
    from trading_assets.partitions import indicator_set_key, indicator_versions

    started = time.perf_counter()
    instance.add_dynamic_partitions("datasets", [DATASET])
    defs.resolve_job_def("ingest_bars").execute_in_process(
        instance=instance, partition_key=DATASET, run_config=QUIET
    )
    ingested = time.perf_counter() - started
    started = time.perf_counter()
    indicator_set, _ = register_set(catalog, DATASET, default_spec())
    instance.add_dynamic_partitions(indicator_versions.name, [str(indicator_set.version)])
    defs.resolve_job_def("materialize_indicators").execute_in_process(
        instance=instance, partition_key=indicator_set_key(DATASET, indicator_set.version), run_config=QUIET
    )
    return indicator_set, ingested, time.perf_counter() - started


def _machine(device: str) -> str:
    """The cores, processor, library versions and training device, for a figure's first line."""
    import xgboost

    return (
        f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"xgboost {xgboost.__version__}, dagster {dg.__version__}, device {device}"
    )


def _environment(work: Path, device: str) -> None:
    """Point every setting into `work` (settings are read when trading_assets.definitions is imported)."""
    os.environ.update(
        TRADING_DATA_DIR=str(work / "data"),
        TRADING_LANDING_DIR=str(work / "data" / "landing"),
        TRADING_SETS_DIR=str(work / "data" / "indicator_sets"),
        TRADING_ARTIFACTS_DIR=str(work / "data" / "artifacts"),
        DAGSTER_HOME=str(work / "dagster_home"),
        TRADING_TIMESERIES="duckdb",
        TRADING_CATALOG="duckdb",
        TRADING_DEVICE=device,
    )


def daemon_path(args: argparse.Namespace, work: Path) -> None:
    """Submit -> COMPLETED through `dagster-daemon`, as a user does it: `trading-assets submit` writes the
    request; the daemon's sensors and run queue do the rest in runs of their own processes (intake,
    the folds, predictions and thresholds). Beside it, the same folds through the compute library."""
    import subprocess

    import yaml

    _environment(work, args.device)
    from trading_assets import settings as cfg
    from trading_assets.compute import thresholds, training, walkforward
    from trading_assets.compute.demo_data import generate_bars, write_export
    from trading_assets.definitions import defs
    from trading_assets.walkforward.config import WalkforwardConfig
    from trading_assets.walkforward.service import load_run

    settings = cfg.Settings.from_env()
    catalog = cfg.catalog(settings).process_config_and_initialize()
    device = training.resolve_device(args.device)
    print(f"daemon path: {DAILY_ROWS:,} daily bars, {DAILY_FOLDS} folds; {_machine(device)}")
    # The embedded default's instance, as `make` writes it (SQLite, the gpu pool, the run queue).
    home = settings.dagster_home
    subprocess.run(["make", "-s", f"DAGSTER_HOME={home}", f"{home}/dagster.yaml"], cwd=ROOT, check=True)
    instance = dg.DagsterInstance.get()
    settings.landing_dir.mkdir(parents=True)
    bars = generate_bars(n_rows=DAILY_ROWS, interval_s=86_400, n_gaps=0, seed=3)
    write_export(bars, settings.landing_dir / f"{DATASET}.txt")
    indicator_set, _, _ = _import_and_compute(defs, instance, catalog)
    config = {**DAILY_CONFIG, "features": list(indicator_set.columns[:FEATURES])}
    spec = WalkforwardConfig(**config).spec()
    hp = spec.hyperparameters
    print(
        f"run            regression, horizon {spec.target.horizon}; folds train {config['folds']['train']} "
        f"test {config['folds']['test']} sliding, max {DAILY_FOLDS}; {len(spec.features)} features; "
        f"n_estimators {hp.n_estimators}, max_depth {hp.max_depth}"
    )
    request_file = work / "run.yaml"
    request_file.write_text(yaml.safe_dump(config))

    with _daemon(work) as log:
        started = time.perf_counter()
        ready = _wait(lambda: _sensors_ticked(instance), 180, "the daemon's sensors to tick", log)
        print(f"daemon         started, code location loaded, sensors ticking after {ready - started:.1f} s")
        submitted_at = time.time()
        started = time.perf_counter()
        submit = subprocess.run(
            [sys.executable, "-m", "trading_assets.cli", "submit", "walkforward", str(request_file)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        submit_s = time.perf_counter() - started
        request_id = int(submit.stdout.split()[2].rstrip(":"))

        def completed() -> bool:
            request = catalog.get_job_request(request_id)
            if request is None or request.status in ("REJECTED", "FAILED"):
                raise RuntimeError(f"job request {request_id}: {request}")
            run = catalog.get_walkforward_run(request.target) if request.target else None
            return run is not None and run.status == "completed"

        done = _wait(completed, 600, f"job request {request_id} to complete", log, every=0.25)
        total = done - started
        request = catalog.get_job_request(request_id)
        assert request is not None and request.target is not None
        run_name = request.target
        request_done = _wait(
            lambda: catalog.get_job_request(request_id).status == "COMPLETED", 120, "the request", log
        )

    # --- the timeline: every run the daemon launched, from the instance --------------------------------
    print()
    print(f"submit -> COMPLETED   {total:6.1f} s  (aim <= 30 s: {'met' if total <= 30 else 'NOT met'})")
    print(
        f"  `trading-assets submit` {submit_s:.1f} s (its own process); the request reads COMPLETED "
        f"{request_done - started:.1f} s after submit"
    )
    print(f"  {'run':<20} {'queued':>7} {'started':>8} {'ended':>7} {'in run':>7}  what")
    records = sorted(instance.get_run_records(), key=lambda r: r.create_timestamp)
    for record in records:
        run = record.dagster_run
        if record.start_time is None or record.create_timestamp.timestamp() < submitted_at:
            continue
        queued = record.create_timestamp.timestamp() - submitted_at
        began, ended = record.start_time - submitted_at, (record.end_time or time.time()) - submitted_at
        what = {
            "take_job_request": "intake: validates the request on the data, registers the run",
            "train_folds": f"all {DAILY_FOLDS} folds, one step",
            "predict_walkforward": "predictions table, checks, charts; thresholds",
        }.get(run.job_name, "")
        print(
            f"  {run.job_name:<20} {queued:>6.1f}s {began:>7.1f}s {ended:>6.1f}s {ended - began:>6.1f}s"
            f"  {what}"
        )
    folds = catalog.list_walkforward_folds(run_name)
    fit = sum(f.result.train_seconds or 0.0 for f in folds if f.result)
    print(f"  XGBoost fits, all folds {fit:.2f} s")

    # --- direct: the same folds through the compute library, in this process ----------------------------
    started = time.perf_counter()
    loaded = load_run(cfg.timeseries_store(settings).process_config_and_initialize(), catalog, run_name)
    prepared = loaded.prepared
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    same = 0
    for fold, record in zip(prepared.folds, folds, strict=True):
        outcome = walkforward.train_fold(prepared, spec, fold.number, device=device, nthread=0)
        sha256 = training.save_model(outcome.model.booster, work / "direct" / f"fold_{fold.number:03d}.ubj")
        thresholds.quantile_thresholds(outcome.train_period_pred, spec.thresholds)
        same += record.result is not None and record.result.model_sha256 == sha256
    direct_s = time.perf_counter() - started
    print(
        f"direct (library, in process) {load_s + direct_s:6.2f} s = load + prepare {load_s:.2f} s + "
        f"{len(folds)} folds {direct_s:.2f} s"
    )
    print(f"models identical: {'yes' if same == len(folds) else 'no'} ({same} of {len(folds)} folds)")


@contextlib.contextmanager
def _daemon(work: Path) -> Iterator[Path]:
    """`dagster-daemon run` on the repo's workspace in this environment; stopped with its runs on exit."""
    import signal
    import subprocess

    log = work / "daemon.log"
    command = [sys.executable, "-m", "dagster._daemon", "run", "-w", str(ROOT / "workspace.yaml")]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield log
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _sensors_ticked(instance: dg.DagsterInstance) -> bool:
    """Whether the intake and walkforward sensors have each finished a tick (the code location is up)."""
    names = {"job_request_intake_sensor", "walkforward_sensor"}
    ticked = set()
    for state in instance.all_instigator_state():
        if state.name in names and instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1):
            ticked.add(state.name)
    return ticked == names


def _wait(done: Callable[[], bool], timeout: float, what: str, log: Path, every: float = 0.5) -> float:
    """Poll `done` until it holds; the perf_counter time it did. Exits with the daemon log's tail if not."""
    deadline = time.perf_counter() + timeout
    while not done():
        if time.perf_counter() > deadline:
            tail = log.read_text(errors="replace").splitlines()[-30:]
            sys.exit(f"error: waited {timeout:.0f} s for {what}; daemon log:\n" + "\n".join(tail))
        time.sleep(every)
    return time.perf_counter()


if __name__ == "__main__":
    main()
