"""Volume kernels: on-balance volume (stateful), money flow index and rolling VWAP (windowed)."""

from __future__ import annotations

import numpy as np
from numba import njit

from trading_assets.compute.indicators.kernels._window import BLOCK, SUM, typical_prices_nb, window_totals_nb


@njit(cache=True, error_model="numpy")
def obv_nb(close: np.ndarray, volume: np.ndarray, state: np.ndarray, i0: int, out: np.ndarray) -> None:
    """On-balance volume as TA-Lib: volume[0] on the first bar, then +volume on an up close, -volume on
    a down close, unchanged on an equal close.

    state = [bars seen, previous close, OBV].
    """
    out[:i0] = np.nan
    s = obv_load(state)
    scratch = np.empty(3)
    for i in range(i0, close.shape[0]):
        s, out[i] = obv_step(s, close[i], volume[i], scratch)
    obv_store(s, state)


@njit(cache=True, error_model="numpy")
def obv_load(state: np.ndarray) -> tuple[int, float, float]:
    return int(state[0]), state[1], state[2]


@njit(cache=True, error_model="numpy")
def obv_store(s: tuple[int, float, float], state: np.ndarray) -> None:
    state[0], state[1], state[2] = s


@njit(cache=True, error_model="numpy")
def obv_step(
    s: tuple[int, float, float], x: float, volume: float, scratch: np.ndarray
) -> tuple[tuple[int, float, float], float]:
    """One bar of `obv_nb`: (the state after the bar, the OBV); `scratch` holds 3 values."""
    seen, prev, obv = s
    if seen == 0:
        obv = volume
    else:
        # OBV unchanged, plus or minus the volume, picked by index: an up or a down close is a coin toss
        # that a branch (which LLVM makes of a select here) mispredicts half the time.
        scratch[0], scratch[1], scratch[2] = obv, obv + volume, obv - volume
        obv = scratch[(x > prev) + 2 * (x < prev)]
    return (seen + 1, x, obv), obv


@njit(cache=True, error_model="numpy")
def mfi_nb(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray, n: int, out: np.ndarray
) -> None:
    """Money flow index over the last `n` bars: 100 * positive flow / (positive + negative flow).

    A bar's flow tp * volume is positive when its typical price tp rose from the bar before, negative
    when it fell, neither when unchanged; so the first value is at bar n. No flow at all gives 50.
    """
    size = close.shape[0]
    out[:n] = np.nan
    # Per block, the typical prices and flows its windows read (from n bars before it): no full arrays.
    tp = np.empty(BLOCK + n)
    positive = np.empty(BLOCK + n - 1)
    negative = np.empty(BLOCK + n - 1)
    up = np.empty(BLOCK)
    down = np.empty(BLOCK)
    for t0 in range(n, size, BLOCK):
        m = min(BLOCK, size - t0)
        start, count = t0 - n + 1, m + n - 1
        typical_prices_nb(high, low, close, start - 1, tp[: count + 1])
        for j in range(count):
            # Both stored on every bar: a store under a condition compiles to a slow masked store.
            price = tp[j + 1]
            flow = price * volume[start + j]
            positive[j] = flow if price > tp[j] else 0.0
            negative[j] = flow if price < tp[j] else 0.0
        window_totals_nb(positive[:count], n - 1, n, SUM, up[:m], up[:m])
        window_totals_nb(negative[:count], n - 1, n, SUM, down[:m], down[:m])
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
    out[: n - 1] = np.nan
    tp = np.empty(BLOCK + n - 1)
    weighted = np.empty(BLOCK + n - 1)
    shares = np.empty(BLOCK)
    for t0 in range(n - 1, size, BLOCK):
        m = min(BLOCK, size - t0)
        start, count = t0 - n + 1, m + n - 1
        prices, flows = tp[:count], weighted[:count]
        typical_prices_nb(high, low, close, start, prices)
        for j in range(count):
            flows[j] = prices[j] * volume[start + j]
        block = out[t0 : t0 + m]
        window_totals_nb(volume, t0, n, SUM, shares[:m], shares[:m])
        window_totals_nb(flows, n - 1, n, SUM, block, block)
        for t in range(m):
            if shares[t] != 0.0:
                block[t] = block[t] / shares[t]
            else:
                window_totals_nb(prices, n - 1 + t, n, SUM, block[t : t + 1], block[t : t + 1])
                block[t] = block[t] / n
