"""numba kernels of the simulator: one run loop (`run_nb`) shared by `simulate` and `sweep`, and metrics.

The trading rules these kernels follow are in the package docstring; their cached machine code is
guarded as all compiled code of the compute library is (`compute/numba_cache.py`, called by the package).

The trading state of a run is a small float64 array indexed by the `S_*` constants (numba has no mutable
scalars to pass by reference), the config a float64 array indexed by `P_*` (flags as codes, NaN or 0 for
"off"), so the kernels compile once, whatever the config, and their machine code stays cacheable. Indices
and integer amounts stored as float64 are exact below 2**53. What changes on every bar (equity, return
sums, drawdown) stays in `run_nb`'s locals, and the bar loop calls no function that takes an array
except on the bars that trade: both keep the loop at a few nanoseconds a bar.

No fastmath: the same inputs give bit-identical results, and each sweep cell equals `simulate` bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

FILL_NEXT_OPEN, FILL_CLOSE = 0, 1
SIZING_FRACTION, SIZING_NOTIONAL, SIZING_UNITS = 0, 1, 2
DIRECTION_BOTH, DIRECTION_LONG, DIRECTION_SHORT = 0, 1, 2
# Exit reasons are floats like every other value the kernels store.
EXIT_SIGNAL, EXIT_STOP_LOSS, EXIT_TAKE_PROFIT, EXIT_MAX_BARS, EXIT_END = 0.0, 1.0, 2.0, 3.0, 4.0
EXIT_REASONS = ("signal", "stop_loss", "take_profit", "max_bars", "end")

# Config: fee and slippage as rates (bps / 1e4), stop levels as fractions (NaN = off), max bars (0 = off).
P_FILL, P_FEE, P_SLIPPAGE, P_SIZING, P_SIZE, P_DIRECTION = 0, 1, 2, 3, 4, 5
P_STOP_LOSS, P_TAKE_PROFIT, P_MAX_BARS, P_INITIAL_CASH, P_BARS_PER_YEAR = 6, 7, 8, 9, 10
N_PARAMS = 11

# Ledger, the open trade's running sums, closed-trade statistics (Welford mean and M2 of pnl), and the
# bar statistics `run_nb` keeps in locals until the end.
S_CASH, S_POSITION = 0, 1
S_SIDE, S_ENTRY_IDX, S_ENTRY_UNITS, S_ENTRY_NOTIONAL, S_EXIT_UNITS, S_EXIT_NOTIONAL, S_TRADE_FEES = (
    2, 3, 4, 5, 6, 7, 8,
)  # fmt: skip
S_N_TRADES, S_WINS, S_LOSSES, S_GROSS_WIN, S_GROSS_LOSS = 9, 10, 11, 12, 13
S_SUM_RETURN, S_WIN_RETURN, S_LOSS_RETURN, S_BEST, S_WORST, S_PNL_MEAN, S_PNL_M2 = 14, 15, 16, 17, 18, 19, 20
S_EQUITY, S_RUINED, S_N_BARS, S_RET_SUM, S_RET_SQ, S_DOWNSIDE_SQ, S_MAX_DRAWDOWN, S_MAX_UNDERWATER = (
    21, 22, 23, 24, 25, 26, 27, 28,
)  # fmt: skip
S_EXPOSED = 29
# The open trade's entry fills at their prices before slippage: stop levels are measured from these, so
# costs never change which trades happen.
S_ENTRY_RAW = 30
N_STATE = 31

SERIES = ("equity", "cash", "position", "drawdown")
TRADE_COLUMNS = (
    "entry_idx", "exit_idx", "side", "size", "entry_price", "exit_price",
    "pnl", "return_pct", "fees", "bars_held", "exit_reason",
)  # fmt: skip
T_ENTRY_IDX, T_EXIT_IDX, T_SIDE, T_SIZE, T_ENTRY_PRICE, T_EXIT_PRICE = 0, 1, 2, 3, 4, 5
T_PNL, T_RETURN, T_FEES, T_BARS_HELD, T_EXIT_REASON = 6, 7, 8, 9, 10

METRIC_NAMES = (
    "total_return", "cagr", "volatility_ann", "sharpe", "sortino", "calmar", "max_drawdown",
    "max_drawdown_duration", "win_rate", "profit_factor", "expectancy", "avg_win", "avg_loss",
    "best_trade", "worst_trade", "exposure", "n_trades", "sqn",
)  # fmt: skip
INT_METRICS = ("max_drawdown_duration", "n_trades")
M_TOTAL_RETURN, M_CAGR, M_VOLATILITY, M_SHARPE, M_SORTINO, M_CALMAR, M_MAX_DRAWDOWN = 0, 1, 2, 3, 4, 5, 6
M_MAX_DD_DURATION, M_WIN_RATE, M_PROFIT_FACTOR, M_EXPECTANCY, M_AVG_WIN, M_AVG_LOSS = 7, 8, 9, 10, 11, 12
M_BEST, M_WORST, M_EXPOSURE, M_N_TRADES, M_SQN = 13, 14, 15, 16, 17
N_METRICS = 18

# What `invalid_bar_nb` found wrong at a bar.
BAR_OK, BAR_PRICE_NOT_POSITIVE, BAR_HIGH_BELOW, BAR_LOW_ABOVE, BAR_TARGET_NAN, BAR_TARGET_RANGE = range(6)


@njit(cache=True, error_model="numpy")
def invalid_bar_nb(
    open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray, target: np.ndarray
) -> tuple[int, int]:
    """(index, BAR_* code) of the first bar that cannot be simulated, (-1, BAR_OK) if none. Prices must be
    finite and positive with low <= open, close <= high; targets (unless empty) finite with |t| <= 1."""
    for i in range(close.shape[0]):
        o, h, lo, c = open_[i], high[i], low[i], close[i]
        if not (o > 0.0 and h > 0.0 and lo > 0.0 and c > 0.0 and h < np.inf):
            return i, BAR_PRICE_NOT_POSITIVE
        if h < o or h < c:
            return i, BAR_HIGH_BELOW
        if lo > o or lo > c:
            return i, BAR_LOW_ABOVE
        if target.shape[0]:
            if math.isnan(target[i]):
                return i, BAR_TARGET_NAN
            if abs(target[i]) > 1.0:
                return i, BAR_TARGET_RANGE
    return -1, BAR_OK


@njit(cache=True, error_model="numpy")
def signal_nb(
    pred: float, long_threshold: float, short_threshold: float, previous: float, hold: bool
) -> float:
    """Target for one prediction: +1 at or above the long threshold, -1 at or below the short one, else
    the previous target (`hold`) or 0. A NaN prediction is flat; a NaN threshold never triggers."""
    if math.isnan(pred):
        return 0.0
    if pred >= long_threshold:
        return 1.0
    if pred <= short_threshold:
        return -1.0
    return previous if hold else 0.0


@njit(cache=True, error_model="numpy")
def signals_nb(
    pred: np.ndarray, long_threshold: np.ndarray, short_threshold: np.ndarray, hold: bool
) -> np.ndarray:
    """`signal_nb` over bars, each with its own thresholds; the first bar's previous target is 0."""
    out = np.empty(pred.shape[0])
    previous = 0.0
    for i in range(pred.shape[0]):
        previous = signal_nb(pred[i], long_threshold[i], short_threshold[i], previous, hold)
        out[i] = previous
    return out


