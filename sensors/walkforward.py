"""`walkforward_sensor`: trains the folds of registered walkforward runs, then assembles their outputs.

Each tick, deciding on the catalog's rows and the instance's partitions only (the data is read in runs), it
1. adds the partitions of runs registered outside the launchpad job (an intake run, the CLI, a notebook)
   where missing;
2. asks for one `train_folds` run per fold never attempted (also in a run that has a failed fold), so a
   run's folds run side by side, each limited by the `gpu` pool, and fail and retry one by one;
3. asks for a `predict_walkforward` run (predictions, then thresholds) of every run whose folds have all
   succeeded, once per set of fold models and attempts: retraining a fold asks again.
A failed fold is not retried blindly (a compute error usually repeats): a person re-executes its run or
materialises its partition from the UI once the cause is fixed. Run keys make each request happen once.
"""

import dagster as dg

from resources.catalog import Catalog
from trading_assets.partitions import fold_key, fold_numbers, walkforward_runs
from trading_assets.requests.service import reconcile, request_tags
from trading_assets.walkforward.jobs import (
    PREDICT_WALKFORWARD_JOB,
    TRAIN_FOLDS_JOB,
    predict_walkforward_job,
    train_folds_job,
)
from trading_assets.walkforward.service import models_version


@dg.sensor(
    jobs=[train_folds_job, predict_walkforward_job],
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Trains the folds of registered walkforward runs (one run per fold), then assembles each "
    "run's predictions and thresholds when all its folds have succeeded.",
)
def walkforward_sensor(
    context: dg.SensorEvaluationContext,
    catalog: dg.ResourceParam[Catalog],
) -> dg.SensorResult:
    reconcile("walkforward", catalog, context.instance, context.log)
    tags_of = request_tags(catalog, "walkforward")
    known_runs = set(context.instance.get_dynamic_partitions(walkforward_runs.name))
    known_folds = set(context.instance.get_dynamic_partitions(fold_numbers.name))
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
                    tags={"trading/walkforward_run": run.name, **tags_of.get(run.name, {})},
                )
            )
            continue
        for fold in folds:
            if fold.attempts == 0:
                number = fold.window.fold
                requests.append(
                    dg.RunRequest(
                        job_name=TRAIN_FOLDS_JOB,
                        partition_key=fold_key(run.name, number),
                        run_key=f"{run.name}:fold:{number}",
                        tags={"trading/walkforward_run": run.name, **tags_of.get(run.name, {})},
                    )
                )
    partition_requests = []
    if new_runs:
        partition_requests.append(walkforward_runs.build_add_request(new_runs))
    if new_folds:
        partition_requests.append(fold_numbers.build_add_request(sorted(new_folds, key=int)))
    return dg.SensorResult(run_requests=requests, dynamic_partitions_requests=partition_requests)
