"""signals_from_predictions, the parallel sweep (equal to simulate cell by cell) and the deflated Sharpe
ratio of its best cell (Bailey & López de Prado 2014)."""

import math
from dataclasses import replace

import numba
import numpy as np
import pytest
from scipy import integrate, stats

from trading_assets.compute.simulator import (
    METRIC_NAMES,
    SimConfig,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    signals_from_predictions,
    simulate,
    sweep,
)


def test_predictions_at_or_beyond_a_threshold_go_long_or_short_and_the_rest_flat():
    pred = np.array([0.5, 1.0, 0.2, -1.0, -3.0, np.nan, 0.0])
    np.testing.assert_array_equal(signals_from_predictions(pred, 1.0, -1.0), [0, 1, 0, -1, -1, 0, 0])


def test_hold_keeps_the_previous_target_in_the_dead_zone_and_nan_resets_it():
    pred = np.array([2.0, 0.0, 0.5, -2.0, 0.0, np.nan, 0.0])
    np.testing.assert_array_equal(signals_from_predictions(pred, 1.0, -1.0, "hold"), [1, 1, 1, -1, -1, 0, 0])


def test_thresholds_can_change_bar_by_bar():
    pred = np.array([0.5, 0.5, 0.5, 0.5])
    long = np.array([0.4, 0.6, np.nan, 0.6])
    short = np.array([-1.0, -1.0, -1.0, 0.5])
    np.testing.assert_array_equal(signals_from_predictions(pred, long, short), [1, 0, 0, -1])


def test_overlapping_or_misshapen_thresholds_are_errors():
    with pytest.raises(ValueError, match=r"short_threshold 2\.0 is above long_threshold 1\.0 at index 1"):
        signals_from_predictions(np.zeros(3), 1.0, np.array([0.0, 2.0, 0.0]))
    with pytest.raises(ValueError, match=r"long_threshold must be a scalar or have one value per bar \(3\)"):
        signals_from_predictions(np.zeros(3), np.ones(2), -1.0)
    with pytest.raises(ValueError, match="dead_zone must be 'flat' or 'hold'"):
        signals_from_predictions(np.zeros(3), 1.0, -1.0, "keep")


def market(seed: int, n: int = 400) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = close * np.exp(rng.normal(0, 0.004, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.006, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.006, n)))
    # Predictions that know a little of the next close-to-close move, plus noise; some missing.
    pred = np.r_[np.diff(np.log(close)), 0.0] * 50 + rng.normal(0, 1, n)
    pred[rng.random(n) < 0.02] = np.nan
    return open_, high, low, close, pred


LONGS, SHORTS = [0.3, 1.0, 2.0], [-2.0, -0.5, 0.3]
STOPS = [(None, None), (0.01, 0.03)]
CONFIG = SimConfig(fee_bps=5, slippage_bps=1, max_bars_held=8, bars_per_year=252)


def cell_config(row) -> SimConfig:
    """CONFIG with the stop levels of a sweep row (NaN = off)."""
    stop, take = row.stop_loss_pct, row.take_profit_pct
    return replace(
        CONFIG,
        stop_loss_pct=None if math.isnan(stop) else stop,
        take_profit_pct=None if math.isnan(take) else take,
    )


def same_metrics(a: dict, b: dict) -> bool:
    """Equal bit for bit, NaN equal to NaN."""
    return all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in METRIC_NAMES)


@pytest.mark.parametrize("dead_zone", ["flat", "hold"])
def test_every_sweep_cell_equals_simulate_on_that_cells_signals(dead_zone):
    *prices, pred = market(seed=1)
    table = sweep(*prices, pred, LONGS, SHORTS, CONFIG, stops=STOPS, dead_zone=dead_zone)
    assert len(table) == 3 * 3 * 2
    for row in table.itertuples(index=False):
        target = signals_from_predictions(pred, row.long_threshold, row.short_threshold, dead_zone)
        expected = simulate(*prices, target, cell_config(row)).metrics
        assert same_metrics({k: getattr(row, k) for k in METRIC_NAMES}, expected), row


def test_the_sweep_lists_cells_long_threshold_first_and_stop_pairs_last():
    *prices, pred = market(seed=2)
    table = sweep(*prices, pred, [1.0, 2.0], [-1.0, 0.5], CONFIG, stops=STOPS)
    assert table.columns.tolist()[:4] == [
        "long_threshold",
        "short_threshold",
        "stop_loss_pct",
        "take_profit_pct",
    ]
    assert table.columns.tolist()[4:] == list(METRIC_NAMES)
    assert table[["long_threshold", "short_threshold", "stop_loss_pct"]].fillna(0).values.tolist() == [
        [1.0, -1.0, 0.0], [1.0, -1.0, 0.01], [1.0, 0.5, 0.0], [1.0, 0.5, 0.01],
        [2.0, -1.0, 0.0], [2.0, -1.0, 0.01], [2.0, 0.5, 0.0], [2.0, 0.5, 0.01],
    ]  # fmt: skip
    assert table["n_trades"].dtype == np.int64


