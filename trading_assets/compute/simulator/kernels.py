"""numba kernels of the simulator: one run (`simulate_nb`), blocks of runs side by side (`sweep_nb`), metrics.

The trading rules these kernels follow are in the package docstring; their cached machine code is
guarded as all compiled code of the compute library is (`compute/numba_cache.py`, called by the package).

The trading state of a run is a small float64 array indexed by the `S_*` constants (numba has no mutable
scalars to pass by reference), the config a float64 array indexed by `P_*` (flags as codes, NaN or 0 for
"off"), so the kernels compile once, whatever the config, and their machine code stays cacheable. Indices
and integer amounts stored as float64 are exact below 2**53. Both loops share every step of a bar: the
target (`signal_nb`, `_direction_target`), what may happen (`_triage`), the orders (`_bar_orders`, only
on the bars `_triage` flags) and the equity and bar statistics (`_account`; `simulate_nb` does the same
arithmetic in a second pass, `_account_series`). `simulate_nb` keeps what changes on every bar in locals
and skips the bars on which nothing can happen; `sweep_block_nb` keeps SWEEP_BLOCK runs side by side in
SIMD lanes. The order helpers run without numba's reference counting (`_nrt=False`, they allocate
nothing): counted, each call paid atomic increments and decrements for every array it was passed.

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
# bar statistics (S_EQUITY is the last bar's equity, the one the next bar's return is measured from).
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
# A run's own stop fractions (NaN = off) and the open trade's stop and take-profit prices, set whenever
# its entry changes; the target of the bar, the last one acted on, the order waiting for the next open
# (NaN = none) and its exit reason; the running peak of equity and the bars spent below it.
S_STOP_LOSS, S_TAKE_PROFIT, S_STOP_PRICE, S_TAKE_PRICE = 31, 32, 33, 34
S_TARGET, S_LAST_TARGET, S_PENDING_TARGET, S_PENDING_REASON, S_PEAK, S_UNDERWATER = 35, 36, 37, 38, 39, 40
N_STATE = 41

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
def bars_valid_nb(
    open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray, target: np.ndarray
) -> bool:
    """Whether `invalid_bar_nb` finds no bad bar: the same checks (NaN fails every comparison) with no
    early exit, which the compiler turns into SIMD code several times faster than finding the bar."""
    valid = True
    if target.shape[0]:
        for i in range(close.shape[0]):
            valid &= abs(target[i]) <= 1.0
    for i in range(close.shape[0]):
        o, h, lo, c = open_[i], high[i], low[i], close[i]
        valid &= (lo > 0.0) & (lo <= o) & (lo <= c) & (h >= o) & (h >= c) & (h < np.inf)
    return valid


@njit(cache=True, error_model="numpy")
def signal_nb(
    pred: float, long_threshold: float, short_threshold: float, previous: float, hold: bool
) -> float:
    """Target for one prediction: +1 at or above the long threshold, -1 at or below the short one, else
    the previous target (`hold`) or 0. A NaN prediction is flat; a NaN threshold never triggers. Selects
    rather than returns from branches, so that runs side by side stay in SIMD lanes."""
    above, below = pred >= long_threshold, pred <= short_threshold
    dead_zone = previous if hold else 0.0
    side = 1.0 if above else (-1.0 if below else dead_zone)
    return 0.0 if math.isnan(pred) else side


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
def initial_state_nb(params: np.ndarray, stop_losses: np.ndarray, take_profits: np.ndarray) -> np.ndarray:
    """State of one run per stop pair before the first bar (all cash, flat, no trade), interleaved: field
    S_* of run k at S_* * runs + k, so `state[k::runs]` is run k's state and a field's runs are adjacent."""
    runs = stop_losses.shape[0]
    state = np.zeros(N_STATE * runs)
    for k in range(runs):
        run = state[k::runs]
        run[S_CASH] = run[S_EQUITY] = run[S_PEAK] = params[P_INITIAL_CASH]
        run[S_BEST] = -np.inf
        run[S_WORST] = np.inf
        run[S_STOP_LOSS] = stop_losses[k]
        run[S_TAKE_PROFIT] = take_profits[k]
        run[S_PENDING_TARGET] = np.nan
        run[S_PENDING_REASON] = EXIT_SIGNAL
    return state


@njit(cache=True, error_model="numpy", _nrt=False)
def _units_for_target(
    state: np.ndarray, k: int, w: int, params: np.ndarray, price: float, target: float
) -> float:
    """Signed units wanted for `target` at `price` (before slippage); fraction sizing takes the equity at
    that price before the trade, and opens nothing while equity is zero or negative."""
    sizing = params[P_SIZING]
    if sizing == SIZING_FRACTION:
        equity = state[S_CASH * w + k] + state[S_POSITION * w + k] * price
        return target * params[P_SIZE] * max(equity, 0.0) / price
    if sizing == SIZING_NOTIONAL:
        return target * params[P_SIZE] / price
    return target * params[P_SIZE]


@njit(cache=True, error_model="numpy", _nrt=False)
def _fill(state: np.ndarray, k: int, w: int, params: np.ndarray, price: float, units: float) -> None:
    """Trade `units` (signed, buy > 0) at `price` moved against us by the slippage, pay the fee on the
    traded notional, and add the fill to the open trade's entry or exit sums."""
    slippage = params[P_SLIPPAGE]
    executed = price * ((1.0 + slippage) if units > 0 else (1.0 - slippage))
    notional = abs(units) * executed
    fee = notional * params[P_FEE]
    state[S_CASH * w + k] -= units * executed + fee
    state[S_TRADE_FEES * w + k] += fee
    # Both sums get a value, one of them 0.0 (no sum is ever -0.0): selects, not a branch the processor
    # would guess wrong on every other fill.
    entry = units * state[S_SIDE * w + k] > 0
    state[S_ENTRY_UNITS * w + k] += abs(units) if entry else 0.0
    state[S_ENTRY_NOTIONAL * w + k] += notional if entry else 0.0
    state[S_ENTRY_RAW * w + k] += abs(units) * price if entry else 0.0
    state[S_EXIT_UNITS * w + k] += 0.0 if entry else abs(units)
    state[S_EXIT_NOTIONAL * w + k] += 0.0 if entry else notional


