"""Moving averages: simple, weighted (windowed) and exponential (stateful)."""

from __future__ import annotations

import numpy as np
from numba import njit

from trading_assets.compute.indicators.kernels._window import (
    BLOCK,
    WEIGHTED,
    rolling_mean_nb,
    window_totals_nb,
)


@njit(cache=True, error_model="numpy")
def sma_nb(close: np.ndarray, n: int, out: np.ndarray) -> None:
    """Mean of the last `n` closes; NaN for the first n - 1 bars."""
    rolling_mean_nb(close, n, 0, out)


@njit(cache=True, error_model="numpy")
def wma_nb(close: np.ndarray, n: int, out: np.ndarray) -> None:
    """Linearly weighted mean of the last `n` closes (weights 1..n, newest heaviest); NaN for n - 1 bars."""
    size = close.shape[0]
    out[: n - 1] = np.nan
    divisor = n * (n + 1) / 2.0
    for t0 in range(n - 1, size, BLOCK):
        block = out[t0 : min(t0 + BLOCK, size)]
        window_totals_nb(close, t0, n, WEIGHTED, block, block)
        for t in range(block.shape[0]):
            block[t] = block[t] / divisor


@njit(cache=True, error_model="numpy")
def ema_nb(close: np.ndarray, n: int, state: np.ndarray, i0: int, out: np.ndarray) -> None:
    """Exponential moving average, seeded TA-Lib style with the SMA of the first `n` closes.

    state = [bars seen, sum of the first closes (warm-up), last EMA]. alpha = 2 / (n + 1) and the update
    is (close - ema) * alpha + ema, TA-Lib's order of operations.
    """
    out[:i0] = np.nan
    s = ema_load(state)
    for i in range(i0, close.shape[0]):
        s, out[i] = ema_step(n, s, close[i])
    ema_store(s, state)


@njit(cache=True, error_model="numpy")
def ema_load(state: np.ndarray) -> tuple[int, float, float]:
    return int(state[0]), state[1], state[2]


@njit(cache=True, error_model="numpy")
def ema_store(s: tuple[int, float, float], state: np.ndarray) -> None:
    state[0], state[1], state[2] = s


@njit(cache=True, error_model="numpy")
def ema_step(n: int, s: tuple[int, float, float], x: float) -> tuple[tuple[int, float, float], float]:
    """One bar of `ema_nb`: (the state after close `x`, the EMA or NaN in the warm-up)."""
    seen, total, ema = s
    if seen < n:
        total += x
        if seen == n - 1:
            ema = total / n
    else:
        ema = (x - ema) * (2.0 / (n + 1)) + ema
    seen += 1
    return (seen, total, ema), ema if seen >= n else np.nan
