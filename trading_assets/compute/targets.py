"""Targets and training rows for walkforward models, computed without leakage.

- Regression: the forward log return over `horizon` bars, log(close[i + h] / close[i]), known only once
  bar i + h has closed; the last `horizon` rows have none.
- Classification: its sign beyond a dead zone: 1 above `dead_zone`, 0 below `-dead_zone`; returns inside
  the dead zone are too small to call and have no label.

`training_rows` keeps the rows usable for a model: past every selected feature's warm-up, with a target,
and with every feature finite. It says how many rows each rule dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np


class TargetError(ValueError):
    """A target or feature selection that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class TargetConfig:
    kind: Literal["regression", "classification"] = "regression"
    horizon: int = 1
    dead_zone: float = 0.0

    def validate(self) -> None:
        if self.kind not in ("regression", "classification"):
            raise TargetError(f"target kind must be 'regression' or 'classification', got {self.kind!r}")
        if isinstance(self.horizon, bool) or not isinstance(self.horizon, int) or self.horizon < 1:
            raise TargetError(f"horizon must be an integer >= 1 bar, got {self.horizon!r}")
        if not np.isfinite(self.dead_zone) or self.dead_zone < 0:
            raise TargetError(f"dead_zone must be a finite number >= 0, got {self.dead_zone!r}")


def forward_log_return(close: np.ndarray, horizon: int) -> np.ndarray:
    """log(close[i + horizon] / close[i]); NaN for the last `horizon` rows: their future is not known."""
    out = np.full(close.shape, np.nan)
    if close.size > horizon:
        out[:-horizon] = np.log(close[horizon:] / close[:-horizon])
    return out


def make_target(close: np.ndarray, config: TargetConfig) -> np.ndarray:
    """The target of every row (NaN where there is none: past the data's end, or inside the dead zone)."""
    config.validate()
    future = forward_log_return(np.asarray(close, dtype=np.float64), config.horizon)
    if config.kind == "regression":
        return future
    label = np.full(future.shape, np.nan)
    label[future > config.dead_zone] = 1.0
    label[future < -config.dead_zone] = 0.0
    return label


def select_features(available: Sequence[str], requested: Sequence[str]) -> list[str]:
    """The requested feature columns, checked against an indicator set's columns (all of them if empty)."""
    if not requested:
        return list(available)
    unknown = [name for name in requested if name not in available]
    if unknown:
        raise TargetError(
            f"feature(s) {unknown} are not columns of the indicator set; it has {list(available)}"
        )
    repeated = sorted({name for name in requested if list(requested).count(name) > 1})
    if repeated:
        raise TargetError(f"feature(s) {repeated} listed more than once")
    return list(requested)


@dataclass(frozen=True)
class TrainingRows:
    """Rows usable by a model: their positions in the dataset, features (rows x columns) and target."""

    rows: np.ndarray
    features: np.ndarray
    target: np.ndarray
    columns: tuple[str, ...]
    dropped: dict[str, int]


def training_rows(
    features: Mapping[str, np.ndarray],
    lookbacks: Mapping[str, int],
    target: np.ndarray,
    columns: Sequence[str],
) -> TrainingRows:
    """Keep the rows past every selected column's warm-up, with a target and finite features.

    `dropped` counts rows per reason, each row under the first reason that applies: `warmup` (inside the
    longest warm-up of the selected columns), `no_target` (the target reaches past the data or falls in
    the dead zone), `not_finite` (a feature that is NaN or inf after its warm-up).
    """
    n = target.size
    warmup = min(max((lookbacks[c] for c in columns), default=0), n)
    matrix = (
        np.column_stack([np.asarray(features[c], dtype=np.float64) for c in columns]) if columns else None
    )
    if matrix is None or matrix.shape[0] != n:
        raise TargetError(f"need at least one feature column as long as the target ({n} rows)")
    keep = np.ones(n, dtype=bool)
    keep[:warmup] = False
    no_target = keep & np.isnan(target)
    keep &= ~no_target
    not_finite = keep & ~np.isfinite(matrix).all(axis=1)
    keep &= ~not_finite
    rows = np.flatnonzero(keep)
    return TrainingRows(
        rows=rows,
        features=matrix[rows],
        target=target[rows],
        columns=tuple(columns),
        dropped={"warmup": warmup, "no_target": int(no_target.sum()), "not_finite": int(not_finite.sum())},
    )
