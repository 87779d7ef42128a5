"""Window primitives shared by the windowed kernels, each over a block of consecutive windows.

Every window `x[end - n + 1 : end + 1]` is reduced oldest first from 0.0 (from its newest value for
max/min), so a value depends only on its window and never on where the array starts: no running sum is
carried along the array. The loops are swapped for speed, not the order: a primitive fills `out[t]` for
the windows ending at t0 + t, t < len(out), by adding the k-th value of every window to its total for
k = 0, 1, ... in turn. Each total sees the same additions in the same order as a window summed on its
own, and the inner loop over t is elementwise, so LLVM makes it SIMD; `BLOCK` outputs at a time keep the
totals in the L1 cache. Four window values enter per pass (((acc + a) + b) + c) + d: the same additions,
a quarter of the loads and stores of the totals.

numba's on-disk cache keys a kernel on its own file only: the package's `guard` call drops the callers'
cached machine code when this module changes (`compute/numba_cache.py`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# Windows computed together: their totals (8 KiB) and the values they read stay in the L1 cache.
BLOCK = 1024


# What `window_totals_nb` adds up for each value v of a window whose first value is v0.
SUM = 0  # v
WEIGHTED = 1  # w * v, weights 1..n oldest first
SHIFTED = 2  # v - v0
SQUARED = 3  # ((v - v0) - offset) ** 2
ABSOLUTE = 4  # |(v - v0) - offset|


@njit(cache=True, error_model="numpy")
def _term(kind: int, value: float, first: float, offset: float, weight: float) -> float:
    if kind == SUM:
        return value
    if kind == WEIGHTED:
        return weight * value
    if kind == SHIFTED:
        return value - first
    deviation = (value - first) - offset
    return deviation * deviation if kind == SQUARED else abs(deviation)


@njit(cache=True, error_model="numpy")
def window_totals_nb(x: np.ndarray, t0: int, n: int, kind: int, offset: np.ndarray, out: np.ndarray) -> None:
    """out[t] = the total of the terms `kind` of the `n` values of `x` ending at t0 + t, added oldest
    first from 0.0; `offset[t]` is that window's offset for SQUARED and ABSOLUTE, unread otherwise.

    Every caller passes `kind` as a constant: numba compiles one loop per kind, the other terms folded
    away.
    """
    m = out.shape[0]
    first = t0 - n + 1
    base = x[first : first + m]
    for t in range(m):
        out[t] = 0.0
    k = 0
    while k + 4 <= n:
        w = x[first + k : first + k + m + 3]
        for t in range(m):
            total = out[t]
            for j in range(4):
                total = total + _term(kind, w[t + j], base[t], offset[t], float(k + 1 + j))
            out[t] = total
        k += 4
    while k < n:
        w = x[first + k : first + k + m]
        weight = float(k + 1)
        for t in range(m):
            out[t] += _term(kind, w[t], base[t], offset[t], weight)
        k += 1


@njit(cache=True, error_model="numpy")
def window_offsets_nb(x: np.ndarray, t0: int, n: int, out: np.ndarray) -> None:
    """out[t] = mean - first value of the `n` values ending at t0 + t (their SHIFTED total over n).

    Measured from the first value, a flat window gives exactly 0 (the plain mean sum/n of equal values
    can be off by an ulp and leave a spurious tiny deviation), and the deviations stay small whatever the
    price level.
    """
    window_totals_nb(x, t0, n, SHIFTED, out, out)
    for t in range(out.shape[0]):
        out[t] = out[t] / n


@njit(cache=True, error_model="numpy")
def window_stds_nb(x: np.ndarray, t0: int, n: int, ddof: int, offset: np.ndarray, out: np.ndarray) -> None:
    """offset[t] = mean - first value (`window_offsets_nb`) and out[t] = the standard deviation of the
    `n` values ending at t0 + t, the squared deviations divided by n - ddof."""
    window_offsets_nb(x, t0, n, offset)
    window_totals_nb(x, t0, n, SQUARED, offset, out)
    for t in range(out.shape[0]):
        out[t] = math.sqrt(out[t] / (n - ddof))


@njit(cache=True, error_model="numpy")
def _beyond(value: float, best: float, largest: bool) -> bool:
    """Whether `value` replaces `best`: strictly larger (smaller), as in numba's builtin max (min)."""
    return value > best if largest else value < best


@njit(cache=True, error_model="numpy")
def window_extremes_nb(x: np.ndarray, t0: int, n: int, largest: bool, out: np.ndarray) -> None:
    """out[t] = the largest (smallest) of the `n` values ending at t0 + t: the newest, then
    max(best, value) over the others oldest first, so a NaN newest value stays and older NaNs are passed
    over.

    The leftover (n - 1) % 4 oldest values enter with the newest and the rest four per pass: a pass
    with one value per total compiles to a masked store, several times slower than a blend.
    """
    m = out.shape[0]
    first = t0 - n + 1
    newest = x[t0 : t0 + m]
    extra = (n - 1) % 4
    for t in range(m):
        best = newest[t]
        for k in range(extra):
            value = x[first + k + t]
            best = value if _beyond(value, best, largest) else best
        out[t] = best
    for k in range(extra, n - 1, 4):
        w = x[first + k : first + k + m + 3]
        for t in range(m):
            best = out[t]
            for j in range(4):
                best = w[t + j] if _beyond(w[t + j], best, largest) else best
            out[t] = best


@njit(cache=True, error_model="numpy")
def rolling_mean_nb(x: np.ndarray, n: int, first: int, out: np.ndarray) -> None:
    """out = the mean of each `n`-value window of `x`, whose values are defined from index `first` on.

    NaN until index first + n - 1, the first window made only of defined values.
    """
    size = x.shape[0]
    out[: first + n - 1] = np.nan
    for t0 in range(first + n - 1, size, BLOCK):
        block = out[t0 : min(t0 + BLOCK, size)]
        window_totals_nb(x, t0, n, SUM, block, block)
        for t in range(block.shape[0]):
            block[t] = block[t] / n


@njit(cache=True, error_model="numpy")
def typical_prices_nb(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, start: int, out: np.ndarray
) -> None:
    """out[j] = (high + low + close) / 3 of bar start + j, added in that order as TA-Lib does."""
    for j in range(out.shape[0]):
        out[j] = (high[start + j] + low[start + j] + close[start + j]) / 3.0
