"""Changes and their statistics over windows: ROC, momentum, log return, realised volatility."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from trading_assets.compute.indicators.kernels._window import BLOCK, window_stds_nb


@njit(cache=True, error_model="numpy")
def roc_nb(close: np.ndarray, n: int, out: np.ndarray) -> None:
    """Rate of change in percent, (close / close[i - n] - 1) * 100; 0 when the old close is 0 (TA-Lib)."""
    out[:n] = np.nan
    for i in range(n, close.shape[0]):
        old = close[i - n]
        out[i] = (close[i] / old - 1.0) * 100.0 if old != 0.0 else 0.0


@njit(cache=True, error_model="numpy")
def mom_nb(close: np.ndarray, n: int, out: np.ndarray) -> None:
    """Momentum, close - close[i - n]."""
    out[:n] = np.nan
    for i in range(n, close.shape[0]):
        out[i] = close[i] - close[i - n]


@njit(cache=True, error_model="numpy")
def logret_nb(close: np.ndarray, n: int, out: np.ndarray) -> None:
    """Log return over `n` bars, log(close / close[i - n])."""
    out[:n] = np.nan
    for i in range(n, close.shape[0]):
        out[i] = math.log(close[i] / close[i - n])


@njit(cache=True, error_model="numpy")
def rvol_nb(close: np.ndarray, n: int, scale: float, returns: np.ndarray, out: np.ndarray) -> None:
    """Realised volatility: sample std (ddof 1) of the last `n` one-bar log returns times sqrt(scale).

    `returns` holds those returns (`logret_nb` with n = 1) when the caller has them, else is empty and
    each block takes its own logs.
    """
    size = close.shape[0]
    factor = math.sqrt(scale)
    out[:n] = np.nan
    scratch = np.empty(BLOCK + n - 1)
    offset = np.empty(BLOCK)
    for t0 in range(n, size, BLOCK):
        m = min(BLOCK, size - t0)
        # The one-bar log returns of the block's windows, which start n - 1 bars before it.
        start = t0 - n + 1
        if returns.shape[0] > 0:
            local = returns[start : start + m + n - 1]
        else:
            local = scratch[: m + n - 1]
            for j in range(m + n - 1):
                local[j] = math.log(close[start + j] / close[start + j - 1])
        block = out[t0 : t0 + m]
        window_stds_nb(local, n - 1, n, 1, offset[:m], block)
        for t in range(m):
            block[t] = block[t] * factor