@njit(cache=True, error_model="numpy")
def initial_state_nb(params: np.ndarray) -> np.ndarray:
    """State before the first bar: all cash, flat, no trade."""
    state = np.zeros(N_STATE)
    state[S_CASH] = params[P_INITIAL_CASH]
    state[S_BEST] = -np.inf
    state[S_WORST] = np.inf
    return state


@njit(cache=True, error_model="numpy")
def _units_for_target(state: np.ndarray, params: np.ndarray, price: float, target: float) -> float:
    """Signed units wanted for `target` at `price` (before slippage); fraction sizing takes the equity at
    that price before the trade, and opens nothing while equity is zero or negative."""
    sizing = params[P_SIZING]
    if sizing == SIZING_FRACTION:
        equity = state[S_CASH] + state[S_POSITION] * price
        return target * params[P_SIZE] * max(equity, 0.0) / price
    if sizing == SIZING_NOTIONAL:
        return target * params[P_SIZE] / price
    return target * params[P_SIZE]


@njit(cache=True, error_model="numpy")
def _fill(state: np.ndarray, params: np.ndarray, price: float, units: float) -> None:
    """Trade `units` (signed, buy > 0) at `price` moved against us by the slippage, pay the fee on the
    traded notional, and add the fill to the open trade's entry or exit sums."""
    slippage = params[P_SLIPPAGE]
    executed = price * (1.0 + slippage) if units > 0 else price * (1.0 - slippage)
    notional = abs(units) * executed
    fee = notional * params[P_FEE]
    state[S_CASH] -= units * executed + fee
    state[S_TRADE_FEES] += fee
    if units * state[S_SIDE] > 0:
        state[S_ENTRY_UNITS] += abs(units)
        state[S_ENTRY_NOTIONAL] += notional
        state[S_ENTRY_RAW] += abs(units) * price
    else:
        state[S_EXIT_UNITS] += abs(units)
        state[S_EXIT_NOTIONAL] += notional


