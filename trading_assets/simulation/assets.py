"""Simulation assets: `simulation` (one partition per sim), `simulation_sweep` (per run) and
`simulation_comparison` (per dataset).

A sim's partition key (`<dataset>_sim<n>`) does not name its run, so, as `fold_models` does for its indicator
set (docs/dataflow.md §17), `simulation` depends on `predictions`, `thresholds` and `bars` as wholes and
names the exact partitions it read in its metadata and in the catalog (run, dataset, models version).
"""

import hashlib
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from resources.catalog import Catalog
from resources.compute import ComputeResource
from resources.timeseries import TimeSeriesStore
from trading_assets.bars.assets import bars
from trading_assets.compute.charts import equity_drawdown_png, sweep_heatmap_png
from trading_assets.compute.simulator import METRIC_NAMES, SimConfig, SimResult, sweep
from trading_assets.metadata import dashboard_url, png_md
from trading_assets.partitions import datasets, simulations, walkforward_runs
from trading_assets.records import SimulationRecord, SimulationTrade
from trading_assets.simulation import checks
from trading_assets.simulation.service import (
    SimInputs,
    SimulationError,
    SimulationSpec,
    bars_per_year,
    load_inputs,
    monthly_returns,
    replay,
    write_simulation,
)
from trading_assets.walkforward.assets import predictions, thresholds

SIMULATION_KEY = dg.AssetKey("simulation")
# Metrics shown first in tables (all of METRIC_NAMES are in the metadata).
HEADLINE = ("total_return", "sharpe", "max_drawdown", "n_trades", "win_rate", "profit_factor")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _float(value: float | int) -> dg.MetadataValue:
    return dg.MetadataValue.float(float(value)) if isinstance(value, float) else dg.MetadataValue.int(value)


def _trade_rows(trades: list[SimulationTrade]) -> list[dg.TableRecord]:
    return [
        dg.TableRecord(
            {
                "trade": t.trade,
                "entry": f"{t.entry_ts:%Y-%m-%d %H:%M}",
                "exit": f"{t.exit_ts:%Y-%m-%d %H:%M}",
                "side": "long" if t.side > 0 else "short",
                "size": round(t.size, 6),
                "entry_price": t.entry_price,
                "exit_price": t.exit_price,
                "pnl": round(t.pnl, 4),
                "return_pct": round(t.return_pct, 6),
                "fees": round(t.fees, 4),
                "bars_held": t.bars_held,
                "exit_reason": t.exit_reason,
            }
        )
        for t in trades
    ]


_TRADE_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("trade", "int"),
        dg.TableColumn("entry", "string"),
        dg.TableColumn("exit", "string"),
        dg.TableColumn("side", "string"),
        dg.TableColumn("size", "float"),
        dg.TableColumn("entry_price", "float"),
        dg.TableColumn("exit_price", "float"),
        dg.TableColumn("pnl", "float"),
        dg.TableColumn("return_pct", "float", description="net return on the entry notional (fraction)"),
        dg.TableColumn("fees", "float"),
        dg.TableColumn("bars_held", "int"),
        dg.TableColumn("exit_reason", "string"),
    ]
)


def monthly_table(months: dict[str, dict[int, float]]) -> dg.MetadataValue:
    """Monthly returns in %, one row per year and a column per month; a month without bars (before the
    first, after the last, or a month the data skips) is empty. Dagster needs every row to have every
    field, so a year that starts in July still has Jan to Jun."""
    rows = [
        dg.TableRecord(
            {
                "year": int(year),
                **{
                    name: round(100 * by_month[m], 2) if m in by_month else None
                    for m, name in enumerate(_MONTHS, start=1)
                },
            }
        )
        for year, by_month in months.items()
    ]
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn("year", "int"),
            *(dg.TableColumn(m, "float", description="%") for m in _MONTHS),
        ]
    )
    return dg.MetadataValue.table(rows, schema=schema)


def _simulation_metadata(
    catalog: Catalog, record: SimulationRecord, spec: SimulationSpec, inputs: SimInputs, result: SimResult
) -> dict[str, object]:
    """What a person reads about a finished sim: lineage, config, every metric, the equity and drawdown
    chart, the first and the worst trades, monthly returns."""
    name = record.name
    trades = catalog.list_simulation_trades(name)
    worst = sorted(trades, key=lambda t: t.pnl)[:10]
    return {
        "dagster/row_count": record.row_count or 0,
        "dagster/table_name": name,
        "run": record.run,
        "predictions_partition": record.run,
        "thresholds_partition": record.run,
        "bars_partition": record.dataset,
        "dataset_version": record.dataset_version,
        "models_version": record.models_version,
        "code_version": record.code_version,
        "config": dg.MetadataValue.json(json.loads(record.config)),
        "thresholds": dg.MetadataValue.json(json.loads(record.thresholds)),
        "first_ts": dg.MetadataValue.timestamp(float(inputs.ts_us[0]) / 1e6),
        "last_ts": dg.MetadataValue.timestamp(float(inputs.ts_us[-1]) / 1e6),
        **{m: _float(result.metrics[m]) for m in METRIC_NAMES},
        "equity": png_md(
            "equity and drawdown",
            equity_drawdown_png(inputs.ts_us, result.equity, result.drawdown, f"{name}: equity, drawdown"),
        ),
        "first_trades": dg.MetadataValue.table(_trade_rows(trades[:10]), schema=_TRADE_SCHEMA),
        "worst_trades": dg.MetadataValue.table(_trade_rows(worst), schema=_TRADE_SCHEMA),
        "monthly_returns": monthly_table(monthly_returns(inputs.ts_us, result.equity, spec.sim.initial_cash)),
    }


