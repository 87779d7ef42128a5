"""`trading-assets demo`: generate the sample export and run the pipeline on the embedded default.

The demo launches the jobs the daemon would, in process and in order: `ingest_bars`, the launchpad's
`add_indicator_set` then `materialize_indicators`, `start_walkforward` then one `train_folds` run per fold
and `predict_walkforward`, `start_simulation` then `simulate` and `compare_simulations`.
"""

import argparse
import json
import os
import sys
import time
from typing import Any

from trading_assets import settings as cfg
from trading_assets.cli.launcher import Launcher, daemon_conflict, metadata
from trading_assets.cli.simulate import print_metrics

DEMO_DATASET = "btc25"
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
# The demo's simulation: the run's per-fold thresholds, all equity in each position, 1 bp fees and 1 bp
# slippage per fill, filled at the next bar's open.
DEMO_SIMULATION = {"thresholds": "run", "fee_bps": 1.0, "slippage_bps": 1.0}


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    demo = sub.add_parser(
        "demo", help="generate the sample export and run the pipeline on the embedded default"
    )
    demo.add_argument("--rows", type=int, default=525_600)
    demo.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import dagster as dg

    from trading_assets.compute.demo_data import generate_bars, write_export

    settings = cfg.Settings.from_env()
    os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home))
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    # Before the export lands: a daemon's landing sensor would import it, and its other sensors run what
    # the demo registers, a second time.
    if (conflict := daemon_conflict(dg.DagsterInstance.get())) is not None:
        print(f"error: {conflict}; stop it first (make dev runs one)", file=sys.stderr)
        return 1
    settings.landing_dir.mkdir(parents=True, exist_ok=True)
    export = settings.landing_dir / f"{DEMO_DATASET}.txt"
    started = time.perf_counter()
    if not export.exists():
        write_export(generate_bars(n_rows=args.rows), export)
        print(f"generated {export} ({args.rows} one-minute bars) in {time.perf_counter() - started:.1f}s")

    from trading_assets.definitions import defs
    from trading_assets.partitions import datasets

    instance = dg.DagsterInstance.get()
    # What the landing sensor does for a new export: its dataset's partition, then an ingest_bars run.
    if not instance.has_dynamic_partition(datasets.name, DEMO_DATASET):
        instance.add_dynamic_partitions(datasets.name, [DEMO_DATASET])
    launcher = Launcher(defs, instance)
    result = launcher.execute("ingest_bars", partition_key=DEMO_DATASET)
    if not result.success:
        print(
            "error: the ingest_bars run failed; see the Dagster UI (make dev) for its logs", file=sys.stderr
        )
        return 1
    meta = metadata(result, "bars")
    checks = result.get_asset_check_evaluations()
    print(f"dataset        {DEMO_DATASET}  (run {result.run_id[:8]}, {time.perf_counter() - started:.1f}s)")
    print(f"table          {meta['dagster/table_name']}  ({meta['dagster/row_count']} rows)")
    print(f"bar interval   {meta['bar_interval']}, {meta['gap_count']} gaps, largest {meta['largest_gap']}")
    for check in checks:
        print(f"check          {check.check_name}: {'passed' if check.passed else 'FAILED'}")
    # A catalog with a connection pool (Postgres) must be closed again, hence the context manager.
    with cfg.catalog(settings).process_config_and_initialize_cm() as catalog:
        passed = all(c.passed for c in checks) and _indicators(launcher, catalog)
        run_name = _walkforward(launcher, catalog) if passed else None
    passed = run_name is not None and _simulation(launcher, run_name)
    print("UI             make dev, then open http://127.0.0.1:3000")
    return 0 if passed else 1


