"""The typed config of a walkforward run: the launchpad's form, and what the job-request intake validates a
submitted row or `trading-assets submit` file with, so all three doors say the same."""

from typing import Literal

import dagster as dg
from pydantic import Field

from trading_assets.compute.folds import FoldConfig, parse_length
from trading_assets.compute.targets import TargetConfig
from trading_assets.compute.thresholds import ThresholdRule
from trading_assets.compute.training import Hyperparameters
from trading_assets.compute.walkforward import WalkforwardSpec
from trading_assets.simulation.config import SimulationSettings


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
