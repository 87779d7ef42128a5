"""numba kernels of the simulator: one run (`simulate_nb`), blocks of runs side by side (`sweep_nb`), metrics.

The trading rules these kernels follow are in the package docstring; their cached machine code is
guarded as all compiled code of the compute library is (`compute/numba_cache.py`, called by the package).

The trading state of a run is a small float64 array indexed by the `S_*` constants, the config a float64
array indexed by `P_*` (flags as codes, NaN or 0 for "off"), so the kernels compile once, whatever the
config, and their machine code stays cacheable. Indices and integer amounts stored as float64 are exact
below 2**53. Both loops share every step of a bar: the target (`signal_nb`, `_direction_target`), what may
happen (`_triage`), the orders (`_bar_orders`, only on the bars `_triage` flags) and the equity and bar
statistics (`_account`; `simulate_nb` does the same arithmetic in a second pass, `_account_series`). The
order helpers are inlined and take and return a run's ledger, trade statistics and order book as tuples
of locals (numba has no mutable scalars), so its values stay in registers: `simulate_nb` keeps them in
locals throughout and skips the bars on which nothing can happen; `sweep_block_nb` keeps SWEEP_BLOCK runs
side by side in SIMD lanes in its state array and loads a flagged run's tuples from it and back.

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


# A run's ledger and closed-trade statistics travel through the order helpers as tuples of locals (numba
# has no mutable scalars): the helpers are inlined, so the values stay in registers. `sweep_block_nb`
# loads a flagged run's fields from its state array into these tuples and stores them back.
# Ledger: cash, position, and the open trade: side, entry bar, entry and exit sums (units, notional, entry
# units at their prices before slippage), fees. Trade statistics: see `_close_trade`.
L_CASH, L_POSITION, L_SIDE, L_ENTRY_IDX = 0, 1, 2, 3
LEDGER = (S_CASH, S_POSITION, S_SIDE, S_ENTRY_IDX, S_ENTRY_UNITS, S_ENTRY_NOTIONAL, S_ENTRY_RAW,
          S_EXIT_UNITS, S_EXIT_NOTIONAL, S_TRADE_FEES)  # fmt: skip
STATS = (S_N_TRADES, S_WINS, S_LOSSES, S_GROSS_WIN, S_GROSS_LOSS, S_SUM_RETURN, S_WIN_RETURN,
         S_LOSS_RETURN, S_BEST, S_WORST, S_PNL_MEAN, S_PNL_M2)  # fmt: skip
ORDERS = (S_STOP_PRICE, S_TAKE_PRICE, S_LAST_TARGET, S_PENDING_TARGET, S_PENDING_REASON)
Ledger = Stats = Orders = tuple[float, ...]
Rules = tuple[bool, float, float, float, float, float]


@njit(cache=True, error_model="numpy", inline="always")
def _rules(params: np.ndarray) -> Rules:
    """The config values the orders read: (next_open, sizing, size, slippage, fee, max_bars)."""
    return (
        params[P_FILL] == FILL_NEXT_OPEN, params[P_SIZING], params[P_SIZE], params[P_SLIPPAGE],
        params[P_FEE], params[P_MAX_BARS],
    )  # fmt: skip


@njit(cache=True, error_model="numpy", inline="always")
def _units_for_target(
    sizing: float, size: float, cash: float, position: float, price: float, target: float
) -> float:
    """Signed units wanted for `target` at `price` (before slippage); fraction sizing takes the equity at
    that price before the trade, and opens nothing while equity is zero or negative."""
    if sizing == SIZING_FRACTION:
        equity = cash + position * price
        return target * size * max(equity, 0.0) / price
    if sizing == SIZING_NOTIONAL:
        return target * size / price
    return target * size


@njit(cache=True, error_model="numpy", inline="always")
def _fill(ledger: Ledger, slippage: float, fee_rate: float, price: float, units: float) -> Ledger:
    """The ledger after trading `units` (signed, buy > 0) at `price` moved against us by the slippage,
    paying the fee on the traded notional, the fill added to the open trade's entry or exit sums."""
    (cash, position, side, entry_idx, entry_units, entry_notional, entry_raw, exit_units, exit_notional,
     fees) = ledger  # fmt: skip
    executed = price * ((1.0 + slippage) if units > 0 else (1.0 - slippage))
    notional = abs(units) * executed
    fee = notional * fee_rate
    # Both sums get a value, one of them 0.0 (no sum is ever -0.0): selects, not a branch the processor
    # would guess wrong on every other fill.
    entry = units * side > 0
    return (
        cash - (units * executed + fee),
        position,
        side,
        entry_idx,
        entry_units + (abs(units) if entry else 0.0),
        entry_notional + (notional if entry else 0.0),
        entry_raw + (abs(units) * price if entry else 0.0),
        exit_units + (0.0 if entry else abs(units)),
        exit_notional + (0.0 if entry else notional),
        fees + fee,
    )


