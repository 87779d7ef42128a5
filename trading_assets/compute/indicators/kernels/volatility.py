"""Volatility kernels: Bollinger bands (windowed) and Wilder's average true range (stateful)."""

from __future__ import annotations

import numpy as np
from numba import njit

from trading_assets.compute.indicators.kernels._window import BLOCK, SUM, window_stds_nb, window_totals_nb


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
        mid, up, lo = middle[t0 : t0 + m], upper[t0 : t0 + m], lower[t0 : t0 + m]
        pct, bw, price = pctb[t0 : t0 + m], bandwidth[t0 : t0 + m], close[t0 : t0 + m]
        window_totals_nb(close, t0, n, SUM, mid, mid)
        window_stds_nb(close, t0, n, 0, offset[:m], std[:m])
        # One output per loop: few enough arrays that LLVM can check them for overlap and vectorise.
        for t in range(m):
            mid[t] = mid[t] / n
        for t in range(m):
            up[t] = mid[t] + k * std[t]
        for t in range(m):
            lo[t] = mid[t] - k * std[t]
        for t in range(m):
            width = up[t] - lo[t]
            pct[t] = (price[t] - lo[t]) / width if width != 0.0 else 0.5
        for t in range(m):
            width = up[t] - lo[t]
            bw[t] = width / mid[t] if width != 0.0 else 0.0


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
