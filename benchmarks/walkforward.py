"""Walkforward speed: XGBoost folds on 500k bars x 30 features, through Dagster and without it.

    .venv/bin/python benchmarks/walkforward.py [--rows 500000] [--folds 12] [--device cpu]
                                               [--trees 300] [--depth 6]

Everything happens in a temporary data folder and a temporary Dagster instance (SQLite, as the embedded
default), deleted at the end. Setup, timed but not compared: generate the demo bars, import them with the
`ingest_bars` job and compute the default indicator set with the `materialize_indicators` job, as
`trading-assets demo` does. Then the same walkforward run (the first 30 columns of the set, 15-bar
regression target, sliding folds of 100,000 training and 30,000 test bars) two ways:

- direct: the compute library alone, no Dagster and no catalog: bars and indicator columns read from the
  DuckDB store once and prepared (`walkforward.prepare`), then per fold `walkforward.train_fold`,
  `training.save_model` and `thresholds.quantile_thresholds`;
- Dagster: the `start_walkforward` job (registers the run), one `train_folds` run per fold partition and
  the `predict_walkforward` run, each in-process (`execute_in_process`) like the demo.

Folds alternate between the two paths (direct fold k, then Dagster fold k), so a busy neighbour on a shared
machine slows both alike. Overhead = (Dagster total - direct total) / Dagster total. The saved models of
both paths must be bit-identical (SHA-256). --rows below 500,000 shrinks the fold lengths in proportion
(a quick smoke run); --device cuda|auto trains both paths on the GPU; --trees and --depth make every
fold's model heavier or lighter (what Dagster adds per fold stays the same, so its share changes).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

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
    parser.add_argument("--rows", type=int, default=FULL_ROWS)
    parser.add_argument("--folds", type=int, default=12)
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu")
    parser.add_argument("--trees", type=int, default=300, help="n_estimators of every fold's model")
    parser.add_argument("--depth", type=int, default=6, help="max_depth of the trees")
    args = parser.parse_args()
    script_started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-walkforward-") as scratch:
        bench(args, Path(scratch))
    print(f"whole script   {time.perf_counter() - script_started:.1f} s (setup, both paths, checks)")


def bench(args: argparse.Namespace, work: Path) -> None:
    # Settings are read when trading_assets.definitions is imported: point every path into `work` first.
    os.environ.update(
        TRADING_DATA_DIR=str(work / "data"),
        TRADING_LANDING_DIR=str(work / "data" / "landing"),
        TRADING_SETS_DIR=str(work / "data" / "indicator_sets"),
        TRADING_ARTIFACTS_DIR=str(work / "data" / "artifacts"),
        DAGSTER_HOME=str(work / "dagster_home"),
        TRADING_TIMESERIES="duckdb",
        TRADING_CATALOG="duckdb",
        TRADING_DEVICE=args.device,
    )
    import numpy as np
    import pyarrow as pa
    import xgboost

    from resources.timeseries import TIMESTAMP_COLUMN
    from trading_assets import naming, walkforward_runs
    from trading_assets import settings as cfg
    from trading_assets.compute import thresholds, training, walkforward
    from trading_assets.compute.demo_data import generate_bars, write_export
    from trading_assets.compute.indicators import default_spec
    from trading_assets.definitions import defs
    from trading_assets.indicators.service import read_bars, register_set
    from trading_assets.partitions import fold_key, indicator_set_key, indicator_versions
    from trading_assets.walkforward.config import WalkforwardConfig
    from trading_assets.walkforward.service import load_run

    settings = cfg.Settings.from_env()
    store = cfg.timeseries_store(settings).process_config_and_initialize()
    catalog = cfg.catalog(settings).process_config_and_initialize()
    device = training.resolve_device(args.device)
    print(
        f"{args.rows:,} bars, {args.folds} folds; {os.cpu_count()} cores, "
        f"{platform.processor() or platform.machine()}, xgboost {xgboost.__version__}, "
        f"dagster {dg.__version__}, device {device}"
    )

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
        instance=instance,
        partition_key=indicator_set_key(DATASET, indicator_set.version),
        run_config=QUIET,
    )
    computed = time.perf_counter() - started
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

    # --- the folds, alternating: direct fold k, then Dagster fold k --------------------------------------
    direct_dir = work / "direct_models"
    rows = []
    train_fold = defs.resolve_job_def("train_folds")
    for fold in prepared.folds:
        k = fold.number
        started = time.perf_counter()
        outcome = walkforward.train_fold(prepared, spec, k, device=device, nthread=0)
        sha256 = training.save_model(outcome.model.booster, direct_dir / f"fold_{k:03d}.ubj")
        thresholds.quantile_thresholds(outcome.train_period_pred, spec.thresholds)
        direct_s = time.perf_counter() - started
        started = time.perf_counter()
        train_fold.execute_in_process(instance=instance, partition_key=fold_key(run, k), run_config=QUIET)
        dagster_s = time.perf_counter() - started
        rows.append((k, outcome.model.fit_rows, outcome.model.seconds, direct_s, dagster_s, sha256))
        print(f"  fold {k:>2}: direct {direct_s:6.2f} s, dagster {dagster_s:6.2f} s", flush=True)

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

    # What every fold step does first: the run, and the feature rows of its fold (the middle one here)
    # prepared again; and both predict_walkforward assets: the run with every row.
    fold_load_s = median_of_3(lambda: load_run(store, catalog, run, fold=args.folds // 2))
    load_run_s = median_of_3(lambda: load_run(store, catalog, run))
    loaded = load_run(store, catalog, run)
    # The floor of any in-process Dagster run on this instance: one asset that does nothing.
    bare_run_s = median_of_3(lambda: dg.materialize([_noop], instance=instance, run_config=QUIET))
    # The predictions asset predicts every fold's test rows again from the stored models (what train_fold
    # predicted already, in memory); the thresholds asset copies what the fold steps kept.
    started = time.perf_counter()
    walkforward_runs.predict_run(loaded)
    repredict_s = time.perf_counter() - started
    del loaded

    # --- report ------------------------------------------------------------------------------------------
    stored = {f.window.fold: f.result for f in catalog.list_walkforward_folds(run)}
    print()
    print("fit s: XGBoost's fit alone (FoldModel.seconds; Dagster's as the catalog recorded it)")
    print("other s: the rest of the fold's time (data, prediction, saving; for Dagster also the step)")
    print(
        f"{'fold':>4}  {'train rows':>10}  {'direct s':>8}  {'dagster s':>9}  {'fit s':>13}  {'other s':>13}"
    )
    print(f"{'':>4}  {'':>10}  {'':>8}  {'':>9}  {'direct dagst':>13}  {'direct dagst':>13}")
    for k, fit_rows, fit_s, direct_s, dagster_s, _ in rows:
        dagster_fit = stored[k].train_seconds or 0.0
        print(
            f"{k:>4}  {fit_rows:>10,}  {direct_s:>8.2f}  {dagster_s:>9.2f}  {fit_s:>6.2f} "
            f"{dagster_fit:>6.2f}  {direct_s - fit_s:>6.2f} {dagster_s - dagster_fit:>6.2f}"
        )
    direct_folds = sum(r[3] for r in rows)
    dagster_folds = sum(r[4] for r in rows)
    direct_fit = sum(r[2] for r in rows)
    dagster_fit = sum(stored[r[0]].train_seconds or 0.0 for r in rows)
    print(
        f"{'all':>4}  {'':>10}  {direct_folds:>8.2f}  {dagster_folds:>9.2f}  {direct_fit:>6.2f} "
        f"{dagster_fit:>6.2f}  {direct_folds - direct_fit:>6.2f} {dagster_folds - dagster_fit:>6.2f}"
    )
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
    extra = (dagster_folds - dagster_fit - (direct_folds - direct_fit)) / len(rows)

    def line(label: str, seconds: float, text: str) -> None:
        print(f"  {label:<22}{seconds:6.2f} s  {text}".rstrip())

    print("where it goes (besides Dagster itself, that path stores what the direct one keeps in memory:")
    print("catalog rows, the predictions table, checks, charts)")
    line("start_walkforward", dagster_register, "reads + prepares the data, registers the run")
    line(f"train_folds, {len(rows)} x", extra, "each fold step besides the fit, more than direct:")
    line("", fold_load_s, f"load_run: reads the fold's rows of {len(spec.features)} columns again, prepares")
    line("", bare_run_s, "a bare Dagster run (one asset that does nothing)")
    line("", extra - fold_load_s - bare_run_s, "the rest: catalog rows, partition events, metadata")
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
            f"  fold {k}: direct {rows[k][5][:16]}, dagster "
            f"{result.model_sha256[:16] if result and result.model_sha256 else None}"
        )


if __name__ == "__main__":
    main()