@njit(cache=True, error_model="numpy", inline="always")
def _close_trade(
    ledger: Ledger, stats: Stats, i: int, reason: float, trades: np.ndarray, store: bool
) -> tuple[Ledger, Stats]:
    """(ledger, stats) after booking the open trade, now flat, as closed at bar `i`: the closed-trade
    statistics (count, wins, losses, gross win and loss, sums of returns, of winners' and losers'
    returns, best and worst return, Welford mean and M2 of pnl), and its column of `trades` if `store`."""
    (cash, position, side, entry_idx, entry_units, entry_notional, entry_raw, exit_units, exit_notional,
     fees) = ledger  # fmt: skip
    count, wins, losses, gross_win, gross_loss, sum_return, win_return, loss_return, best, worst, mean, m2 = (
        stats
    )
    pnl = side * (exit_notional - entry_notional) - fees
    ret = pnl / entry_notional
    if store:
        j = int(count)
        trades[T_ENTRY_IDX, j] = entry_idx
        trades[T_EXIT_IDX, j] = i
        trades[T_SIDE, j] = side
        trades[T_SIZE, j] = entry_units
        trades[T_ENTRY_PRICE, j] = entry_notional / entry_units
        trades[T_EXIT_PRICE, j] = exit_notional / exit_units
        trades[T_PNL, j] = pnl
        trades[T_RETURN, j] = ret
        trades[T_FEES, j] = fees
        trades[T_BARS_HELD, j] = i - entry_idx
        trades[T_EXIT_REASON, j] = reason
    count += 1
    # As in `_fill`: adding 0.0 rather than branching.
    win, loss = pnl > 0, pnl < 0
    delta = pnl - mean
    mean += delta / count
    ledger = (
        cash, position, 0.0, entry_idx, entry_units, entry_notional, entry_raw, exit_units, exit_notional,
        fees,
    )  # fmt: skip
    stats = (
        count,
        wins + (1.0 if win else 0.0),
        losses + (1.0 if loss else 0.0),
        gross_win + (pnl if win else 0.0),
        gross_loss + (pnl if loss else 0.0),
        sum_return + ret,
        win_return + (ret if win else 0.0),
        loss_return + (ret if loss else 0.0),
        max(best, ret),
        min(worst, ret),
        mean,
        m2 + delta * (pnl - mean),
    )
    return ledger, stats


@njit(cache=True, error_model="numpy", inline="always")
def _with_position(ledger: Ledger, position: float) -> Ledger:
    """`ledger` with its position replaced."""
    return (
        ledger[0], position, ledger[2], ledger[3], ledger[4], ledger[5], ledger[6], ledger[7], ledger[8],
        ledger[9],
    )  # fmt: skip


@njit(cache=True, error_model="numpy", inline="always")
def _order(
    ledger: Ledger,
    stats: Stats,
    rules: Rules,
    i: int,
    price: float,
    target: float,
    reason: float,
    trades: np.ndarray,
    store: bool,
) -> tuple[Ledger, Stats]:
    """(ledger, stats) after moving the position to `target` with fills at bar `i`'s `price`. Going flat
    or to the other side closes the trade (exit `reason`) and a flip opens the new one in the same bar at
    the same price; a resize on the same side trades only the difference within the same trade."""
    _, sizing, size, slippage, fee_rate, _ = rules
    held = ledger[L_POSITION]
    wanted = _units_for_target(sizing, size, ledger[L_CASH], held, price, target)
    if wanted == held:
        return ledger, stats
    if held != 0.0 and wanted * held <= 0.0:
        ledger = _fill(ledger, slippage, fee_rate, price, -held)
        ledger = _with_position(ledger, 0.0)
        ledger, stats = _close_trade(ledger, stats, i, reason, trades, store)
        held = 0.0
    if wanted != 0.0:
        if held == 0.0:
            # A new trade: its side and entry bar, its sums from zero.
            ledger = (
                ledger[L_CASH],
                held,
                1.0 if wanted > 0 else -1.0,
                float(i),
                0.0,
                0.0,
                0.0,
                0.0,
                0.0,
                0.0,
            )
        ledger = _fill(ledger, slippage, fee_rate, price, wanted - held)
        # Set, not accumulated: held + (wanted - held) can miss `wanted` by an ulp.
        ledger = _with_position(ledger, wanted)
    return ledger, stats


