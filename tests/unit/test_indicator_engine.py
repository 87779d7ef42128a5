"""The set engine: incremental updates equal full recomputes, and the audits catch what they promise."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from trading_assets.compute.indicators import (
    REGISTRY,
    SetState,
    bars_sha256,
    code_version,
    compute_set,
    default_spec,
    extend_set,
    history_bars,
    indicator,
    lookahead_cuts,
    lookahead_violations,
    parse_spec,
    warmup_violations,
)


def random_bars(n: int, seed: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate(([close[0]], close[:-1])) * np.exp(rng.normal(0, 0.001, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.003, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.003, n)))
    volume = rng.gamma(2.0, 50.0, n)
    ts = np.arange(n, dtype=np.int64) * 60_000_000
    return {"ts": ts, "open": open_, "high": high, "low": low, "close": close, "volume": volume}


def head(bars: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    return {k: v[:n] for k, v in bars.items()}


def assert_same_columns(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert list(a) == list(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name, strict=True)


BARS = random_bars(3_000)


@pytest.mark.parametrize("old_rows", [1, 10, 33, 34, 500, 2_999])
def test_an_appended_tail_gives_exactly_the_full_recompute(old_rows: int):
    spec = default_spec()
    full = compute_set(spec, BARS)
    before = compute_set(spec, head(BARS, old_rows))
    start = max(0, old_rows - history_bars(spec))
    tail = extend_set(spec, {k: v[start:] for k, v in BARS.items()}, old_rows - start, before.state)
    joined = {k: np.concatenate((before.values[k], tail.values[k])) for k in full.values}
    assert_same_columns(joined, full.values)
    assert tail.state.rows == len(BARS["close"])
    assert tail.state.to_json() == full.state.to_json()


def test_two_appends_in_a_row_still_match(tmp_path):
    spec = default_spec()
    first = compute_set(spec, head(BARS, 1_000))
    state = SetState.from_json(first.state.to_json())  # as the catalog would hand it back
    pieces = [first.values]
    for old, new in ((1_000, 1_700), (1_700, 3_000)):
        start = old - history_bars(spec)
        step = extend_set(spec, {k: v[start:new] for k, v in BARS.items()}, old - start, state)
        pieces.append(step.values)
        state = SetState.from_json(step.state.to_json())
    joined = {k: np.concatenate([p[k] for p in pieces]) for k in pieces[0]}
    assert_same_columns(joined, compute_set(spec, BARS).values)


def test_an_update_without_enough_history_is_refused():
    spec = default_spec()
    before = compute_set(spec, head(BARS, 1_000))
    with pytest.raises(ValueError, match=f"needs {history_bars(spec)} bars of history"):
        extend_set(spec, {k: v[990:] for k, v in BARS.items()}, 10, before.state)


def test_the_state_survives_json_exactly_including_nan():
    state = SetState(rows=5, entries={0: np.array([np.nan, 0.1, -0.0, 1e-310, np.inf])})
    again = SetState.from_json(state.to_json())
    assert again.rows == 5
    np.testing.assert_array_equal(again.entries[0], state.entries[0])
    assert np.signbit(again.entries[0][2])


def test_the_history_is_the_longest_warm_up():
    assert history_bars(default_spec()) == 49  # SMA 50
    assert history_bars(parse_spec({"name": "x", "indicators": [{"indicator": "obv"}]})) == 1


def test_the_default_set_has_no_lookahead_and_nans_only_in_warm_up():
    spec = default_spec()
    full = compute_set(spec, BARS).values
    assert lookahead_violations(spec, BARS, full, lookahead_cuts(3_000, spec)) == []
    assert warmup_violations(spec, full) == []


def test_cuts_start_past_the_warm_up_and_end_one_bar_short():
    spec = default_spec()
    cuts = lookahead_cuts(3_000, spec)
    assert cuts[0] == spec.max_lookback + 2
    assert cuts[-1] == 2_999
    assert len(cuts) == 6
    assert lookahead_cuts(1, spec) == []
    assert lookahead_cuts(5, spec) == [4]


def leaky_spec(func_name: str):
    return parse_spec(
        {"name": "leaky", "indicators": [{"indicator": "sma", "column": "fine"}, {"indicator": func_name}]}
    )


def test_a_feature_that_reads_the_next_bar_is_caught_at_the_first_cut():
    with REGISTRY.scoped():

        @indicator(lookback=0)
        def peek(close):
            """Tomorrow's close today: the classic leak."""
            return np.append(close[1:], close[-1:])

        spec = leaky_spec("peek")
        full = compute_set(spec, BARS).values
        cuts = lookahead_cuts(3_000, spec)
        found = lookahead_violations(spec, BARS, full, cuts)
    assert [(v.column, v.row) for v in found] == [("peek", cuts[0] - 1)]
    assert f"cut after row {cuts[0] - 1}" in found[0].detail


