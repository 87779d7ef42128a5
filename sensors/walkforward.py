"""`walkforward_sensor`: trains the folds of registered walkforward runs, then assembles their outputs.

Each tick, deciding on the catalog's rows and the instance's partitions only (the data is read in runs), it
1. adds the partitions of runs registered outside the launchpad job (an intake run, the CLI, a notebook)
   where missing;
2. asks for one `train_folds` run of the folds never attempted of each run (also in a run that has a
   failed fold): a range of the run's fold cells, trained in one step that reads the data once and
   materialises (or fails) each cell on its own, so a run pays one run's start-up, not one per fold, and
   holds one slot of the `gpu` pool while it trains; never while a run of that walkforward run is in
   flight (its later folds read "never attempted" until it reaches them);
3. asks for a `predict_walkforward` run (predictions, then thresholds) of every run whose folds have all
   succeeded, once per set of fold models and attempts: retraining a fold asks again.
A failed fold is not retried blindly (a compute error usually repeats): a person re-executes its run or
materialises its partition from the UI once the cause is fixed. Run keys make each request happen once.
"""

import dagster as dg

from resources.catalog import Catalog
from sensors.runs import unless_in_flight
from trading_assets.partitions import fold_key, fold_numbers, walkforward_runs
from trading_assets.requests.service import reconcile, request_tags
from trading_assets.walkforward.jobs import (
    PREDICT_WALKFORWARD_JOB,
    TRAIN_FOLDS_JOB,
    predict_walkforward_job,
    train_folds_job,
)
from trading_assets.walkforward.service import models_version

# The tags of a run over a range of partitions (what a single-run backfill launches): the fold cells
# from start to end, of the one run both name, in the fold dimension's stored order.
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
# Every run this sensor asks for names its walkforward run.
RUN_TAG = "trading/walkforward_run"


def _blocks(order: list[str], wanted: set[str]) -> list[tuple[str, str]]:
    """The first and last key of each stretch of `order` whose keys are all `wanted`: the ranges that
    cover exactly the wanted fold numbers (one for a run's never-tried folds, in practice)."""
    blocks: list[tuple[str, str]] = []
    start: str | None = None
    previous = ""
    for key in order:
        if key in wanted:
            start = key if start is None else start
            previous = key
        elif start is not None:
            blocks.append((start, previous))
            start = None
    if start is not None:
        blocks.append((start, previous))
    return blocks


@dg.sensor(
    jobs=[train_folds_job, predict_walkforward_job],
    # Every loop of the daemon's sensor thread (every 5 s; a minimum of 5 s here skipped a loop whenever the
    # last tick was a hair under 5 s ago): submit to result is a chain of runs, each link waiting for a tick.
    # Its evaluation reads a few catalog rows.
    minimum_interval_seconds=1,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Trains the folds of registered walkforward runs (one run for a run's untried folds), then "
    "assembles each run's predictions and thresholds when all its folds have succeeded.",
)
def walkforward_sensor(
    context: dg.SensorEvaluationContext,
    catalog: dg.ResourceParam[Catalog],
) -> dg.SensorResult:
    reconcile("walkforward", catalog, context.instance, context.log)
    tags_of = request_tags(catalog, "walkforward")
    known_runs = set(context.instance.get_dynamic_partitions(walkforward_runs.name))
    fold_order = list(context.instance.get_dynamic_partitions(fold_numbers.name))
    known_folds = set(fold_order)
    new_runs: list[str] = []
    new_folds: set[str] = set()
    requests: list[dg.RunRequest] = []
    for run in catalog.list_walkforward_runs():
        if run.status == "completed":
            continue
        if run.name not in known_runs:
            new_runs.append(run.name)
        new_folds.update(str(k) for k in range(run.fold_count) if str(k) not in known_folds)
        folds = catalog.list_walkforward_folds(run.name)
        if run.status == "trained":
            requests.append(
                dg.RunRequest(
                    job_name=PREDICT_WALKFORWARD_JOB,
                    partition_key=run.name,
                    # Models and attempts: a fold retrained on CPU has the same bits, and the run still
                    # needs its predictions and thresholds again (retraining cleared them).
                    run_key=f"{run.name}:predict:{models_version(folds)}",
                    tags={RUN_TAG: run.name, **tags_of.get(run.name, {})},
                )
            )
            continue
        never = [fold.window.fold for fold in folds if fold.attempts == 0]
        order = fold_order + sorted(new_folds - set(fold_order), key=int)
        for first, last in _blocks(order, {str(n) for n in never}):
            requests.append(
                dg.RunRequest(
                    job_name=TRAIN_FOLDS_JOB,
                    run_key=f"{run.name}:folds:{first}-{last}",
                    tags={
                        RANGE_START: fold_key(run.name, int(first)),
                        RANGE_END: fold_key(run.name, int(last)),
                        RUN_TAG: run.name,
                        **tags_of.get(run.name, {}),
                    },
                )
            )
    partition_requests = []
    if new_runs:
        partition_requests.append(walkforward_runs.build_add_request(new_runs))
    if new_folds:
        partition_requests.append(fold_numbers.build_add_request(sorted(new_folds, key=int)))
    # Never a second run for a walkforward run while one is in flight: a training run starts each fold's
    # attempt as it reaches it, so its later folds still read "never attempted" until then.
    requests = unless_in_flight(context.instance, requests, RUN_TAG)
    return dg.SensorResult(run_requests=requests, dynamic_partitions_requests=partition_requests)
