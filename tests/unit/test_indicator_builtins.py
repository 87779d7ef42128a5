"""Contracts every built-in indicator keeps: declared warm-up, finite values after it, short inputs,
bit-identical resumes of stateful kernels and tails of windowed ones, parameter checks."""

from __future__ import annotations

import numpy as np
import pytest

from trading_assets.compute.indicators import builtin  # registers the built-ins; its _out is patched below
from trading_assets.compute.indicators.registry import REGISTRY, IndicatorError

Bars = dict[str, np.ndarray]

BUILTINS = (
    *("sma", "ema", "wma", "rsi", "macd", "bbands", "atr", "adx", "stoch", "cci", "willr"),
    *("obv", "mfi", "vwap", "roc", "mom", "logret", "rvol", "zscore"),
)
OVERLAYS = {"sma", "ema", "wma", "bbands", "vwap"}

# Each built-in with its defaults and with another, small or unusual, parameter choice.
CASES = [(name, {}) for name in BUILTINS] + [
    ("sma", {"n": 1}),
    ("ema", {"n": 1}),
    ("wma", {"n": 7}),
    ("rsi", {"n": 2}),
    ("macd", {"fast": 2, "slow": 3, "signal": 2}),
    ("macd", {"fast": 5, "slow": 35, "signal": 1}),
    ("bbands", {"n": 2, "k": 0.5}),
    ("atr", {"n": 1}),
    ("adx", {"n": 2}),
    ("stoch", {"k": 1, "smooth": 1, "d": 1}),
    ("stoch", {"k": 9, "smooth": 4, "d": 2}),
    ("cci", {"n": 2}),
    ("willr", {"n": 1}),
    ("mfi", {"n": 1}),
    ("vwap", {"n": 1}),
    ("roc", {"n": 1}),
    ("logret", {"n": 20}),
    ("rvol", {"n": 2, "scale": 252.0}),
    ("zscore", {"n": 2}),
]
STATEFUL_CASES = [(name, params) for name, params in CASES if REGISTRY.get(name).stateful]
WINDOWED_CASES = [(name, params) for name, params in CASES if not REGISTRY.get(name).stateful]


def _ids(value: object) -> str:
    return str(value).replace(" ", "")


def random_bars(seed: int, size: int = 600) -> Bars:
    """A geometric random walk around 100 with consistent OHLC and positive volume."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, size)))
    open_ = np.concatenate(([close[0]], close[:-1]))
    high = np.maximum(open_, close) * (1.0 + np.abs(rng.normal(0.0, 0.003, size)))
    low = np.minimum(open_, close) * (1.0 - np.abs(rng.normal(0.0, 0.003, size)))
    return {"open": open_, "high": high, "low": low, "close": close, "volume": rng.uniform(1e3, 1e5, size)}


def sticky_bars(seed: int, size: int = 600) -> Bars:
    """Prices on a coarse tick grid that often stay put for many bars, and volume that is often 0:
    flat windows, HH == LL ranges and volume-less windows, the degenerate cases."""
    rng = np.random.default_rng(seed)
    steps = rng.choice([-1, 0, 0, 0, 0, 0, 0, 1], size=size)
    steps[100:160] = 0  # one long flat stretch, longer than every default window
    close = 0.1 * (1000 + np.cumsum(steps))
    high = close + 0.1 * (rng.random(size) < 0.2)
    volume = np.where(rng.random(size) < 0.5, 0.0, 3.0)
    volume[100:160] = 0.0
    return {"open": close, "high": high, "low": close, "close": close, "volume": volume}


def run(name: str, bars: Bars, params: dict, state: np.ndarray | None = None, i0: int = 0) -> dict:
    item = REGISTRY.get(name)
    return item.compute(bars, item.validate(params), state=state, i0=i0)


def _slice(bars: Bars, start: int, stop: int | None = None) -> Bars:
    return {k: v[start:stop] for k, v in bars.items()}


def test_every_builtin_is_registered_and_documented() -> None:
    assert set(BUILTINS) <= set(REGISTRY.names())
    for name in BUILTINS:
        item = REGISTRY.get(name)
        assert item.builtin and item.doc, name
        assert item.overlay == (name in OVERLAYS), name
    stateful = {name for name in BUILTINS if REGISTRY.get(name).stateful}
    assert stateful == {"ema", "rsi", "macd", "atr", "adx", "obv"}


@pytest.mark.parametrize("make_bars", [random_bars, sticky_bars])
@pytest.mark.parametrize(("name", "params"), CASES, ids=_ids)
def test_warmup_is_nan_and_every_later_value_finite(name: str, params: dict, make_bars) -> None:
    item = REGISTRY.get(name)
    lookbacks = item.lookbacks(item.validate(params))
    for seed in (0, 1):
        for output, values in run(name, make_bars(seed), params).items():
            assert np.isnan(values[: lookbacks[output]]).all(), output
            assert np.isfinite(values[lookbacks[output] :]).all(), output


@pytest.mark.parametrize(("name", "params"), CASES, ids=_ids)
def test_short_and_empty_inputs(name: str, params: dict) -> None:
    item = REGISTRY.get(name)
    lookbacks = item.lookbacks(item.validate(params))
    bars = random_bars(3)
    for size in sorted({0, 1, *lookbacks.values(), *(lb + 1 for lb in lookbacks.values())}):
        for output, values in run(name, _slice(bars, 0, size), params).items():
            assert values.shape == (size,)
            assert np.isnan(values[: lookbacks[output]]).all()
            assert np.isfinite(values[lookbacks[output] :]).all()


def _filled_out(fill: float):
    """builtin._out with arrays holding `fill` instead of whatever numpy's new memory holds."""

    def out(like: np.ndarray, outputs: int = 1) -> np.ndarray:
        return np.full(len(like) if outputs == 1 else (outputs, len(like)), fill)

    return out


