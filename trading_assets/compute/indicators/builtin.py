"""The built-in indicators: declarations around the numba kernels of `kernels`.

Importing this module registers them in `REGISTRY`. They follow TA-Lib (same seeding, same warm-up,
same values to rounding) except where a docstring says otherwise: degenerate windows (flat prices, no
volume) get a defined neutral value instead of TA-Lib's 0, so every value after the warm-up is finite.
"""

from __future__ import annotations

import numpy as np

from trading_assets.compute.indicators.kernels import (
    adx_nb,
    atr_nb,
    bbands_nb,
    cci_nb,
    ema_nb,
    logret_nb,
    macd_nb,
    mfi_nb,
    mom_nb,
    obv_nb,
    roc_nb,
    rsi_nb,
    rvol_nb,
    sma_nb,
    stoch_nb,
    vwap_nb,
    willr_nb,
    wma_nb,
    zscore_nb,
)
from trading_assets.compute.indicators.registry import Param, indicator

# TA-Lib's bound on periods; windowed kernels cost O(bars * window), so a bound keeps a typo cheap.
_MAX_PERIOD = 100_000
_HLC = ("high", "low", "close")


def _out(like: np.ndarray, outputs: int = 1) -> np.ndarray:
    """The array a kernel fills, one row per output when there are several (see `kernels`)."""
    return np.empty(like.shape[0] if outputs == 1 else (outputs, like.shape[0]))


def _period(default: int, minimum: int = 1, doc: str = "bars in the window") -> Param:
    return Param(int, default, min=minimum, max=_MAX_PERIOD, doc=doc)


@indicator(params={"n": _period(20)}, lookback=lambda n: n - 1, overlay=True, builtin=True)
def sma(close: np.ndarray, n: int) -> np.ndarray:
    """Simple moving average: the mean of the last n closes, summed oldest first. Warm-up n - 1 bars."""
    out = _out(close)
    sma_nb(close, n, out)
    return out


@indicator(
    params={"n": _period(20)},
    lookback=lambda n: n - 1,
    state=lambda n: np.zeros(3),
    overlay=True,
    builtin=True,
)
def ema(close: np.ndarray, n: int, state: np.ndarray, i0: int) -> np.ndarray:
    """Exponential moving average with alpha = 2 / (n + 1): ema = (close - ema) * alpha + ema, seeded as
    TA-Lib does with the SMA of the first n closes at bar n - 1 (its warm-up). Stateful."""
    out = _out(close)
    ema_nb(close, n, state, i0, out)
    return out


@indicator(params={"n": _period(20)}, lookback=lambda n: n - 1, overlay=True, builtin=True)
def wma(close: np.ndarray, n: int) -> np.ndarray:
    """Weighted moving average: sum(w * close) / sum(w) over the last n closes with weights 1..n, the
    newest close weighing n. Warm-up n - 1 bars."""
    out = _out(close)
    wma_nb(close, n, out)
    return out


@indicator(
    params={"n": _period(14, minimum=2)},
    lookback=lambda n: n,
    state=lambda n: np.zeros(4),
    builtin=True,
)
def rsi(close: np.ndarray, n: int, state: np.ndarray, i0: int) -> np.ndarray:
    """Wilder's relative strength index, 100 * avg gain / (avg gain + avg loss). The first averages are
    the means of the first n close-to-close changes (RSI from bar n), then avg = (avg * (n - 1) + x) / n.
    With no gain and no loss (flat prices) the RSI is 50, where TA-Lib gives 0. Stateful."""
    out = _out(close)
    rsi_nb(close, n, state, i0, out)
    return out


