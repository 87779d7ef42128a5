"""Changes and their statistics over windows: ROC, momentum, log return, realised volatility, z-score."""

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
def rvol_nb(close: np.ndarray, n: int, scale: float, out: np.ndarray) -> None:
    """Realised volatility: sample std (ddof 1) of the last `n` one-bar log returns times sqrt(scale)."""
    size = close.shape[0]
    factor = math.sqrt(scale)
    out[:n] = np.nan
    returns = np.empty(BLOCK + n - 1)
    offset = np.empty(BLOCK)
    for t0 in range(n, size, BLOCK):
        m = min(BLOCK, size - t0)
        # The one-bar log returns of the block's windows, which start n - 1 bars before it.
        start, local = t0 - n + 1, returns[: m + n - 1]
        for j in range(m + n - 1):
            local[j] = math.log(close[start + j] / close[start + j - 1])
        block = out[t0 : t0 + m]
        window_stds_nb(local, n - 1, n, 1, offset[:m], block)
        for t in range(m):
            block[t] = block[t] * factor


@njit(cache=True, error_model="numpy")
def zscore_nb(close: np.ndarray, n: int, out: np.ndarray) -> None:
    """(close - mean) / std over the last `n` closes, population std; 0 when the std is 0."""
    size = close.shape[0]
    out[: n - 1] = np.nan
    offset = np.empty(BLOCK)
    std = np.empty(BLOCK)
    for t0 in range(n - 1, size, BLOCK):
        m = min(BLOCK, size - t0)
        window_stds_nb(close, t0, n, 0, offset[:m], std[:m])
        for t in range(m):
            i = t0 + t
            # Measured from the window's first close, like the std, so a flat window gives 0 / 0 -> 0.
            if std[t] != 0.0:
                out[i] = ((close[i] - close[i - n + 1]) - offset[t]) / std[t]
            else:
                out[i] = 0.0