@pytest.mark.parametrize(("name", "params"), CASES, ids=_ids)
def test_kernels_write_every_value_whatever_their_array_held(name: str, params: dict, monkeypatch) -> None:
    # The kernels fill arrays numpy allocates uninitialised: warm-up and positions before i0 included.
    bars, i0 = sticky_bars(2), 3 if REGISTRY.get(name).stateful else 0
    results = []
    for fill in (np.nan, 7.0):
        monkeypatch.setattr(builtin, "_out", _filled_out(fill))
        results.append(run(name, bars, params, i0=i0))
    for output, values in results[0].items():
        assert values.tobytes() == results[1][output].tobytes(), output


@pytest.mark.parametrize(("name", "params"), STATEFUL_CASES, ids=_ids)
def test_stateful_resume_is_bit_identical(name: str, params: dict) -> None:
    item = REGISTRY.get(name)
    full_params = item.validate(params)
    longest = max(item.lookbacks(full_params).values())
    bars = random_bars(4)
    size = len(bars["close"])
    full_state = item.new_state(full_params)
    full = item.compute(bars, full_params, state=full_state)
    # Splits near the start, inside and at the end of the warm-up, and well after it.
    splits = sorted({m for m in (1, 2, 3, longest - 1, longest, longest + 1, 250, size - 1) if 1 <= m < size})
    for m in splits:
        for history in (1, 3):
            if history > m:
                continue
            state = item.new_state(full_params)
            item.compute(_slice(bars, 0, m), full_params, state=state)
            tail = item.compute(_slice(bars, m - history), full_params, state=state, i0=history)
            for output, values in tail.items():
                assert np.isnan(values[:history]).all()
                np.testing.assert_array_equal(values[history:], full[output][m:], err_msg=f"{output} m={m}")
            np.testing.assert_array_equal(state, full_state)


@pytest.mark.parametrize(("name", "params"), STATEFUL_CASES, ids=_ids)
def test_stateful_resume_in_many_small_steps(name: str, params: dict) -> None:
    item = REGISTRY.get(name)
    full_params = item.validate(params)
    bars = random_bars(5, size=120)
    full = item.compute(bars, full_params)
    state = item.new_state(full_params)
    pieces = {output: [] for output in item.outputs}
    for start in range(120):  # one bar at a time, each with one bar of history
        history = min(start, 1)
        step = item.compute(_slice(bars, start - history, start + 1), full_params, state=state, i0=history)
        for output, values in step.items():
            pieces[output].append(values[history:])
    for output, values in pieces.items():
        np.testing.assert_array_equal(np.concatenate(values), full[output])


@pytest.mark.parametrize(("name", "params"), WINDOWED_CASES, ids=_ids)
def test_windowed_tail_is_bit_identical(name: str, params: dict) -> None:
    item = REGISTRY.get(name)
    full_params = item.validate(params)
    lookbacks = item.lookbacks(full_params)
    bars = random_bars(6)
    full = item.compute(bars, full_params)
    for start in (1, 37, 401):
        tail = item.compute(_slice(bars, start), full_params)
        for output, values in tail.items():
            lb = lookbacks[output]
            np.testing.assert_array_equal(values[lb:], full[output][start + lb :], err_msg=output)


def test_results_are_identical_run_to_run() -> None:
    bars = random_bars(7)
    for name in BUILTINS:
        first, second = run(name, bars, {}), run(name, bars, {})
        for output in first:
            np.testing.assert_array_equal(first[output], second[output])


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("macd", {"fast": 26, "slow": 26}, "fast"),
        ("macd", {"fast": 30, "slow": 26}, "fast"),
        ("bbands", {"k": 0.0}, "k must be greater than 0"),
        ("rvol", {"scale": 0.0}, "scale must be greater than 0"),
        ("rsi", {"n": 1}, "'n' must be >= 2"),
        ("rvol", {"n": 1}, "'n' must be >= 2"),
        ("sma", {"n": 0}, "'n' must be >= 1"),
        ("sma", {"n": 100_001}, "'n' must be <= 100000"),
        ("stoch", {"k": 2.5}, "whole number"),
    ],
)
def test_bad_parameters_are_rejected(name: str, params: dict, message: str) -> None:
    with pytest.raises(IndicatorError, match=message):
        REGISTRY.get(name).validate(params)
