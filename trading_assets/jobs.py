"""Jobs a person launches from the UI besides materialising assets: registering an indicator set, a
walkforward run or a simulation, each with a typed config; and the asset jobs the sensors launch.

`ingest_bars` and `materialize_indicators` are defined with their assets in definitions.py.
"""

import json
from typing import Literal

import dagster as dg
from pydantic import Field

from resources.catalog import Catalog, CatalogError
from resources.timeseries import TimeSeriesStore
from trading_assets import naming
from trading_assets.compute.folds import FoldConfig, parse_length
from trading_assets.compute.indicators import SpecError, parse_spec
from trading_assets.compute.simulator import SimConfig
from trading_assets.compute.targets import TargetConfig
from trading_assets.compute.thresholds import ThresholdRule
from trading_assets.compute.training import Hyperparameters
from trading_assets.compute.walkforward import WalkforwardSpec
from trading_assets.indicator_sets import register_set
from trading_assets.partitions import fold_numbers, indicator_versions, simulations, walkforward_runs
from trading_assets.simulations import SimulationError, SimulationSpec, register_simulation
from trading_assets.walkforward_runs import RunError, models_version, register_run

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


class TargetSettings(dg.Config):
    """What the models predict."""

    kind: Literal["regression", "classification"] = Field(
        default="regression",
        description="regression: forward log return over `horizon` bars; classification: its sign (1 up, "
        "0 down) beyond the dead zone.",
    )
    horizon: int = Field(default=1, description="Bars ahead the target looks (>= 1).")
    dead_zone: float = Field(
        default=0.0, description="Classification: |return| at or below this has no label (>= 0)."
    )


class FoldSettings(dg.Config):
    """How the bars are cut into folds. Lengths are bar counts ("5000") or durations ("90d", "12h")."""

    train: str = Field(description='Training window: bars ("5000") or a duration ("90d").')
    test: str = Field(description='Test window per fold: bars ("1000") or a duration ("14d").')
    step: str | None = Field(default=None, description="Between test windows (default: the test length).")
    mode: Literal["sliding", "expanding"] = Field(
        default="sliding", description="sliding: the last `train` before each test; expanding: all before."
    )
    purge: int | None = Field(
        default=None, description="Bars between train end and test start (default and minimum: horizon)."
    )
    embargo: int = Field(default=0, description="Bars after each test window left out of later training.")
    max_folds: int | None = Field(default=None, description="Stop after this many folds.")


class HyperparameterSettings(dg.Config):
    """XGBoost hyperparameters (docs/walkforward.md explains each)."""

    n_estimators: int = Field(default=300, description="Most boosting rounds (>= 1).")
    max_depth: int = Field(default=4, description="Tree depth (1..20).")
    learning_rate: float = Field(default=0.05, description="Shrinkage per round, in (0, 1].")
    subsample: float = Field(default=0.8, description="Rows sampled per tree, in (0, 1].")
    colsample_bytree: float = Field(default=0.8, description="Features sampled per tree, in (0, 1].")
    min_child_weight: float = Field(default=1.0, description="Least hessian sum in a leaf (>= 0).")
    reg_lambda: float = Field(default=1.0, description="L2 regularisation (>= 0).")
    reg_alpha: float = Field(default=0.0, description="L1 regularisation (>= 0).")
    early_stopping_rounds: int | None = Field(
        default=30,
        description="Stop when the held-out tail has not improved for this many rounds; null: off.",
    )
    validation_fraction: float = Field(
        default=0.2,
        description="Last part of each training window (time order, never shuffled) held out for early "
        "stopping, in [0, 0.5].",
    )


class ThresholdSettings(dg.Config):
    """How each fold's entry thresholds come from its own train-period predictions."""

    source: Literal["validation", "train"] = Field(
        default="validation",
        description="validation: the held-out tail of the training window (not fitted on); train: the "
        "fitted rows.",
    )
    long_quantile: float = Field(default=0.8, description="Long entry: this quantile of the predictions.")
    short_quantile: float = Field(default=0.2, description="Short entry: this quantile (< long_quantile).")


