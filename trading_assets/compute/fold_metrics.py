"""How well a fold's predictions match its test targets.

Rows whose target is NaN (none known: past the data's end, or inside the classification dead zone) are
left out. A metric that is undefined on what is left (no rows, a constant series, a single class) is NaN,
never an exception, so one odd fold does not stop a walkforward report.
"""

from __future__ import annotations

import math

import numpy as np

NAN = math.nan
# Log loss of a probability of exactly 0 or 1 that turns out wrong would be infinite.
PROBABILITY_CLIP = 1e-15


class MetricsError(ValueError):
    """Inputs that cannot be scored at all (mismatched lengths, labels other than 0 and 1)."""


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """rmse, mae, r2, ic (Pearson correlation), rank_ic (Spearman, ties get their average rank) and
    hit_rate (share of rows whose prediction has the sign of the target, rows with target 0 left out)."""
    true, pred = _scored_rows(y_true, y_pred)
    error = pred - true
    nonzero = true != 0
    return {
        "rmse": _mean(error**2) ** 0.5,
        "mae": _mean(np.abs(error)),
        "r2": _r2(true, pred),
        "ic": _pearson(true, pred),
        "rank_ic": _pearson(average_ranks(true), average_ranks(pred)),
        "hit_rate": _mean(np.sign(pred[nonzero]) == np.sign(true[nonzero])),
    }


def classification_metrics(y_true: np.ndarray, prob: np.ndarray) -> dict[str, float]:
    """log_loss (probabilities clipped to [1e-15, 1 - 1e-15]), auc (the Mann-Whitney probability that a
    row of class 1 outranks one of class 0, ties counting 1/2) and accuracy (class 1 when prob >= 0.5)."""
    true, prob = _scored_rows(y_true, prob)
    if not np.isin(true, (0.0, 1.0)).all():
        raise MetricsError(f"classification labels must be 0 or 1, got values {np.unique(true)[:5]}")
    clipped = np.clip(prob, PROBABILITY_CLIP, 1 - PROBABILITY_CLIP)
    positive = true == 1
    return {
        "log_loss": -_mean(np.where(positive, np.log(clipped), np.log1p(-clipped))),
        "auc": _auc(positive, prob),
        "accuracy": _mean((prob >= 0.5) == positive),
    }


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of `values`; tied values share the average of the ranks they span."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts_group = np.r_[True, ordered[1:] != ordered[:-1]]
    group = np.cumsum(starts_group) - 1
    starts = np.flatnonzero(starts_group)
    ends = np.r_[starts[1:], values.size]
    ranks = np.empty(values.size)
    # A group over sorted positions start..end-1 holds ranks start+1..end, averaging (start + 1 + end) / 2.
    ranks[order] = ((starts + 1 + ends) / 2)[group]
    return ranks


def _scored_rows(y_true: np.ndarray, y_other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both series as float64 on the rows that have a target."""
    true = np.asarray(y_true, dtype=np.float64).ravel()
    other = np.asarray(y_other, dtype=np.float64).ravel()
    if true.size != other.size:
        raise MetricsError(f"y_true has {true.size} rows but the predictions have {other.size}")
    known = ~np.isnan(true)
    return true[known], other[known]


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if values.size else NAN


def _constant(values: np.ndarray) -> bool:
    # Compared exactly: a constant series minus its float mean can leave rounding noise, not zeros.
    return values.size == 0 or bool((values == values[0]).all())


def _r2(true: np.ndarray, pred: np.ndarray) -> float:
    if _constant(true):
        return NAN
    return float(1 - np.sum((true - pred) ** 2) / np.sum((true - true.mean()) ** 2))


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if x.size < 2 or _constant(x) or _constant(y):
        return NAN
    dx, dy = x - x.mean(), y - y.mean()
    r = float(np.dot(dx, dy) / math.sqrt(np.dot(dx, dx) * np.dot(dy, dy)))
    # Rounding can carry a perfect correlation a hair past 1.
    return max(-1.0, min(1.0, r)) if math.isfinite(r) else NAN


def _auc(positive: np.ndarray, prob: np.ndarray) -> float:
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return NAN
    u = average_ranks(prob)[positive].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))
