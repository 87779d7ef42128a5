"""The walkforward room's jobs: register a run from the launchpad (typed config); train one fold; assemble
a run's predictions and thresholds (the walkforward sensor launches the last two)."""

import json

import dagster as dg

from resources.catalog import Catalog
from resources.timeseries import TimeSeriesStore
from trading_assets.metadata import job_tags
from trading_assets.requests.service import submit_from_launchpad
from trading_assets.walkforward.config import WalkforwardConfig

START_WALKFORWARD_JOB = "start_walkforward"
TRAIN_FOLDS_JOB = "train_folds"
PREDICT_WALKFORWARD_JOB = "predict_walkforward"


@dg.op(
    description="Records the config as a job request, validates it on the data, computes its folds, "
    "registers the run <dataset>_run<n> with its folds in the catalog and adds their partitions; the "
    "walkforward sensor then trains the folds.",
)
def register_walkforward_run(
    context: dg.OpExecutionContext,
    config: WalkforwardConfig,
    timeseries: dg.ResourceParam[TimeSeriesStore],
    catalog: dg.ResourceParam[Catalog],
) -> dg.Output[str]:
    request_id, record = submit_from_launchpad(context, config, timeseries, catalog)
    context.log.info(f"{record.name}: registered with {record.fold_count} folds")
    return dg.Output(
        record.name,
        metadata={
            "run": record.name,
            "folds": record.fold_count,
            "features": dg.MetadataValue.json(list(record.features)),
            "config": dg.MetadataValue.json(json.loads(record.config)),
            "job_request": request_id,
        },
    )


@dg.job(
    name=START_WALKFORWARD_JOB,
    description="Register a walkforward run (typed config); the walkforward sensor trains its folds, then "
    "assembles predictions and thresholds.",
    tags=job_tags("walkforward"),
)
def start_walkforward() -> None:
    register_walkforward_run()


train_folds_job = dg.define_asset_job(
    TRAIN_FOLDS_JOB,
    selection=dg.AssetSelection.assets("fold_models"),
    description="Train one fold of a walkforward run (partition fold|run).",
    tags=job_tags("walkforward"),
)


predict_walkforward_job = dg.define_asset_job(
    PREDICT_WALKFORWARD_JOB,
    selection=dg.AssetSelection.assets("predictions", "thresholds"),
    description="Assemble a walkforward run's predictions from its fold models, check them, and derive its "
    "thresholds (partition <dataset>_run<n>).",
    tags=job_tags("walkforward"),
)
