"""The windowed indicators equal, bit for bit, each window computed on its own in plain Python.

The kernels sum a block of windows at once (loops swapped so that they vectorise); the oracle here sums
every window afresh, oldest first from 0.0, one Python float operation at a time, as the kernels did
one window at a time before. Equal bits, NaN included, on data with NaNs, signed zeros, flat runs and
bars without volume, for windows of one value, of a few (not a multiple of the kernels' four-way
unrolling), and longer than a block, over lengths that are not a multiple of a block.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import pytest

from trading_assets.compute.indicators import builtin  # noqa: F401  (registers the built-ins)
from trading_assets.compute.indicators.kernels._window import BLOCK
from trading_assets.compute.indicators.registry import REGISTRY

Bars = dict[str, np.ndarray]
NAN = math.nan
SIZE = 2 * BLOCK + 77
WINDOWS = (1, 2, 3, 5, 8, 21, BLOCK + 3)


def awkward_bars(seed: int, size: int = SIZE) -> Bars:
    """A random walk with NaNs in every input, a flat stretch, zero-volume bars and both signed zeros
    in the volume (so flows and sums meet -0.0 and 0.0)."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, size)))
    high = close * (1.0 + np.abs(rng.normal(0.0, 0.003, size)))
    low = close * (1.0 - np.abs(rng.normal(0.0, 0.003, size)))
    volume = rng.uniform(1e3, 1e5, size)
    close[300:340] = high[300:340] = low[300:340] = 101.25
    volume[500:560] = 0.0
    volume[520:530] = -0.0
    bars = {"open": close.copy(), "high": high, "low": low, "close": close, "volume": volume}
    for name, values in bars.items():
        values[rng.integers(0, size, 6 if name != "volume" else 3)] = NAN
    return bars


def _windows(x: list[float], n: int, first: int = 0) -> list[tuple[int, list[float]]]:
    """(end, the n values ending there) for every end whose window starts at or after `first`."""
    return [(end, x[end - n + 1 : end + 1]) for end in range(first + n - 1, len(x))]


def _sum(window: list[float]) -> float:
    total = 0.0
    for value in window:
        total += value
    return total


def _offset(window: list[float]) -> float:
    total = 0.0
    for value in window:
        total += value - window[0]
    return total / len(window)


def _std(window: list[float], ddof: int) -> float:
    offset = _offset(window)
    squares = 0.0
    for value in window:
        d = (value - window[0]) - offset
        squares += d * d
    return math.sqrt(squares / (len(window) - ddof))


def _max(window: list[float]) -> float:
    best = window[-1]
    for value in window[:-1]:
        best = value if value > best else best
    return best


def _min(window: list[float]) -> float:
    best = window[-1]
    for value in window[:-1]:
        best = value if value < best else best
    return best


def _series(size: int, values: dict[int, float]) -> np.ndarray:
    out = np.full(size, NAN)
    for end, value in values.items():
        out[end] = value
    return out


def ref_sma(b: Bars, n: int) -> dict[str, np.ndarray]:
    c = b["close"].tolist()
    return {"value": _series(len(c), {e: _sum(w) / n for e, w in _windows(c, n)})}


def ref_wma(b: Bars, n: int) -> dict[str, np.ndarray]:
    c = b["close"].tolist()
    values = {}
    for end, window in _windows(c, n):
        total = 0.0
        for j, value in enumerate(window):
            total += (j + 1) * value
        values[end] = total / (n * (n + 1) / 2.0)
    return {"value": _series(len(c), values)}


def ref_bbands(b: Bars, n: int, k: float) -> dict[str, np.ndarray]:
    c = b["close"].tolist()
    names = ("middle", "upper", "lower", "pctb", "bandwidth")
    out: dict[str, dict[int, float]] = {name: {} for name in names}
    for end, window in _windows(c, n):
        mid = _sum(window) / n
        spread = k * _std(window, 0)
        up, lo = mid + spread, mid - spread
        width = up - lo
        out["middle"][end], out["upper"][end], out["lower"][end] = mid, up, lo
        out["pctb"][end] = (c[end] - lo) / width if width != 0.0 else 0.5
        out["bandwidth"][end] = width / mid if width != 0.0 else 0.0
    return {name: _series(len(c), values) for name, values in out.items()}


def _fast_k(b: Bars, k: int) -> list[float]:
    h, lo, c = b["high"].tolist(), b["low"].tolist(), b["close"].tolist()
    fast = [NAN] * len(c)
    for (end, highs), (_, lows) in zip(_windows(h, k), _windows(lo, k), strict=True):
        highest, lowest = _max(highs), _min(lows)
        span = highest - lowest
        fast[end] = 100.0 * (c[end] - lowest) / span if span != 0.0 else 50.0
    return fast


def ref_stoch(b: Bars, k: int, smooth: int, d: int) -> dict[str, np.ndarray]:
    slow = _series(len(b["close"]), {e: _sum(w) / smooth for e, w in _windows(_fast_k(b, k), smooth, k - 1)})
    signal = {e: _sum(w) / d for e, w in _windows(slow.tolist(), d, k + smooth - 2)}
    return {"k": slow, "d": _series(len(slow), signal)}


