"""Trend kernels, both stateful: MACD (three EMAs) and Wilder's ADX with its directional indicators."""

from __future__ import annotations

import numpy as np
from numba import njit

MacdState = tuple[int, float, float, float, float, float, float]
AdxState = tuple[int, float, float, float, float, float, float, float, float]


@njit(cache=True, error_model="numpy")
def macd_nb(
    close: np.ndarray, fast: int, slow: int, signal: int, state: np.ndarray, i0: int, out: np.ndarray
) -> None:
    """out = (MACD line, signal line, histogram) with TA-Lib's seeding (requires fast < slow).

    Both EMAs start at bar slow - 1: the slow one from the SMA of closes 0..slow-1, the fast one from
    the SMA of the `fast` closes ending there. The signal is an EMA of the line seeded with the SMA of
    its first `signal` values, so it starts at bar slow + signal - 2; hist = line - signal.

    state = [bars seen, slow seed sum, fast seed sum, slow EMA, fast EMA, signal seed sum, signal EMA].
    """
    line_out, signal_out, hist_out = out[0], out[1], out[2]
    out[:, :i0] = np.nan
    s = macd_load(state)
    for i in range(i0, close.shape[0]):
        s, line_out[i], signal_out[i], hist_out[i] = macd_step(fast, slow, signal, s, close[i])
    macd_store(s, state)


@njit(cache=True, error_model="numpy")
def macd_load(state: np.ndarray) -> MacdState:
    return int(state[0]), state[1], state[2], state[3], state[4], state[5], state[6]


@njit(cache=True, error_model="numpy")
def macd_store(s: MacdState, state: np.ndarray) -> None:
    state[0], state[1], state[2], state[3], state[4], state[5], state[6] = s


@njit(cache=True, error_model="numpy")
def macd_step(
    fast: int, slow: int, signal: int, s: MacdState, x: float
) -> tuple[MacdState, float, float, float]:
    """One bar of `macd_nb`: (the state after close `x`, line, signal, hist; NaN in their warm-ups)."""
    seen, slow_sum, fast_sum, slow_ema, fast_ema, signal_sum, signal_ema = s
    line = signal_value = hist = np.nan
    if seen < slow:
        slow_sum += x
        if seen >= slow - fast:
            fast_sum += x
        if seen == slow - 1:
            slow_ema = slow_sum / slow
            fast_ema = fast_sum / fast
    else:
        slow_ema = (x - slow_ema) * (2.0 / (slow + 1)) + slow_ema
        fast_ema = (x - fast_ema) * (2.0 / (fast + 1)) + fast_ema
    # Index of this bar among the MACD line's values (negative during the slow EMA's warm-up).
    line_index = seen - (slow - 1)
    if line_index >= 0:
        line = fast_ema - slow_ema
        if line_index < signal:
            signal_sum += line
            if line_index == signal - 1:
                signal_ema = signal_sum / signal
        else:
            signal_ema = (line - signal_ema) * (2.0 / (signal + 1)) + signal_ema
        if line_index >= signal - 1:
            signal_value = signal_ema
            hist = line - signal_ema
    s = (seen + 1, slow_sum, fast_sum, slow_ema, fast_ema, signal_sum, signal_ema)
    return s, line, signal_value, hist


@njit(cache=True, error_model="numpy")
def adx_nb(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int, state: np.ndarray, i0: int, out: np.ndarray
) -> None:
    """out = (ADX, +DI, -DI) with TA-Lib's conventions.

    +DM = up move when it is positive and larger than the down move, else 0 (and -DM symmetrically);
    TR is the true range. Bars 1..n-1 sum DM and TR; from bar n on each sum decays Wilder-style
    (s - s / n + new) and DI = 100 * DM / TR (0 when TR is 0), so the DIs start at bar n.
    DX = 100 * |+DI - -DI| / (+DI + -DI), 0 when both DIs are 0. ADX is the mean of the DX of bars
    n..2n-1 at bar 2n - 1, then (adx * (n - 1) + dx) / n.

    state = [bars seen, previous high, low, close, +DM sum, -DM sum, TR sum, DX seed sum, ADX].
    """
    adx_out, plus_out, minus_out = out[0], out[1], out[2]
    out[:, :i0] = np.nan
    s = adx_load(state)
    for i in range(i0, close.shape[0]):
        s, adx_out[i], plus_out[i], minus_out[i] = adx_step(n, s, high[i], low[i], close[i])
    adx_store(s, state)


@njit(cache=True, error_model="numpy")
def adx_load(state: np.ndarray) -> AdxState:
    return (int(state[0]), state[1], state[2], state[3], state[4], state[5], state[6], state[7], state[8])


@njit(cache=True, error_model="numpy")
def adx_store(s: AdxState, state: np.ndarray) -> None:
    state[0], state[1], state[2], state[3], state[4], state[5], state[6], state[7], state[8] = s


@njit(cache=True, error_model="numpy")
def adx_step(n: int, s: AdxState, h: float, lo: float, c: float) -> tuple[AdxState, float, float, float]:
    """One bar of `adx_nb`: (the state after the bar, ADX, +DI, -DI; NaN in their warm-ups)."""
    seen, prev_high, prev_low, prev_close, plus_dm, minus_dm, tr_sum, dx_sum, adx = s
    adx_value = plus_di = minus_di = np.nan
    if seen > 0:
        up = h - prev_high
        down = prev_low - lo
        tr = max(h - lo, abs(h - prev_close), abs(lo - prev_close))
        if seen >= n:
            plus_dm -= plus_dm / n
            minus_dm -= minus_dm / n
            tr_sum = tr_sum - tr_sum / n + tr
        else:
            tr_sum += tr
        # Selected, not branched on (unpredictable): -DM takes the down move, else +DM the up move.
        to_minus = (down > 0) & (up < down)
        to_plus = ~to_minus & (up > 0) & (up > down)
        minus_more, plus_more = minus_dm + down, plus_dm + up
        minus_dm = minus_more if to_minus else minus_dm
        plus_dm = plus_more if to_plus else plus_dm
        if seen >= n:
            plus_di = 0.0
            minus_di = 0.0
            if tr_sum != 0.0:
                plus_di = 100.0 * (plus_dm / tr_sum)
                minus_di = 100.0 * (minus_dm / tr_sum)
            di_sum = plus_di + minus_di
            dx = 100.0 * (abs(minus_di - plus_di) / di_sum) if di_sum != 0.0 else 0.0
            if seen < 2 * n:
                dx_sum += dx
                if seen == 2 * n - 1:
                    adx = dx_sum / n
            else:
                adx = (adx * (n - 1) + dx) / n
            if seen >= 2 * n - 1:
                adx_value = adx
    s = (seen + 1, h, lo, c, plus_dm, minus_dm, tr_sum, dx_sum, adx)
    return s, adx_value, plus_di, minus_di
