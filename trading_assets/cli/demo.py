"""`trading-assets demo`: generate the sample export and run the pipeline on the embedded default."""

import argparse
import os
import sys
import time
from typing import Any

from trading_assets import settings as cfg

DEMO_DATASET = "btc25"


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
