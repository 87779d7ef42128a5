"""Jobs a person launches from the UI besides materialising assets: registering an indicator set, a
walkforward run or a simulation, each with a typed config; and the asset jobs the sensors launch.

`ingest_bars` and `materialize_indicators` are defined with their assets in definitions.py; the walkforward
and simulation configs are in configs.py (the job-request intake validates with them too).
"""

import json

import dagster as dg
from pydantic import Field

from resources.catalog import Catalog
from resources.timeseries import TimeSeriesStore
from trading_assets import naming
from trading_assets.compute.indicators import SpecError, parse_spec
from trading_assets.configs import SimulationConfig, WalkforwardConfig
from trading_assets.indicator_sets import register_set
from trading_assets.job_requests import submit_from_launchpad
from trading_assets.partitions import indicator_versions
from trading_assets.records import CatalogError

ADD_INDICATOR_SET_JOB = "add_indicator_set"
MATERIALIZE_INDICATORS_JOB = "materialize_indicators"
START_WALKFORWARD_JOB = "start_walkforward"
TRAIN_FOLDS_JOB = "train_folds"
PREDICT_WALKFORWARD_JOB = "predict_walkforward"
START_SIMULATION_JOB = "start_simulation"
SIMULATE_JOB = "simulate"
SWEEP_JOB = "sweep_thresholds"
COMPARE_SIMULATIONS_JOB = "compare_simulations"


class IndicatorEntryConfig(dg.Config):
    """One indicator of the set."""

    indicator: str = Field(
        description="Indicator name, e.g. rsi, macd, bbands (docs/indicators.md lists them)."
    )
    params: dict[str, float] = Field(
        default_factory=dict,
        description="Parameters by name, e.g. {n: 14}; omitted ones take their defaults.",
    )
    column: str = Field(
        default="",
        description="Output column; for several outputs the prefix (macd -> macd_line, ...). "
        "Default: the indicator's name.",
    )
    outputs: list[str] = Field(default_factory=list, description="Outputs to keep (default: all).")


class IndicatorSetConfig(dg.Config):
    """An indicator set to apply to a dataset. It gets the dataset's next version (or, if the same set was
    registered before, that version) and is computed by the indicator_sets sensor within a minute."""

    dataset: str = Field(description="Dataset (bars partition) to compute the set on, e.g. btc25.")
    name: str = Field(default="custom", description="A label for the set, shown in the catalog and the UI.")
    indicators: list[IndicatorEntryConfig] = Field(description="The indicators, in column order.")

    def spec_data(self) -> dict[str, object]:
        entries = []
        for item in self.indicators:
            entry: dict[str, object] = {"indicator": item.indicator, "params": dict(item.params)}
            if item.column:
                entry["column"] = item.column
            if item.outputs:
                entry["outputs"] = list(item.outputs)
            entries.append(entry)
        return {"name": self.name, "indicators": entries}


@dg.op(
    description="Validates the set, gives it its version for the dataset in the catalog and registers the "
    "`indicators` partition dataset|version; the indicator_sets sensor then computes it.",
)
def register_indicator_set(
    context: dg.OpExecutionContext, config: IndicatorSetConfig, catalog: dg.ResourceParam[Catalog]
) -> dg.Output[str]:
    try:
        dataset = naming.dataset_name(config.dataset)
        spec = parse_spec(config.spec_data(), source="launchpad config")
        record, created = register_set(catalog, dataset, spec)
    except (SpecError, naming.InvalidNameError, CatalogError) as err:
        # A readable message in the UI; retrying the same config cannot succeed.
        raise dg.Failure(description=str(err), allow_retries=False) from None
    version = str(record.version)
    if not context.instance.has_dynamic_partition(indicator_versions.name, version):
        context.instance.add_dynamic_partitions(indicator_versions.name, [version])
    context.log.info(
        f"{record.measurement}: {'registered' if created else 'already registered'} "
        f"({len(record.columns)} columns, status {record.status})"
    )
    return dg.Output(
        record.measurement,
        metadata={
            "measurement": record.measurement,
            "partition": f"{dataset}|{version}",
            "created": created,
            "status": record.status,
            "columns": dg.MetadataValue.json(list(record.columns)),
        },
    )


@dg.job(
    name=ADD_INDICATOR_SET_JOB,
    description="Register an indicator set (typed config) for a dataset; the sensor computes it.",
    tags={"trading/kind": "indicator_set"},
)
def add_indicator_set() -> None:
    register_indicator_set()


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
    tags={"trading/kind": "walkforward"},
)
def start_walkforward() -> None:
    register_walkforward_run()


train_folds_job = dg.define_asset_job(
    TRAIN_FOLDS_JOB,
    selection=dg.AssetSelection.assets("fold_models"),
    description="Train one fold of a walkforward run (partition fold|run).",
    tags={"trading/kind": "walkforward"},
)

predict_walkforward_job = dg.define_asset_job(
    PREDICT_WALKFORWARD_JOB,
    selection=dg.AssetSelection.assets("predictions", "thresholds"),
    description="Assemble a walkforward run's predictions from its fold models, check them, and derive its "
    "thresholds (partition <dataset>_run<n>).",
    tags={"trading/kind": "walkforward"},
)


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
    tags={"trading/kind": "simulation"},
)
def start_simulation() -> None:
    register_simulation_op()


simulate_job = dg.define_asset_job(
    SIMULATE_JOB,
    selection=dg.AssetSelection.assets("simulation"),
    description="Run one simulation (partition <dataset>_sim<n>) and check it.",
    tags={"trading/kind": "simulation"},
)

sweep_job = dg.define_asset_job(
    SWEEP_JOB,
    selection=dg.AssetSelection.assets("simulation_sweep"),
    description="Sweep a grid of thresholds (and stops) over a walkforward run's predictions.",
    tags={"trading/kind": "simulation"},
)

compare_simulations_job = dg.define_asset_job(
    COMPARE_SIMULATIONS_JOB,
    selection=dg.AssetSelection.assets("simulation_comparison"),
    description="Every simulation of a dataset side by side (partition: dataset).",
    tags={"trading/kind": "simulation"},
)
