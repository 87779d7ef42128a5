"""Fold models: time-ordered early stopping, reproducible fits, stored models that predict the same."""

import dataclasses
import hashlib

import numpy as np
import pytest
import xgboost

from trading_assets.compute.training import (
    FoldModel,
    Hyperparameters,
    TrainingError,
    _cuda_probe,
    cuda_available,
    feature_importance,
    fit,
    load_model,
    predict,
    resolve_device,
    save_model,
    split_validation,
)

COLUMNS = ("signal", "noise", "flat")
QUICK = Hyperparameters(n_estimators=40, max_depth=3, learning_rate=0.2, early_stopping_rounds=5)


def data(n: int = 600, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Features (signal, noise, a constant) and a target that follows the signal, plus noise."""
    rng = np.random.default_rng(seed)
    signal, noise = rng.normal(size=n), rng.normal(size=n)
    features = np.column_stack([signal, noise, np.ones(n)])
    return features, signal + 0.5 * rng.normal(size=n)


def trees(model: FoldModel) -> list[str]:
    return model.booster.get_dump(with_stats=True)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"n_estimators": 0}, "n_estimators must be an integer >= 1, got 0"),
        ({"max_depth": 21}, "max_depth must be an integer in 1..20, got 21"),
        ({"max_depth": True}, "max_depth must be an integer in 1..20, got True"),
        ({"learning_rate": 0.0}, "learning_rate must be a number in (0, 1], got 0.0"),
        ({"subsample": 1.5}, "subsample must be a number in (0, 1], got 1.5"),
        ({"colsample_bytree": float("nan")}, "colsample_bytree must be a number in (0, 1], got nan"),
        ({"reg_alpha": -1.0}, "reg_alpha must be a finite number >= 0, got -1.0"),
        ({"early_stopping_rounds": 0}, "early_stopping_rounds must be an integer >= 1, got 0"),
        ({"validation_fraction": 0.6}, "validation_fraction must be a number in [0, 0.5], got 0.6"),
    ],
)
def test_hyperparameters_out_of_range_are_refused_naming_field_and_value(change, message):
    with pytest.raises(TrainingError) as err:
        dataclasses.replace(Hyperparameters(), **change).validate()
    assert str(err.value) == message


def test_hyperparameters_serialise_real_values_as_floats():
    assert Hyperparameters(min_child_weight=1, reg_alpha=0).to_dict() == Hyperparameters().to_dict()
    assert Hyperparameters().to_dict()["early_stopping_rounds"] == 30


@pytest.mark.parametrize(
    ("n_rows", "hp", "held_out"),
    [
        (100, Hyperparameters(validation_fraction=0.2), 20),
        (100, Hyperparameters(validation_fraction=0.29), 29),
        (9, Hyperparameters(validation_fraction=0.2), 1),
        (4, Hyperparameters(validation_fraction=0.2), 0),
        (100, Hyperparameters(early_stopping_rounds=None), 0),
        (100, Hyperparameters(validation_fraction=0.0), 0),
    ],
)
def test_the_held_out_rows_are_the_fraction_rounded_down_and_none_without_early_stopping(
    n_rows, hp, held_out
):
    assert split_validation(n_rows, hp) == held_out


def test_fit_holds_out_the_last_fifth_for_early_stopping():
    features, target = data(600)
    model = fit(features, target, "regression", QUICK, seed=0)
    assert (model.fit_rows, model.validation_rows) == (480, 120)
    assert model.best_iteration == int(model.booster.attr("best_iteration"))
    assert model.device == "cpu" and model.seconds > 0


def test_the_trees_are_those_of_a_fit_on_the_first_rows_alone():
    # Early stopping only decides how many trees to keep: every tree is the one a fit without early
    # stopping grows from the first 480 rows (the held-out 120 never enter a tree).
    features, target = data(600)
    model = fit(features, target, "regression", QUICK, seed=0)
    rounds = model.booster.num_boosted_rounds()
    head = dataclasses.replace(QUICK, n_estimators=rounds, early_stopping_rounds=None)
    assert trees(fit(features[:480], target[:480], "regression", head, seed=0)) == trees(model)


def test_garbage_in_the_held_out_rows_leaves_the_trees_unchanged():
    features, target = data(600)
    spoiled_features, spoiled_target = features.copy(), target.copy()
    spoiled_features[480:] = 1e6
    spoiled_target[480:] = -1e6
    clean, spoiled = (
        trees(fit(x, y, "regression", QUICK, seed=0))
        for x, y in ((features, target), (spoiled_features, spoiled_target))
    )
    common = min(len(clean), len(spoiled))
    assert common > 0 and clean[:common] == spoiled[:common]


def test_early_stopping_is_decided_by_the_last_rows_in_time_order():
    # The last 120 rows have the signal reversed: any tree that learns the signal makes them worse, so
    # the first tree is the best. Had the held-out rows been drawn at random, the signal would help.
    features, target = data(600)
    reversed_tail = target.copy()
    reversed_tail[480:] = -3 * features[480:, 0]
    assert fit(features, target, "regression", QUICK, seed=0).best_iteration > 5
    assert fit(features, reversed_tail, "regression", QUICK, seed=0).best_iteration == 0


def test_the_model_keeps_exactly_the_trees_up_to_the_best_iteration():
    features, target = data(600)
    model = fit(features, target, "regression", QUICK, seed=0, columns=COLUMNS)
    assert model.best_iteration + 1 < QUICK.n_estimators  # early stopping did stop
    assert model.booster.num_boosted_rounds() == model.best_iteration + 1
    # The same first trees as a model trained for exactly that many rounds on the same rows.
    rounds = dataclasses.replace(QUICK, n_estimators=model.best_iteration + 1, early_stopping_rounds=None)
    alone = fit(features[:480], target[:480], "regression", rounds, seed=0, columns=COLUMNS)
    np.testing.assert_array_equal(
        predict(model.booster, features, "regression")[0], predict(alone.booster, features, "regression")[0]
    )
    assert feature_importance(model.booster, COLUMNS) == feature_importance(alone.booster, COLUMNS)


def test_without_early_stopping_every_tree_is_used():
    features, target = data(300)
    hp = dataclasses.replace(QUICK, n_estimators=12, early_stopping_rounds=None)
    model = fit(features, target, "regression", hp, seed=0)
    assert (model.best_iteration, model.fit_rows, model.validation_rows) == (11, 300, 0)


def test_classification_predicts_class_one_when_its_probability_is_at_least_a_half():
    features, target = data(600)
    labels = (target > 0).astype(np.float64)
    model = fit(features, labels, "classification", QUICK, seed=0)
    classes, prob = predict(model.booster, features, "classification")
    assert prob is not None and prob.dtype == np.float64 and ((prob >= 0) & (prob <= 1)).all()
    np.testing.assert_array_equal(classes, (prob >= 0.5).astype(np.float64))
    assert set(np.unique(classes)) == {0.0, 1.0}
    assert np.mean(classes[480:] == labels[480:]) > 0.75


@pytest.mark.parametrize(
    ("features", "target", "kind", "message"),
    [
        (np.ones((10, 2)), np.ones(9), "regression", "got shapes (10, 2) and (9,)"),
        (np.full((10, 2), np.nan), np.ones(10), "regression", "features have 20 non-finite value(s)"),
        (np.ones((10, 2)), np.r_[np.inf, np.ones(9)], "regression", "target has 1 non-finite value(s)"),
        (np.ones((10, 2)), np.full(10, 2.0), "classification", "target must be 0 or 1, got values [2.]"),
        (np.ones((10, 2)), np.r_[np.ones(8), 0, 0], "classification", "both classes in the fitted rows"),
        (
            np.ones((2, 2)),
            np.ones(2),
            "regression",
            "need at least 2 rows to fit, got 1 (2 rows, 1 held out)",
        ),
        (np.ones((10, 2)), np.ones(10), "ranking", "kind must be 'regression' or 'classification'"),
    ],
)
def test_inputs_that_cannot_be_fitted_are_refused_with_the_reason(features, target, kind, message):
    hp = dataclasses.replace(QUICK, validation_fraction=0.5)
    with pytest.raises(TrainingError) as err:
        fit(features, target, kind, hp, seed=0)
    assert message in str(err.value)


def test_the_same_inputs_and_seed_give_the_same_bits(tmp_path):
    features, target = data(600)
    first, second = (fit(features, target, "regression", QUICK, seed=7) for _ in range(2))
    assert predict(first.booster, features, "regression")[0].tobytes() == (
        predict(second.booster, features, "regression")[0].tobytes()
    )
    assert save_model(first.booster, tmp_path / "a.ubj") == save_model(second.booster, tmp_path / "b.ubj")


def test_the_thread_count_does_not_change_the_saved_model(tmp_path):
    # From about 40,000 held-out rows the validation score, summed in parallel, differs in its last digit
    # between 1 and 2 threads; the trees do not, and the score is not kept in the model.
    features, target = data(200_000)
    models = [fit(features, target, "regression", QUICK, seed=7, nthread=n) for n in (1, 2)]
    digests = {save_model(model.booster, tmp_path / f"{i}.ubj") for i, model in enumerate(models)}
    assert len(digests) == 1
    assert models[0].booster.attributes() == {"best_iteration": str(models[0].best_iteration)}


def test_the_seed_drives_row_and_column_sampling():
    features, target = data(600)
    assert trees(fit(features, target, "regression", QUICK, seed=1)) != trees(
        fit(features, target, "regression", QUICK, seed=2)
    )


@pytest.mark.parametrize("suffix", [".ubj", ".json"])
def test_a_saved_model_loads_back_with_its_best_iteration_and_predicts_the_same_bits(tmp_path, suffix):
    features, target = data(600)
    model = fit(features, (target > 0).astype(float), "classification", QUICK, seed=0, columns=COLUMNS)
    path = tmp_path / "runs" / "fold0" / f"model{suffix}"
    digest = save_model(model.booster, path)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    loaded = load_model(path, expected_sha256=digest)
    assert int(loaded.attr("best_iteration")) == model.best_iteration == loaded.num_boosted_rounds() - 1
    assert loaded.feature_names == list(COLUMNS)
    for mine, theirs in zip(
        predict(model.booster, features, "classification"),
        predict(loaded, features, "classification"),
        strict=True,
    ):
        assert mine.tobytes() == theirs.tobytes()


def test_a_model_whose_bytes_changed_is_refused_naming_the_path_and_both_hashes(tmp_path):
    features, target = data(300)
    path = tmp_path / "model.ubj"
    digest = save_model(fit(features, target, "regression", QUICK, seed=0).booster, path)
    raw = bytearray(path.read_bytes())
    raw[-10] ^= 0xFF
    path.write_bytes(bytes(raw))
    actual = hashlib.sha256(bytes(raw)).hexdigest()
    with pytest.raises(TrainingError) as err:
        load_model(path, expected_sha256=digest)
    assert str(err.value) == f"model {path} has sha256 {actual}, expected {digest}"


def test_a_model_is_saved_only_as_ubj_or_json(tmp_path):
    features, target = data(300)
    with pytest.raises(TrainingError, match=r"model\.bin must end in \.ubj or \.json"):
        save_model(fit(features, target, "regression", QUICK, seed=0).booster, tmp_path / "model.bin")


def test_importance_is_each_columns_share_of_the_total_gain():
    features, target = data(600)
    model = fit(features, target, "regression", QUICK, seed=0, columns=COLUMNS)
    importance = feature_importance(model.booster, COLUMNS)
    assert list(importance) == list(COLUMNS)
    assert importance["flat"] == 0.0
    assert importance["signal"] > importance["noise"] > 0
    assert sum(importance.values()) == pytest.approx(1.0)


def test_importance_is_all_zero_when_no_tree_splits():
    features = np.ones((50, 3))
    model = fit(features, np.arange(50.0), "regression", QUICK, seed=0, columns=COLUMNS)
    assert feature_importance(model.booster, COLUMNS) == dict.fromkeys(COLUMNS, 0.0)


def test_importance_refuses_columns_the_model_was_not_fitted_on():
    features, target = data(300)
    model = fit(features, target, "regression", QUICK, seed=0, columns=COLUMNS)
    with pytest.raises(TrainingError, match=r"columns \['a', 'b', 'c'\] do not match the model's features"):
        feature_importance(model.booster, ["a", "b", "c"])


def test_cpu_is_always_a_device_and_unknown_devices_are_refused():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if cuda_available()[0] else "cpu")
    with pytest.raises(TrainingError, match="device must be 'auto', 'cpu' or 'cuda', got 'gpu'"):
        resolve_device("gpu")


def test_asking_for_cuda_without_it_says_why():
    available, reason = cuda_available()
    if available:
        pytest.skip("CUDA is available here")
    assert reason
    with pytest.raises(TrainingError) as err:
        resolve_device("cuda")
    assert str(err.value) == f"device 'cuda' was requested but cannot be used: {reason}"


def test_the_cuda_probe_sees_a_fallback_to_the_cpu():
    if cuda_available()[0]:
        pytest.skip("CUDA is available here")
    if not xgboost.build_info()["USE_CUDA"]:
        pytest.skip("this XGBoost was built without CUDA, so it cannot even try")
    available, reason = _cuda_probe()
    assert not available and reason.startswith("a test fit on cuda ran on 'cpu': ")


def test_a_fit_on_cuda_predicts_about_what_the_cpu_fit_does():
    available, reason = cuda_available()
    if not available:
        pytest.skip(f"no CUDA: {reason}")
    features, target = data(2000)
    hp = dataclasses.replace(QUICK, subsample=1.0, colsample_bytree=1.0, early_stopping_rounds=None)
    on_gpu = fit(features, target, "regression", hp, seed=0, device="cuda")
    on_cpu = fit(features, target, "regression", hp, seed=0, device="cpu")
    assert on_gpu.device == "cuda"
    np.testing.assert_allclose(
        predict(on_gpu.booster, features, "regression")[0],
        predict(on_cpu.booster, features, "regression")[0],
        atol=0.05,
    )
