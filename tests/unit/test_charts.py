import io

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.image import imread

from trading_assets.compute.charts import (
    _MAX_POINTS,
    _Buckets,
    _histogram_panels,
    close_price_png,
    histogram_grid_png,
    indicator_overlay_png,
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
