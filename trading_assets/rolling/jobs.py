"""The rolling room's job: roll one walkforward run forward (the rolling schedule asks for it hourly per
rolling run). Extending a run reads its dataset's bars and hashes its history, so it happens in a run."""

import dagster as dg

from resources.catalog import Catalog
from resources.timeseries import TimeSeriesStore
from trading_assets.metadata import job_tags
from trading_assets.rolling.service import extend_run, refresh_simulations
from trading_assets.walkforward.service import add_run_partitions

ROLL_WALKFORWARD_JOB = "roll_walkforward"


class RollConfig(dg.Config):
    """Which rolling walkforward run to roll forward."""

    run: str


@dg.op(
    description="Extends the rolling walkforward run with the next folds when its dataset has gained bars "
    "for another test window (and its history is unchanged), adding their partitions; once the extended "
    "run has completed, marks its simulations to be run again. The sensors launch the runs.",
)
def roll_walkforward_run(
    context: dg.OpExecutionContext,
    config: RollConfig,
    timeseries: dg.ResourceParam[TimeSeriesStore],
    catalog: dg.ResourceParam[Catalog],
) -> dg.Output[str]:
    run = catalog.get_walkforward_run(config.run)
    if run is None or not run.rolling:
        return dg.Output(f"{config.run}: not a rolling walkforward run", metadata={"outcome": "none"})
    extension = extend_run(timeseries, catalog, run)
    said = [extension.message]
    if extension.record is not None:  # extended
        add_run_partitions(context.instance, run.name, extension.record.fold_count)
        context.log.info(extension.message)
    else:
        if extension.outcome == "refused":
            context.log.warning(extension.message)
        for sim in refresh_simulations(catalog, run):
            message = f"{sim.name}: registered again to replay {run.name} (models {sim.models_version})"
            context.log.info(message)
            said.append(message)
    text = "; ".join(said)
    return dg.Output(text, metadata={"outcome": extension.outcome, "said": text})


@dg.job(
    name=ROLL_WALKFORWARD_JOB,
    description="Roll a rolling walkforward run forward (config: its name): new folds for new bars, then "
    "its simulations again; the walkforward and simulation sensors launch the training and the replays.",
    tags=job_tags("walkforward"),
)
def roll_walkforward() -> None:
    roll_walkforward_run()
