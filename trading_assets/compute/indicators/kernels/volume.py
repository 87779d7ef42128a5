"""Volume kernels: on-balance volume (stateful), money flow index and rolling VWAP (windowed)."""

from __future__ import annotations

import numpy as np
from numba import njit

from trading_assets.compute.indicators.kernels._window import BLOCK, typical_price_nb, window_sums_nb


@njit(cache=True, error_model="numpy")
def obv_nb(close: np.ndarray, volume: np.ndarray, state: np.ndarray, i0: int, out: np.ndarray) -> None:
    """On-balance volume as TA-Lib: volume[0] on the first bar, then +volume on an up close, -volume on
    a down close, unchanged on an equal close.

    state = [bars seen, previous close, OBV].
    """
    out[:i0] = np.nan
    seen = int(state[0])
    prev, obv = state[1], state[2]
    for i in range(i0, close.shape[0]):
        x = close[i]
        if seen == 0:
            obv = volume[i]
        elif x > prev:
            obv += volume[i]
        elif x < prev:
            obv -= volume[i]
        out[i] = obv
        prev = x
        seen += 1
    state[0], state[1], state[2] = seen, prev, obv


@njit(cache=True, error_model="numpy")
def mfi_nb(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray, n: int, out: np.ndarray
) -> None:
    """Money flow index over the last `n` bars: 100 * positive flow / (positive + negative flow).

    A bar's flow tp * volume is positive when its typical price tp rose from the bar before, negative
    when it fell, neither when unchanged; so the first value is at bar n. No flow at all gives 50.
    """
    size = close.shape[0]
    tp = typical_price_nb(high, low, close)
    positive = np.zeros(size)
    negative = np.zeros(size)
    for j in range(1, size):
        # Both stored on every bar: a store under a condition compiles to a slow masked store.
        flow = tp[j] * volume[j]
        positive[j] = flow if tp[j] > tp[j - 1] else 0.0
        negative[j] = flow if tp[j] < tp[j - 1] else 0.0
    out[:n] = np.nan
    up = np.empty(BLOCK)
    down = np.empty(BLOCK)
    for t0 in range(n, size, BLOCK):
        m = min(BLOCK, size - t0)
        window_sums_nb(positive, t0, n, up[:m])
        window_sums_nb(negative, t0, n, down[:m])
        for t in range(m):
            total = up[t] + down[t]
            out[t0 + t] = 100.0 * (up[t] / total) if total != 0.0 else 50.0


@njit(cache=True, error_model="numpy")
def vwap_nb(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray, n: int, out: np.ndarray
) -> None:
    """Rolling VWAP: sum(tp * volume) / sum(volume) over the last `n` bars, tp = (high + low + close) / 3.

    A window without volume gives the plain mean of its typical prices.
    """
    size = close.shape[0]
    tp = typical_price_nb(high, low, close)
    weighted = tp * volume
    out[: n - 1] = np.nan
    shares = np.empty(BLOCK)
    for t0 in range(n - 1, size, BLOCK):
        m = min(BLOCK, size - t0)
        block = out[t0 : t0 + m]
        window_sums_nb(volume, t0, n, shares[:m])
        window_sums_nb(weighted, t0, n, block)
        for t in range(m):
            if shares[t] != 0.0:
                block[t] = block[t] / shares[t]
            else:
                window_sums_nb(tp, t0 + t, n, block[t : t + 1])
                block[t] = block[t] / n
