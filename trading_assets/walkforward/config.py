"""The typed config of a walkforward run: the launchpad's form, and what the job-request intake validates a
submitted row or `trading-assets submit` file with, so all three doors say the same."""

import dagster as dg
from pydantic import Field

from trading_assets.compute.folds import FoldConfig, parse_length
from trading_assets.compute.targets import TargetConfig
from trading_assets.compute.thresholds import ThresholdRule
from trading_assets.compute.training import Hyperparameters
from trading_assets.compute.walkforward import WalkforwardSpec
from trading_assets.launchpad import derived_config
from trading_assets.simulation.config import SimulationSettings

# The forms of the spec's parts, made from the compute dataclasses (names, types, defaults); the
# descriptions are the launchpad's help text.
TargetSettings = derived_config(
    "TargetSettings",
    (TargetConfig,),
    {
        "kind": "regression: forward log return over `horizon` bars; classification: its sign (1 up, 0 down) "
        "beyond the dead zone.",
        "horizon": "Bars ahead the target looks (>= 1).",
        "dead_zone": "Classification: |return| at or below this has no label (>= 0).",
    },
    module=__name__,
    doc="What the models predict.",
)
FoldSettings = derived_config(
    "FoldSettings",
    (FoldConfig,),
    {
        "train": 'Training window: bars ("5000") or a duration ("90d").',
        "test": 'Test window per fold: bars ("1000") or a duration ("14d").',
        "step": "Between test windows (default: the test length).",
        "mode": "sliding: the last `train` before each test; expanding: all before.",
        "purge": "Bars between train end and test start (default and minimum: horizon).",
        "embargo": "Bars after each test window left out of later training.",
        "max_folds": "Stop after this many folds.",
    },
    module=__name__,
    doc='How the bars are cut into folds. Lengths are bar counts ("5000") or durations ("90d", "12h").',
    # The target's horizon is the folds' too (WalkforwardConfig.spec); lengths are text for parse_length.
    exclude=("horizon",),
    types={"train": str, "test": str, "step": str | None},
)
HyperparameterSettings = derived_config(
    "HyperparameterSettings",
    (Hyperparameters,),
    {
        "n_estimators": "Most boosting rounds (>= 1).",
        "max_depth": "Tree depth (1..20).",
        "learning_rate": "Shrinkage per round, in (0, 1].",
        "subsample": "Rows sampled per tree, in (0, 1].",
        "colsample_bytree": "Features sampled per tree, in (0, 1].",
        "min_child_weight": "Least hessian sum in a leaf (>= 0).",
        "reg_lambda": "L2 regularisation (>= 0).",
        "reg_alpha": "L1 regularisation (>= 0).",
        "early_stopping_rounds": "Stop when the held-out tail has not improved for this many rounds; null: "
        "off.",
        "validation_fraction": "Last part of each training window (time order, never shuffled) held out for "
        "early stopping, in [0, 0.5].",
    },
    module=__name__,
    doc="XGBoost hyperparameters (docs/walkforward.md explains each).",
)
ThresholdSettings = derived_config(
    "ThresholdSettings",
    (ThresholdRule,),
    {
        "source": "validation: the held-out tail of the training window (not fitted on); train: the fitted "
        "rows.",
        "long_quantile": "Long entry: this quantile of the predictions.",
        "short_quantile": "Short entry: this quantile (< long_quantile).",
    },
    module=__name__,
    doc="How each fold's entry thresholds come from its own train-period predictions.",
)


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