@njit(cache=True, error_model="numpy", inline="always")
def _stop_prices(ledger: Ledger, stop_loss: float, take_profit: float) -> tuple[float, float]:
    """The open trade's stop-loss and take-profit prices from its entry before slippage (NaN = off)."""
    side = ledger[L_SIDE]
    entry = ledger[6] / ledger[4]
    return entry * (1.0 - side * stop_loss), entry * (1.0 + side * take_profit)


@njit(cache=True, error_model="numpy", inline="always")
def _bar_orders(
    ledger: Ledger,
    stats: Stats,
    orders: Orders,
    stop_loss: float,
    take_profit: float,
    rules: Rules,
    i: int,
    o: float,
    h: float,
    lo: float,
    c: float,
    target: float,
    last: bool,
    trades: np.ndarray,
    store: bool,
) -> tuple[Ledger, Stats, Orders]:
    """(ledger, stats, orders) after bar `i`'s orders for one run, `target` this bar's; `orders` is
    (stop price, take-profit price, last target acted on, pending target (NaN = none), its exit reason).
    In time order: the order waiting for this open fills there, then stop-loss/take-profit inside the
    bar, then at the close the target is decided (filled at once with fill="close"), and the last bar
    closes what is open."""
    next_open, _, _, _, _, max_bars = rules
    stop_price, take_price, last_target, pending, pending_reason = orders
    # Without stop levels the trade's stop prices are never set nor read.
    stops = not (math.isnan(stop_loss) and math.isnan(take_profit))
    # Three moments, each with at most one order: one call of `_order` in a loop rather than three, which
    # would triple the inlined code.
    for moment in range(3):
        price, order_target, reason = np.nan, np.nan, EXIT_SIGNAL
        if moment == 0:
            # The order waiting for this open.
            if next_open and not math.isnan(pending):
                price, order_target, reason = o, pending, pending_reason
                pending = np.nan
        elif moment == 1:
            # A stop level reached inside the bar.
            if stops and ledger[L_POSITION] != 0.0:
                price, reason = exit_inside_bar_nb(ledger[L_SIDE], stop_price, take_price, o, h, lo)
                order_target = 0.0
        else:
            # The close: the target decided there, time up, the end of the data.
            if target != last_target:
                order_target = last_target = target
            fill_bar = i + 1 if next_open else i
            # Time is up unless this very order closes the trade anyway (flat or the other side).
            if (
                ledger[L_POSITION] != 0.0
                and max_bars > 0
                and fill_bar - ledger[L_ENTRY_IDX] >= max_bars
                and (math.isnan(order_target) or order_target * ledger[L_SIDE] > 0.0)
            ):
                order_target, reason = 0.0, EXIT_MAX_BARS
            if last:
                if ledger[L_POSITION] != 0.0:
                    price, order_target, reason = c, 0.0, EXIT_END
                else:
                    order_target = np.nan
            elif next_open:
                if not math.isnan(order_target):
                    pending, pending_reason = order_target, reason
                order_target = np.nan
            else:
                price = c
        if not math.isnan(order_target) and not math.isnan(price):
            ledger, stats = _order(ledger, stats, rules, i, price, order_target, reason, trades, store)
            # The stop prices of the trade opened or resized (none after a stop exit: it is flat).
            if stops and ledger[L_POSITION] != 0.0:
                stop_price, take_price = _stop_prices(ledger, stop_loss, take_profit)
    return ledger, stats, (stop_price, take_price, last_target, pending, pending_reason)


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
    (`_account_series`). The run's state stays in locals (the order helpers are inlined) and is written
    to a state array for the metrics at the end."""
    n = close.shape[0]
    series = np.empty((len(SERIES), n))
    # One column per trade. Every trade opens on an order of a new target, so there are at most as many
    # as target changes: a buffer for the worst case (a trade a bar) would be fresh memory on every call,
    # each of its pages a fault on first write.
    changes = target[0] != 0.0
    for i in range(1, n):
        changes += target[i] != target[i - 1]
    trades = np.empty((len(TRADE_COLUMNS), changes))
    state = initial_state_nb(
        params, params[P_STOP_LOSS : P_STOP_LOSS + 1], params[P_TAKE_PROFIT : P_TAKE_PROFIT + 1]
    )
    rules = _rules(params)
    next_open = rules[0]
    direction, max_bars = params[P_DIRECTION], params[P_MAX_BARS]
    stop_loss, take_profit = params[P_STOP_LOSS], params[P_TAKE_PROFIT]
    ledger = (state[S_CASH], 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    stats = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -np.inf, np.inf, 0.0, 0.0)
    stop = take = pending = np.nan
    last_target, pending_reason = 0.0, EXIT_SIGNAL
    stops = not (math.isnan(stop_loss) and math.isnan(take_profit))
    cash_row, position_row = series[1], series[2]
    # Without stop levels or max_bars, or while flat, nothing happens on a bar until the target changes
    # unless an order waits for the open or it is the last bar: such bars only copy cash and position.
    quiet = not stops and max_bars <= 0
    i = 0
    while i < n:
        cash, position = ledger[L_CASH], ledger[L_POSITION]
        if math.isnan(pending) and (quiet or position == 0.0):
            while i < n - 1 and _direction_target(target[i], direction) == last_target:
                cash_row[i] = cash
                position_row[i] = position
                i += 1
        o, h, lo, c = open_[i], high[i], low[i], close[i]
        t = _direction_target(target[i], direction)
        act, last_target, pending, pending_reason = _triage(
            t, last_target, pending, pending_reason, position, ledger[L_SIDE], stop, take,
            ledger[L_ENTRY_IDX], o, h, lo, i + 1 if next_open else i, max_bars, next_open, stops, i == n - 1,
        )  # fmt: skip
        if act:
            ledger, stats, orders = _bar_orders(
                ledger, stats, (stop, take, last_target, pending, pending_reason), stop_loss, take_profit,
                rules, i, o, h, lo, c, t, i == n - 1, trades, True,
            )  # fmt: skip
            stop, take, last_target, pending, pending_reason = orders
        cash_row[i] = ledger[L_CASH]
        position_row[i] = ledger[L_POSITION]
        i += 1
    for j in range(len(LEDGER)):
        state[LEDGER[j]] = ledger[j]
    for j in range(len(STATS)):
        state[STATS[j]] = stats[j]
    _account_series(series, close, state)
    metrics = metrics_nb(state, params)
    return series, trades[:, : int(metrics[M_N_TRADES])], metrics


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
    rules = _rules(params)
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
                ledger = (
                    state[S_CASH * w + k], state[S_POSITION * w + k], state[S_SIDE * w + k],
                    state[S_ENTRY_IDX * w + k], state[S_ENTRY_UNITS * w + k], state[S_ENTRY_NOTIONAL * w + k],
                    state[S_ENTRY_RAW * w + k], state[S_EXIT_UNITS * w + k], state[S_EXIT_NOTIONAL * w + k],
                    state[S_TRADE_FEES * w + k],
                )  # fmt: skip
                stats = (
                    state[S_N_TRADES * w + k], state[S_WINS * w + k], state[S_LOSSES * w + k],
                    state[S_GROSS_WIN * w + k], state[S_GROSS_LOSS * w + k], state[S_SUM_RETURN * w + k],
                    state[S_WIN_RETURN * w + k], state[S_LOSS_RETURN * w + k], state[S_BEST * w + k],
                    state[S_WORST * w + k], state[S_PNL_MEAN * w + k], state[S_PNL_M2 * w + k],
                )  # fmt: skip
                orders = (
                    state[S_STOP_PRICE * w + k], state[S_TAKE_PRICE * w + k], state[S_LAST_TARGET * w + k],
                    state[S_PENDING_TARGET * w + k], state[S_PENDING_REASON * w + k],
                )  # fmt: skip
                ledger, stats, orders = _bar_orders(
                    ledger, stats, orders, state[S_STOP_LOSS * w + k], state[S_TAKE_PROFIT * w + k], rules,
                    i, o, h, lo, c, state[S_TARGET * w + k], last, no_trades, False,
                )  # fmt: skip
                for j in range(len(LEDGER)):
                    state[LEDGER[j] * w + k] = ledger[j]
                for j in range(len(STATS)):
                    state[STATS[j] * w + k] = stats[j]
                for j in range(len(ORDERS)):
                    state[ORDERS[j] * w + k] = orders[j]
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
