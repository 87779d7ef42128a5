"""Checks on a `simulation`: it reproduces from its stored inputs, and its stored accounts balance.

They run inside the simulation step (declared as its check specs), after the write, on what was stored:
- `simulation_reproduces` runs the sim again from the catalog's config and thresholds and the stores'
  predictions and bars, and requires the catalog's trades and metrics and the series table bit for bit;
- `accounting_balances` reads the series table and the trades back and requires the simulator's
  invariants: the target the predictions and thresholds give; cash + position x close = equity on every
  bar; drawdown from the running peak; a position only inside a trade and on its side; position and cash
  changing only on bars where something fills; each trade's pnl = side x size x price change - fees, and
  all of them adding up to the equity's whole change; no negative fee; bars held = exit - entry; and every
  fill inside its own bar's low-high range widened only by the configured slippage (a price from a later
  bar would fall outside).
"""

import json
import math

import dagster as dg
import numpy as np
import pyarrow as pa

from resources.catalog import Catalog
from resources.timeseries import TIMESTAMP_COLUMN, TimeSeriesStore
from trading_assets.compute.simulator import signals_from_predictions
from trading_assets.records import SimulationRecord, metrics_from_json, metrics_json
from trading_assets.simulation.service import (
    SimulationSpec,
    catalog_trades,
    load_inputs,
    replay,
    series_table,
)

SIMULATION_REPRODUCES = "simulation_reproduces"
ACCOUNTING_BALANCES = "accounting_balances"
# Relative tolerance of the balance checks: the stored doubles are the simulator's own, so only the
# rounding of recomputing a sum differs.
TOLERANCE = 1e-9


def check_specs(asset_key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            SIMULATION_REPRODUCES,
            asset=asset_key,
            description="Run again from the stored config, thresholds, predictions and bars: the trades, "
            "metrics and per-bar series must equal what is stored, bit for bit.",
        ),
        dg.AssetCheckSpec(
            ACCOUNTING_BALANCES,
            asset=asset_key,
            description="On the stored series: cash + position x close = equity every bar, drawdown from "
            "the running peak, trades' pnl sum to the equity change, fees >= 0, every fill inside its "
            "bar's range (plus slippage).",
        ),
    ]


def reproduce_problems(store: TimeSeriesStore, catalog: Catalog, record: SimulationRecord) -> list[str]:
    """Differences between what is stored for `record` and a fresh run from its stored inputs."""
    _, inputs, target, result = replay(store, catalog, record)
    problems = []
    stored_trades = catalog.list_simulation_trades(record.name)
    again = catalog_trades(inputs, result)
    if stored_trades != again:
        first = next(
            (i for i, (a, b) in enumerate(zip(stored_trades, again, strict=False)) if a != b),
            min(len(stored_trades), len(again)),
        )
        problems.append(
            f"trades differ from trade {first} on ({len(stored_trades)} stored, {len(again)} on the re-run)"
        )
    if record.metrics is None or metrics_json(metrics_from_json(record.metrics)) != metrics_json(
        result.metrics
    ):
        problems.append("the stored metrics differ from the re-run's")
    stored = store.read(record.name)
    fresh = series_table(inputs, target, result)
    for name in fresh.column_names:
        if name not in stored.column_names or not stored.column(name).equals(fresh.column(name)):
            problems.append(f"series column {name!r} differs from the re-run's")
    return problems


def simulation_reproduces(
    store: TimeSeriesStore, catalog: Catalog, record: SimulationRecord
) -> dg.AssetCheckResult:
    problems = reproduce_problems(store, catalog, record)
    return dg.AssetCheckResult(
        check_name=SIMULATION_REPRODUCES,
        passed=not problems,
        description="; ".join(problems) or f"{record.name} re-ran to the same trades, metrics and series",
        metadata={"trades": record.n_trades or 0, "rows": record.row_count or 0},
    )