@njit(cache=True, error_model="numpy")
def _close_trade(state: np.ndarray, i: int, reason: float, trades: np.ndarray, store: bool) -> None:
    """Book the open trade, now flat, as closed at bar `i`: trade statistics, and its row if `store`."""
    side = state[S_SIDE]
    pnl = side * (state[S_EXIT_NOTIONAL] - state[S_ENTRY_NOTIONAL]) - state[S_TRADE_FEES]
    ret = pnl / state[S_ENTRY_NOTIONAL]
    k = state[S_N_TRADES]
    if store:
        j = int(k)
        trades[T_ENTRY_IDX, j] = state[S_ENTRY_IDX]
        trades[T_EXIT_IDX, j] = i
        trades[T_SIDE, j] = side
        trades[T_SIZE, j] = state[S_ENTRY_UNITS]
        trades[T_ENTRY_PRICE, j] = state[S_ENTRY_NOTIONAL] / state[S_ENTRY_UNITS]
        trades[T_EXIT_PRICE, j] = state[S_EXIT_NOTIONAL] / state[S_EXIT_UNITS]
        trades[T_PNL, j] = pnl
        trades[T_RETURN, j] = ret
        trades[T_FEES, j] = state[S_TRADE_FEES]
        trades[T_BARS_HELD, j] = i - state[S_ENTRY_IDX]
        trades[T_EXIT_REASON, j] = reason
    k += 1
    state[S_N_TRADES] = k
    state[S_SUM_RETURN] += ret
    state[S_BEST] = max(state[S_BEST], ret)
    state[S_WORST] = min(state[S_WORST], ret)
    if pnl > 0:
        state[S_WINS] += 1
        state[S_GROSS_WIN] += pnl
        state[S_WIN_RETURN] += ret
    elif pnl < 0:
        state[S_LOSSES] += 1
        state[S_GROSS_LOSS] += pnl
        state[S_LOSS_RETURN] += ret
    delta = pnl - state[S_PNL_MEAN]
    state[S_PNL_MEAN] += delta / k
    state[S_PNL_M2] += delta * (pnl - state[S_PNL_MEAN])
    state[S_SIDE] = 0.0


