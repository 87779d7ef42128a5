"""`simulate`: one run of the simulator over numpy arrays, and its readable result."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from trading_assets.compute.simulator import kernels as nb
from trading_assets.compute.simulator.config import SimConfig


class SimInputError(ValueError):
    """Price or target arrays that cannot be simulated; the message names the array and the bar index."""


@dataclass(frozen=True)
class SimResult:
    """One run. Series have one value per bar, taken at its close: `position` in units (negative short),
    `cash`, `equity` = cash + position * close, `drawdown` = equity / running peak - 1 (<= 0). `trades` has
    one row per closed trade (columns `TRADE_COLUMNS`; side +1 long, -1 short). `metrics` holds plain
    Python floats and ints, defined in docs/metrics.md."""

    config: SimConfig
    equity: np.ndarray
    cash: np.ndarray
    position: np.ndarray
    drawdown: np.ndarray
    trades: pd.DataFrame
    metrics: dict[str, float | int]


TRADE_COLUMNS = nb.TRADE_COLUMNS
METRIC_NAMES = nb.METRIC_NAMES

_BAR_PROBLEMS = {
    nb.BAR_PRICE_NOT_POSITIVE: "prices must be finite and > 0",
    nb.BAR_HIGH_BELOW: "high is below the open or the close",
    nb.BAR_LOW_ABOVE: "low is above the open or the close",
    nb.BAR_TARGET_NAN: "target is NaN (use 0 for flat)",
    nb.BAR_TARGET_RANGE: "target must be within [-1, 1]",
}
_FILLS = {"next_open": nb.FILL_NEXT_OPEN, "close": nb.FILL_CLOSE}
_SIZINGS = {"fraction": nb.SIZING_FRACTION, "notional": nb.SIZING_NOTIONAL, "units": nb.SIZING_UNITS}
_DIRECTIONS = {"both": nb.DIRECTION_BOTH, "long": nb.DIRECTION_LONG, "short": nb.DIRECTION_SHORT}
_INT_TRADE_COLUMNS = ("entry_idx", "exit_idx", "side", "bars_held")
_EXIT_REASONS = pd.array(list(nb.EXIT_REASONS), dtype="str")


def simulate(
    open: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    target: np.ndarray,
    config: SimConfig,
) -> SimResult:
    """Trade `target[i]` (the position wanted after bar i, decided at its close: -1 short, 0 flat, +1 long,
    fractions in between) over the bars under `config`'s rules (package docstring)."""
    open_, high, low, close, target = price_arrays(open, high, low, close, target=target)
    series, trades, metrics = nb.simulate_nb(open_, high, low, close, target, kernel_params(config))
    return SimResult(
        config=config,
        **dict(zip(nb.SERIES, series, strict=True)),
        trades=trades_frame(trades),
        metrics=metrics_dict(metrics),
    )


def price_arrays(*prices: np.ndarray, target: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """open, high, low, close (and `target` if given) as contiguous float64 1-D arrays of one length,
    checked bar by bar (SimInputError naming the first bad bar)."""
    names = ("open", "high", "low", "close", "target")
    given = (*prices, target) if target is not None else prices
    arrays = tuple(np.ascontiguousarray(a, dtype=np.float64) for a in given)
    for name, array in zip(names, arrays, strict=False):
        if array.ndim != 1:
            raise SimInputError(f"{name} must be one-dimensional, got shape {array.shape}")
        if array.size != arrays[0].size:
            raise SimInputError(f"{name} has {array.size} bars but open has {arrays[0].size}")
    if arrays[0].size == 0:
        raise SimInputError("no bars to simulate")
    checked = (*arrays[:4], arrays[4] if target is not None else np.empty(0))
    # The SIMD check first; finding the bar takes longer and is needed only when there is one.
    if not nb.bars_valid_nb(*checked):
        index, problem = nb.invalid_bar_nb(*checked)
        name = "target" if problem in (nb.BAR_TARGET_NAN, nb.BAR_TARGET_RANGE) else "bar"
        raise SimInputError(f"{name} at index {index}: {_BAR_PROBLEMS[problem]}")
    return arrays


def kernel_params(config: SimConfig) -> np.ndarray:
    """The config as the kernels' float64 parameter array (P_* indices)."""
    params = np.empty(nb.N_PARAMS)
    params[nb.P_FILL] = _FILLS[config.fill]
    params[nb.P_FEE] = config.fee_bps / 1e4
    params[nb.P_SLIPPAGE] = config.slippage_bps / 1e4
    params[nb.P_SIZING] = _SIZINGS[config.sizing]
    params[nb.P_SIZE] = config.trade_size
    params[nb.P_DIRECTION] = _DIRECTIONS[config.direction]
    params[nb.P_STOP_LOSS] = np.nan if config.stop_loss_pct is None else config.stop_loss_pct
    params[nb.P_TAKE_PROFIT] = np.nan if config.take_profit_pct is None else config.take_profit_pct
    params[nb.P_MAX_BARS] = config.max_bars_held or 0
    params[nb.P_INITIAL_CASH] = config.initial_cash
    params[nb.P_BARS_PER_YEAR] = config.bars_per_year
    return params


def trades_frame(columns: np.ndarray) -> pd.DataFrame:
    """The kernel's trades (one row per TRADE_COLUMNS entry) as a DataFrame: indices, side and bars_held
    as int64, exit_reason as str, the rest float64."""
    frame: dict[str, Any] = dict(zip(TRADE_COLUMNS, columns, strict=True))
    for name in _INT_TRADE_COLUMNS:
        frame[name] = frame[name].astype(np.int64)
    # `take` on a 5-value string array: far faster than building one Python string per trade.
    frame["exit_reason"] = _EXIT_REASONS.take(columns[nb.T_EXIT_REASON].astype(np.int64))
    return pd.DataFrame(frame, copy=False)


def metrics_dict(values: np.ndarray) -> dict[str, float | int]:
    """The kernel's metric row by name, as plain Python floats (ints for counts)."""
    return {
        name: int(value) if name in nb.INT_METRICS else float(value)
        for name, value in zip(METRIC_NAMES, values.tolist(), strict=True)
    }