@dg.asset(
    partitions_def=simulations,
    deps=[
        dg.AssetDep(predictions, partition_mapping=dg.AllPartitionMapping()),
        dg.AssetDep(thresholds, partition_mapping=dg.AllPartitionMapping()),
        dg.AssetDep(bars, partition_mapping=dg.AllPartitionMapping()),
    ],
    check_specs=checks.check_specs(SIMULATION_KEY),
    group_name="simulation",
    kinds={"python", "numba"},
    description="A trading simulation (partition <dataset>_sim<n>): a walkforward run's predictions replayed "
    "over the bars with per-fold (or given) thresholds, sizing, costs and stops. Per-bar target, position, "
    "cash, equity and drawdown go to the table <dataset>_sim<n>; config, metrics and every trade to the "
    "catalog, in one transaction.",
)
def simulation(
    context: dg.AssetExecutionContext,
    timeseries: dg.ResourceParam[TimeSeriesStore],
    catalog: dg.ResourceParam[Catalog],
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    name = context.partition_key
    if catalog.get_simulation(name) is None:
        raise dg.Failure(description=f"no simulation {name!r} in the catalog", allow_retries=False)
    record = catalog.start_simulation(name)
    try:
        spec, inputs, target, result = replay(timeseries, catalog, record)
        stored = write_simulation(timeseries, catalog, record, inputs, target, result)
        # Inside the try: a sim whose materialisation cannot be shown is not reported completed.
        metadata = _simulation_metadata(catalog, stored, spec, inputs, result)
    except Exception as err:
        catalog.record_simulation_failure(name, f"{type(err).__name__}: {err}")
        if isinstance(err, SimulationError | ValueError):
            raise dg.Failure(description=str(err), allow_retries=False) from None
        raise
    metrics = result.metrics
    context.log.info(
        f"{name}: {metrics['n_trades']} trades, total return {metrics['total_return']:.4%}, "
        f"Sharpe {metrics['sharpe']:.3f}, max drawdown {metrics['max_drawdown']:.4%}"
    )
    metadata["dashboard"] = dashboard_url(f"/sims/{name}")
    yield dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(stored.config_sha256[:16]))
    yield checks.simulation_reproduces(timeseries, catalog, stored)
    yield checks.accounting_balances(timeseries, catalog, stored)


class SweepConfig(dg.Config):
    """The grid of a sweep: thresholds as quantiles of the run's own test predictions, optional stops,
    and the trading rules every cell shares."""

    long_quantiles: list[float] = Field(
        default=[0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95],
        description="Long entry thresholds: these quantiles of the run's predictions.",
    )
    short_quantiles: list[float] = Field(
        default=[0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45],
        description="Short entry thresholds: these quantiles (each cell needs short <= long).",
    )
    stop_loss_pcts: list[float] = Field(default=[], description="Stop-loss levels to try (fractions).")
    take_profit_pcts: list[float] = Field(default=[], description="Take-profit levels to try (fractions).")
    fee_bps: float = Field(default=1.0, description="Fee per side, basis points of traded notional.")
    slippage_bps: float = Field(default=0.0, description="Slippage per fill, basis points.")
    fill: Literal["next_open", "close"] = Field(default="next_open", description="next_open or close.")
    direction: Literal["both", "long", "short"] = Field(default="both", description="both, long or short.")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dg.asset(
    partitions_def=walkforward_runs,
    deps=[predictions],
    group_name="simulation",
    kinds={"python", "numba"},
    description="A grid of long/short thresholds (quantiles of the run's predictions) and optional stops, "
    "simulated in parallel over the run's predictions (partition <dataset>_run<n>). Writes the metrics "
    "table (Parquet in the artifact folder), a Sharpe heatmap and the best cell's deflated Sharpe ratio: "
    "how much of the best result selection luck explains.",
)
def simulation_sweep(
    context: dg.AssetExecutionContext,
    config: SweepConfig,
    timeseries: dg.ResourceParam[TimeSeriesStore],
    catalog: dg.ResourceParam[Catalog],
    compute: ComputeResource,
) -> dg.MaterializeResult:
    run = context.partition_key
    try:
        base = SimConfig(
            fee_bps=config.fee_bps,
            slippage_bps=config.slippage_bps,
            fill=config.fill,
            direction=config.direction,
        )
        # The grid sets its own thresholds: the run's are not read.
        inputs = load_inputs(timeseries, catalog, SimulationSpec(run=run, sim=base), None)
        sim = SimConfig(**{**base.to_dict(), "bars_per_year": bars_per_year(inputs.ts_us)})
        finite = inputs.signal[np.isfinite(inputs.signal)]
        if finite.size == 0:
            raise SimulationError(f"{run}: no finite prediction to take quantiles of")
        # Quantiles that land on the same value would be the same cell counted twice as a trial.
        longs = list(dict.fromkeys(float(np.quantile(finite, q)) for q in config.long_quantiles))
        shorts = list(dict.fromkeys(float(np.quantile(finite, q)) for q in config.short_quantiles))
        stops = [(sl, None) for sl in config.stop_loss_pcts] + [(None, tp) for tp in config.take_profit_pcts]
        prices = (inputs.open, inputs.high, inputs.low, inputs.close)
        table = sweep(*prices, inputs.signal, longs, shorts, sim, stops=stops or None)
        best = table.attrs["best"]
    except (SimulationError, ValueError) as err:
        raise dg.Failure(description=str(err), allow_retries=False) from None
    path = Path(compute.artifacts_dir) / run / "sweep.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(path, index=False)
    sharpe = table.groupby(["long_threshold", "short_threshold"], sort=True)["sharpe"].max()
    grid = sharpe.unstack("short_threshold").reindex(index=longs, columns=shorts).to_numpy()
    top = table.sort_values("sharpe", ascending=False, na_position="last").head(10)
    context.log.info(f"{run}: {len(table)} cells swept; best {best}")
    return dg.MaterializeResult(
        metadata={
            "run": run,
            "cells": len(table),
            "metrics_table": dg.MetadataValue.path(str(path)),
            "metrics_table_sha256": _sha256(path),
            "best_cell": dg.MetadataValue.json(best or {}),
            "deflated_sharpe_ratio": dg.MetadataValue.float(
                float("nan") if best is None else float(best["deflated_sharpe_ratio"])
            ),
            "heatmap": png_md(
                "Sharpe over the grid",
                sweep_heatmap_png(longs, shorts, grid, f"{run}: Sharpe (best over stops) by threshold"),
            ),
            "top_cells": dg.MetadataValue.md(_markdown(top)),
            "grid": dg.MetadataValue.json(config.model_dump()),
        }
    )