def test_a_centred_window_is_caught_two_bars_before_the_cut():
    with REGISTRY.scoped():

        @indicator(lookback=2)
        def centred(close):
            """A 5-bar moving average centred on the bar: smooth, and two bars into the future."""
            out = np.full(close.size, np.nan)
            for i in range(2, close.size):
                window = close[i - 2 : i + 3]
                out[i] = window.mean()
            return out

        spec = leaky_spec("centred")
        full = compute_set(spec, BARS).values
        cuts = lookahead_cuts(3_000, spec)
        found = lookahead_violations(spec, BARS, full, cuts)
    assert [(v.column, v.row) for v in found] == [("centred", cuts[0] - 2)]


def test_normalising_by_the_whole_series_is_caught_at_the_first_row():
    with REGISTRY.scoped():

        @indicator(lookback=0)
        def global_z(close):
            """(close - mean) / std over the whole file: every row knows the future."""
            return (close - close.mean()) / close.std()

        spec = leaky_spec("global_z")
        found = lookahead_violations(spec, BARS, compute_set(spec, BARS).values, lookahead_cuts(3_000, spec))
    assert [(v.column, v.row) for v in found] == [("global_z", 0)]


def test_warmup_violations_report_values_inside_and_gaps_after_the_warm_up():
    with REGISTRY.scoped():

        @indicator(lookback=5)
        def early(close):
            """Claims a 5-bar warm-up but fills it."""
            return close.copy()

        @indicator(lookback=1)
        def holey(close):
            """A NaN in the middle of its valid range."""
            out = np.log(close / np.append(np.nan, close[:-1]))
            out[100] = np.nan
            return out

        spec = parse_spec({"name": "bad", "indicators": [{"indicator": "early"}, {"indicator": "holey"}]})
        found = warmup_violations(spec, compute_set(spec, BARS).values)
    assert [(v.column, v.row) for v in found] == [("early", 0), ("holey", 100)]
    assert "inside a 5-bar warm-up" in found[0].detail
    assert "after the 1-bar warm-up" in found[1].detail


def test_the_bars_hash_of_a_prefix_matches_the_shorter_export():
    assert bars_sha256(BARS, 1_000) == bars_sha256(head(BARS, 1_000))
    assert bars_sha256(BARS, 1_000) != bars_sha256(head(BARS, 1_001))
    changed = {k: v.copy() for k, v in BARS.items()}
    changed["close"][500] += 0.01
    assert bars_sha256(changed, 1_000) != bars_sha256(BARS, 1_000)


USER_MODULE = """
import numpy as np
from trading_assets.compute.indicators import indicator


def _helper(close):
    return close * {factor}


@indicator(lookback=0)
def mine(close):
    return _helper(close)
"""


def user_code_version(tmp_path, name: str, factor: int) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(USER_MODULE.format(factor=factor))
    with REGISTRY.scoped():
        module_spec = importlib.util.spec_from_file_location(name, path)
        module_spec.loader.exec_module(importlib.util.module_from_spec(module_spec))
        return code_version(parse_spec({"name": "m", "indicators": [{"indicator": "mine"}]}))


def test_the_code_version_follows_a_users_indicator_module_helpers_included(tmp_path):
    first = user_code_version(tmp_path, "mine_a", 2)
    assert user_code_version(tmp_path, "mine_b", 2) == first  # same code, same version
    assert user_code_version(tmp_path, "mine_c", 3) != first  # only the helper changed
    assert code_version(default_spec()) == code_version(default_spec())
