"""The stateful built-ins of a set in one pass over the bars.

Each of their recursions is a chain of dependent operations (a division in most) that keeps the CPU
waiting on the previous bar; one loop running several chains side by side fills those waits with the
others' work. Every chain is the per-bar step of its own kernel, so each value is bit for bit what that
kernel gives.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from trading_assets.compute.indicators.kernels.averages import ema_load, ema_step, ema_store
from trading_assets.compute.indicators.kernels.oscillators import rsi_load, rsi_step, rsi_store
from trading_assets.compute.indicators.kernels.trend import (
    adx_load,
    adx_step,
    adx_store,
    macd_load,
    macd_step,
    macd_store,
)
from trading_assets.compute.indicators.kernels.volatility import atr_load, atr_step, atr_store
from trading_assets.compute.indicators.kernels.volume import obv_load, obv_step, obv_store


@njit(cache=True, error_model="numpy")
def recursions_nb(
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    i0: int,
    ema: tuple,
    rsi: tuple,
    macd: tuple,
    atr: tuple,
    adx: tuple,
    obv: tuple,
) -> None:
    """What `ema_nb`, `rsi_nb`, `macd_nb`, `atr_nb`, `adx_nb` and `obv_nb` do, in one pass from `i0`.

    Each indicator is given as (its parameters..., state, out), e.g. ema = (n, state, out) and
    macd = (fast, slow, signal, state, out); one with an empty state is left out.
    """
    if ema is not None:
        ema[2][:i0] = np.nan
    if rsi is not None:
        rsi[2][:i0] = np.nan
    if macd is not None:
        macd[4][:, :i0] = np.nan
    if atr is not None:
        atr[2][:i0] = np.nan
    if adx is not None:
        adx[2][:, :i0] = np.nan
    if obv is not None:
        obv[1][:i0] = np.nan
    e = ema_load(ema[1]) if ema is not None else (0, 0.0, 0.0)
    r = rsi_load(rsi[1]) if rsi is not None else (0, 0.0, 0.0, 0.0)
    m = macd_load(macd[3]) if macd is not None else (0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    a = atr_load(atr[1]) if atr is not None else (0, 0.0, 0.0, 0.0)
    d = adx_load(adx[1]) if adx is not None else (0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    o = obv_load(obv[0]) if obv is not None else (0, 0.0, 0.0)
    # Views from i0, indexed from 0: an index LLVM knows is not negative needs no wraparound (~15% faster).
    scratch = np.empty(3)
    highs, lows, closes, volumes = high[i0:], low[i0:], close[i0:], volume[i0:]
    ema_out = ema[2][i0:] if ema is not None else scratch
    rsi_out = rsi[2][i0:] if rsi is not None else scratch
    macd_out = macd[4][:, i0:] if macd is not None else np.empty((3, 0))
    atr_out = atr[2][i0:] if atr is not None else scratch
    adx_out = adx[2][:, i0:] if adx is not None else np.empty((3, 0))
    obv_out = obv[1][i0:] if obv is not None else scratch
    for i in range(closes.shape[0]):
        h, lo, c = highs[i], lows[i], closes[i]
        if ema is not None:
            e, ema_out[i] = ema_step(ema[0], e, c)
        if rsi is not None:
            r, rsi_out[i] = rsi_step(rsi[0], r, c)
        if macd is not None:
            m, macd_out[0, i], macd_out[1, i], macd_out[2, i] = macd_step(macd[0], macd[1], macd[2], m, c)
        if atr is not None:
            a, atr_out[i] = atr_step(atr[0], a, h, lo, c)
        if adx is not None:
            d, adx_out[0, i], adx_out[1, i], adx_out[2, i] = adx_step(adx[0], d, h, lo, c)
        if obv is not None:
            o, obv_out[i] = obv_step(o, c, volumes[i], scratch)
    if ema is not None:
        ema_store(e, ema[1])
    if rsi is not None:
        rsi_store(r, rsi[1])
    if macd is not None:
        macd_store(m, macd[3])
    if atr is not None:
        atr_store(a, atr[1])
    if adx is not None:
        adx_store(d, adx[1])
    if obv is not None:
        obv_store(o, obv[0])