@njit(cache=True, error_model="numpy", _nrt=False)
def _close_trade(
    state: np.ndarray, k: int, w: int, i: int, reason: float, trades: np.ndarray, store: bool
) -> None:
    """Book the open trade, now flat, as closed at bar `i`: trade statistics, and its row if `store`."""
    side = state[S_SIDE * w + k]
    pnl = (
        side * (state[S_EXIT_NOTIONAL * w + k] - state[S_ENTRY_NOTIONAL * w + k])
        - state[S_TRADE_FEES * w + k]
    )
    ret = pnl / state[S_ENTRY_NOTIONAL * w + k]
    count = state[S_N_TRADES * w + k]
    if store:
        j = int(count)
        trades[j, T_ENTRY_IDX] = state[S_ENTRY_IDX * w + k]
        trades[j, T_EXIT_IDX] = i
        trades[j, T_SIDE] = side
        trades[j, T_SIZE] = state[S_ENTRY_UNITS * w + k]
        trades[j, T_ENTRY_PRICE] = state[S_ENTRY_NOTIONAL * w + k] / state[S_ENTRY_UNITS * w + k]
        trades[j, T_EXIT_PRICE] = state[S_EXIT_NOTIONAL * w + k] / state[S_EXIT_UNITS * w + k]
        trades[j, T_PNL] = pnl
        trades[j, T_RETURN] = ret
        trades[j, T_FEES] = state[S_TRADE_FEES * w + k]
        trades[j, T_BARS_HELD] = i - state[S_ENTRY_IDX * w + k]
        trades[j, T_EXIT_REASON] = reason
    count += 1
    state[S_N_TRADES * w + k] = count
    state[S_SUM_RETURN * w + k] += ret
    state[S_BEST * w + k] = max(state[S_BEST * w + k], ret)
    state[S_WORST * w + k] = min(state[S_WORST * w + k], ret)
    # As in `_fill`: adding 0.0 rather than branching.
    win, loss = pnl > 0, pnl < 0
    state[S_WINS * w + k] += 1.0 if win else 0.0
    state[S_GROSS_WIN * w + k] += pnl if win else 0.0
    state[S_WIN_RETURN * w + k] += ret if win else 0.0
    state[S_LOSSES * w + k] += 1.0 if loss else 0.0
    state[S_GROSS_LOSS * w + k] += pnl if loss else 0.0
    state[S_LOSS_RETURN * w + k] += ret if loss else 0.0
    delta = pnl - state[S_PNL_MEAN * w + k]
    state[S_PNL_MEAN * w + k] += delta / count
    state[S_PNL_M2 * w + k] += delta * (pnl - state[S_PNL_MEAN * w + k])
    state[S_SIDE * w + k] = 0.0