def test_the_sweep_is_bit_identical_whatever_the_thread_count():
    *prices, pred = market(seed=3)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = sweep(*prices, pred, LONGS, [-2.0, -0.5], CONFIG, stops=STOPS)
    finally:
        numba.set_num_threads(threads)
    assert one.equals(sweep(*prices, pred, LONGS, [-2.0, -0.5], CONFIG, stops=STOPS))


def test_an_overlapping_pair_or_an_invalid_stop_is_an_error():
    *prices, pred = market(seed=4, n=20)
    with pytest.raises(ValueError, match=r"short threshold 1\.5 is above long threshold 1\.0"):
        sweep(*prices, pred, [1.0], [1.5], CONFIG)
    with pytest.raises(ValueError, match=r"stop_loss_pct must be > 0\.0 and < 1\.0, got 2\.0"):
        sweep(*prices, pred, [1.0], [-1.0], CONFIG, stops=[(2.0, None)])


def test_the_best_cell_carries_its_deflated_sharpe_ratio():
    *prices, pred = market(seed=5)
    table = sweep(*prices, pred, LONGS, SHORTS, CONFIG, stops=STOPS)
    best = table.attrs["best"]
    assert best["row"] == int(table["sharpe"].idxmax())
    assert best["sharpe"] == table["sharpe"].max()
    assert best["sharpe_per_bar"] == pytest.approx(best["sharpe"] / math.sqrt(252))
    assert best["n_trials"] == len(table)
    assert best["n_obs"] == len(pred)
    per_bar = table["sharpe"].dropna() / math.sqrt(252)
    assert best["sharpe_variance"] == pytest.approx(per_bar.var(ddof=1))
    row = table.iloc[best["row"]]
    target = signals_from_predictions(pred, row.long_threshold, row.short_threshold)
    equity = simulate(*prices, target, cell_config(row)).equity
    returns = equity / np.r_[CONFIG.initial_cash, equity[:-1]] - 1
    assert best["skewness"] == pytest.approx(stats.skew(returns))
    assert best["kurtosis"] == pytest.approx(stats.kurtosis(returns, fisher=False))
    assert 0.0 <= best["deflated_sharpe_ratio"] <= 1.0


def test_expected_max_sharpe_approximates_the_mean_maximum_of_n_standard_normals():
    # E[max of N iid N(0, 1)] = integral of x * N * pdf(x) * cdf(x)^(N - 1), which the paper's
    # Euler-Mascheroni formula approximates within 3 % from N = 10 on, closer as N grows.
    for n in (10, 100, 1_000):
        exact, _ = integrate.quad(
            lambda x, n=n: x * n * stats.norm.pdf(x) * stats.norm.cdf(x) ** (n - 1), -10, 10
        )
        assert expected_max_sharpe(n, 1.0) == pytest.approx(exact, rel=0.03)
        assert expected_max_sharpe(n, 4.0) == pytest.approx(2 * expected_max_sharpe(n, 1.0))
    assert expected_max_sharpe(1, 1.0) == 0.0


def test_deflated_sharpe_ratio_reproduces_the_papers_example():
    # Bailey & López de Prado (2014), section 7: annualised SR 2.5 over 5 years of daily returns (T = 1250),
    # N = 100 trials whose annualised Sharpe ratios vary by V = 1/2, skewness -3, kurtosis 10.
    sr, variance = 2.5 / math.sqrt(250), 0.5 / 250
    sr0 = math.sqrt(variance) * (
        (1 - np.euler_gamma) * stats.norm.ppf(1 - 1 / 100)
        + np.euler_gamma * stats.norm.ppf(1 - 1 / (100 * math.e))
    )
    assert sr0 == pytest.approx(0.1132, abs=1e-4)
    direct = stats.norm.cdf((sr - sr0) * math.sqrt(1249) / math.sqrt(1 + 3 * sr + 9 / 4 * sr**2))
    dsr = deflated_sharpe_ratio(sr, 100, variance, -3.0, 10.0, 1250)
    assert dsr == pytest.approx(direct, rel=1e-9)
    assert dsr == pytest.approx(0.9004, abs=5e-4)


def test_deflated_sharpe_ratio_is_nan_without_enough_data():
    assert math.isnan(deflated_sharpe_ratio(0.1, 10, 0.01, 0.0, 3.0, 1))
    assert math.isnan(deflated_sharpe_ratio(math.nan, 10, 0.01, 0.0, 3.0, 100))