@indicator(
    outputs=("line", "signal", "hist"),
    params={
        "fast": _period(12, minimum=2, doc="bars of the fast EMA"),
        "slow": _period(26, minimum=2, doc="bars of the slow EMA (more than fast)"),
        "signal": _period(9, doc="bars of the signal EMA of the line"),
    },
    lookback=lambda fast, slow, signal: {
        "line": slow - 1,
        "signal": slow + signal - 2,
        "hist": slow + signal - 2,
    },
    state=lambda fast, slow, signal: np.zeros(7),
    check=lambda fast, slow, signal: (
        None if fast < slow else f"fast ({fast}) must be less than slow ({slow})"
    ),
    builtin=True,
)
def macd(
    close: np.ndarray, fast: int, slow: int, signal: int, state: np.ndarray, i0: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Moving average convergence/divergence as TA-Lib computes it: line = EMA(fast) - EMA(slow), both
    EMAs starting at bar slow - 1 (the slow one seeded with the SMA of the first slow closes, the fast
    one with the SMA of the fast closes ending there); signal = EMA(signal) of the line seeded with the
    SMA of its first signal values, from bar slow + signal - 2; hist = line - signal. Stateful."""
    out = _out(close, 3)
    macd_nb(close, fast, slow, signal, state, i0, out)
    return tuple(out)


@indicator(
    outputs=("middle", "upper", "lower", "pctb", "bandwidth"),
    params={
        "n": _period(20, minimum=2),
        "k": Param(float, 2.0, min=0.0, doc="band half-width in stds (> 0)"),
    },
    lookback=lambda n, k: n - 1,
    check=lambda n, k: None if k > 0 else f"k must be greater than 0, got {k}",
    overlay=True,
    builtin=True,
)
def bbands(
    close: np.ndarray, n: int, k: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bollinger bands: middle = SMA(n), upper/lower = middle +- k * std with the population std (ddof 0,
    as TA-Lib); pctb = (close - lower) / (upper - lower), bandwidth = (upper - lower) / middle. When the
    bands coincide (a flat window) pctb is 0.5 and bandwidth 0. Warm-up n - 1 bars."""
    out = _out(close, 5)
    bbands_nb(close, n, k, out)
    return tuple(out)


@indicator(
    inputs=_HLC,
    params={"n": _period(14)},
    lookback=lambda n: n,
    state=lambda n: np.zeros(4),
    builtin=True,
)
def atr(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int, state: np.ndarray, i0: int
) -> np.ndarray:
    """Wilder's average true range. TR = max(high - low, |high - prev close|, |low - prev close|) exists
    from bar 1; the first ATR, at bar n, is the mean of TR over bars 1..n, then atr = (atr * (n - 1) + tr)
    / n (TA-Lib's ATR). Stateful."""
    out = _out(close)
    atr_nb(high, low, close, n, state, i0, out)
    return out


@indicator(
    inputs=_HLC,
    outputs=("adx", "plus_di", "minus_di"),
    params={"n": _period(14, minimum=2)},
    lookback=lambda n: {"adx": 2 * n - 1, "plus_di": n, "minus_di": n},
    state=lambda n: np.zeros(9),
    builtin=True,
)
def adx(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int, state: np.ndarray, i0: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wilder's average directional index with TA-Lib's conventions: DM and TR summed over bars 1..n-1,
    then smoothed as s - s / n + new; +DI/-DI = 100 * DM / TR from bar n (0 when TR is 0); DX = 100 *
    |+DI - -DI| / (+DI + -DI); ADX = mean DX of bars n..2n-1 at bar 2n - 1, then (adx * (n - 1) + dx) / n.
    When both DIs are 0 the DX is 0 and still enters the ADX (TA-Lib skips that bar and treats values
    below 1e-8 as 0; here only exact zeros are). Stateful."""
    out = _out(close, 3)
    adx_nb(high, low, close, n, state, i0, out)
    return tuple(out)


@indicator(
    inputs=_HLC,
    outputs=("k", "d"),
    params={
        "k": _period(14, doc="bars of the high/low range"),
        "smooth": _period(3, doc="bars of the SMA that slows %K"),
        "d": _period(3, doc="bars of the SMA of %K"),
    },
    lookback=lambda k, smooth, d: {"k": k + smooth - 2, "d": k + smooth + d - 3},
    builtin=True,
)
def stoch(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, k: int, smooth: int, d: int
) -> tuple[np.ndarray, np.ndarray]:
    """Slow stochastic (TA-Lib STOCH with SMA smoothing): fast %K = 100 * (close - LL) / (HH - LL) over
    the last k bars' lows and highs, k = SMA(fast %K, smooth), d = SMA(k, d). A flat range (HH == LL)
    gives fast %K 50, where TA-Lib gives 0. Warm-up k + smooth - 2 bars for k, d - 1 more for d."""
    out = _out(close, 2)
    stoch_nb(high, low, close, k, smooth, d, out, np.empty(0))
    return tuple(out)


@indicator(inputs=_HLC, params={"n": _period(20, minimum=2)}, lookback=lambda n: n - 1, builtin=True)
def cci(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int) -> np.ndarray:
    """Commodity channel index: (tp - SMA(tp)) / (0.015 * mean absolute deviation of tp from its SMA)
    over the last n bars, tp = (high + low + close) / 3. A window with no deviation gives 0 (as TA-Lib).
    Warm-up n - 1 bars."""
    out = _out(close)
    cci_nb(high, low, close, n, out)
    return out


@indicator(inputs=_HLC, params={"n": _period(14)}, lookback=lambda n: n - 1, builtin=True)
def willr(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int) -> np.ndarray:
    """Williams %R: -100 * (HH - close) / (HH - LL) over the last n bars' highs and lows, from -100 (close
    at the low) to 0 (at the high). A flat range gives -50, where TA-Lib gives 0. Warm-up n - 1 bars."""
    out = _out(close)
    willr_nb(high, low, close, n, out)
    return out


@indicator(inputs=("close", "volume"), lookback=0, state=lambda: np.zeros(3), builtin=True)
def obv(close: np.ndarray, volume: np.ndarray, state: np.ndarray, i0: int) -> np.ndarray:
    """On-balance volume as TA-Lib: volume on the first bar, then the running total adding the volume of
    each bar closing higher and subtracting that of each bar closing lower. No warm-up. Stateful."""
    out = _out(close)
    obv_nb(close, volume, state, i0, out)
    return out


@indicator(inputs=(*_HLC, "volume"), params={"n": _period(14)}, lookback=lambda n: n, builtin=True)
def mfi(high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray, n: int) -> np.ndarray:
    """Money flow index: 100 * positive flow / total flow over the last n bars, a bar's flow tp * volume
    (tp = (high + low + close) / 3) counting as positive when tp rose from the bar before and negative
    when it fell. No flow in the window gives 50 (TA-Lib gives 0 below a total of 1). Warm-up n bars."""
    out = _out(close)
    mfi_nb(high, low, close, volume, n, out)
    return out


@indicator(
    inputs=(*_HLC, "volume"), params={"n": _period(20)}, lookback=lambda n: n - 1, overlay=True, builtin=True
)
def vwap(high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray, n: int) -> np.ndarray:
    """Rolling volume-weighted average price: sum(tp * volume) / sum(volume) over the last n bars with
    tp = (high + low + close) / 3; a window without volume gives the mean tp. Warm-up n - 1 bars."""
    out = _out(close)
    vwap_nb(high, low, close, volume, n, out)
    return out


@indicator(params={"n": _period(10)}, lookback=lambda n: n, builtin=True)
def roc(close: np.ndarray, n: int) -> np.ndarray:
    """Rate of change in percent, 100 * (close / close n bars ago - 1), 0 if that close is 0 (as TA-Lib).
    Warm-up n bars."""
    out = _out(close)
    roc_nb(close, n, out)
    return out


@indicator(params={"n": _period(10)}, lookback=lambda n: n, builtin=True)
def mom(close: np.ndarray, n: int) -> np.ndarray:
    """Momentum: close - close n bars ago. Warm-up n bars."""
    out = _out(close)
    mom_nb(close, n, out)
    return out


@indicator(params={"n": _period(1)}, lookback=lambda n: n, builtin=True)
def logret(close: np.ndarray, n: int) -> np.ndarray:
    """Log return over n bars, log(close / close n bars ago); closes must be positive. Warm-up n bars."""
    out = _out(close)
    logret_nb(close, n, out)
    return out


@indicator(
    params={
        "n": _period(20, minimum=2, doc="one-bar returns in the window"),
        "scale": Param(float, 1.0, min=0.0, doc="bars per period to annualise to, e.g. 525600 (> 0)"),
    },
    lookback=lambda n, scale: n,
    check=lambda n, scale: None if scale > 0 else f"scale must be greater than 0, got {scale}",
    builtin=True,
)
def rvol(close: np.ndarray, n: int, scale: float) -> np.ndarray:
    """Realised volatility: the sample standard deviation (ddof 1) of the last n one-bar log returns
    log(close / previous close), times sqrt(scale). Warm-up n bars (n returns need n + 1 closes)."""
    out = _out(close)
    rvol_nb(close, n, scale, np.empty(0), out)
    return out


@indicator(params={"n": _period(20, minimum=2)}, lookback=lambda n: n - 1, builtin=True)
def zscore(close: np.ndarray, n: int) -> np.ndarray:
    """Z-score of the close in its window: (close - mean) / std over the last n closes, population std
    (ddof 0); a flat window (std 0) gives 0. Warm-up n - 1 bars."""
    out = _out(close)
    zscore_nb(close, n, out)
    return out
