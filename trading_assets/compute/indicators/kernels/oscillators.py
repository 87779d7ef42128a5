"""Bounded oscillators: RSI (stateful, Wilder smoothing), stochastic, CCI and Williams %R (windowed)."""

from __future__ import annotations

import numpy as np
from numba import njit

from trading_assets.compute.indicators.kernels._window import (
    ABSOLUTE,
    BLOCK,
    SUM,
    rolling_mean_nb,
    typical_prices_nb,
    window_extremes_nb,
    window_offsets_nb,
    window_totals_nb,
)


@njit(cache=True, error_model="numpy")
def rsi_nb(close: np.ndarray, n: int, state: np.ndarray, i0: int, out: np.ndarray) -> None:
    """Wilder's RSI, TA-Lib's algorithm except the flat case.

    The first average gain and loss are the means of the first `n` close-to-close changes (RSI at bar
    n); then avg = (avg * (n - 1) + new) / n. RSI = 100 * gain / (gain + loss), 50 when both are 0.

    state = [bars seen, previous close, average (warm-up: summed) gain, same for loss].
    """
    out[:i0] = np.nan
    s = rsi_load(state)
    for i in range(i0, close.shape[0]):
        s, out[i] = rsi_step(n, s, close[i])
    rsi_store(s, state)


@njit(cache=True, error_model="numpy")
def rsi_load(state: np.ndarray) -> tuple[int, float, float, float]:
    return int(state[0]), state[1], state[2], state[3]


@njit(cache=True, error_model="numpy")
def rsi_store(s: tuple[int, float, float, float], state: np.ndarray) -> None:
    state[0], state[1], state[2], state[3] = s


@njit(cache=True, error_model="numpy")
def rsi_step(
    n: int, s: tuple[int, float, float, float], x: float
) -> tuple[tuple[int, float, float, float], float]:
    """One bar of `rsi_nb`: (the state after close `x`, the RSI or NaN in the warm-up)."""
    seen, prev, gain, loss = s
    value = np.nan
    if seen > 0:
        change = x - prev
        if seen > n:
            gain *= n - 1
            loss *= n - 1
        if change < 0:
            loss -= change
        else:
            gain += change
        if seen >= n:
            # seen == n turns the warm-up sums into means; later bars finish the Wilder update.
            gain /= n
            loss /= n
            total = gain + loss
            value = 100.0 * (gain / total) if total != 0.0 else 50.0
    return (seen + 1, x, gain, loss), value


@njit(cache=True, error_model="numpy")
def stoch_nb(
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    k: int,
    smooth: int,
    d: int,
    out: np.ndarray,
    willr: np.ndarray,
) -> None:
    """Slow stochastic: out = (%K, %D), %K = SMA(fast %K, smooth), %D = SMA(%K, d); and, when `willr` is
    not empty, Williams %R over the same `k` bars (`willr_nb`) from the same highs and lows.

    fast %K = 100 * (close - LL) / (HH - LL) over the last `k` bars, 50 when HH == LL.
    """
    size = close.shape[0]
    first = k + smooth - 2
    out[0, :first] = np.nan
    willr[: k - 1] = np.nan
    # Per block of %K values, the fast %K their windows read: no array of them all.
    fast = np.empty(BLOCK + smooth - 1)
    highest = np.empty(BLOCK + smooth - 1)
    lowest = np.empty(BLOCK + smooth - 1)
    # Blocks by their first range (bar start), smooth - 1 bars before their first %K: a last block too
    # short for a %K still holds ranges for %R.
    for start in range(k - 1, size, BLOCK):
        count = min(BLOCK + smooth - 1, size - start)
        t0, m = start + smooth - 1, count - smooth + 1
        window_extremes_nb(high, start, k, True, highest[:count])
        window_extremes_nb(low, start, k, False, lowest[:count])
        for j in range(count):
            span = highest[j] - lowest[j]
            fast[j] = 100.0 * (close[start + j] - lowest[j]) / span if span != 0.0 else 50.0
        if willr.shape[0] > 0:
            _willr_block(
                highest[:count], lowest[:count], close[start : start + count], willr[start : start + count]
            )
        if m > 0:
            block = out[0, t0 : t0 + m]
            window_totals_nb(fast[:count], smooth - 1, smooth, SUM, block, block)
            for t in range(m):
                block[t] = block[t] / smooth
    rolling_mean_nb(out[0], d, first, out[1])


@njit(cache=True, error_model="numpy")
def cci_nb(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int, out: np.ndarray) -> None:
    """Commodity Channel Index: (tp - mean) / (0.015 * mean absolute deviation) over `n` typical prices.

    Works on prices shifted by the window's first one, so a flat window has deviation exactly 0 (CCI 0).
    """
    size = close.shape[0]
    out[: n - 1] = np.nan
    tp = np.empty(BLOCK + n - 1)
    offset = np.empty(BLOCK)
    deviation = np.empty(BLOCK)
    for t0 in range(n - 1, size, BLOCK):
        m = min(BLOCK, size - t0)
        # The typical prices of the block's windows, which start n - 1 bars before it.
        prices = tp[: m + n - 1]
        typical_prices_nb(high, low, close, t0 - n + 1, prices)
        window_offsets_nb(prices, n - 1, n, offset[:m])
        window_totals_nb(prices, n - 1, n, ABSOLUTE, offset[:m], deviation[:m])
        for t in range(m):
            if deviation[t] != 0.0:
                shifted = (prices[t + n - 1] - prices[t]) - offset[t]
                out[t0 + t] = shifted / (0.015 * (deviation[t] / n))
            else:
                out[t0 + t] = 0.0


@njit(cache=True, error_model="numpy")
def willr_nb(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int, out: np.ndarray) -> None:
    """Williams %R: -100 * (HH - close) / (HH - LL) over the last `n` bars, -50 when HH == LL."""
    size = close.shape[0]
    out[: n - 1] = np.nan
    highest = np.empty(BLOCK)
    lowest = np.empty(BLOCK)
    for t0 in range(n - 1, size, BLOCK):
        m = min(BLOCK, size - t0)
        window_extremes_nb(high, t0, n, True, highest[:m])
        window_extremes_nb(low, t0, n, False, lowest[:m])
        _willr_block(highest[:m], lowest[:m], close[t0 : t0 + m], out[t0 : t0 + m])


@njit(cache=True, error_model="numpy")
def _willr_block(highest: np.ndarray, lowest: np.ndarray, close: np.ndarray, out: np.ndarray) -> None:
    """%R of a block of bars from their closes and their windows' highest highs and lowest lows."""
    for t in range(out.shape[0]):
        span = highest[t] - lowest[t]
        out[t] = -100.0 * (highest[t] - close[t]) / span if span != 0.0 else -50.0
