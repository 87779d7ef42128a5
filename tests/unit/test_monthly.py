"""Monthly returns of an equity curve against pandas' month-end resampling."""

import math

import numpy as np
import pandas as pd
import pytest

from trading_assets.compute.monthly import monthly_returns


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_monthly_returns_equal_pandas_month_end_resampling(seed):
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2023-11-20", periods=4000, freq="3h", tz="UTC")
    ts = ts[np.sort(rng.choice(ts.size, 3000, replace=False))]  # with gaps
    equity = 1000 * np.exp(np.cumsum(rng.normal(0, 0.01, ts.size)))
    got = monthly_returns(ts.as_unit("us").asi8, equity, 1000.0)
    series = pd.Series(equity, index=ts).resample("ME").last().dropna()
    expected = series / pd.concat([pd.Series([1000.0]), series.iloc[:-1]]).to_numpy() - 1
    assert [(y, m) for y, m, _ in got] == [(t.year, t.month) for t in expected.index]
    assert np.allclose([r for _, _, r in got], expected.to_numpy(), rtol=0, atol=1e-15)


def test_a_ruined_month_has_no_return_after_it():
    ts = np.array(["2024-01-05", "2024-02-05", "2024-03-05"], dtype="datetime64[us]").astype(np.int64)
    got = monthly_returns(ts, np.array([50.0, 0.0, 10.0]), 100.0)
    assert got[0] == (2024, 1, -0.5) and got[1] == (2024, 2, -1.0)
    assert got[2][:2] == (2024, 3) and math.isnan(got[2][2])
    assert monthly_returns(np.array([], dtype=np.int64), np.array([]), 1.0) == []
