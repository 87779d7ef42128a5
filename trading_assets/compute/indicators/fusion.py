"""Entries of a set that share work, computed together: each value bit for bit what its entry gives alone.

- SMA, Bollinger bands and z-score over the same n closes: the window sums and stds once
  (`close_windows_nb`); the bands' middle is the SMA.
- The stochastic and Williams %R over the same bars: the highest highs and lowest lows once (`stoch_nb`).
- Realised volatility reads the one-bar log returns of a `logret` entry with n = 1 instead of taking
  its own logs (`rvol_nb`).

All of them are windowed, so the engine needs no state for them. Only the built-ins are fused: an entry
whose name a user's registry gives to another function is computed as that function says.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from trading_assets.compute.indicators import builtin
from trading_assets.compute.indicators.kernels import close_windows_nb, logret_nb, rvol_nb, stoch_nb
from trading_assets.compute.indicators.spec import SetSpec

Bars = Mapping[str, np.ndarray]
Outputs = dict[str, np.ndarray]
NONE = np.empty(0)


def fused_outputs(spec: SetSpec, bars: Bars) -> dict[int, Outputs]:
    """The outputs of the entries of `spec` that share work with another entry, by entry index."""
    found: dict[int, Outputs] = {}
    for fuse in (_close_windows, _ranges, _returns):
        found.update(fuse(spec, bars))
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
