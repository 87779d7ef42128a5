"""Volatility kernels: Bollinger bands (windowed) and Wilder's average true range (stateful)."""

from __future__ import annotations

import numpy as np
from numba import njit

from trading_assets.compute.indicators.kernels._window import BLOCK, window_stds_nb, window_sums_nb


@njit(cache=True, error_model="numpy")
def bbands_nb(close: np.ndarray, n: int, k: float, out: np.ndarray) -> None:
    """Bollinger bands over `n` closes, out = (middle, upper, lower, pctb, bandwidth): middle = SMA,
    upper/lower = middle +- k * population std.

    pctb = (close - lower) / (upper - lower) and bandwidth = (upper - lower) / middle; when the bands
    coincide (a flat window, or a std too small to move the middle) pctb is 0.5 and bandwidth 0.
    """
    size = close.shape[0]
    middle, upper, lower, pctb, bandwidth = out[0], out[1], out[2], out[3], out[4]
    out[:, : n - 1] = np.nan
    offset = np.empty(BLOCK)
    std = np.empty(BLOCK)
    for t0 in range(n - 1, size, BLOCK):
        m = min(BLOCK, size - t0)
        window_sums_nb(close, t0, n, middle[t0 : t0 + m])
        window_stds_nb(close, t0, n, 0, offset[:m], std[:m])
        for t in range(m):
            i = t0 + t
            mid = middle[i] / n
            spread = k * std[t]
            up = mid + spread
            lo = mid - spread
            middle[i], upper[i], lower[i] = mid, up, lo
            width = up - lo
            if width != 0.0:
                pctb[i] = (close[i] - lo) / width
                bandwidth[i] = width / mid
            else:
                pctb[i] = 0.5
                bandwidth[i] = 0.0


@njit(cache=True, error_model="numpy")
def atr_nb(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int, state: np.ndarray, i0: int, out: np.ndarray
) -> None:
    """Average true range, TA-Lib's algorithm.

    TR = max(high - low, |high - prev close|, |low - prev close|) from bar 1 on. The first ATR, at bar
    n, is the mean of TR over bars 1..n; then atr = (atr * (n - 1) + tr) / n.

    state = [bars seen, previous close, sum of TR (warm-up), last ATR].
    """
    out[:i0] = np.nan
    seen = int(state[0])
    prev_close, tr_sum, atr = state[1], state[2], state[3]
    for i in range(i0, close.shape[0]):
        out[i] = np.nan
        if seen > 0:
            h, lo = high[i], low[i]
            tr = max(h - lo, abs(prev_close - h), abs(prev_close - lo))
            if seen <= n:
                tr_sum += tr
                if seen == n:
                    atr = tr_sum / n
            else:
                atr = (atr * (n - 1) + tr) / n
            if seen >= n:
                out[i] = atr
        prev_close = close[i]
        seen += 1
    state[0], state[1], state[2], state[3] = seen, prev_close, tr_sum, atr
