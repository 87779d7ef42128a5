"""Bar-by-bar trading simulator (numba): targets in, trades, equity series and metrics out.

`simulate(open, high, low, close, target, config)` runs one strategy, `sweep` many threshold/stop cells
in parallel, `signals_from_predictions` turns model predictions into targets. Conventions (also in
docs/metrics.md, "Simulator conventions"):

- Timing. `target[i]` is decided at bar i's close. With fill="next_open" it fills at bar i+1's open,
  with fill="close" at bar i's close. Within a bar, in time order: the order waiting for the open fills,
  then stop-loss/take-profit inside the bar, then the close (decision, close fills, mark to market).
- Orders. An order is placed only when the target differs from the last target acted on; a position is
  then held as sized (no rebalancing). direction="long" treats negative targets as 0, "short" positive.
- Sizing, at the raw fill price before the trade: "fraction" wants target * fraction * equity / price
  units (equity at that price; nothing opens while equity <= 0), "notional" target * notional / price,
  "units" target * units. Cash may go negative (fraction > 1, fees): there is no margin check.
- Costs. Slippage moves every fill against us (buy at price * (1 + s), sell at price * (1 - s)); the fee
  is fee_bps of the traded notional at that executed price, per fill.
- A trade runs from leaving flat (or flipping) until flat again or a flip. A same-side resize trades only
  the difference in units (fees on that difference) inside the same trade: `size` is all units entered,
  `entry_price`/`exit_price` are the unit-weighted means of the entry/exit fills (slippage included),
  `pnl` = side * (exit notional - entry notional) - all the trade's fees, `return_pct` = pnl / entry
  notional (a fraction, not percent), `fees` both ways, `side` +1 long / -1 short, `bars_held` = exit_idx
  - entry_idx, where the indices are the bars whose prices filled.
- A flip (long to short or back) is one fill price: the old trade closes with exit_reason "signal" and
  the new one opens in the same bar.
- Stops are fractions of the trade's entry price before slippage (the unit-weighted mean of its entry
  fills' raw prices, so costs never move the levels): a long's stop-loss at
  entry * (1 - stop_loss_pct), take-profit at entry * (1 + take_profit_pct), mirrored for shorts. A level
  the open gapped through fills at the open; touched inside the bar it fills at the level; if both are
  touched inside one bar the stop counts. A trade filled at an open can be stopped in that same bar.
- max_bars_held = m closes a trade at the fill of the m-th bar after its entry (bars_held == m): at
  the open of entry + m with next_open, at the close of entry + m with close. A signal that closes or
  flips the trade at that fill takes precedence (exit_reason "signal"); a same-side resize does not.
- After a stop-loss, take-profit or max_bars exit the simulator stays flat until the target changes.
- End of data: the last bar's close closes any open trade (fees and slippage as usual, exit_reason
  "end") and nothing new opens there, so the trades account for the whole equity change. An order
  decided at the last close is not executed.
- Series are taken at each close: position in units, cash, equity = cash + position * close exactly,
  drawdown = equity / running max(initial_cash, equity so far) - 1 (<= 0).
"""

from trading_assets.compute.numba_cache import guard
from trading_assets.compute.simulator import kernels
from trading_assets.compute.simulator.config import SimConfig, SimConfigError
from trading_assets.compute.simulator.engine import (
    METRIC_NAMES,
    TRADE_COLUMNS,
    SimInputError,
    SimResult,
    simulate,
)
from trading_assets.compute.simulator.signals import signals_from_predictions
from trading_assets.compute.simulator.sweep import (
    best_cell,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    sweep,
)

guard(kernels)

__all__ = [
    "METRIC_NAMES",
    "TRADE_COLUMNS",
    "SimConfig",
    "SimConfigError",
    "SimInputError",
    "SimResult",
    "best_cell",
    "deflated_sharpe_ratio",
    "expected_max_sharpe",
    "signals_from_predictions",
    "simulate",
    "sweep",
]