def _column(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


def _off(a: np.ndarray, b: np.ndarray, scale: np.ndarray | float) -> np.ndarray:
    return np.abs(a - b) > TOLERANCE * np.maximum(1.0, np.abs(scale))


def accounting_problems(store: TimeSeriesStore, catalog: Catalog, record: SimulationRecord) -> list[str]:
    """Where the stored series and trades of `record` break the simulator's invariants."""
    spec = SimulationSpec.from_json(record.config)
    thresholds = {int(k): (float(v[0]), float(v[1])) for k, v in json.loads(record.thresholds).items()}
    bars = load_inputs(store, catalog, spec, thresholds)
    series = store.read(record.name)
    ts = series.column(TIMESTAMP_COLUMN).cast(pa.int64()).to_numpy()
    if not np.array_equal(ts, bars.ts_us):
        return [f"the series holds {ts.size} bars, the sim replays {bars.ts_us.size} (or other timestamps)"]
    cash, position, equity, drawdown, target = (
        _column(series, n) for n in ("cash", "position", "equity", "drawdown", "target")
    )
    initial = spec.sim.initial_cash
    problems = []

    def report(what: str, bad: np.ndarray) -> None:
        if bad.any():
            i = int(np.argmax(bad))
            problems.append(
                f"{what} at bar {i} ({np.datetime64(int(ts[i]), 'us')} UTC; {int(bad.sum())} bars)"
            )

    decided = signals_from_predictions(
        bars.signal, bars.long_threshold, bars.short_threshold, dead_zone=spec.dead_zone
    )
    report("the target is not what the predictions and thresholds give", decided != target)
    report("cash + position x close != equity", _off(cash + position * bars.close, equity, equity))
    peak = np.maximum.accumulate(np.maximum(equity, initial))
    report("drawdown is not equity / running peak - 1", _off(equity / peak - 1, drawdown, 1.0))

    trades = catalog.list_simulation_trades(record.name)
    # The side of the trade open at each bar's close (a trade holds from its entry bar to before its exit
    # bar), and the bars where something may fill: entries, exits, and the fills of target changes.
    side = np.zeros(ts.size)
    fills = np.zeros(ts.size, dtype=bool)
    for t in trades:
        side[t.entry_idx : t.exit_idx] = t.side
        fills[[t.entry_idx, t.exit_idx]] = True
    changed = np.flatnonzero(np.diff(target, prepend=0.0) != 0) + (spec.sim.fill == "next_open")
    fills[changed[changed < ts.size]] = True
    report("a position outside every trade", (side == 0) & (position != 0))
    report("a position on the other side of its trade", (side != 0) & (np.sign(position) != side))
    report("the position changed without a fill", (np.diff(position, prepend=0.0) != 0) & ~fills)
    report("cash changed without a fill", (np.diff(cash, prepend=initial) != 0) & ~fills)

    pnl = math.fsum(t.pnl for t in trades)
    change = float(equity[-1]) - initial
    if abs(pnl - change) > 1e-7 * max(1.0, abs(initial), abs(float(equity[-1]))):
        problems.append(f"the trades' pnl sums to {pnl:.6f}, the equity changed by {change:.6f}")
    slip = spec.sim.slippage_bps / 10_000
    for t in trades:
        if t.fees < 0:
            problems.append(f"trade {t.trade} has a negative fee {t.fees}")
        if t.bars_held != t.exit_idx - t.entry_idx:
            problems.append(
                f"trade {t.trade} held {t.bars_held} bars, from bar {t.entry_idx} to {t.exit_idx}"
            )
        # Every unit entered is exited, so the mean prices give the pnl whatever the fills in between.
        gross = t.side * t.size * (t.exit_price - t.entry_price)
        if abs(gross - t.fees - t.pnl) > TOLERANCE * max(1.0, t.size * t.entry_price):
            problems.append(f"trade {t.trade}'s pnl {t.pnl} is not side x size x price change - fees")
        for what, i, price in (("entry", t.entry_idx, t.entry_price), ("exit", t.exit_idx, t.exit_price)):
            low, high = bars.low[i] * (1 - slip), bars.high[i] * (1 + slip)
            if not low * (1 - TOLERANCE) <= price <= high * (1 + TOLERANCE):
                problems.append(
                    f"trade {t.trade}'s {what} price {price} is outside bar {i}'s range [{low}, {high}]"
                )
    return problems[:20]


def accounting_balances(
    store: TimeSeriesStore, catalog: Catalog, record: SimulationRecord
) -> dg.AssetCheckResult:
    problems = accounting_problems(store, catalog, record)
    return dg.AssetCheckResult(
        check_name=ACCOUNTING_BALANCES,
        passed=not problems,
        description="; ".join(problems[:5]) or f"{record.name}: every bar and trade balances",
        metadata={"problems": len(problems), "tolerance": TOLERANCE},
    )