@njit(cache=True, error_model="numpy")
def _order(
    state: np.ndarray,
    params: np.ndarray,
    i: int,
    price: float,
    target: float,
    reason: float,
    trades: np.ndarray,
    store: bool,
) -> None:
    """Move the position to `target` with fills at bar `i`'s `price`. Going flat or to the other side
    closes the trade (exit `reason`) and a flip opens the new one in the same bar at the same price; a
    resize on the same side trades only the difference within the same trade."""
    wanted = _units_for_target(state, params, price, target)
    held = state[S_POSITION]
    if wanted == held:
        return
    if held != 0.0 and wanted * held <= 0.0:
        _fill(state, params, price, -held)
        state[S_POSITION] = 0.0
        _close_trade(state, i, reason, trades, store)
        held = 0.0
    if wanted != 0.0:
        if held == 0.0:
            state[S_SIDE] = 1.0 if wanted > 0 else -1.0
            state[S_ENTRY_IDX] = i
            state[S_ENTRY_UNITS] = 0.0
            state[S_ENTRY_NOTIONAL] = 0.0
            state[S_ENTRY_RAW] = 0.0
            state[S_EXIT_UNITS] = 0.0
            state[S_EXIT_NOTIONAL] = 0.0
            state[S_TRADE_FEES] = 0.0
        _fill(state, params, price, wanted - held)
        # Set, not accumulated: held + (wanted - held) can miss `wanted` by an ulp.
        state[S_POSITION] = wanted


@njit(cache=True, error_model="numpy")
def exit_inside_bar_nb(
    side: float, entry: float, stop_loss: float, take_profit: float, o: float, h: float, lo: float
) -> tuple[float, float]:
    """(raw fill price, reason) of a stop-loss or take-profit exit of a trade on `side` entered at `entry`,
    or (NaN, EXIT_SIGNAL) if neither level is reached in this bar (a NaN level is off). A level the open
    already gapped through fills at the open (the open comes first in time); touched inside the bar it
    fills at the level, the stop first if both are."""
    stop = entry * (1.0 - side * stop_loss)
    take = entry * (1.0 + side * take_profit)
    # Multiplying by the side turns a short's "at or above" into "at or below" and back.
    if (o - stop) * side <= 0.0:
        return o, EXIT_STOP_LOSS
    if (o - take) * side >= 0.0:
        return o, EXIT_TAKE_PROFIT
    if (lo if side > 0 else h) * side <= stop * side:
        return stop, EXIT_STOP_LOSS
    if (h if side > 0 else lo) * side >= take * side:
        return take, EXIT_TAKE_PROFIT
    return np.nan, EXIT_SIGNAL


@njit(cache=True, error_model="numpy")
def metrics_nb(state: np.ndarray, params: np.ndarray) -> np.ndarray:
    """The metrics of a finished run, in METRIC_NAMES order; definitions in docs/metrics.md."""
    out = np.full(N_METRICS, np.nan)
    bars_per_year = params[P_BARS_PER_YEAR]
    n = state[S_N_BARS]
    growth = state[S_EQUITY] / params[P_INITIAL_CASH]
    out[M_TOTAL_RETURN] = growth - 1.0
    cagr = growth ** (bars_per_year / n) - 1.0 if growth > 0.0 else -1.0
    out[M_CAGR] = cagr if math.isfinite(cagr) else np.nan
    if state[S_RUINED] == 0.0 and n >= 2:
        mean = state[S_RET_SUM] / n
        # From the running sums (no division chain in the bar loop); rounding can leave a hair below 0.
        std = math.sqrt(max(state[S_RET_SQ] - state[S_RET_SUM] * mean, 0.0) / (n - 1.0))
        out[M_VOLATILITY] = std * math.sqrt(bars_per_year)
        if std > 0.0:
            out[M_SHARPE] = mean / std * math.sqrt(bars_per_year)
        downside = math.sqrt(state[S_DOWNSIDE_SQ] / n)
        if downside > 0.0:
            out[M_SORTINO] = mean / downside * math.sqrt(bars_per_year)
    # 0.0 - x, not -x: no drawdown is 0.0, never -0.0.
    max_drawdown = 0.0 - state[S_MAX_DRAWDOWN]
    out[M_MAX_DRAWDOWN] = max_drawdown
    if max_drawdown > 0.0:
        out[M_CALMAR] = out[M_CAGR] / max_drawdown
    out[M_MAX_DD_DURATION] = state[S_MAX_UNDERWATER]
    out[M_EXPOSURE] = state[S_EXPOSED] / n
    trades = state[S_N_TRADES]
    out[M_N_TRADES] = trades
    if trades > 0:
        out[M_WIN_RATE] = state[S_WINS] / trades
        out[M_EXPECTANCY] = state[S_SUM_RETURN] / trades
        out[M_BEST] = state[S_BEST]
        out[M_WORST] = state[S_WORST]
    if state[S_WINS] > 0:
        out[M_AVG_WIN] = state[S_WIN_RETURN] / state[S_WINS]
    if state[S_LOSSES] > 0:
        out[M_AVG_LOSS] = state[S_LOSS_RETURN] / state[S_LOSSES]
        out[M_PROFIT_FACTOR] = state[S_GROSS_WIN] / -state[S_GROSS_LOSS]
    if trades >= 2 and state[S_PNL_M2] > 0.0:
        out[M_SQN] = math.sqrt(trades) * state[S_PNL_MEAN] / math.sqrt(state[S_PNL_M2] / (trades - 1.0))
    return out


