"""Entries that a set computes together (fusion.py) give bit for bit what each gives computed alone."""

from __future__ import annotations

import numpy as np
import pytest
from test_indicator_windows import awkward_bars

from trading_assets.compute.indicators import (
    REGISTRY,
    compute_set,
    default_spec,
    extend_set,
    indicator,
    parse_spec,
)
from trading_assets.compute.indicators.fusion import fused_outputs

# Entries sharing work in every pairing the fusion knows, with look-alikes that must not join them.
SHARING = [
    {"indicator": "sma", "params": {"n": 20}, "column": "sma_20"},
    {"indicator": "sma", "params": {"n": 5}, "column": "sma_5"},
    {"indicator": "bbands", "params": {"n": 20, "k": 2.0}, "column": "bb"},
    {"indicator": "bbands", "params": {"n": 20, "k": 1.5}, "column": "bb_narrow"},
    {"indicator": "bbands", "params": {"n": 7, "k": 2.0}, "column": "bb_7"},
    {"indicator": "zscore", "params": {"n": 7}, "column": "z_7"},
    {"indicator": "zscore", "params": {"n": 3}, "column": "z_3"},
    {"indicator": "stoch", "params": {"k": 14, "smooth": 3, "d": 3}, "column": "stoch"},
    {"indicator": "stoch", "params": {"k": 5, "smooth": 1, "d": 2}, "column": "stoch_5"},
    {"indicator": "willr", "params": {"n": 14}, "column": "willr_14"},
    {"indicator": "willr", "params": {"n": 5}, "column": "willr_5"},
    {"indicator": "willr", "params": {"n": 9}, "column": "willr_9"},
    {"indicator": "logret", "params": {"n": 1}, "column": "logret_1"},
    {"indicator": "rvol", "params": {"n": 20}, "column": "rvol_20"},
    {"indicator": "rvol", "params": {"n": 3, "scale": 525600.0}, "column": "rvol_3"},
    {"indicator": "ema", "params": {"n": 20}, "column": "ema_20"},
    {"indicator": "ema", "params": {"n": 3}, "column": "ema_3"},
    {"indicator": "rsi", "params": {"n": 14}, "column": "rsi_14"},
    {"indicator": "macd", "params": {"fast": 12, "slow": 26, "signal": 9}, "column": "macd"},
    {"indicator": "atr", "params": {"n": 5}, "column": "atr_5"},
    {"indicator": "adx", "params": {"n": 14}, "column": "adx_14"},
    {"indicator": "obv", "column": "obv"},
]


def alone(spec, bars) -> dict[str, np.ndarray]:
    """Every column of `spec`, each entry computed on its own by its registered function."""
    values = {}
    for column in spec.columns:
        item = spec.indicator(column.entry)
        values[column.name] = item.compute(bars, spec.entries[column.entry].params)[column.output]
    return values


def assert_same_bits(got: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert got.keys() == expected.keys()
    for name in expected:
        assert got[name].tobytes() == expected[name].tobytes(), name


@pytest.mark.parametrize("rows", [0, 4, 15, 17, 3_000])
def test_entries_computed_together_equal_each_computed_alone(rows: int):
    spec = parse_spec({"name": "sharing", "indicators": SHARING})
    bars = {k: v[:rows] for k, v in awkward_bars(3, 3_000).items()}
    assert_same_bits(compute_set(spec, bars).values, alone(spec, bars))


def test_a_resumed_set_equals_each_entry_computed_alone_on_all_bars():
    spec = parse_spec({"name": "sharing", "indicators": SHARING})
    bars = awkward_bars(6, 3_000)
    old = compute_set(spec, {k: v[:1_000] for k, v in bars.items()})
    history = spec.max_lookback
    tail = extend_set(spec, {k: v[1_000 - history :] for k, v in bars.items()}, history, old.state)
    assert_same_bits(tail.values, {k: v[1_000:] for k, v in alone(spec, bars).items()})


def test_the_recursions_of_a_set_of_closes_alone_need_no_highs_lows_or_volumes():
    spec = parse_spec({"name": "closes", "indicators": [SHARING[-7], SHARING[-5], SHARING[-4]]})
    bars = {"close": awkward_bars(7)["close"]}
    assert_same_bits(compute_set(spec, bars).values, alone(spec, bars))


def test_the_default_set_shares_the_bands_ranges_and_returns():
    spec = default_spec()
    bars = awkward_bars(4)
    states = {i: spec.indicator(i).new_state(e.params) for i, e in enumerate(spec.entries)}
    fused = {spec.entries[i].column for i in fused_outputs(spec, bars, states, 0)}
    assert fused == {"sma_20", "bb", "zscore_20", "stoch", "willr_14", "logret_1", "rvol_20"} | {
        "ema_20",
        "rsi_14",
        "macd",
        "atr_14",
        "adx_14",
        "obv",
    }
    assert_same_bits(compute_set(spec, bars).values, alone(spec, bars))


def test_a_users_replacement_of_a_builtin_is_not_fused():
    with REGISTRY.scoped() as registry:

        @indicator(lookback=lambda n: n - 1, params={"n": REGISTRY.get("sma").params["n"]}, replace=True)
        def sma(close, n):
            return np.full(close.shape, 7.0)

        spec = parse_spec({"name": "mine", "indicators": SHARING[:3]}, registry=registry)
        values = compute_set(spec, awkward_bars(5)).values
    assert (values["sma_20"] == 7.0).all()
