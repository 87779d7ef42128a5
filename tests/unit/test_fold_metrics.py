"""Fold metrics, worked out by hand and checked against scipy."""

import math

import numpy as np
import pytest
from scipy import stats

from trading_assets.compute.fold_metrics import (
    MetricsError,
    average_ranks,
    classification_metrics,
    regression_metrics,
)


def test_regression_metrics_of_four_rows_by_hand():
    # true 1 2 3 4, pred 2 2 2 6: errors 1 0 -1 2, squares 1 0 1 4 (sum 6).
    # rmse sqrt(6/4); mae 4/4; r2 = 1 - 6 / 5 (true's squares about 2.5: 2.25 .25 .25 2.25).
    # ic: true - 2.5 = -1.5 -.5 .5 1.5, pred - 3 = -1 -1 -1 3: 6 / sqrt(5 * 12).
    # rank_ic: pred ranks 2 2 2 4 (three tied for ranks 1..3), minus 2.5 = -.5 -.5 -.5 1.5: 3 / sqrt(5 * 3).
    metrics = regression_metrics(np.array([1.0, 2, 3, 4]), np.array([2.0, 2, 2, 6]))
    assert list(metrics) == ["rmse", "mae", "r2", "ic", "rank_ic", "hit_rate"]
    assert metrics == pytest.approx(
        {
            "rmse": math.sqrt(1.5),
            "mae": 1.0,
            "r2": -0.2,
            "ic": 6 / math.sqrt(60),
            "rank_ic": 3 / math.sqrt(15),
            "hit_rate": 1.0,
        },
        rel=1e-14,
    )


def test_the_hit_rate_counts_matching_signs_and_skips_rows_whose_target_is_zero():
    # Rows with a non-zero target: (1, .5) hit, (-2, 1) miss, (3, 2) hit, (-1, 0) miss: 2 of 4.
    true = np.array([1.0, -2, 3, 0, -1])
    pred = np.array([0.5, 1, 2, -1, 0])
    assert regression_metrics(true, pred)["hit_rate"] == 0.5


def test_ic_and_rank_ic_agree_with_scipy_also_with_ties():
    rng = np.random.default_rng(3)
    true = np.round(rng.normal(size=300), 1)
    pred = np.round(true + rng.normal(size=300), 1)
    metrics = regression_metrics(true, pred)
    assert metrics["ic"] == pytest.approx(stats.pearsonr(true, pred).statistic, rel=1e-12)
    assert metrics["rank_ic"] == pytest.approx(stats.spearmanr(true, pred).statistic, rel=1e-12)


def test_tied_values_share_the_average_of_their_ranks():
    np.testing.assert_array_equal(average_ranks(np.array([3.0, 1, 3, 2, 3])), [4, 1, 4, 2, 4])
    values = np.random.default_rng(0).integers(0, 5, size=50).astype(float)
    np.testing.assert_array_equal(average_ranks(values), stats.rankdata(values))


def test_rows_without_a_target_are_ignored():
    true, pred = np.array([1.0, 2, 3, 4]), np.array([2.0, 2, 2, 6])
    with_gaps = regression_metrics(np.array([np.nan, 1, 2, np.nan, 3, 4]), np.array([9.0, 2, 2, -9, 2, 6]))
    assert with_gaps == regression_metrics(true, pred)
    labels, prob = np.array([0.0, 1, np.nan]), np.array([0.2, 0.7, 0.99])
    assert classification_metrics(labels, prob) == classification_metrics(labels[:2], prob[:2])


@pytest.mark.parametrize(
    ("true", "pred", "undefined"),
    [
        ([], [], {"rmse", "mae", "r2", "ic", "rank_ic", "hit_rate"}),
        ([np.nan, np.nan], [1.0, 2.0], {"rmse", "mae", "r2", "ic", "rank_ic", "hit_rate"}),
        ([1.0, 2.0, 3.0], [0.5, 0.5, 0.5], {"ic", "rank_ic"}),
        ([0.1, 0.1, 0.1], [1.0, 2.0, 3.0], {"r2", "ic", "rank_ic"}),
        ([0.0, 0.0], [1.0, 2.0], {"r2", "ic", "rank_ic", "hit_rate"}),
        ([1.0], [2.0], {"r2", "ic", "rank_ic"}),
    ],
)
def test_undefined_regression_metrics_are_nan(true, pred, undefined):
    metrics = regression_metrics(np.array(true), np.array(pred))
    assert {name for name, value in metrics.items() if math.isnan(value)} == undefined


def test_classification_metrics_of_four_rows_by_hand():
    # Pairs (class 1, class 0): (.6, .1) win, (.6, .6) tie = 1/2, (.8, .1) win, (.8, .6) win: auc 3.5 / 4.
    # Classes at >= .5: 0 1 1 1 against 0 0 1 1: 3 of 4 right.
    metrics = classification_metrics(np.array([0.0, 0, 1, 1]), np.array([0.1, 0.6, 0.6, 0.8]))
    assert list(metrics) == ["log_loss", "auc", "accuracy"]
    assert metrics == pytest.approx(
        {
            "log_loss": -(math.log(0.9) + math.log(0.4) + math.log(0.6) + math.log(0.8)) / 4,
            "auc": 0.875,
            "accuracy": 0.75,
        },
        rel=1e-14,
    )


def test_auc_is_the_mann_whitney_statistic_over_the_pairs():
    rng = np.random.default_rng(4)
    labels = (rng.random(400) < 0.4).astype(float)
    prob = np.round(np.clip(0.4 + 0.2 * labels + 0.2 * rng.normal(size=400), 0, 1), 2)
    u = stats.mannwhitneyu(prob[labels == 1], prob[labels == 0]).statistic
    n_pos = labels.sum()
    assert classification_metrics(labels, prob)["auc"] == pytest.approx(
        u / (n_pos * (400 - n_pos)), rel=1e-12
    )


def test_a_certain_wrong_probability_costs_a_finite_log_loss():
    metrics = classification_metrics(np.array([1.0, 0.0]), np.array([0.0, 0.0]))
    assert metrics["log_loss"] == pytest.approx(-math.log(1e-15) / 2, rel=1e-6)


def test_auc_is_nan_with_a_single_class():
    metrics = classification_metrics(np.array([1.0, 1.0]), np.array([0.3, 0.9]))
    assert math.isnan(metrics["auc"]) and metrics["accuracy"] == 0.5


def test_no_rows_give_nan_classification_metrics():
    metrics = classification_metrics(np.array([np.nan]), np.array([0.5]))
    assert all(math.isnan(value) for value in metrics.values())


def test_inputs_that_cannot_be_scored_are_refused():
    with pytest.raises(MetricsError, match="y_true has 3 rows but the predictions have 2"):
        regression_metrics(np.ones(3), np.ones(2))
    with pytest.raises(MetricsError, match=r"labels must be 0 or 1, got values \[0. 2.\]"):
        classification_metrics(np.array([0.0, 2.0]), np.array([0.1, 0.2]))