@njit(cache=True, error_model="numpy")
def run_nb(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    target_or_pred: np.ndarray,
    from_pred: bool,
    long_threshold: float,
    short_threshold: float,
    hold: bool,
    params: np.ndarray,
    trades: np.ndarray,
    series: np.ndarray,
    store: bool,
) -> np.ndarray:
    """One run over all bars; returns its metrics (METRIC_NAMES order). The bar's target is
    `target_or_pred[i]`, or with `from_pred` the `signal_nb` of that prediction and the thresholds. With
    `store`, closed trades go to `trades` (one row per TRADE_COLUMNS entry, one column per trade) and the
    SERIES rows of `series` get each bar's close values; `simulate_nb` and `sweep_nb` both run this."""
    n = close.shape[0]
    state = initial_state_nb(params)
    # What every bar reads stays in locals (the state array is read back only after an order changed
    # it): kept in the array, every bar would wait on its own last store.
    previous = peak = params[P_INITIAL_CASH]
    ret_sum = ret_sq = downside_sq = max_drawdown = underwater = max_underwater = exposed = 0.0
    ruined = False
    target = last_target = 0.0
    pending_target, pending_reason = np.nan, EXIT_SIGNAL
    cash, position = state[S_CASH], 0.0
    next_open = params[P_FILL] == FILL_NEXT_OPEN
    direction, max_bars = params[P_DIRECTION], params[P_MAX_BARS]
    stop_loss, take_profit = params[P_STOP_LOSS], params[P_TAKE_PROFIT]
    for i in range(n):
        c = close[i]
        if from_pred:
            target = signal_nb(target_or_pred[i], long_threshold, short_threshold, target, hold)
        else:
            target = target_or_pred[i]
        # In time order: the order waiting for this open fills there, then stop-loss/take-profit
        # inside the bar, then at the close the target is decided (filled at once with fill="close"),
        # and the last bar closes what is open.
        if next_open and not math.isnan(pending_target):
            _order(state, params, i, open_[i], pending_target, pending_reason, trades, store)
            pending_target = np.nan
            cash, position = state[S_CASH], state[S_POSITION]
        if position != 0.0:
            price, reason = exit_inside_bar_nb(
                state[S_SIDE], state[S_ENTRY_RAW] / state[S_ENTRY_UNITS], stop_loss, take_profit,
                open_[i], high[i], low[i],
            )  # fmt: skip
            if not math.isnan(price):
                _order(state, params, i, price, 0.0, reason, trades, store)
                cash, position = state[S_CASH], state[S_POSITION]
        if direction == DIRECTION_LONG:
            target = max(target, 0.0)
        elif direction == DIRECTION_SHORT:
            target = min(target, 0.0)
        order_target, reason = np.nan, EXIT_SIGNAL
        if target != last_target:
            order_target = last_target = target
        fill_bar = i + 1 if next_open else i
        # Time is up unless this very order closes the trade anyway (flat or the other side).
        if (
            position != 0.0
            and max_bars > 0
            and fill_bar - state[S_ENTRY_IDX] >= max_bars
            and (math.isnan(order_target) or order_target * state[S_SIDE] > 0.0)
        ):
            order_target, reason = 0.0, EXIT_MAX_BARS
        if i == n - 1:
            if position != 0.0:
                _order(state, params, i, c, 0.0, EXIT_END, trades, store)
                cash, position = state[S_CASH], state[S_POSITION]
        elif not math.isnan(order_target):
            if next_open:
                pending_target, pending_reason = order_target, reason
            else:
                _order(state, params, i, c, order_target, reason, trades, store)
                cash, position = state[S_CASH], state[S_POSITION]
        equity = cash + position * c
        # Returns measured from a non-positive equity mean nothing; the metrics then leave them out.
        ruined = ruined or previous <= 0.0
        ret = equity / previous - 1.0
        ret_sum += ret
        ret_sq += ret * ret
        if ret < 0.0:
            downside_sq += ret * ret
        peak = max(peak, equity)
        drawdown = equity / peak - 1.0
        max_drawdown = min(max_drawdown, drawdown)
        underwater = underwater + 1.0 if drawdown < 0.0 else 0.0
        max_underwater = max(max_underwater, underwater)
        if position != 0.0:
            exposed += 1.0
        if store:
            series[0, i] = equity
            series[1, i] = cash
            series[2, i] = position
            series[3, i] = drawdown
        previous = equity
    state[S_EQUITY] = previous
    state[S_RUINED] = ruined
    state[S_N_BARS] = n
    state[S_RET_SUM] = ret_sum
    state[S_RET_SQ] = ret_sq
    state[S_DOWNSIDE_SQ] = downside_sq
    state[S_MAX_DRAWDOWN] = max_drawdown
    state[S_MAX_UNDERWATER] = max_underwater
    state[S_EXPOSED] = exposed
    return metrics_nb(state, params)


