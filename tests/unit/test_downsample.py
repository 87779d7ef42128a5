"""Server-side downsampling for charts, against a plain per-bucket reference."""

import math

import numpy as np
import pytest

from trading_assets.compute.downsample import downsample


def reference(ts, values, points):
    n = len(ts)
    step = max(1, math.ceil(n / points))
    out = []
    for start in range(0, n, step):
        bucket = [v for v in values[start : start + step] if math.isfinite(v)]
        out.append(
            (
                ts[start],
                min(bucket) if bucket else math.nan,
                max(bucket) if bucket else math.nan,
                bucket[-1] if bucket else math.nan,
            )
        )
    return step, out


@pytest.mark.parametrize(("n", "points"), [(0, 5), (1, 5), (7, 7), (7, 8), (10, 3), (1000, 37), (999, 1000)])
def test_buckets_hold_their_lowest_highest_and_last_finite_value(n, points):
    rng = np.random.default_rng(n)
    ts = np.arange(n, dtype=np.int64) * 60_000_000
    values = rng.standard_normal(n)
    values[rng.random(n) < 0.2] = np.nan
    values[rng.random(n) < 0.05] = np.inf
    result = downsample(ts, {"x": values}, points)
    step, expected = reference(ts.tolist(), values.tolist(), points)
    assert result.step == step and len(result.ts_us) == len(expected) <= max(points, 0)
    got = list(zip(result.ts_us.tolist(), result.low["x"], result.high["x"], result.last["x"], strict=True))
    for (t, lo, hi, la), (et, elo, ehi, ela) in zip(got, expected, strict=True):
        assert t == et
        for a, b in ((lo, elo), (hi, ehi), (la, ela)):
            assert (math.isnan(a) and math.isnan(b)) or a == b


def test_a_spike_survives_any_zoom():
    values = np.zeros(1_000_000)
    values[654_321] = 9.0
    result = downsample(np.arange(values.size), {"x": values}, 500)
    assert result.high["x"].max() == 9.0 and len(result.ts_us) == 500


def test_bad_shapes_and_points_are_refused():
    with pytest.raises(ValueError, match="points"):
        downsample(np.arange(3), {"x": np.zeros(3)}, 0)
    with pytest.raises(ValueError, match="column 'x'"):
        downsample(np.arange(3), {"x": np.zeros(4)}, 2)


def test_halves_histograms_count_each_half_in_shared_bins():
    from trading_assets.compute.downsample import halves_histogram

    rng = np.random.default_rng(3)
    values = np.concatenate([rng.normal(0, 1, 5000), rng.normal(1, 1, 5000)])
    values[::97] = np.nan
    h = halves_histogram(values, 20)
    assert h.edges.size == 21 and h.early.sum() + h.late.sum() == np.isfinite(values).sum()
    # Every finite value of a half lands in one bin, clipped into the end bins: by hand for a few.
    early = np.clip(values[:5000][np.isfinite(values[:5000])], h.edges[0], h.edges[-1])
    assert h.early[0] == np.sum(early < h.edges[1])
    assert np.argmax(h.late) > np.argmax(h.early)  # the late half drifted up
    assert halves_histogram(np.full(4, np.nan), 5) is None
    constant = halves_histogram(np.ones(10), 4)
    assert constant.early.sum() == 5 and constant.late.sum() == 5
