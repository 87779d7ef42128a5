"""Volatility kernels: Bollinger bands and z-score (windowed, sharing their window statistics with the
SMA) and Wilder's average true range (stateful)."""

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
    close_windows_nb(close, n, np.full(1, k), np.empty(0), out.reshape((1, 5, close.shape[0])), np.empty(0))


@njit(cache=True, error_model="numpy")
def zscore_nb(close: np.ndarray, n: int, out: np.ndarray) -> None:
    """(close - mean) / std over the last `n` closes, population std; 0 when the std is 0."""
    close_windows_nb(close, n, np.empty(0), np.empty(0), np.empty((0, 5, 0)), out)


@njit(cache=True, error_model="numpy")
def close_windows_nb(
    close: np.ndarray, n: int, ks: np.ndarray, sma: np.ndarray, bands: np.ndarray, zscore: np.ndarray
) -> None:
    """What SMA, Bollinger bands and z-score over the same `n` closes compute, the window sums and
    standard deviations once per block: `sma` (when not empty), `bands[i]` (`bbands_nb` with k = ks[i])
    and `zscore` (`zscore_nb`, when not empty).
    """
    size = close.shape[0]
    means = sma.shape[0] > 0 or ks.shape[0] > 0
    stds = zscore.shape[0] > 0 or ks.shape[0] > 0
    sma[: n - 1] = np.nan
    bands[:, :, : n - 1] = np.nan
    zscore[: n - 1] = np.nan
    mid = np.empty(BLOCK)
    offset = np.empty(BLOCK)
    std = np.empty(BLOCK)
    for t0 in range(n - 1, size, BLOCK):
        m = min(BLOCK, size - t0)
        price = close[t0 : t0 + m]
        if means:
            window_totals_nb(close, t0, n, SUM, mid[:m], mid[:m])
            for t in range(m):
                mid[t] = mid[t] / n
        if stds:
            window_stds_nb(close, t0, n, 0, offset[:m], std[:m])
        if sma.shape[0] > 0:
            # Copied in a loop: an array assigned to a slice costs seconds more of compiling.
            for t in range(m):
                sma[t0 + t] = mid[t]
        for i in range(ks.shape[0]):
            _bands_block(price, mid[:m], std[:m], ks[i], bands[i], t0)
        if zscore.shape[0] > 0:
            for t in range(m):
                # Measured from the window's first close, like the std, so a flat window gives 0 / 0 -> 0.
                if std[t] != 0.0:
                    zscore[t0 + t] = ((price[t] - close[t0 + t - n + 1]) - offset[t]) / std[t]
                else:
                    zscore[t0 + t] = 0.0


@njit(cache=True, error_model="numpy")
def _bands_block(
    price: np.ndarray, mid: np.ndarray, std: np.ndarray, k: float, out: np.ndarray, t0: int
) -> None:
    """The five band outputs (rows of `out`) of the block of windows ending at t0, t0 + 1, ... from their
    closes, means and stds."""
    m = mid.shape[0]
    middle, up, lo = out[0][t0 : t0 + m], out[1][t0 : t0 + m], out[2][t0 : t0 + m]
    pct, bw = out[3][t0 : t0 + m], out[4][t0 : t0 + m]
    # One output per loop: few enough arrays that LLVM can check them for overlap and vectorise.
    for t in range(m):
        middle[t] = mid[t]
    for t in range(m):
        up[t] = mid[t] + k * std[t]
    for t in range(m):
        lo[t] = mid[t] - k * std[t]
    for t in range(m):
        width = up[t] - lo[t]
        pct[t] = (price[t] - lo[t]) / width if width != 0.0 else 0.5
    for t in range(m):
        width = up[t] - lo[t]
        bw[t] = width / middle[t] if width != 0.0 else 0.0


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
    s = atr_load(state)
    for i in range(i0, close.shape[0]):
        s, out[i] = atr_step(n, s, high[i], low[i], close[i])
    atr_store(s, state)


@njit(cache=True, error_model="numpy")
def atr_load(state: np.ndarray) -> tuple[int, float, float, float]:
    return int(state[0]), state[1], state[2], state[3]


@njit(cache=True, error_model="numpy")
def atr_store(s: tuple[int, float, float, float], state: np.ndarray) -> None:
    state[0], state[1], state[2], state[3] = s


@njit(cache=True, error_model="numpy")
def atr_step(
    n: int, s: tuple[int, float, float, float], h: float, lo: float, c: float
) -> tuple[tuple[int, float, float, float], float]:
    """One bar of `atr_nb`: (the state after the bar, the ATR or NaN in the warm-up)."""
    seen, prev_close, tr_sum, atr = s
    value = np.nan
    if seen > 0:
        tr = max(h - lo, abs(prev_close - h), abs(prev_close - lo))
        if seen <= n:
            tr_sum += tr
            if seen == n:
                atr = tr_sum / n
        else:
            atr = (atr * (n - 1) + tr) / n
        if seen >= n:
            value = atr
    return (seen + 1, c, tr_sum, atr), value