@njit(cache=True, error_model="numpy", _nrt=False)
def _order(
    state: np.ndarray,
    k: int,
    w: int,
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
    wanted = _units_for_target(state, k, w, params, price, target)
    held = state[S_POSITION * w + k]
    if wanted == held:
        return
    if held != 0.0 and wanted * held <= 0.0:
        _fill(state, k, w, params, price, -held)
        state[S_POSITION * w + k] = 0.0
        _close_trade(state, k, w, i, reason, trades, store)
        held = 0.0
    if wanted != 0.0:
        if held == 0.0:
            state[S_SIDE * w + k] = 1.0 if wanted > 0 else -1.0
            state[S_ENTRY_IDX * w + k] = i
            state[S_ENTRY_UNITS * w + k] = 0.0
            state[S_ENTRY_NOTIONAL * w + k] = 0.0
            state[S_ENTRY_RAW * w + k] = 0.0
            state[S_EXIT_UNITS * w + k] = 0.0
            state[S_EXIT_NOTIONAL * w + k] = 0.0
            state[S_TRADE_FEES * w + k] = 0.0
        _fill(state, k, w, params, price, wanted - held)
        # Set, not accumulated: held + (wanted - held) can miss `wanted` by an ulp.
        state[S_POSITION * w + k] = wanted


@njit(cache=True, error_model="numpy", _nrt=False)
def _set_stop_prices(state: np.ndarray, k: int, w: int) -> None:
    """The open trade's stop-loss and take-profit prices from its entry before slippage (NaN = off)."""
    side = state[S_SIDE * w + k]
    entry = state[S_ENTRY_RAW * w + k] / state[S_ENTRY_UNITS * w + k]
    state[S_STOP_PRICE * w + k] = entry * (1.0 - side * state[S_STOP_LOSS * w + k])
    state[S_TAKE_PRICE * w + k] = entry * (1.0 + side * state[S_TAKE_PROFIT * w + k])


@njit(cache=True, error_model="numpy")
def exit_inside_bar_nb(
    side: float, stop: float, take: float, o: float, h: float, lo: float
) -> tuple[float, float]:
    """(raw fill price, reason) of a stop-loss or take-profit exit of a trade on `side` with those price
    levels, or (NaN, EXIT_SIGNAL) if neither is reached in this bar (a NaN level is off). A level the open
    already gapped through fills at the open (the open comes first in time); touched inside the bar it
    fills at the level, the stop first if both are."""
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


@njit(cache=True, error_model="numpy", _nrt=False)
def _bar_orders(
    state: np.ndarray,
    k: int,
    w: int,
    params: np.ndarray,
    i: int,
    o: float,
    h: float,
    lo: float,
    c: float,
    last: bool,
    trades: np.ndarray,
    store: bool,
) -> None:
    """Bar `i`'s orders for one run whose S_TARGET is already this bar's. In time order: the order waiting
    for this open fills there, then stop-loss/take-profit inside the bar, then at the close the target is
    decided (filled at once with fill="close"), and the last bar closes what is open."""
    next_open = params[P_FILL] == FILL_NEXT_OPEN
    # Without stop levels the trade's stop prices are never set nor read.
    stops = not (math.isnan(state[S_STOP_LOSS * w + k]) and math.isnan(state[S_TAKE_PROFIT * w + k]))
    if next_open and not math.isnan(state[S_PENDING_TARGET * w + k]):
        _order(
            state,
            k,
            w,
            params,
            i,
            o,
            state[S_PENDING_TARGET * w + k],
            state[S_PENDING_REASON * w + k],
            trades,
            store,
        )
        state[S_PENDING_TARGET * w + k] = np.nan
        if stops and state[S_POSITION * w + k] != 0.0:
            _set_stop_prices(state, k, w)
    if stops and state[S_POSITION * w + k] != 0.0:
        price, reason = exit_inside_bar_nb(
            state[S_SIDE * w + k], state[S_STOP_PRICE * w + k], state[S_TAKE_PRICE * w + k], o, h, lo
        )
        if not math.isnan(price):
            _order(state, k, w, params, i, price, 0.0, reason, trades, store)
    target = state[S_TARGET * w + k]
    order_target, reason = np.nan, EXIT_SIGNAL
    if target != state[S_LAST_TARGET * w + k]:
        order_target = state[S_LAST_TARGET * w + k] = target
    fill_bar = i + 1 if next_open else i
    max_bars = params[P_MAX_BARS]
    # Time is up unless this very order closes the trade anyway (flat or the other side).
    if (
        state[S_POSITION * w + k] != 0.0
        and max_bars > 0
        and fill_bar - state[S_ENTRY_IDX * w + k] >= max_bars
        and (math.isnan(order_target) or order_target * state[S_SIDE * w + k] > 0.0)
    ):
        order_target, reason = 0.0, EXIT_MAX_BARS
    if last:
        if state[S_POSITION * w + k] != 0.0:
            _order(state, k, w, params, i, c, 0.0, EXIT_END, trades, store)
    elif not math.isnan(order_target):
        if next_open:
            state[S_PENDING_TARGET * w + k], state[S_PENDING_REASON * w + k] = order_target, reason
        else:
            _order(state, k, w, params, i, c, order_target, reason, trades, store)
            if stops and state[S_POSITION * w + k] != 0.0:
                _set_stop_prices(state, k, w)


@njit(cache=True, error_model="numpy", inline="always")
def _direction_target(target: float, direction: float) -> float:
    """The target a run acts on: direction="long" treats negative targets as 0, "short" positive ones."""
    long_only = max(target, 0.0) if direction == DIRECTION_LONG else target
    return min(target, 0.0) if direction == DIRECTION_SHORT else long_only


@njit(cache=True, error_model="numpy", inline="always")
def _triage(
    target: float,
    last_target: float,
    pending: float,
    pending_reason: float,
    position: float,
    side: float,
    stop: float,
    take: float,
    entry_idx: float,
    o: float,
    h: float,
    lo: float,
    fill_bar: int,
    max_bars: float,
    next_open: bool,
    stops: bool,
    last: bool,
) -> tuple[bool, float, float, float]:
    """(act, last target, pending target, pending reason) of a run at a bar, its target already this
    bar's. `act` if `_bar_orders` may have something to do (it decides exactly; a bar flagged for nothing
    only costs time): an order waiting for this open, a stop level reached, time up, a new target to fill
    at this close, the last bar. A new target with none of these and fill="next_open" only waits for the
    next open: that is done here, as `_bar_orders` would. `stops` says whether any stop level is set.
    Bitwise operators and selects, no branches, so that runs side by side stay in SIMD lanes."""
    # `stops` (any stop level set) and max_bars are the same on every bar: the compiler drops what is off.
    reached = (
        (
            ((o - stop) * side <= 0.0)
            | ((o - take) * side >= 0.0)
            | (min(lo * side, h * side) <= stop * side)
            | (max(h * side, lo * side) >= take * side)
        )
        if stops
        else False
    )
    expired = (fill_bar - entry_idx >= max_bars) if max_bars > 0 else False
    changed = target != last_target
    act = (
        (pending == pending) | ((position != 0.0) & (reached | expired)) | (changed & (not next_open)) | last
    )
    queue = changed & (not act)
    return (
        act,
        target if queue else last_target,
        target if queue else pending,
        EXIT_SIGNAL if queue else pending_reason,
    )


@njit(cache=True, error_model="numpy", inline="always")
def _account(
    cash: float,
    position: float,
    c: float,
    equity_before: float,
    peak: float,
    underwater: float,
    ruined: float,
    ret_sum: float,
    ret_sq: float,
    downside_sq: float,
    max_drawdown: float,
    max_underwater: float,
    exposed: float,
) -> tuple[float, float, float, float, float, float, float, float, float, float, float]:
    """A bar's equity and drawdown at the close and the bar statistics updated with them, in argument
    order from `peak` on. The `+ 0.0` and the added zeros change no value (none of these is ever -0.0)
    but store a sum rather than one of two values: a runs-side-by-side loop then stores whole SIMD
    vectors instead of the masked stores it would make of "if x: field = y", which are slow."""
    equity = cash + position * c
    # Returns measured from a non-positive equity mean nothing; the metrics then leave them out.
    ruined += 1.0 if equity_before <= 0.0 else 0.0
    ret = equity / equity_before - 1.0
    ret_sum += ret
    ret_sq += ret * ret
    downside_sq += ret * ret if ret < 0.0 else 0.0
    peak = max(peak, equity) + 0.0
    drawdown = equity / peak - 1.0
    max_drawdown = min(max_drawdown, drawdown) + 0.0
    underwater = underwater + 1.0 if drawdown < 0.0 else 0.0
    max_underwater = max(max_underwater, underwater) + 0.0
    exposed += 1.0 if position != 0.0 else 0.0
    return (
        equity, drawdown, peak, underwater, ruined, ret_sum, ret_sq, downside_sq, max_drawdown,
        max_underwater, exposed,
    )  # fmt: skip


# Bars per chunk of `_account_series`: its scratch rows stay in the L1 cache.
ACCOUNT_CHUNK = 256


@njit(cache=True, error_model="numpy")
def _account_series(series: np.ndarray, close: np.ndarray, state: np.ndarray) -> None:
    """Equity and drawdown rows of `series` from its cash and position rows, and the bar statistics into
    `state` (one run): `_account` bar by bar, cut into loops the compiler turns into SIMD code (the
    divisions, the stores) and loops of the running sums, which must keep their order."""
    equity, cash, position, drawdown = series[0], series[1], series[2], series[3]
    returns, peaks = np.empty(ACCOUNT_CHUNK), np.empty(ACCOUNT_CHUNK)
    equity_before = peak = state[S_EQUITY]
    ret_sum = ret_sq = downside_sq = max_drawdown = max_underwater = 0.0
    # Counts as integers (exact, and free of the float adds' latency); `ruined` counts the bars whose
    # equity before is <= 0: the first bar's is the initial cash, the last bar's equity is no bar's.
    ruined, exposed = int(equity_before <= 0.0), 0
    above = -1  # the last bar with no drawdown: the bars under water since then are the time under water
    n = close.shape[0]
    for start in range(0, n, ACCOUNT_CHUNK):
        # Slices, indexed from 0 by range loops: indices the compiler knows are not negative.
        cut = slice(start, min(start + ACCOUNT_CHUNK, n))
        eq, held, dd, m = equity[cut], position[cut], drawdown[cut], min(ACCOUNT_CHUNK, n - start)
        c, ca = close[cut], cash[cut]
        for j in range(m):
            eq[j] = ca[j] + held[j] * c[j]
            ruined += eq[j] <= 0.0
            exposed += held[j] != 0.0
        returns[0] = eq[0] / equity_before - 1.0
        for j in range(1, m):
            returns[j] = eq[j] / eq[j - 1] - 1.0
        # The sums in bar order; none of these maxima and minima can be -0.0 (see `_account`).
        for j in range(m):
            ret = returns[j]
            ret_sum += ret
            ret_sq += ret * ret
            downside_sq += ret * ret if ret < 0.0 else 0.0
            peak = max(peak, eq[j])
            peaks[j] = peak
        for j in range(m):
            dd[j] = eq[j] / peaks[j] - 1.0
        for j in range(m):
            max_drawdown = min(max_drawdown, dd[j])
            above = above if dd[j] < 0.0 else start + j
            max_underwater = max(max_underwater, float(start + j - above))
        equity_before = eq[m - 1]
    ruined -= equity_before <= 0.0
    state[S_EQUITY], state[S_PEAK], state[S_RUINED] = equity_before, peak, float(ruined)
    state[S_UNDERWATER], state[S_EXPOSED] = float(n - 1 - above), float(exposed)
    state[S_RET_SUM], state[S_RET_SQ], state[S_DOWNSIDE_SQ] = ret_sum, ret_sq, downside_sq
    state[S_MAX_DRAWDOWN], state[S_MAX_UNDERWATER] = max_drawdown, max_underwater
    state[S_N_BARS] = n


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
    `trades` one row per TRADE_COLUMNS entry with a column per closed trade.

    Two passes: the orders (cash and position rows), then the equity and bar statistics
    (`_account_series`). The run's hot values stay in locals, read back from its state array only after
    `_bar_orders` acted: kept in the array, every bar would wait on its own last store."""
    n = close.shape[0]
    series = np.empty((len(SERIES), n))
    # One row per trade. Every trade opens on an order of a new target, so there are at most as many as
    # target changes: a buffer for the worst case (a trade a bar) would be fresh memory on every call,
    # each of its pages a fault on first write.
    changes = target[0] != 0.0
    for i in range(1, n):
        changes += target[i] != target[i - 1]
    trades = np.empty((changes, len(TRADE_COLUMNS)))
    state = initial_state_nb(
        params, params[P_STOP_LOSS : P_STOP_LOSS + 1], params[P_TAKE_PROFIT : P_TAKE_PROFIT + 1]
    )
    next_open = params[P_FILL] == FILL_NEXT_OPEN
    direction, max_bars = params[P_DIRECTION], params[P_MAX_BARS]
    cash, position, side, entry_idx = state[S_CASH], 0.0, 0.0, 0.0
    stop = take = pending = np.nan
    last_target, pending_reason = 0.0, EXIT_SIGNAL
    stops = not (math.isnan(params[P_STOP_LOSS]) and math.isnan(params[P_TAKE_PROFIT]))
    cash_row, position_row = series[1], series[2]
    # Without stop levels or max_bars, or while flat, nothing happens on a bar until the target changes
    # unless an order waits for the open or it is the last bar: such bars only copy cash and position.
    quiet = not stops and max_bars <= 0
    i = 0
    while i < n:
        if math.isnan(pending) and (quiet or position == 0.0):
            while i < n - 1 and _direction_target(target[i], direction) == last_target:
                cash_row[i] = cash
                position_row[i] = position
                i += 1
        o, h, lo, c, t = open_[i], high[i], low[i], close[i], target[i]
        t = _direction_target(t, direction)
        act, last_target, pending, pending_reason = _triage(
            t, last_target, pending, pending_reason, position, side, stop, take, entry_idx, o, h, lo,
            i + 1 if next_open else i, max_bars, next_open, stops, i == n - 1,
        )  # fmt: skip
        if act:
            state[S_TARGET], state[S_LAST_TARGET] = t, last_target
            state[S_PENDING_TARGET], state[S_PENDING_REASON] = pending, pending_reason
            _bar_orders(state, 0, 1, params, i, o, h, lo, c, i == n - 1, trades, True)
            cash, position, side, entry_idx = (
                state[S_CASH],
                state[S_POSITION],
                state[S_SIDE],
                state[S_ENTRY_IDX],
            )
            stop, take = state[S_STOP_PRICE], state[S_TAKE_PRICE]
            last_target, pending = state[S_LAST_TARGET], state[S_PENDING_TARGET]
            pending_reason = state[S_PENDING_REASON]
        cash_row[i] = cash
        position_row[i] = position
        i += 1
    _account_series(series, close, state)
    metrics = metrics_nb(state, params)
    return series, np.ascontiguousarray(trades[: int(metrics[M_N_TRADES])].T), metrics


# Runs side by side in `sweep_nb`'s blocks: a compile-time constant, so that the compiler sees that the
# runs' fields never overlap and keeps runs in SIMD lanes; enough runs for several full vectors.
SWEEP_BLOCK = 32


@njit(cache=True, error_model="numpy")
def sweep_block_nb(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    pred: np.ndarray,
    long_thresholds: np.ndarray,
    short_thresholds: np.ndarray,
    hold: bool,
    params: np.ndarray,
    state: np.ndarray,
) -> None:
    """SWEEP_BLOCK runs in one pass over the bars, their states interleaved in `state`
    (`initial_state_nb`); run k's target at bar i is the `signal_nb` of `pred[i]` and its thresholds.

    Each bar takes three passes over the runs: their targets and whether anything may happen to them,
    the orders of those flagged (`_bar_orders`, the rare branchy part), then every run's equity and
    statistics (`_account`). The first and last have no branches, so the runs sit in SIMD lanes, and
    each bar's prices are loaded once for all of them. A run's arithmetic is `simulate_nb`'s, in the same
    order, so each run's results equal `simulate` on its targets bit for bit."""
    w = SWEEP_BLOCK
    n = close.shape[0]
    next_open = params[P_FILL] == FILL_NEXT_OPEN
    direction, max_bars = params[P_DIRECTION], params[P_MAX_BARS]
    act = np.empty(w, dtype=np.bool_)
    no_trades = np.empty((0, 0))
    levels = state[S_STOP_LOSS * w : (S_TAKE_PROFIT + 1) * w]
    stops = not np.isnan(levels).all()
    for i in range(n):
        o, h, lo, c, x = open_[i], high[i], low[i], close[i], pred[i]
        last = i == n - 1
        for k in range(w):
            target = _direction_target(
                signal_nb(x, long_thresholds[k], short_thresholds[k], state[S_TARGET * w + k], hold),
                direction,
            )
            (
                act[k], last_target, pending, pending_reason,
            ) = _triage(
                target, state[S_LAST_TARGET * w + k], state[S_PENDING_TARGET * w + k],
                state[S_PENDING_REASON * w + k], state[S_POSITION * w + k], state[S_SIDE * w + k],
                state[S_STOP_PRICE * w + k], state[S_TAKE_PRICE * w + k], state[S_ENTRY_IDX * w + k],
                o, h, lo, i + 1 if next_open else i, max_bars, next_open, stops, last,
            )  # fmt: skip
            # + 0.0 changes none of these (never -0.0): see `_account`.
            state[S_TARGET * w + k] = target + 0.0
            state[S_LAST_TARGET * w + k] = last_target + 0.0
            state[S_PENDING_TARGET * w + k] = pending + 0.0
            state[S_PENDING_REASON * w + k] = pending_reason + 0.0
        for k in range(w):
            if act[k]:
                _bar_orders(state, k, w, params, i, o, h, lo, c, last, no_trades, False)
        for k in range(w):
            (
                state[S_EQUITY * w + k], _, state[S_PEAK * w + k], state[S_UNDERWATER * w + k],
                state[S_RUINED * w + k], state[S_RET_SUM * w + k], state[S_RET_SQ * w + k],
                state[S_DOWNSIDE_SQ * w + k], state[S_MAX_DRAWDOWN * w + k], state[S_MAX_UNDERWATER * w + k],
                state[S_EXPOSED * w + k],
            ) = _account(
                state[S_CASH * w + k], state[S_POSITION * w + k], c, state[S_EQUITY * w + k],
                state[S_PEAK * w + k], state[S_UNDERWATER * w + k], state[S_RUINED * w + k],
                state[S_RET_SUM * w + k], state[S_RET_SQ * w + k], state[S_DOWNSIDE_SQ * w + k],
                state[S_MAX_DRAWDOWN * w + k], state[S_MAX_UNDERWATER * w + k], state[S_EXPOSED * w + k],
            )  # fmt: skip
    state[S_N_BARS * w : (S_N_BARS + 1) * w] = n


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
    targets bar by bar and its stop levels replace the config's. Blocks of SWEEP_BLOCK cells take one
    pass over the bars each (`sweep_block_nb`), in parallel; the last block is filled up with runs whose
    NaN thresholds never trade. Each block writes only its own rows, so the result does not depend on the
    thread count or schedule."""
    w = SWEEP_BLOCK
    cells = long_thresholds.shape[0]
    blocks = (cells + w - 1) // w
    padded = np.full((4, blocks * w), np.nan)
    for row, values in enumerate((long_thresholds, short_thresholds, stop_losses, take_profits)):
        padded[row, :cells] = values
    out = np.empty((blocks * w, N_METRICS))
    for b in prange(blocks):
        cut = slice(b * w, (b + 1) * w)
        state = initial_state_nb(params, padded[2, cut], padded[3, cut])
        sweep_block_nb(open_, high, low, close, pred, padded[0, cut], padded[1, cut], hold, params, state)
        for k in range(w):
            out[b * w + k] = metrics_nb(state[k::w], params)
    return out[:cells]
