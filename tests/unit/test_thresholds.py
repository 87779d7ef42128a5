"""Long/short thresholds from training-period predictions."""

import math

import numpy as np
import pytest

from trading_assets.compute.thresholds import ThresholdError, ThresholdRule, quantile_thresholds


def test_thresholds_are_linear_quantiles_of_the_predictions():
    # Sorted 0 1 2 3 4: the 0.8 quantile sits at position 0.8 * 4 = 3.2, the 0.2 quantile at 0.8.
    assert quantile_thresholds(np.array([4.0, 0, 3, 1, 2]), ThresholdRule()) == pytest.approx((3.2, 0.8))


def test_non_finite_predictions_are_left_out():
    with_gaps = np.array([4.0, np.nan, 0, 3, np.inf, 1, 2, -np.inf])
    assert quantile_thresholds(with_gaps, ThresholdRule()) == quantile_thresholds(
        np.array([4.0, 0, 3, 1, 2]), ThresholdRule()
    )


@pytest.mark.parametrize("predictions", [np.array([]), np.array([np.nan, np.inf])])
def test_without_a_finite_prediction_there_is_no_threshold(predictions):
    with pytest.raises(
        ThresholdError, match=f"no finite validation prediction .*{predictions.size} predictions"
    ):
        quantile_thresholds(predictions, ThresholdRule())


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (ThresholdRule(source="test"), "source must be 'validation' or 'train', got 'test'"),
        (ThresholdRule(long_quantile=1.0), "long_quantile must be a number in (0, 1), got 1.0"),
        (ThresholdRule(short_quantile=0.0), "short_quantile must be a number in (0, 1), got 0.0"),
        (ThresholdRule(short_quantile=math.nan), "short_quantile must be a number in (0, 1), got nan"),
        (
            ThresholdRule(long_quantile=0.4, short_quantile=0.6),
            "short_quantile 0.6 must be below long_quantile 0.4",
        ),
    ],
)
def test_impossible_rules_are_refused_naming_the_field(rule, message):
    with pytest.raises(ThresholdError) as err:
        rule.validate()
    assert str(err.value) == message


def test_a_rule_serialises_its_quantiles_as_floats():
    assert ThresholdRule(source="train", long_quantile=0.9, short_quantile=0.1).to_dict() == {
        "source": "train",
        "long_quantile": 0.9,
        "short_quantile": 0.1,
    }
    assert isinstance(ThresholdRule(long_quantile=0.75).to_dict()["long_quantile"], float)
