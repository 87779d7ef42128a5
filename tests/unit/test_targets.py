"""Targets and training rows, worked out by hand."""

import math

import numpy as np
import pytest

from trading_assets.compute.targets import (
    TargetConfig,
    TargetError,
    forward_log_return,
    make_target,
    select_features,
    training_rows,
)

CLOSE = np.array([100.0, 110.0, 99.0, 99.0, 120.0])


def test_the_forward_log_return_looks_h_bars_ahead_and_is_unknown_at_the_end():
    np.testing.assert_allclose(
        forward_log_return(CLOSE, 2),
        [math.log(99 / 100), math.log(99 / 110), math.log(120 / 99), np.nan, np.nan],
        rtol=1e-15,
    )


def test_a_target_row_depends_only_on_bars_up_to_its_horizon():
    # Changing the last bar changes only the targets that look at it: rows 3 (h=1) and nothing before.
    changed = CLOSE.copy()
    changed[4] = 50.0
    before, after = make_target(CLOSE, TargetConfig(horizon=1)), make_target(changed, TargetConfig(horizon=1))
    np.testing.assert_array_equal(before[:3], after[:3])
    assert before[3] != after[3]


def test_classification_is_the_sign_beyond_the_dead_zone():
    # 1-bar returns: +9.5%, -10.5%, 0, +19.2%, none.
    labels = make_target(CLOSE, TargetConfig(kind="classification", horizon=1, dead_zone=0.1))
    np.testing.assert_array_equal(labels, [np.nan, 0.0, np.nan, 1.0, np.nan])
    np.testing.assert_array_equal(
        make_target(CLOSE, TargetConfig(kind="classification")), [1.0, 0.0, np.nan, 1.0, np.nan]
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (TargetConfig(kind="ranking"), "target kind must be 'regression' or 'classification'"),
        (TargetConfig(horizon=0), "horizon must be an integer >= 1"),
        (TargetConfig(dead_zone=-0.1), "dead_zone must be a finite number >= 0"),
    ],
)
def test_bad_target_configs_are_refused(config, message):
    with pytest.raises(TargetError, match=message):
        make_target(CLOSE, config)


def test_features_are_a_validated_subset_of_the_sets_columns():
    available = ["rsi_14", "macd_line", "atr_14"]
    assert select_features(available, []) == available
    assert select_features(available, ["atr_14", "rsi_14"]) == ["atr_14", "rsi_14"]
    with pytest.raises(TargetError, match=r"feature\(s\) \['rsi'\] are not columns of the indicator set"):
        select_features(available, ["rsi"])
    with pytest.raises(TargetError, match=r"feature\(s\) \['rsi_14'\] listed more than once"):
        select_features(available, ["rsi_14", "rsi_14"])


def test_training_rows_drop_warm_up_missing_targets_and_holes_and_count_them():
    n = 8
    features = {
        "a": np.array([np.nan, 1, 2, 3, 4, 5, 6, 7], dtype=float),  # warm-up 1
        "b": np.array([np.nan, np.nan, 2, 3, np.inf, 5, 6, 7], dtype=float),  # warm-up 2, a hole at row 4
    }
    target = np.array(
        [0.1, 0.2, 0.3, np.nan, 0.5, 0.6, np.nan, np.nan]
    )  # dead zone at 3, horizon 2 at the end
    picked = training_rows(features, {"a": 1, "b": 2}, target, ["a", "b"])
    np.testing.assert_array_equal(picked.rows, [2, 5])
    np.testing.assert_array_equal(picked.features, [[2, 2], [5, 5]])
    np.testing.assert_array_equal(picked.target, [0.3, 0.6])
    assert picked.dropped == {"warmup": 2, "no_target": 3, "not_finite": 1}
    assert sum(picked.dropped.values()) + picked.rows.size == n
