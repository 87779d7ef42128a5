"""The metrics follow the formulas in docs/metrics.md: hand-worked on a few bars, and recomputed with
numpy/pandas from the stored series and trades on random runs."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from trading_assets.compute.simulator import METRIC_NAMES, SimConfig, simulate

TEN_UNITS = {"sizing": "units", "units": 10.0, "fill": "close", "bars_per_year": 4.0}


def closes(values: list[float], target: list[float], **config) -> dict:
    """Metrics of bars whose open, high, low and close are all `values[i]`; without fees unless set."""
    prices = np.array(values, dtype=float)
    return simulate(
        prices, prices, prices, prices, np.array(target, dtype=float), SimConfig(**{"fee_bps": 0.0, **config})
    ).metrics


def test_metrics_worked_by_hand():
    # Long 10 at 100 (bar 0) to 110 (bar 2): +100. Short 10 at 110 (bar 2) to 120 (bar 4): -100.
    # Equity 10_000, 10_050, 10_100, 10_050, 10_000: returns 0, .005, ~.004975, ~-.00495, ~-.004975.
    m = closes([100, 105, 110, 115, 120], [1, 1, -1, -1, -1], **TEN_UNITS)
    equity = np.array([10_000, 10_050, 10_100, 10_050, 10_000])
    r = equity / np.r_[10_000, equity[:-1]] - 1
    assert m["total_return"] == 0.0
    assert m["cagr"] == 0.0
    assert m["max_drawdown"] == pytest.approx(100 / 10_100)
    assert m["max_drawdown_duration"] == 2
    assert m["calmar"] == 0.0
    assert m["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * 2)
    assert m["sortino"] == pytest.approx(r.mean() / math.sqrt((r[r < 0] ** 2).sum() / 5) * 2)
    assert (m["n_trades"], m["win_rate"], m["profit_factor"]) == (2, 0.5, pytest.approx(1.0))
    assert m["avg_win"] == pytest.approx(100 / 1000)
    assert m["avg_loss"] == pytest.approx(-100 / 1100)
    assert (m["best_trade"], m["worst_trade"]) == (m["avg_win"], m["avg_loss"])
    assert m["expectancy"] == pytest.approx((0.1 - 1 / 11) / 2)
    assert m["exposure"] == 0.8  # bar 4 closes flat: the end of data closed the short
    assert m["sqn"] == 0.0  # mean pnl 0


def test_cagr_compounds_the_total_growth_over_the_years_the_bars_span():
    m = closes([100, 100, 121, 121], [1, 1, 1, 1], **(TEN_UNITS | {"bars_per_year": 2.0}))
    growth = (10_000 + 210) / 10_000
    assert m["cagr"] == pytest.approx(growth**0.5 - 1)


def test_with_no_trades_trade_metrics_are_nan_and_return_metrics_flat():
    m = closes([100, 101, 99, 100], [0, 0, 0, 0], **TEN_UNITS)
    assert (m["n_trades"], m["total_return"], m["max_drawdown"], m["exposure"]) == (0, 0.0, 0.0, 0.0)
    assert m["volatility_ann"] == 0.0
    undefined = ["sharpe", "sortino", "calmar", "win_rate", "profit_factor", "expectancy"]
    undefined += ["avg_win", "avg_loss", "best_trade", "worst_trade", "sqn"]
    assert all(math.isnan(m[name]) for name in undefined)


def test_only_winning_trades_leave_profit_factor_and_avg_loss_undefined():
    m = closes([100, 110, 110, 120, 130], [1, 0, 1, 1, 0], **TEN_UNITS)
    assert (m["n_trades"], m["win_rate"]) == (2, 1.0)
    assert math.isnan(m["profit_factor"]) and math.isnan(m["avg_loss"])


def test_return_metrics_are_nan_once_equity_has_gone_below_zero():
    # Short 10 at 100, then 1_200: equity 11_000 - 12_000 = -1_000.
    m = closes([100, 100, 1_200, 1_200], [-1, -1, -1, -1], **TEN_UNITS)
    assert m["total_return"] == pytest.approx(-1.1)
    assert m["cagr"] == -1.0
    assert m["max_drawdown"] == pytest.approx(1.1)
    assert math.isnan(m["sharpe"]) and math.isnan(m["volatility_ann"]) and math.isnan(m["sortino"])


def test_metrics_are_plain_json_safe_python_numbers_in_the_documented_order():
    m = closes([100, 101, 102], [1, 0, 0], **TEN_UNITS)
    assert tuple(m) == METRIC_NAMES
    assert all(
        type(v) is (int if k in ("n_trades", "max_drawdown_duration") else float) for k, v in m.items()
    )
    json.dumps(m)


def numpy_metrics(equity: np.ndarray, drawdown: np.ndarray, position: np.ndarray, trades, config) -> dict:
    """docs/metrics.md, written with numpy and pandas."""
    B = config.bars_per_year
    r = pd.Series(equity).pct_change().fillna(equity[0] / config.initial_cash - 1).to_numpy()
    longest = run = 0
    for under in drawdown < 0:
        run = run + 1 if under else 0
        longest = max(longest, run)
    pnl, ret = trades["pnl"], trades["return_pct"]
    cagr = (equity[-1] / config.initial_cash) ** (B / equity.size) - 1
    return {
        "total_return": equity[-1] / config.initial_cash - 1,
        "cagr": cagr,
        "volatility_ann": r.std(ddof=1) * math.sqrt(B),
        "sharpe": r.mean() / r.std(ddof=1) * math.sqrt(B),
        "sortino": r.mean() / math.sqrt(np.mean(np.minimum(r, 0) ** 2)) * math.sqrt(B),
        "calmar": cagr / -drawdown.min(),
        "max_drawdown": -drawdown.min(),
        "max_drawdown_duration": longest,
        "win_rate": (pnl > 0).mean(),
        "profit_factor": pnl[pnl > 0].sum() / -pnl[pnl < 0].sum(),
        "expectancy": ret.mean(),
        "avg_win": ret[pnl > 0].mean(),
        "avg_loss": ret[pnl < 0].mean(),
        "best_trade": ret.max(),
        "worst_trade": ret.min(),
        "exposure": (position != 0).mean(),
        "n_trades": len(trades),
        "sqn": math.sqrt(len(trades)) * pnl.mean() / pnl.std(ddof=1),
    }


@pytest.mark.parametrize("seed", range(10))
def test_metrics_match_a_numpy_recomputation_from_the_series_and_trades(seed):
    rng = np.random.default_rng(seed)
    n = 500
    close = 100 * np.exp(np.cumsum(rng.normal(0.0002, 0.01, n)))
    open_ = close * np.exp(rng.normal(0, 0.003, n))
    high, low = np.maximum(open_, close) * 1.004, np.minimum(open_, close) * 0.996
    target = np.repeat(rng.choice([-1.0, 0.0, 0.5, 1.0], n // 4), 4)
    config = SimConfig(fee_bps=5, slippage_bps=2, stop_loss_pct=0.02, max_bars_held=10, bars_per_year=365)
    result = simulate(open_, high, low, close, target, config)
    expected = numpy_metrics(result.equity, result.drawdown, result.position, result.trades, config)
    assert result.metrics == pytest.approx(expected, rel=1e-9)
    assert result.metrics["n_trades"] > 20