class SimulationSettings(dg.Config):
    """How a walkforward run's predictions are traded (every simulation setting but the run).
    Conventions (fills, sizing, stops) are in docs/metrics.md."""

    thresholds: Literal["run", "given"] = Field(
        default="run",
        description="run: each bar takes its fold's thresholds (from the fold's own train period); given: "
        "long_threshold/short_threshold for every bar.",
    )
    long_threshold: float | None = Field(default=None, description="Long at or above (thresholds: given).")
    short_threshold: float | None = Field(default=None, description="Short at or below (thresholds: given).")
    dead_zone: Literal["flat", "hold"] = Field(
        default="flat",
        description="Between the thresholds: flat, or hold the position until the other threshold.",
    )
    fill: Literal["next_open", "close"] = Field(
        default="next_open",
        description="next_open: fill at the next bar's open; close: at the signal's close.",
    )
    fee_bps: float = Field(default=1.0, description="Fee per side, basis points of traded notional.")
    slippage_bps: float = Field(default=0.0, description="Slippage against every fill, basis points.")
    initial_cash: float = Field(default=10_000.0, description="Starting equity.")
    sizing: Literal["fraction", "notional", "units"] = Field(
        default="fraction", description="fraction of equity, a fixed notional, or fixed units."
    )
    fraction: float = Field(default=1.0, description="Fraction of equity per position (sizing: fraction).")
    notional: float | None = Field(default=None, description="Notional per position (sizing: notional).")
    units: float | None = Field(default=None, description="Units per position (sizing: units).")
    direction: Literal["both", "long", "short"] = Field(default="both", description="Sides traded.")
    stop_loss_pct: float | None = Field(default=None, description="Stop-loss, fraction of the entry price.")
    take_profit_pct: float | None = Field(default=None, description="Take-profit, fraction of the entry.")
    max_bars_held: int | None = Field(default=None, description="Close a trade after this many bars.")


class WalkforwardConfig(dg.Config):
    """A walkforward run: one XGBoost model per fold on an indicator set of a dataset. It gets the name
    <dataset>_run<n>; the walkforward sensor then trains its folds and assembles its predictions."""

    dataset: str = Field(description="Dataset (bars partition), e.g. btc25.")
    indicator_version: int = Field(description="Indicator set version of the dataset (indicators btc25|1).")
    features: list[str] = Field(
        default_factory=list, description="Columns of the set to use as features (default: all)."
    )
    target: TargetSettings = Field(default_factory=TargetSettings)
    folds: FoldSettings
    hyperparameters: HyperparameterSettings = Field(default_factory=HyperparameterSettings)
    seed: int = Field(default=0, description="Random seed of the models (row/column subsampling).")
    thresholds: ThresholdSettings = Field(default_factory=ThresholdSettings)
    rolling: bool = Field(
        default=False,
        description="Extend the run with the next fold whenever the dataset has gained enough bars for "
        "another test window (the rolling_walkforward schedule), then refresh its predictions, thresholds "
        "and simulations.",
    )
    simulate: SimulationSettings | None = Field(
        default=None,
        description="Simulate the run's predictions with these settings once the run has completed "
        "(a simulation request chained to this one); null: no simulation.",
    )

    def spec(self) -> WalkforwardSpec:
        """The compute library's spec; ValueError (FoldError, TargetError, ...) says what is wrong."""
        target = TargetConfig(**self.target.model_dump())
        settings = self.folds
        fold_config = FoldConfig(
            train=parse_length(settings.train),
            test=parse_length(settings.test),
            step=None if settings.step is None else parse_length(settings.step),
            mode=settings.mode,
            horizon=target.horizon,
            purge=settings.purge,
            embargo=settings.embargo,
            max_folds=settings.max_folds,
        )
        spec = WalkforwardSpec(
            target=target,
            folds=fold_config,
            features=tuple(self.features),
            hyperparameters=Hyperparameters(**self.hyperparameters.model_dump()),
            seed=self.seed,
            thresholds=ThresholdRule(**self.thresholds.model_dump()),
        )
        spec.validate()
        return spec