@njit(cache=True, error_model="numpy")
def simulate_nb(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    target: np.ndarray,
    params: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(series, trades, metrics) of one run: `series` one row per SERIES entry with a value per bar,
    `trades` one row per TRADE_COLUMNS entry with a column per closed trade."""
    n = close.shape[0]
    series = np.empty((len(SERIES), n))
    # A trade opens at most once per bar, so n columns always suffice; untouched pages cost no memory.
    trades = np.empty((len(TRADE_COLUMNS), n))
    metrics = run_nb(
        open_, high, low, close, target, False, np.nan, np.nan, False, params, trades, series, True
    )
    return series, trades[:, : int(metrics[M_N_TRADES])], metrics


@njit(cache=True, error_model="numpy", parallel=True)
def sweep_nb(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    pred: np.ndarray,
    long_thresholds: np.ndarray,
    short_thresholds: np.ndarray,
    stop_losses: np.ndarray,
    take_profits: np.ndarray,
    hold: bool,
    params: np.ndarray,
) -> np.ndarray:
    """Metrics (one row per cell, METRIC_NAMES order) of one run per cell: its thresholds turn `pred` into
    targets bar by bar and its stop levels replace the config's. Cells run in parallel; each writes only
    its own row, so the result does not depend on the thread count or schedule."""
    out = np.empty((long_thresholds.shape[0], N_METRICS))
    nothing = np.empty((len(TRADE_COLUMNS), 0))
    no_series = np.empty((len(SERIES), 0))
    for k in prange(long_thresholds.shape[0]):
        cell_params = params.copy()
        cell_params[P_STOP_LOSS] = stop_losses[k]
        cell_params[P_TAKE_PROFIT] = take_profits[k]
        out[k] = run_nb(
            open_, high, low, close, pred, True, long_thresholds[k], short_thresholds[k], hold,
            cell_params, nothing, no_series, False,
        )  # fmt: skip
    return out
