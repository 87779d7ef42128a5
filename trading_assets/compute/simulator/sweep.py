"""Grid search over signal thresholds (and stop levels), and how much to trust its best Sharpe ratio.

`sweep` runs one simulation per grid cell, keeping only the metrics, and flags the best cell with its
deflated Sharpe ratio: the more cells tried, the higher the best Sharpe climbs by luck alone. The cells
run in blocks side by side, one pass over the bars per block and blocks in parallel (`kernels.sweep_nb`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import replace
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
import pandas as pd

from trading_assets.compute.simulator import kernels as nb
from trading_assets.compute.simulator.config import SimConfig
from trading_assets.compute.simulator.engine import kernel_params, price_arrays, simulate
from trading_assets.compute.simulator.signals import signals_from_predictions

EULER_GAMMA = 0.5772156649015329
_NORMAL = NormalDist()
GRID_COLUMNS = ("long_threshold", "short_threshold", "stop_loss_pct", "take_profit_pct")


def sweep(
    open: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    pred: np.ndarray,
    long_thresholds: Sequence[float],
    short_thresholds: Sequence[float],
    config: SimConfig,
    stops: Sequence[tuple[float | None, float | None]] | None = None,
    dead_zone: Literal["flat", "hold"] = "flat",
) -> pd.DataFrame:
    """Metrics of every cell of long_thresholds x short_thresholds x stops, one row per cell (long
    threshold outermost, stops innermost), each equal to `simulate` on `signals_from_predictions(pred,
    long, short, dead_zone)` under `config` with the cell's stop levels.

    `stops` are (stop_loss_pct, take_profit_pct) pairs, None for off; by default the config's own pair.
    Columns: GRID_COLUMNS (NaN for a stop that is off), then METRIC_NAMES. `attrs["best"]` describes the
    cell with the highest Sharpe ratio and its deflated Sharpe ratio (`best_cell`).
    """
    open_, high, low, close = price_arrays(open, high, low, close)
    pred = np.ascontiguousarray(pred, dtype=np.float64)
    if pred.shape != close.shape:
        raise ValueError(f"pred must have one value per bar ({close.size}), got shape {pred.shape}")
    stop_pairs = [(config.stop_loss_pct, config.take_profit_pct)] if stops is None else list(stops)
    for stop_loss, take_profit in stop_pairs:
        replace(config, stop_loss_pct=stop_loss, take_profit_pct=take_profit)  # SimConfigError if invalid
    cells = list(itertools.product(map(float, long_thresholds), map(float, short_thresholds), stop_pairs))
    if not cells:
        raise ValueError("the grid is empty: give at least one long threshold, short threshold and stop pair")
    for long, short, _ in cells:
        if short > long:
            raise ValueError(f"short threshold {short} is above long threshold {long}: the signals overlap")
    grid = pd.DataFrame(
        [(long, short, _off_as_nan(sl), _off_as_nan(tp)) for long, short, (sl, tp) in cells],
        columns=list(GRID_COLUMNS),
    )
    values = nb.sweep_nb(
        open_,
        high,
        low,
        close,
        pred,
        *(np.ascontiguousarray(grid[column].to_numpy()) for column in GRID_COLUMNS),
        dead_zone == "hold",
        kernel_params(config),
    )
    metrics = pd.DataFrame(values, columns=list(nb.METRIC_NAMES)).astype(
        dict.fromkeys(nb.INT_METRICS, np.int64)
    )
    table = pd.concat([grid, metrics], axis=1)
    table.attrs["best"] = best_cell(table, open_, high, low, close, pred, config, dead_zone)
    return table


def best_cell(
    table: pd.DataFrame,
    open: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    pred: np.ndarray,
    config: SimConfig,
    dead_zone: Literal["flat", "hold"] = "flat",
) -> dict[str, Any] | None:
    """The row of `sweep`'s table with the highest (finite) Sharpe ratio and its deflated Sharpe ratio, or
    None if no cell has one. JSON-safe dict: `row` (position in the table), `sharpe` (annualised, as in the
    table), `sharpe_per_bar`, `deflated_sharpe_ratio` (probability that the true per-bar Sharpe exceeds
    what the best of `n_trials` luck-only cells would show), and its inputs `n_trials` (all cells),
    `sharpe_variance` (sample variance of the cells' per-bar Sharpe ratios), `skewness` and `kurtosis`
    (non-excess) of the best cell's bar returns, and `n_obs` (bars)."""
    sharpe = table["sharpe"].to_numpy()
    finite = np.isfinite(sharpe)
    if not finite.any():
        return None
    row = int(np.argmax(np.where(finite, sharpe, -np.inf)))
    cell = table.iloc[row]
    cell_config = replace(
        config,
        stop_loss_pct=None if math.isnan(cell["stop_loss_pct"]) else float(cell["stop_loss_pct"]),
        take_profit_pct=None if math.isnan(cell["take_profit_pct"]) else float(cell["take_profit_pct"]),
    )
    target = signals_from_predictions(pred, cell["long_threshold"], cell["short_threshold"], dead_zone)
    equity = simulate(open, high, low, close, target, cell_config).equity
    returns = np.diff(equity, prepend=config.initial_cash) / np.r_[config.initial_cash, equity[:-1]]
    per_bar = sharpe[finite] / math.sqrt(config.bars_per_year)
    variance = float(np.var(per_bar, ddof=1)) if per_bar.size >= 2 else 0.0
    skewness, kurtosis = _skew_kurtosis(returns)
    best = float(sharpe[row]) / math.sqrt(config.bars_per_year)
    return {
        "row": row,
        "sharpe": float(sharpe[row]),
        "sharpe_per_bar": best,
        "deflated_sharpe_ratio": deflated_sharpe_ratio(
            best, len(table), variance, skewness, kurtosis, returns.size
        ),
        "n_trials": len(table),
        "sharpe_variance": variance,
        "skewness": skewness,
        "kurtosis": kurtosis,
        "n_obs": int(returns.size),
    }


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """Sharpe ratio the best of `n_trials` strategies with no edge would show by luck (Bailey & López de
    Prado 2014, the False Strategy theorem): sqrt(V) * ((1 - g) * Z(1 - 1/N) + g * Z(1 - 1/(N e))), with
    Z the standard normal quantile and g the Euler-Mascheroni constant. One trial expects 0."""
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    if n_trials == 1:
        return 0.0
    z = (1 - EULER_GAMMA) * _NORMAL.inv_cdf(1 - 1 / n_trials) + EULER_GAMMA * _NORMAL.inv_cdf(
        1 - 1 / (n_trials * math.e)
    )
    return math.sqrt(sharpe_variance) * z


def deflated_sharpe_ratio(
    sharpe: float, n_trials: int, sharpe_variance: float, skewness: float, kurtosis: float, n_obs: int
) -> float:
    """Probability that a strategy's true Sharpe ratio is above `expected_max_sharpe` (Bailey & López de
    Prado 2014): Phi((SR - SR0) * sqrt(T - 1) / sqrt(1 - skew * SR + (kurt - 1) / 4 * SR**2)).

    All Sharpe ratios are per bar, not annualised (the formula's sqrt(T - 1) does the scaling); `kurtosis`
    is the plain fourth standardised moment (3 for a normal). NaN when the inputs give no answer (fewer
    than 2 observations, a non-finite Sharpe or a non-positive variance term)."""
    if n_obs < 2 or not math.isfinite(sharpe):
        return math.nan
    spread = 1 - skewness * sharpe + (kurtosis - 1) / 4 * sharpe**2
    if not spread > 0:
        return math.nan
    z = (sharpe - expected_max_sharpe(n_trials, sharpe_variance)) * math.sqrt(n_obs - 1) / math.sqrt(spread)
    return _NORMAL.cdf(z)


def _skew_kurtosis(returns: np.ndarray) -> tuple[float, float]:
    """Population skewness and (non-excess) kurtosis; NaN for a constant series."""
    centred = returns - returns.mean()
    m2 = float(np.mean(centred**2))
    if m2 == 0:
        return math.nan, math.nan
    return float(np.mean(centred**3)) / m2**1.5, float(np.mean(centred**4)) / m2**2


def _off_as_nan(level: float | None) -> float:
    return math.nan if level is None else float(level)
