"""Entries of a set that share work, computed together: each value bit for bit what its entry gives alone.

- SMA, Bollinger bands and z-score over the same n closes: the window sums and stds once
  (`close_windows_nb`); the bands' middle is the SMA.
- The stochastic and Williams %R over the same bars: the highest highs and lowest lows once (`stoch_nb`).
- Realised volatility reads the one-bar log returns of a `logret` entry with n = 1 instead of taking
  its own logs (`rvol_nb`).
- The stateful ones (EMA, RSI, MACD, ATR, ADX, OBV, one entry of each) run in one pass over the bars
  (`recursions_nb`), each from its own state.

Only the built-ins are fused: an entry whose name a user's registry gives to another function is
computed as that function says.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from trading_assets.compute.indicators import builtin
from trading_assets.compute.indicators.kernels import (
    close_windows_nb,
    logret_nb,
    recursions_nb,
    rvol_nb,
    stoch_nb,
)
from trading_assets.compute.indicators.spec import SetSpec

Bars = Mapping[str, np.ndarray]
Outputs = dict[str, np.ndarray]
NONE = np.empty(0)


def fused_outputs(spec: SetSpec, bars: Bars, states: Mapping[int, np.ndarray], i0: int) -> dict[int, Outputs]:
    """The outputs of the entries of `spec` that share work with another entry, by entry index.

    Stateful entries start at `i0` from their state in `states` (by entry index), updated in place."""
    found: dict[int, Outputs] = {}
    for fuse in (_close_windows, _ranges, _returns):
        found.update(fuse(spec, bars))
    found.update(_recursions(spec, bars, states, i0))
    return found


def _entries(spec: SetSpec, name: str) -> dict[int, Mapping[str, int | float]]:
    """The parameters of the entries that the built-in `name` computes, by entry index."""
    func: Callable[..., object] = getattr(builtin, name)
    return {
        i: entry.params
        for i, entry in enumerate(spec.entries)
        if entry.indicator == name and spec.indicator(i).func is func
    }


def _input(bars: Bars, name: str) -> np.ndarray:
    return np.ascontiguousarray(bars[name], dtype=np.float64)


def _close_windows(spec: SetSpec, bars: Bars) -> dict[int, Outputs]:
    smas, bands, zscores = (_entries(spec, name) for name in ("sma", "bbands", "zscore"))
    found: dict[int, Outputs] = {}
    for n in sorted({p["n"] for p in (*bands.values(), *zscores.values())}):
        sma = next((i for i, p in smas.items() if p["n"] == n), None)
        band = [i for i, p in bands.items() if p["n"] == n]
        zscore = next((i for i, p in zscores.items() if p["n"] == n), None)
        if (sma is not None) + len(band) + (zscore is not None) < 2:
            continue
        close = _input(bars, "close")
        size = close.shape[0]
        mean = np.empty(size) if sma is not None else NONE
        z = np.empty(size) if zscore is not None else NONE
        out = np.empty((len(band), 5, size))
        ks = np.array([bands[i]["k"] for i in band], dtype=np.float64)
        close_windows_nb(close, n, ks, mean, out, z)
        if sma is not None:
            found[sma] = {"value": mean}
        if zscore is not None:
            found[zscore] = {"value": z}
        for i, rows in zip(band, out, strict=True):
            found[i] = dict(zip(("middle", "upper", "lower", "pctb", "bandwidth"), rows, strict=True))
    return found


def _ranges(spec: SetSpec, bars: Bars) -> dict[int, Outputs]:
    willrs = _entries(spec, "willr")
    found: dict[int, Outputs] = {}
    for i, p in _entries(spec, "stoch").items():
        willr = next((j for j, q in willrs.items() if q["n"] == p["k"] and j not in found), None)
        if willr is None:
            continue
        high, low, close = (_input(bars, name) for name in ("high", "low", "close"))
        out, r = np.empty((2, close.shape[0])), np.empty(close.shape[0])
        stoch_nb(high, low, close, p["k"], p["smooth"], p["d"], out, r)
        found[i] = {"k": out[0], "d": out[1]}
        found[willr] = {"value": r}
    return found


def _returns(spec: SetSpec, bars: Bars) -> dict[int, Outputs]:
    rvols = _entries(spec, "rvol")
    logret = next((i for i, p in _entries(spec, "logret").items() if p["n"] == 1), None)
    if logret is None or not rvols:
        return {}
    close = _input(bars, "close")
    returns = np.empty(close.shape[0])
    logret_nb(close, 1, returns)
    found = {logret: {"value": returns}}
    for i, p in rvols.items():
        out = np.empty(close.shape[0])
        rvol_nb(close, p["n"], p["scale"], returns, out)
        found[i] = {"value": out}
    return found


# The stateful built-ins `recursions_nb` runs: the parameters it takes, and how many outputs.
_RECURSIONS = {
    "ema": (("n",), 1),
    "rsi": (("n",), 1),
    "macd": (("fast", "slow", "signal"), 3),
    "atr": (("n",), 1),
    "adx": (("n",), 3),
    "obv": ((), 1),
}


def _recursions(spec: SetSpec, bars: Bars, states: Mapping[int, np.ndarray], i0: int) -> dict[int, Outputs]:
    # The first entry of each; another one of the same indicator is computed alone.
    chosen = {name: min(found) for name in _RECURSIONS if (found := _entries(spec, name))}
    if len(chosen) < 2:
        return {}
    size = len(bars["close"])
    jobs: dict[str, tuple | None] = dict.fromkeys(_RECURSIONS)
    found: dict[int, Outputs] = {}
    for name, i in chosen.items():
        params, outputs = _RECURSIONS[name]
        out = np.empty(size) if outputs == 1 else np.empty((outputs, size))
        jobs[name] = (*(spec.entries[i].params[p] for p in params), states[i], out)
        item = spec.indicator(i)
        found[i] = dict(zip(item.outputs, out if outputs > 1 else (out,), strict=True))
    # An input no chosen indicator reads may be missing from `bars`: the closes stand in, never read.
    needed = {name for i in chosen.values() for name in spec.indicator(i).inputs}
    close = _input(bars, "close")
    high, low, volume = (
        _input(bars, name) if name in needed else close for name in ("high", "low", "volume")
    )
    recursions_nb(high, low, close, volume, i0, **jobs)
    return found