def _markdown(frame: pd.DataFrame) -> str:
    columns = [c for c in frame.columns if c in {"long_threshold", "short_threshold", *HEADLINE}]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(f"{row[c]:.4g}" for c in columns) + " |" for _, row in frame.iterrows()]
    return "\n".join(lines)


def comparison_rows(sims: list[SimulationRecord]) -> list[dg.TableRecord]:
    """One row per sim of a dataset, oldest first: what it replayed, how, and its headline metrics."""
    rows = []
    for sim in sims:
        config = json.loads(sim.config)
        values = sim.metric_values() or {}
        rows.append(
            dg.TableRecord(
                {
                    "simulation": sim.name,
                    "run": sim.run,
                    "status": sim.status,
                    "thresholds": config["thresholds"],
                    "sizing": config["sim"]["sizing"],
                    "fee_bps": config["sim"]["fee_bps"],
                    "stop_loss_pct": config["sim"]["stop_loss_pct"],
                    **{m: values.get(m) for m in HEADLINE},
                    "finished": f"{sim.finished_at:%Y-%m-%d %H:%M}" if sim.finished_at else None,
                }
            )
        )
    return rows


def _sharpe(sim: SimulationRecord) -> float:
    """The sim's Sharpe ratio, -inf where it has none (no trades, NaN), so it never ranks first."""
    value = (sim.metric_values() or {}).get("sharpe", math.nan)
    return value if math.isfinite(value) else -math.inf


@dg.asset(
    partitions_def=datasets,
    deps=[dg.AssetDep(simulation, partition_mapping=dg.AllPartitionMapping())],
    group_name="simulation",
    kinds={"python"},
    description="Every simulation of a dataset side by side (partition: dataset): run, thresholds, costs "
    "and headline metrics, the newest last, so a new sim reads against the historical ones.",
)
def simulation_comparison(
    context: dg.AssetExecutionContext, catalog: dg.ResourceParam[Catalog]
) -> dg.MaterializeResult:
    sims = catalog.list_simulations(dataset=context.partition_key)
    completed = [s for s in sims if s.status == "completed"]
    best = max(completed, key=_sharpe, default=None)
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn("simulation", "string"),
            dg.TableColumn("run", "string"),
            dg.TableColumn("status", "string"),
            dg.TableColumn("thresholds", "string"),
            dg.TableColumn("sizing", "string"),
            dg.TableColumn("fee_bps", "float"),
            dg.TableColumn("stop_loss_pct", "float"),
            *(dg.TableColumn(m, "int" if m == "n_trades" else "float") for m in HEADLINE),
            dg.TableColumn("finished", "string"),
        ]
    )
    return dg.MaterializeResult(
        metadata={
            "simulations": len(sims),
            "completed": len(completed),
            "latest": sims[-1].name if sims else "",
            "best_by_sharpe": best.name if best else "",
            "comparison": dg.MetadataValue.table(comparison_rows(sims), schema=schema),
        }
    )
