"""Targets from model predictions: long at or above one threshold, short at or below another."""

from __future__ import annotations

from typing import Literal

import numpy as np

from trading_assets.compute.simulator.kernels import signals_nb


def signals_from_predictions(
    pred: np.ndarray,
    long_threshold: float | np.ndarray,
    short_threshold: float | np.ndarray,
    dead_zone: Literal["flat", "hold"] = "flat",
) -> np.ndarray:
    """Target per bar for `simulate`: +1 where pred >= long_threshold, -1 where pred <= short_threshold,
    and between them 0 (`dead_zone="flat"`) or the previous bar's target (`"hold"`, so a position is kept
    until the opposite threshold is crossed). A NaN prediction is flat (and resets what "hold" keeps).

    Thresholds are scalars or arrays with one value per bar (a walkforward run's per-fold thresholds); a
    NaN threshold never triggers. A short threshold above the long one is an error: the two signals would
    overlap.
    """
    if dead_zone not in ("flat", "hold"):
        raise ValueError(f"dead_zone must be 'flat' or 'hold', got {dead_zone!r}")
    pred = np.ascontiguousarray(pred, dtype=np.float64)
    if pred.ndim != 1:
        raise ValueError(f"pred must be one-dimensional, got shape {pred.shape}")
    long_at = _per_bar("long_threshold", long_threshold, pred.size)
    short_at = _per_bar("short_threshold", short_threshold, pred.size)
    crossed = np.flatnonzero(short_at > long_at)
    if crossed.size:
        i = int(crossed[0])
        raise ValueError(f"short_threshold {short_at[i]} is above long_threshold {long_at[i]} at index {i}")
    return signals_nb(pred, long_at, short_at, dead_zone == "hold")


def _per_bar(name: str, threshold: float | np.ndarray, n: int) -> np.ndarray:
    """A scalar broadcast to `n` bars, or an array that already has one value per bar."""
    values = np.asarray(threshold, dtype=np.float64)
    if values.ndim == 0:
        return np.full(n, float(values))
    if values.shape != (n,):
        raise ValueError(f"{name} must be a scalar or have one value per bar ({n}), got shape {values.shape}")
    return np.ascontiguousarray(values)
