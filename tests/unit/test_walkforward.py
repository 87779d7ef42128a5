"""A walkforward run over plain arrays: spec, rows per fold, thresholds and results."""

import dataclasses
import json
from datetime import timedelta

import numpy as np
import pytest

from trading_assets.compute.folds import FoldConfig
from trading_assets.compute.targets import TargetConfig, training_rows
from trading_assets.compute.thresholds import ThresholdRule, quantile_thresholds
from trading_assets.compute.training import (
    Hyperparameters,
    TrainingError,
    load_model,
    save_model,
    split_validation,
)
from trading_assets.compute.walkforward import (
    WalkforwardError,
    WalkforwardSpec,
    fold_rows,
    prepare,
    run_walkforward,
    train_fold,
    train_period_predictions,
)

MINUTE = 60_000_000
QUICK = Hyperparameters(n_estimators=30, max_depth=3, learning_rate=0.2, early_stopping_rounds=5)


def spec(kind: str = "regression", horizon: int = 1, **folds) -> WalkforwardSpec:
    config = {"train": 1000, "test": 400, "horizon": horizon} | folds
    return WalkforwardSpec(
        target=TargetConfig(kind=kind, horizon=horizon), folds=FoldConfig(**config), hyperparameters=QUICK
    )


def market(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict, dict]:
    """Minute bars whose next return follows `signal` (known at its bar), plus a `noise` column."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    returns = np.r_[0.0, 0.001 * signal[:-1] + 0.001 * rng.normal(size=n - 1)]
    close = 100 * np.exp(np.cumsum(returns))
    indicators = {"signal": signal.copy(), "noise": rng.normal(size=n)}
    indicators["signal"][:10] = np.nan
    return np.arange(n, dtype=np.int64) * MINUTE, close, indicators, {"signal": 10, "noise": 3}


# 20 hand-made bars. Warm-up 5 rows (signal's lookback); `noise` is NaN at row 12; close is flat from row 7
# to 8, so row 7's return is 0 (no class label), and row 19 has no next bar (no target at all).
SMALL_CLOSE = np.array([10, 11, 12, 11, 12, 13, 14, 15, 15, 14, 15, 16, 17, 16, 15, 16, 17, 18, 17, 18.0])
SMALL_SIGNAL = np.r_[np.full(5, np.nan), np.linspace(-1, 1, 15)]
SMALL_NOISE = np.r_[np.full(3, np.nan), np.ones(9), np.nan, np.ones(7)]
SMALL = (
    np.arange(20, dtype=np.int64) * MINUTE,
    SMALL_CLOSE,
    {"signal": SMALL_SIGNAL, "noise": SMALL_NOISE},
    {"signal": 5, "noise": 3},
)


def test_prepare_counts_the_rows_that_cannot_train_by_hand():
    small = dataclasses.replace(
        spec("classification", train=10, test=4), thresholds=ThresholdRule(source="train")
    )
    prepared = prepare(*SMALL, small)
    # warmup: rows 0..4; no_target: row 7 (flat) and row 19 (last); not_finite: row 12.
    assert prepared.dropped == {"warmup": 5, "no_target": 2, "not_finite": 1}
    assert prepared.columns == ("signal", "noise")
    np.testing.assert_array_equal(np.flatnonzero(~prepared.usable), [0, 1, 2, 3, 4, 12])
    rows = training_rows(SMALL[2], SMALL[3], prepared.target, prepared.columns)
    assert prepared.dropped == rows.dropped
    np.testing.assert_array_equal(np.flatnonzero(prepared.usable & ~np.isnan(prepared.target)), rows.rows)


def test_each_fold_counts_the_rows_its_train_window_left_out():
    small = dataclasses.replace(
        spec("regression", train=10, test=4),
        hyperparameters=Hyperparameters(n_estimators=2, early_stopping_rounds=None),
        thresholds=ThresholdRule(source="train"),
    )
    prepared = prepare(*SMALL, small)
    # Fold 0 trains on rows 0..9 (warm-up 0..4); fold 1 on rows 4..13 (warm-up 4, row 12 not finite).
    # Regression has a target on the flat row 7; row 19 is in no train window.
    assert [f.train for f in prepared.folds] == [((0, 10),), ((4, 14),)]
    outcomes = run_walkforward(prepared, small)
    assert [o.dropped for o in outcomes] == [
        {"warmup": 5, "no_target": 0, "not_finite": 0},
        {"warmup": 1, "no_target": 0, "not_finite": 1},
    ]


def test_prepare_selects_the_requested_features_in_their_order():
    prepared = prepare(*market(1500), dataclasses.replace(spec(), features=("noise", "signal")))
    assert prepared.columns == ("noise", "signal")
    assert prepared.matrix.shape == (1500, 2)


@pytest.mark.parametrize(
    "folds",
    [
        {"horizon": 5},
        {"horizon": 5, "mode": "expanding", "embargo": 7},
        {"horizon": 3, "purge": 10, "step": 450, "train": 700},
    ],
)
def test_no_training_label_reaches_into_its_test_window(folds):
    run = spec(**folds)
    prepared = prepare(*market(), run)
    for fold in prepared.folds:
        fit_rows, validation_rows, test_rows = fold_rows(prepared, run, fold.number)
        training = np.concatenate([fit_rows, validation_rows])
        assert (training + run.target.horizon < fold.test[0]).all()
        assert (np.diff(training) > 0).all() and not np.isnan(prepared.target[training]).any()
        gap = run.folds.purge_bars
        assert validation_rows.size == split_validation(training.size + gap, run.hyperparameters) > 0
        # No fitted label looks into the held-out tail that judges early stopping either.
        assert fit_rows.max() + gap < validation_rows[0]
        assert prepared.usable[test_rows].all() and set(test_rows) <= set(range(*fold.test))


def test_the_last_test_rows_get_predictions_before_their_target_is_known():
    # Test windows of 500 bars start at 1000 + purge 5, so the third one ends with the data at 2505.
    run = spec(horizon=5, test=500)
    prepared = prepare(*market(2505), run)
    assert prepared.folds[-1].test == (2005, 2505)
    outcome = train_fold(prepared, run, 2)
    assert outcome.test_rows[-5:].tolist() == [2500, 2501, 2502, 2503, 2504]
    assert np.isnan(outcome.y_true[-5:]).all() and np.isfinite(outcome.y_pred).all()


def test_thresholds_depend_only_on_the_training_period():
    run = spec()
    ts, close, indicators, lookbacks = market()
    prepared = prepare(ts, close, indicators, lookbacks, run)
    start, end = prepared.folds[1].test
    shaken = {name: values.copy() for name, values in indicators.items()}
    for values in shaken.values():
        values[start:end] = np.random.default_rng(9).normal(scale=1000, size=end - start)
    changed = prepare(ts, close, shaken, lookbacks, run)
    before, after = train_fold(prepared, run, 1), train_fold(changed, run, 1)
    assert not np.array_equal(before.y_pred, after.y_pred)
    assert before.train_period_pred.tobytes() == after.train_period_pred.tobytes()
    assert quantile_thresholds(before.train_period_pred, run.thresholds) == quantile_thresholds(
        after.train_period_pred, run.thresholds
    )


@pytest.mark.parametrize(("kind", "source"), [("regression", "validation"), ("classification", "train")])
def test_a_stored_model_gives_the_same_train_period_predictions(tmp_path, kind, source):
    run = dataclasses.replace(spec(kind), thresholds=ThresholdRule(source=source))
    prepared = prepare(*market(), run)
    outcome = train_fold(prepared, run, 2)
    fit_rows, validation_rows, _ = fold_rows(prepared, run, 2)
    assert outcome.train_period_pred.size == (validation_rows if source == "validation" else fit_rows).size
    digest = save_model(outcome.model.booster, tmp_path / "fold2.ubj")
    stored = train_period_predictions(prepared, run, 2, load_model(tmp_path / "fold2.ubj", digest))
    assert stored.tobytes() == outcome.train_period_pred.tobytes()


def test_classification_thresholds_are_taken_on_the_probability_of_class_one():
    run = spec("classification")
    outcome = train_fold(prepare(*market(), run), run, 0)
    assert (
        outcome.prob is not None and ((outcome.train_period_pred > 0) & (outcome.train_period_pred < 1)).all()
    )
    assert set(outcome.metrics) == {"log_loss", "auc", "accuracy"}


def test_a_planted_signal_is_found_in_every_fold():
    run = spec()
    outcomes = run_walkforward(prepare(*market(), run), run)
    assert [o.fold.number for o in outcomes] == [0, 1, 2, 3]
    assert all(o.metrics["ic"] > 0.3 for o in outcomes), [o.metrics["ic"] for o in outcomes]
    assert all(o.importance["signal"] > o.importance["noise"] for o in outcomes)


def test_a_planted_signal_is_found_by_classification():
    run = spec("classification")
    outcomes = run_walkforward(prepare(*market(), run), run)
    assert all(o.metrics["auc"] > 0.6 for o in outcomes), [o.metrics["auc"] for o in outcomes]


def test_a_fold_that_cannot_be_fitted_says_which():
    run = dataclasses.replace(
        spec("classification", train=10, test=4), thresholds=ThresholdRule(source="train")
    )
    one_class = np.r_[np.arange(10.0, 21.0), np.arange(21.0, 12.0, -1)]
    with pytest.raises(TrainingError, match="fold 0: classification needs both classes"):
        train_fold(prepare(SMALL[0], one_class, SMALL[2], SMALL[3], run), run, 0)
    with pytest.raises(WalkforwardError, match="fold: number 5 is not one of the 2 folds"):
        fold_rows(prepare(*SMALL, run), run, 5)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"hyperparameters": Hyperparameters(learning_rate=2.0)},
            "hyperparameters: learning_rate must be a number in (0, 1], got 2.0",
        ),
        ({"target": TargetConfig(horizon=0)}, "target: horizon must be an integer >= 1 bar, got 0"),
        ({"folds": FoldConfig(train=0, test=4)}, "folds: train must be positive, got 0"),
        (
            {"folds": FoldConfig(train=10, test=4, horizon=2)},
            "folds: horizon 2 must equal the target horizon 1",
        ),
        (
            {"thresholds": ThresholdRule(long_quantile=2)},
            "thresholds: long_quantile must be a number in (0, 1)",
        ),
        (
            {"hyperparameters": Hyperparameters(early_stopping_rounds=None)},
            "thresholds: source 'validation' needs rows held out for early stopping",
        ),
        ({"seed": -1}, "seed: must be an integer in 0..2**63-1, got -1"),
        ({"features": ("signal", 3)}, "features: must be a tuple of column names, got ('signal', 3)"),
    ],
)
def test_an_impossible_spec_is_refused_naming_the_part(change, message):
    with pytest.raises(WalkforwardError) as err:
        dataclasses.replace(spec(), **change).validate()
    assert str(err.value).startswith(message)


def test_features_the_indicator_set_lacks_are_refused():
    with pytest.raises(WalkforwardError, match=r"features: feature\(s\) \['rsi'\] are not columns"):
        prepare(*market(1500), dataclasses.replace(spec(), features=("rsi",)))


def test_a_spec_round_trips_through_canonical_json():
    original = WalkforwardSpec(
        target=TargetConfig(kind="classification", horizon=3, dead_zone=0.001),
        folds=FoldConfig(
            train=timedelta(days=30), test=timedelta(hours=12), horizon=3, embargo=2, max_folds=9
        ),
        features=("rsi_14", "atr_14"),
        hyperparameters=Hyperparameters(n_estimators=50, early_stopping_rounds=None),
        seed=42,
        thresholds=ThresholdRule(source="train", long_quantile=0.9, short_quantile=0.1),
    )
    text = original.to_json()
    assert WalkforwardSpec.from_json(text) == original
    assert WalkforwardSpec.from_json(text).to_json() == text
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
    assert (
        json.loads(text)["folds"] | {"train": "30d", "test": "12h", "step": None} == json.loads(text)["folds"]
    )


def test_equal_specs_have_the_same_hash_and_any_change_gives_another():
    base = spec()
    same = dataclasses.replace(base, target=TargetConfig(horizon=1, dead_zone=0), features=[])
    assert same == base and same.sha256() == base.sha256()
    assert dataclasses.replace(base, seed=1).sha256() != base.sha256()
    assert len(base.sha256()) == 64


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "spec: not JSON"),
        ('{"target": {}}', "spec: missing field(s) ['folds']"),
        ('{"target": {}, "folds": {"train": "1y", "test": 4}}', "folds: length '1y' is neither"),
        ('{"target": {"lag": 1}, "folds": {"train": 5, "test": 4}}', "target: unknown field(s) ['lag']"),
        ('{"target": {}, "folds": {"train": 5, "test": 4}, "features": "rsi"}', "features: expected a list"),
    ],
)
def test_json_that_is_not_a_spec_is_refused_naming_the_part(text, message):
    with pytest.raises(WalkforwardError) as err:
        WalkforwardSpec.from_json(text)
    assert str(err.value).startswith(message)


@pytest.mark.parametrize("kind", ["regression", "classification"])
def test_a_fold_trained_on_only_its_own_rows_is_the_fold_trained_on_all(tmp_path, kind):
    run = spec(kind, horizon=3, mode="sliding")
    ts, close, indicators, lookbacks = market()
    whole = prepare(ts, close, indicators, lookbacks, run)
    fold = whole.folds[2]
    first, end = fold.train[0][0], fold.test[1]
    window = {name: values[first:end] for name, values in indicators.items()}
    part = prepare(ts, close, window, lookbacks, run, first_row=first)
    assert [f.number for f in part.folds] == [f.number for f in whole.folds]
    assert not part.usable[:first].any() and not part.usable[end:].any()
    assert part.matrix.shape == (end - first, 2)
    with pytest.raises(WalkforwardError, match=f"rows {first - 1}..{first - 1} were not loaded"):
        part.features(np.array([first - 1]))
    a, b = train_fold(whole, run, 2), train_fold(part, run, 2)
    assert save_model(a.model.booster, tmp_path / "a.ubj") == save_model(b.model.booster, tmp_path / "b.ubj")
    assert a.y_pred.tobytes() == b.y_pred.tobytes() and a.test_rows.tobytes() == b.test_rows.tobytes()
    assert a.train_period_pred.tobytes() == b.train_period_pred.tobytes() and a.dropped == b.dropped


def test_feature_rows_outside_the_bars_are_refused():
    ts, close, indicators, lookbacks = market(1500)
    with pytest.raises(WalkforwardError, match="do not lie within the 1500 timestamps"):
        prepare(ts, close, {n: v[:1000] for n, v in indicators.items()}, lookbacks, spec(), first_row=600)
