"""Window primitives shared by the windowed kernels.

Each primitive reads one window `x[end - n + 1 : end + 1]` and sums it oldest first from 0.0, so a value
depends only on its window and never on where the array starts (no running sum carried along the array).

numba's on-disk cache keys a kernel on its own file only: the package's `guard` call drops the callers'
cached machine code when this module changes (`compute/numba_cache.py`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, error_model="numpy")
def window_sum_nb(x: np.ndarray, end: int, n: int) -> float:
    """Sum of the `n` values ending at `end`, added oldest first."""
    total = 0.0
    for j in range(end - n + 1, end + 1):
        total += x[j]
    return total


@njit(cache=True, error_model="numpy")
def window_moments_nb(x: np.ndarray, end: int, n: int, ddof: int) -> tuple[float, float]:
    """(mean - first value, standard deviation) of the `n` values ending at `end`; the squared deviations
    are divided by n - ddof.

    Two passes over values shifted by the window's first value: a flat window then gives exactly 0 for
    both (the plain mean sum/n of equal values can be off by an ulp and leave a spurious tiny deviation),
    and the shift keeps the squares small whatever the price level.
    """
    start = end - n + 1
    base = x[start]
    total = 0.0
    for j in range(start, end + 1):
        total += x[j] - base
    offset = total / n
    squares = 0.0
    for j in range(start, end + 1):
        d = (x[j] - base) - offset
        squares += d * d
    return offset, math.sqrt(squares / (n - ddof))


@njit(cache=True, error_model="numpy")
def window_max_nb(x: np.ndarray, end: int, n: int) -> float:
    """Largest of the `n` values ending at `end`."""
    best = x[end]
    for j in range(end - n + 1, end):
        best = max(best, x[j])
    return best


@njit(cache=True, error_model="numpy")
def window_min_nb(x: np.ndarray, end: int, n: int) -> float:
    """Smallest of the `n` values ending at `end`."""
    best = x[end]
    for j in range(end - n + 1, end):
        best = min(best, x[j])
    return best


@njit(cache=True, error_model="numpy")
def rolling_mean_nb(x: np.ndarray, n: int, first: int) -> np.ndarray:
    """Mean of each `n`-value window of `x`, whose values are defined from index `first` on.

    NaN until index first + n - 1, the first window made only of defined values.
    """
    out = np.full(x.shape[0], np.nan)
    for i in range(first + n - 1, x.shape[0]):
        out[i] = window_sum_nb(x, i, n) / n
    return out


@njit(cache=True, error_model="numpy")
def typical_price_nb(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """(high + low + close) / 3 of every bar, added in that order as TA-Lib does."""
    out = np.empty(close.shape[0])
    for i in range(close.shape[0]):
        out[i] = (high[i] + low[i] + close[i]) / 3.0
    return out