def _indicators(launcher: Launcher, catalog: Any) -> bool:
    """Register the default indicator set on the demo dataset (the launchpad's add_indicator_set) and
    compute it (the materialize_indicators run the indicator-sets sensor asks for)."""
    from trading_assets.compute.indicators import default_spec
    from trading_assets.partitions import indicator_set_key

    started = time.perf_counter()
    spec = json.loads(default_spec().to_json())
    config = {"dataset": DEMO_DATASET, "name": spec["name"], "indicators": spec["indicators"]}
    registered = launcher.execute("add_indicator_set", ops={"register_indicator_set": {"config": config}})
    if not registered.success:
        print("error: the add_indicator_set run failed; see the Dagster UI for its logs", file=sys.stderr)
        return False
    measurement = registered.output_for_node("register_indicator_set")
    (record,) = [s for s in catalog.list_indicator_sets(DEMO_DATASET) if s.measurement == measurement]
    result = launcher.execute(
        "materialize_indicators", partition_key=indicator_set_key(DEMO_DATASET, record.version)
    )
    if not result.success:
        print(
            "error: the materialize_indicators run failed; see the Dagster UI for its logs", file=sys.stderr
        )
        return False
    meta = metadata(result, "indicators")
    checks = result.get_asset_check_evaluations()
    print(
        f"indicators     {meta['dagster/table_name']}  ({len(record.columns)} columns of set "
        f"'{record.label}', {meta['update']} update, {time.perf_counter() - started:.1f}s)"
    )
    for check in checks:
        print(f"check          {check.check_name}: {'passed' if check.passed else 'FAILED'}")
    return all(c.passed for c in checks)


def _walkforward(launcher: Launcher, catalog: Any) -> str | None:
    """Register the demo's walkforward run (the launchpad's start_walkforward), train its folds one
    partition at a time, then assemble its predictions and thresholds: the runs the walkforward sensor asks
    for. The run's name if every step and check passed."""
    from trading_assets.partitions import fold_key

    started = time.perf_counter()
    registered = launcher.execute(
        "start_walkforward", ops={"register_walkforward_run": {"config": DEMO_WALKFORWARD}}
    )
    if not registered.success:
        print("error: the start_walkforward run failed; see the Dagster UI for its logs", file=sys.stderr)
        return None
    run = registered.output_for_node("register_walkforward_run")
    folds = catalog.list_walkforward_folds(run)
    print(f"walkforward    {run}  ({len(folds)} folds, target {DEMO_WALKFORWARD['target']})")
    for fold in folds:
        result = launcher.execute("train_folds", partition_key=fold_key(run, fold.window.fold))
        if not result.success:
            print(
                f"error: fold {fold.window.fold} of {run} failed; see the Dagster UI for its logs",
                file=sys.stderr,
            )
            return None
        meta = metadata(result, "fold_models")
        print(
            f"fold {fold.window.fold:>2}        test {meta['test_window']}  IC {meta['ic']:+.3f}  "
            f"hit rate {meta['hit_rate']:.3f}  {meta['fit_rows']} rows, {meta['train_seconds']:.1f}s on "
            f"{meta['device']}"
        )
    result = launcher.execute("predict_walkforward", partition_key=run)
    if not result.success:
        print(f"error: the predict_walkforward run of {run} failed; see the Dagster UI", file=sys.stderr)
        return None
    meta = metadata(result, "predictions")
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


def _simulation(launcher: Launcher, run: str) -> bool:
    """Register a simulation of the demo run (the launchpad's start_simulation) and run it, then compare
    the dataset's simulations: the runs the simulation sensor asks for."""
    started = time.perf_counter()
    registered = launcher.execute(
        "start_simulation", ops={"register_simulation_op": {"config": {"run": run, **DEMO_SIMULATION}}}
    )
    if not registered.success:
        print("error: the start_simulation run failed; see the Dagster UI for its logs", file=sys.stderr)
        return False
    sim = registered.output_for_node("register_simulation_op")
    result = launcher.execute("simulate", partition_key=sim)
    if not result.success:
        print(f"error: the simulate run of {sim} failed; see the Dagster UI", file=sys.stderr)
        return False
    print_metrics(sim, run, metadata(result, "simulation"), time.perf_counter() - started)
    checks = result.get_asset_check_evaluations()
    for check in checks:
        print(f"check          {check.check_name}: {'passed' if check.passed else 'FAILED'}")
    compared = launcher.execute("compare_simulations", partition_key=DEMO_DATASET)
    if compared.success:
        meta = metadata(compared, "simulation_comparison")
        print(
            f"comparison     {meta['simulations']} simulations of {DEMO_DATASET}; best by Sharpe "
            f"{meta['best_by_sharpe']}"
        )
    return compared.success and all(c.passed for c in checks)
