"""The simulation room's jobs: register a simulation from the launchpad (typed config); run one; sweep
thresholds; compare a dataset's simulations (the simulation sensor launches them)."""

import json

import dagster as dg

from resources.catalog import Catalog
from resources.timeseries import TimeSeriesStore
from trading_assets.metadata import job_tags
from trading_assets.requests.service import submit_from_launchpad
from trading_assets.simulation.config import SimulationConfig

START_SIMULATION_JOB = "start_simulation"
SIMULATE_JOB = "simulate"
SWEEP_JOB = "sweep_thresholds"
COMPARE_SIMULATIONS_JOB = "compare_simulations"


@dg.op(
    description="Records the config as a job request, validates it, registers the simulation "
    "<dataset>_sim<n> in the catalog (bars per year inferred from the bars) and adds its partition; the "
    "simulation sensor then runs it.",
)
def register_simulation_op(
    context: dg.OpExecutionContext,
    config: SimulationConfig,
    timeseries: dg.ResourceParam[TimeSeriesStore],
    catalog: dg.ResourceParam[Catalog],
) -> dg.Output[str]:
    request_id, record = submit_from_launchpad(context, config, timeseries, catalog)
    context.log.info(f"{record.name}: registered, replaying {record.run}")
    return dg.Output(
        record.name,
        metadata={
            "simulation": record.name,
            "run": record.run,
            "config": dg.MetadataValue.json(json.loads(record.config)),
            "job_request": request_id,
        },
    )


@dg.job(
    name=START_SIMULATION_JOB,
    description="Register a trading simulation of a walkforward run (typed config); the simulation sensor "
    "runs it and refreshes the dataset's comparison.",
    tags=job_tags("simulation"),
)
def start_simulation() -> None:
    register_simulation_op()


simulate_job = dg.define_asset_job(
    SIMULATE_JOB,
    selection=dg.AssetSelection.assets("simulation"),
    description="Run one simulation (partition <dataset>_sim<n>) and check it.",
    tags=job_tags("simulation"),
)


sweep_job = dg.define_asset_job(
    SWEEP_JOB,
    selection=dg.AssetSelection.assets("simulation_sweep"),
    description="Sweep a grid of thresholds (and stops) over a walkforward run's predictions.",
    tags=job_tags("simulation"),
)


compare_simulations_job = dg.define_asset_job(
    COMPARE_SIMULATIONS_JOB,
    selection=dg.AssetSelection.assets("simulation_comparison"),
    description="Every simulation of a dataset side by side (partition: dataset).",
    tags=job_tags("simulation"),
)
