import io

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.image import imread

from trading_assets.compute.charts import (
    _ABOVE_COLOR,
    _MAX_POINTS,
    _Buckets,
    _decile_means,
    _histogram_panels,
    _top_features,
    close_price_png,
    feature_importance_png,
    fold_metrics_png,
    histogram_grid_png,
    indicator_overlay_png,
    predicted_vs_realised_png,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
START_US = 1_735_689_600_000_000  # 2025-01-01T00:00:00Z


def bars(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One-minute timestamps and a random-walk close."""
    rng = np.random.default_rng(seed)
    ts = START_US + np.arange(n, dtype=np.int64) * 60_000_000
    return ts, 100 + np.cumsum(rng.standard_normal(n))


def sma(close: np.ndarray, window: int) -> np.ndarray:
    """A simple moving average with its warm-up as leading NaNs, as indicators produce it."""
    out = np.full(close.size, np.nan)
    if close.size >= window:
        csum = np.cumsum(np.insert(close, 0, 0.0))
        out[window - 1 :] = (csum[window:] - csum[:-window]) / window
    return out


def png_shape(png: bytes) -> tuple[int, int]:
    """(height, width) in pixels."""
    assert png.startswith(PNG_SIGNATURE)
    return imread(io.BytesIO(png), format="png").shape[:2]


@pytest.fixture(autouse=True)
def no_figure_leak():
    yield
    assert plt.get_fignums() == []


# --- bucketing


def test_buckets_cap_the_x_positions_and_keep_the_last_bar():
    buckets = _Buckets.of(1_000_000)
    assert buckets.starts.size <= _MAX_POINTS
    values = np.arange(1_000_000, dtype=np.float64)
    assert buckets.last(values)[-1] == 999_999
    low, high = buckets.envelope(values)
    assert low[0] == 0 and high[0] == buckets.step - 1


def test_short_series_are_not_bucketed():
    buckets = _Buckets.of(10)
    assert buckets.step == 1
    assert buckets.envelope(np.arange(10.0)) is None


def test_last_finite_skips_nans_and_gives_nan_for_an_all_nan_bucket():
    buckets = _Buckets.of(3 * _MAX_POINTS)  # buckets of 3 bars
    assert buckets.step == 3
    values = np.arange(3.0 * _MAX_POINTS)
    values[:4] = np.nan  # bucket 0 is all warm-up, bucket 1 has only its last bar
    values[8] = np.nan  # bucket 2 ends in a NaN
    last = buckets.last_finite(values)
    assert np.isnan(last[0])
    assert last[1] == 5
    assert last[2] == 7
    assert last[3] == 11


# --- close_price_png


def test_close_price_png_is_600x200():
    ts, close = bars(3000)
    assert png_shape(close_price_png(ts, close, "x close")) == (200, 600)


# --- indicator_overlay_png


def test_overlay_png_signature_size_and_determinism():
    ts, close = bars(3000)
    overlays = {"sma_20": sma(close, 20), "bb_upper": sma(close, 20) + 2}
    png = indicator_overlay_png(ts, close, overlays, "x sma")
    assert png_shape(png) == (250, 600)
    assert 5_000 < len(png) < 200_000
    assert indicator_overlay_png(ts, close, overlays, "x sma") == png


def test_overlay_draws_the_overlays():
    ts, close = bars(3000)
    with_overlay = indicator_overlay_png(ts, close, {"sma_20": sma(close, 20)}, "x")
    without = indicator_overlay_png(ts, close, {}, "x")
    assert with_overlay != without


def test_overlay_all_nan_and_warm_up_longer_than_the_series():
    ts, close = bars(50)
    overlays = {"dead": np.full(50, np.nan), "sma_100": sma(close, 100)}
    assert np.isnan(overlays["sma_100"]).all()
    assert png_shape(indicator_overlay_png(ts, close, overlays, "x")) == (250, 600)


def test_overlay_nans_in_the_middle_and_single_bar_and_empty():
    ts, close = bars(5000)
    gappy = sma(close, 20)
    gappy[1000:2000] = np.nan
    assert indicator_overlay_png(ts, close, {"gappy": gappy}, "x").startswith(PNG_SIGNATURE)
    ts, close = bars(1)
    assert indicator_overlay_png(ts, close, {"sma": np.full(1, np.nan)}, "x").startswith(PNG_SIGNATURE)
    ts, close = bars(0)
    assert indicator_overlay_png(ts, close, {"sma": np.empty(0)}, "x").startswith(PNG_SIGNATURE)


def test_overlay_one_million_bars():
    ts, close = bars(1_000_000)
    overlays = {"sma_200": sma(close, 200), "bb_upper": sma(close, 200) + 3}
    assert png_shape(indicator_overlay_png(ts, close, overlays, "x")) == (250, 600)


def test_overlay_of_another_length_is_rejected():
    ts, close = bars(100)
    with pytest.raises(ValueError, match="overlay 'sma' has shape"):
        indicator_overlay_png(ts, close, {"sma": np.zeros(99)}, "x")


# --- histogram panels (the data behind histogram_grid_png)


def test_panels_bin_between_the_quantiles_so_an_outlier_does_not_squash_the_rest():
    values = np.arange(1000.0)
    values[0] = -1e12
    values[5] = np.nan
    (panel,) = _histogram_panels({"x": values}, None)
    assert panel.edges.size == 41
    # 999 finite values, sorted: -1e12, 1, 2, 3, 4, 6, ..., 999 (index k >= 5 holds k + 1). The 0.5% quantile
    # rounded down is index floor(0.005 * 998) = 4, i.e. 4; the 99.5% one rounded up is index
    # ceil(0.995 * 998) = 994, i.e. 995.
    assert (panel.edges[0], panel.edges[-1]) == (4.0, 995.0)
    (counts,) = panel.heights
    # 4 and 6..995 are binned; the NaN, the outlier and the outer tails are left out.
    assert counts.sum() == 991
    assert counts.max() <= 26  # about 990 / 40 each: no bin swallows the rest


def test_panels_of_a_short_column_keep_every_value():
    (panel,) = _histogram_panels({"x": np.array([5.0, 1.0, 3.0, 2.0, 4.0])}, None)
    assert (panel.edges[0], panel.edges[-1]) == (1.0, 5.0)
    assert panel.heights[0].sum() == 5


def test_panels_with_a_split_have_two_parts_as_fractions_on_common_bins():
    values = np.concatenate([np.zeros(100), np.ones(300)]) + np.linspace(0, 0.5, 400)
    (panel,) = _histogram_panels({"x": values}, 100)
    first, second = panel.heights
    assert first.sum() == pytest.approx(1.0, abs=0.02)
    assert second.sum() == pytest.approx(1.0, abs=0.02)
    # The drift shows: the first part sits in the lower bins, the second in the upper ones.
    assert first[:20].sum() > 0.9
    assert second[20:].sum() > 0.9


def test_panels_note_constant_and_all_nan_and_empty_columns():
    columns = {
        "const": np.full(100, 2.5),
        "nan": np.full(100, np.nan),
        "inf": np.array([np.inf, -np.inf, np.nan]),
        "empty": np.empty(0),
    }
    panels = _histogram_panels(columns, 50)
    assert [p.name for p in panels] == ["const", "nan", "inf", "empty"]
    assert [p.note for p in panels] == [
        "constant 2.5",
        "no finite values",
        "no finite values",
        "no finite values",
    ]
    assert all(p.edges is None and p.heights == () for p in panels)


def test_panels_nearly_constant_column_falls_back_to_the_full_range():
    values = np.zeros(10_000)
    values[0] = 1.0
    (panel,) = _histogram_panels({"x": values}, None)
    assert (panel.edges[0], panel.edges[-1]) == (0.0, 1.0)
    assert panel.heights[0].sum() == 10_000


def test_panels_with_a_split_where_one_part_has_no_finite_values():
    values = np.concatenate([np.full(10, np.nan), np.arange(10.0)])
    (panel,) = _histogram_panels({"x": values}, 10)
    first, second = panel.heights
    assert first.sum() == 0
    assert second.sum() == pytest.approx(1.0)


# --- histogram_grid_png


def columns(k: int, n: int = 2000) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {f"f{i}": rng.standard_normal(n) * (i + 1) for i in range(k)}


def test_grid_png_signature_size_and_determinism():
    cols = columns(6)
    png = histogram_grid_png(cols)
    height, width = png_shape(png)
    assert width == 800
    assert 2 * 160 <= height < 3 * 160  # two rows of four
    assert histogram_grid_png(cols) == png
    split = histogram_grid_png(cols, split=1000)
    assert histogram_grid_png(cols, split=1000) == split
    assert split != png


def test_grid_height_is_capped():
    height_40, _ = png_shape(histogram_grid_png(columns(40, 200)))
    height_48, _ = png_shape(histogram_grid_png(columns(48, 200)))
    assert height_40 == height_48
    assert height_40 < 1800


def test_grid_labels_change_the_picture():
    cols = columns(2)
    default = histogram_grid_png(cols, split=1000)
    assert histogram_grid_png(cols, split=1000, labels=("train", "test")) != default


def test_grid_with_nan_constant_empty_and_no_columns():
    cols = columns(3)
    cols["f0"][:500] = np.nan
    cols["const"] = np.full(2000, 7.0)
    cols["nan"] = np.full(2000, np.nan)
    cols["empty"] = np.empty(0)
    for split in (None, 1000, 0):
        assert histogram_grid_png(cols, split=split).startswith(PNG_SIGNATURE)
    assert histogram_grid_png({}).startswith(PNG_SIGNATURE)
    assert histogram_grid_png({}, split=0).startswith(PNG_SIGNATURE)


# --- walkforward charts: a run of 12 folds and 500k out-of-sample rows stays under this many bytes each
WALKFORWARD_PNG_BYTES = 150_000


def fold_scores(n: int = 12, seed: int = 2) -> tuple[list[int], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return list(range(n)), rng.normal(0.03, 0.04, n), rng.normal(0.51, 0.02, n)


def bar_runs(png: bytes, color: str) -> int:
    """How many separate runs of pixel columns hold the colour `color` (#rrggbb): bars side by side."""
    rgb = np.array([int(color[i : i + 2], 16) for i in (1, 3, 5)]) / 255
    image = imread(io.BytesIO(png), format="png")[..., :3]
    columns = np.isclose(image, rgb, atol=1 / 255).all(axis=-1).any(axis=0)
    return int(np.count_nonzero(np.diff(columns.astype(np.int8)) == 1) + columns[0])


# --- fold_metrics_png


def test_fold_metrics_png_signature_size_and_determinism():
    folds, ic, hit = fold_scores()
    png = fold_metrics_png(folds, ic, hit, "run 1")
    assert png_shape(png) == (450, 800)
    assert len(png) < WALKFORWARD_PNG_BYTES
    assert fold_metrics_png(folds, ic, hit, "run 1") == png


def test_fold_metrics_draws_one_bar_per_finite_fold_and_a_gap_for_nan():
    folds = list(range(12))
    ic = np.full(12, 0.05)
    assert bar_runs(fold_metrics_png(folds, ic, np.full(12, 0.5), "x"), _ABOVE_COLOR) == 12
    ic[5] = np.nan
    assert bar_runs(fold_metrics_png(folds, ic, np.full(12, 0.5), "x"), _ABOVE_COLOR) == 11


def test_fold_metrics_labels_and_baseline_change_the_picture():
    folds, ic, hit = fold_scores()
    auc = 0.5 + ic
    default = fold_metrics_png(folds, auc, hit, "x")
    labelled = fold_metrics_png(folds, auc, hit, "x", ic_label="AUC", hit_label="accuracy")
    assert labelled != default
    assert (
        fold_metrics_png(folds, auc, hit, "x", ic_label="AUC", hit_label="accuracy", ic_baseline=0.5)
        != labelled
    )


def test_fold_metrics_all_nan_single_empty_and_many_folds():
    nan = np.full(12, np.nan)
    assert png_shape(fold_metrics_png(list(range(12)), nan, nan, "x")) == (450, 800)
    assert png_shape(fold_metrics_png([7], [0.1], [np.nan], "x")) == (450, 800)
    assert png_shape(fold_metrics_png([], [], [], "x")) == (450, 800)
    folds, ic, hit = fold_scores(300)
    assert png_shape(fold_metrics_png(folds, ic, hit, "x")) == (450, 800)


def test_fold_metrics_of_lengths_that_differ_are_rejected():
    with pytest.raises(ValueError, match="differ in length: 3, 2, 3"):
        fold_metrics_png([0, 1, 2], [0.1, 0.2], [0.5, 0.5, 0.5], "x")


# --- decile means (the curve in predicted_vs_realised_png)


def test_decile_means_of_100_distinct_predictions_are_ten_groups_of_ten():
    pred = np.arange(100.0)
    mean_pred, mean_true = _decile_means(pred[::-1], 2 * pred[::-1])  # order of rows does not matter
    np.testing.assert_allclose(mean_pred, np.arange(10) * 10 + 4.5)
    np.testing.assert_allclose(mean_true, np.arange(10) * 20 + 9.0)


def test_decile_means_keep_tied_predictions_together():
    pred = np.repeat([0.0, 1.0], 50)
    true = np.repeat([1.0, 3.0], 50)
    mean_pred, mean_true = _decile_means(pred, true)
    np.testing.assert_array_equal(mean_pred, [0.0, 1.0])
    np.testing.assert_array_equal(mean_true, [1.0, 3.0])
    # A few rows below a heavy tie: they form their own decile rather than vanish into it.
    mean_pred, _ = _decile_means(np.repeat([0.0, 1.0], [5, 95]), np.zeros(100))
    np.testing.assert_array_equal(mean_pred, [0.0, 1.0])


def test_decile_means_of_a_constant_prediction_is_one_point():
    mean_pred, mean_true = _decile_means(np.full(4, 0.2), np.array([1.0, 2.0, 3.0, 6.0]))
    np.testing.assert_allclose(mean_pred, [0.2])
    np.testing.assert_allclose(mean_true, [3.0])


def test_decile_means_have_no_empty_decile_under_heavy_ties():
    rng = np.random.default_rng(3)
    for levels in (2, 3, 7, 50):
        mean_pred, mean_true = _decile_means(rng.integers(0, levels, 1000).astype(float), rng.random(1000))
        assert np.isfinite(mean_true).all()
        assert np.all(np.diff(mean_pred) > 0)


# --- predicted_vs_realised_png


def returns(n: int, seed: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Predicted returns and realised ones that follow them a little, with a lot of noise."""
    rng = np.random.default_rng(seed)
    pred = rng.standard_normal(n) * 0.001
    return pred, 0.1 * pred + rng.standard_normal(n) * 0.003


def test_predicted_vs_realised_png_of_500k_rows_size_and_determinism():
    pred, true = returns(500_000)
    pred[:100] = np.nan
    true[100:200] = np.inf
    png = predicted_vs_realised_png(pred, true, "run 1")
    assert png_shape(png) == (450, 800)
    assert len(png) < WALKFORWARD_PNG_BYTES
    assert predicted_vs_realised_png(pred, true, "run 1") == png


def test_predicted_vs_realised_empty_all_nan_single_and_constant():
    pred, true = returns(1000)
    cases = {
        "no rows": (np.empty(0), np.empty(0)),
        "all NaN": (np.full(10, np.nan), np.zeros(10)),
        "one row": (np.array([0.1]), np.array([0.2])),
        "constant prediction": (np.full(1000, 0.2), true),
        "constant both": (np.full(1000, 0.2), np.full(1000, -1.0)),
        "binary outcome": (np.abs(pred), (true > 0).astype(float)),
    }
    for name, (p, t) in cases.items():
        assert png_shape(predicted_vs_realised_png(p, t, name)) == (450, 800), name


def test_predicted_vs_realised_of_shapes_that_differ_are_rejected():
    with pytest.raises(ValueError, match="y_pred has shape"):
        predicted_vs_realised_png(np.zeros(3), np.zeros(4), "x")


# --- top features (the data behind feature_importance_png)


def test_top_features_are_largest_first_with_ties_in_order_and_nan_last():
    importance = {"a": 1.0, "b": 3.0, "c": 2.0, "d": np.nan, "e": 2.0, "f": -0.5}
    names, values, left_out = _top_features(importance, 3)
    assert names == ["b", "c", "e"]
    np.testing.assert_array_equal(values, [3.0, 2.0, 2.0])
    assert left_out == 3
    names, _, left_out = _top_features(importance, 20)
    assert names == ["b", "c", "e", "a", "f", "d"]
    assert left_out == 0


# --- feature_importance_png


def importances(n: int) -> dict[str, float]:
    rng = np.random.default_rng(5)
    return {f"feature_{i}": float(v) for i, v in enumerate(rng.exponential(1.0, n))}


def test_feature_importance_png_is_800_wide_grows_with_bars_and_is_deterministic():
    png = feature_importance_png(importances(20), "run 1")
    height, width = png_shape(png)
    assert width == 800
    assert height > png_shape(feature_importance_png(importances(5), "run 1"))[0]
    assert feature_importance_png(importances(20), "run 1") == png


def test_feature_importance_is_cut_to_top_and_says_so():
    capped = feature_importance_png(importances(500), "x", top=20)
    assert png_shape(capped) == png_shape(feature_importance_png(importances(20), "x", top=20))
    assert len(capped) < WALKFORWARD_PNG_BYTES
    # 21 features cut to 20 differ from the same 20 alone only by the subtitle naming the one left out.
    twenty = dict(list(importances(21).items())[:20])
    cut = {**twenty, "least": -1.0}
    assert feature_importance_png(cut, "x", top=20) != feature_importance_png(twenty, "x", top=20)


def test_feature_importance_empty_negative_nan_and_long_names():
    assert png_shape(feature_importance_png({}, "x"))[1] == 800
    odd = {"neg": -0.3, "nan": np.nan, "zero": 0.0, "n" * 200: 1.0}
    assert png_shape(feature_importance_png(odd, "x"))[1] == 800


def test_feature_importance_top_below_one_is_rejected():
    with pytest.raises(ValueError, match="top must be at least 1"):
        feature_importance_png({"a": 1.0}, "x", top=0)