@dg.op(
    description="Validates the run config on the data, computes its folds, registers the run "
    "<dataset>_run<n> with its folds in the catalog and adds their partitions; the walkforward sensor "
    "then trains the folds.",
)
def register_walkforward_run(
    context: dg.OpExecutionContext,
    config: WalkforwardConfig,
    timeseries: dg.ResourceParam[TimeSeriesStore],
    catalog: dg.ResourceParam[Catalog],
) -> dg.Output[str]:
    try:
        dataset = naming.dataset_name(config.dataset)
        record = register_run(timeseries, catalog, dataset, config.indicator_version, config.spec())
    except (ValueError, RunError, CatalogError) as err:
        # A readable message in the UI; retrying the same config cannot succeed.
        raise dg.Failure(description=str(err), allow_retries=False) from None
    add_run_partitions(context.instance, record.name, record.fold_count)
    context.log.info(f"{record.name}: registered with {record.fold_count} folds")
    return dg.Output(
        record.name,
        metadata={
            "run": record.name,
            "folds": record.fold_count,
            "features": dg.MetadataValue.json(list(record.features)),
            "config": dg.MetadataValue.json(json.loads(record.config)),
        },
    )


def add_run_partitions(instance: dg.DagsterInstance, run: str, fold_count: int) -> None:
    """Register the run's partition and its fold numbers, where missing."""
    if not instance.has_dynamic_partition(walkforward_runs.name, run):
        instance.add_dynamic_partitions(walkforward_runs.name, [run])
    known = set(instance.get_dynamic_partitions(fold_numbers.name))
    missing = [str(k) for k in range(fold_count) if str(k) not in known]
    if missing:
        instance.add_dynamic_partitions(fold_numbers.name, missing)


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


class SimulationConfig(SimulationSettings):
    """A trading simulation of a walkforward run's predictions. It gets the name <dataset>_sim<n>; the
    simulation sensor then runs it. Conventions (fills, sizing, stops) are in docs/metrics.md."""

    run: str = Field(description="Walkforward run whose predictions are replayed, e.g. btc25_run1.")

    def spec(self) -> SimulationSpec:
        """The simulation spec; SimConfigError (a ValueError) or SimulationError names the wrong field."""
        data = self.model_dump()
        return SimulationSpec(
            run=data.pop("run"),
            thresholds=data.pop("thresholds"),
            long_threshold=data.pop("long_threshold"),
            short_threshold=data.pop("short_threshold"),
            dead_zone=data.pop("dead_zone"),
            sim=SimConfig(**data),
        )


@dg.op(
    description="Validates the simulation config, registers the simulation <dataset>_sim<n> in the catalog "
    "(bars per year inferred from the bars) and adds its partition; the simulation sensor then runs it.",
)
def register_simulation_op(
    context: dg.OpExecutionContext,
    config: SimulationConfig,
    timeseries: dg.ResourceParam[TimeSeriesStore],
    catalog: dg.ResourceParam[Catalog],
) -> dg.Output[str]:
    try:
        spec = config.spec()
        folds = catalog.list_walkforward_folds(spec.run)
        record = register_simulation(timeseries, catalog, spec, models_version(folds))
    except (ValueError, RunError, SimulationError, CatalogError) as err:
        raise dg.Failure(description=str(err), allow_retries=False) from None
    if not context.instance.has_dynamic_partition(simulations.name, record.name):
        context.instance.add_dynamic_partitions(simulations.name, [record.name])
    context.log.info(f"{record.name}: registered, replaying {record.run}")
    return dg.Output(
        record.name,
        metadata={
            "simulation": record.name,
            "run": record.run,
            "config": dg.MetadataValue.json(json.loads(record.config)),
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