def ref_willr(b: Bars, n: int) -> dict[str, np.ndarray]:
    h, lo, c = b["high"].tolist(), b["low"].tolist(), b["close"].tolist()
    values = {}
    for (end, highs), (_, lows) in zip(_windows(h, n), _windows(lo, n), strict=True):
        highest = _max(highs)
        span = highest - _min(lows)
        values[end] = -100.0 * (highest - c[end]) / span if span != 0.0 else -50.0
    return {"value": _series(len(c), values)}


def _typical(b: Bars) -> list[float]:
    return [(h + lo + c) / 3.0 for h, lo, c in zip(b["high"], b["low"], b["close"], strict=True)]


def ref_cci(b: Bars, n: int) -> dict[str, np.ndarray]:
    tp = _typical(b)
    values = {}
    for end, window in _windows(tp, n):
        offset = _offset(window)
        deviation = 0.0
        for value in window:
            deviation += abs((value - window[0]) - offset)
        values[end] = (
            ((tp[end] - window[0]) - offset) / (0.015 * (deviation / n)) if deviation != 0.0 else 0.0
        )
    return {"value": _series(len(tp), values)}


def ref_mfi(b: Bars, n: int) -> dict[str, np.ndarray]:
    tp, volume = _typical(b), b["volume"].tolist()
    positive, negative = [0.0] * len(tp), [0.0] * len(tp)
    for j in range(1, len(tp)):
        if tp[j] > tp[j - 1]:
            positive[j] = tp[j] * volume[j]
        elif tp[j] < tp[j - 1]:
            negative[j] = tp[j] * volume[j]
    values = {}
    for (end, up), (_, down) in zip(_windows(positive, n, 1), _windows(negative, n, 1), strict=True):
        total = _sum(up) + _sum(down)
        values[end] = 100.0 * (_sum(up) / total) if total != 0.0 else 50.0
    return {"value": _series(len(tp), values)}


def ref_vwap(b: Bars, n: int) -> dict[str, np.ndarray]:
    tp, volume = _typical(b), b["volume"].tolist()
    weighted = [p * v for p, v in zip(tp, volume, strict=True)]
    values = {}
    for (end, shares), (_, flows), (_, prices) in zip(
        _windows(volume, n), _windows(weighted, n), _windows(tp, n), strict=True
    ):
        total = _sum(shares)
        values[end] = _sum(flows) / total if total != 0.0 else _sum(prices) / n
    return {"value": _series(len(tp), values)}


def ref_rvol(b: Bars, n: int, scale: float) -> dict[str, np.ndarray]:
    c = b["close"].tolist()
    returns = [NAN] + [math.log(new / old) for old, new in itertools.pairwise(c)]
    values = {e: _std(w, 1) * math.sqrt(scale) for e, w in _windows(returns, n, 1)}
    return {"value": _series(len(c), values)}


def ref_zscore(b: Bars, n: int) -> dict[str, np.ndarray]:
    c = b["close"].tolist()
    values = {}
    for end, window in _windows(c, n):
        std = _std(window, 0)
        values[end] = ((c[end] - window[0]) - _offset(window)) / std if std != 0.0 else 0.0
    return {"value": _series(len(c), values)}


REFERENCES: dict[str, Callable[..., dict[str, np.ndarray]]] = {
    "sma": ref_sma,
    "wma": ref_wma,
    "bbands": lambda b, n: ref_bbands(b, n, 2.0),
    "stoch": lambda b, n: ref_stoch(b, n, 3, 5),
    "willr": ref_willr,
    "cci": ref_cci,
    "mfi": ref_mfi,
    "vwap": ref_vwap,
    "rvol": lambda b, n: ref_rvol(b, n, 525_600.0),
    "zscore": ref_zscore,
}
PARAMS: dict[str, Callable[[int], dict[str, float]]] = {
    "bbands": lambda n: {"n": n, "k": 2.0},
    "stoch": lambda n: {"k": n, "smooth": 3, "d": 5},
    "rvol": lambda n: {"n": n, "scale": 525_600.0},
}
# Indicators whose window must hold at least two values.
AT_LEAST_TWO = {"bbands", "cci", "rvol", "zscore"}
CASES = [(name, n) for name in REFERENCES for n in WINDOWS if n >= 2 or name not in AT_LEAST_TWO]


@pytest.mark.parametrize(("name", "n"), CASES, ids=[f"{name}-{n}" for name, n in CASES])
def test_each_value_is_its_window_computed_alone(name: str, n: int) -> None:
    bars = awkward_bars(seed=n)
    item = REGISTRY.get(name)
    ours = item.compute(bars, item.validate(PARAMS.get(name, lambda n: {"n": n})(n)))
    for output, expected in REFERENCES[name](bars, n).items():
        assert ours[output].tobytes() == expected.tobytes(), f"{name} {output}: first difference at " + str(
            int(np.argmax(ours[output].view(np.int64) != expected.view(np.int64)))
        )
