"""Trading simulations as Dagster runs them: registration from the launchpad config, the simulation asset
and its checks, failure and retry, the sweep, the comparison, the sensor, lineage. Real resources: DuckDB
files, the embedded default (tests/definitions/conftest.py says why not Postgres too).

Training a walkforward run is the slow part, so the module gets one completed run (`world`); every test
registers sims of its own and looks only at those, or at what the catalog lists.
"""

import hashlib
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from test_walkforward_assets import CONFIG, ROWS, assemble, land_and_compute, metadata, start, train

from resources.catalog import Catalog
from resources.compute import ComputeResource
from resources.duckdb_catalog import DuckDBCatalog
from resources.duckdb_store import DuckDBStore
from resources.landing import LandingFolder
from resources.sets_folder import SetsFolder
from sensors.simulation import simulation_sensor
from trading_assets.compute.demo_data import generate_bars, write_export
from trading_assets.compute.simulator import METRIC_NAMES, SimConfig, signals_from_predictions, simulate
from trading_assets.definitions import defs
from trading_assets.partitions import simulations
from trading_assets.records import SimulationOutcome, SimulationRecord
from trading_assets.simulation import checks
from trading_assets.simulation.assets import simulation, simulation_comparison, simulation_sweep
from trading_assets.simulation.config import SimulationConfig
from trading_assets.simulation.jobs import start_simulation
from trading_assets.simulation.service import (
    SERIES_SCHEMA,
    SimulationError,
    SimulationSpec,
    register_simulation,
    replay,
    write_simulation,
)
from trading_assets.walkforward.config import WalkforwardConfig
from trading_assets.walkforward.service import models_version, prediction_schema, register_run

# Two folds whose test windows are 200 bars apart (step 700, test 500): the bars between them have no
# prediction and must be flat.
RUN_CONFIG = {
    **CONFIG,
    "folds": {"train": "1500", "test": "500", "step": "700", "embargo": 5, "max_folds": 2},
}
# Every rule away from its default, so a field the glue drops shows in the oracle comparison.
SIM = {"fee_bps": 2.0, "slippage_bps": 1.0, "fraction": 0.5, "stop_loss_pct": 0.004, "max_bars_held": 60}
SERIES_COLUMNS = ["ts", "target", "position", "cash", "equity", "drawdown"]
MINUTES_PER_YEAR = 365.2425 * 24 * 60


@dataclass(frozen=True)
class World:
    """Resources, a Dagster instance and btc25's completed regression run `run`."""

    resources: dict[str, object]
    instance: dg.DagsterInstance
    run: str

    @property
    def store(self) -> DuckDBStore:
        return self.resources["timeseries"]

    @property
    def catalog(self) -> Catalog:
        return self.resources["catalog"]


def completed_run(resources, instance, config: dict) -> str:
    registered = start(resources, instance, config)
    assert registered.success
    run = registered.output_for_node("register_walkforward_run")
    for fold in range(config["folds"]["max_folds"]):
        assert train(resources, instance, run, fold).success
    assert assemble(resources, instance, run).success
    return run


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    (root / "landing").mkdir()
    resources = {
        "timeseries": DuckDBStore(path=str(root / "timeseries.duckdb")),
        "catalog": DuckDBCatalog(path=str(root / "catalog.duckdb")),
        "landing": LandingFolder(path=str(root / "landing")),
        "sets_folder": SetsFolder(path=str(root / "sets")),
        "compute": ComputeResource(device="cpu", artifacts_dir=str(root / "artifacts")),
    }
    export = root / "btc25.txt"
    write_export(generate_bars(n_rows=ROWS, seed=4), export)
    with dg.instance_for_test() as instance:
        land_and_compute(resources, instance, export.read_text().splitlines(keepends=True), ROWS)
        yield World(resources, instance, completed_run(resources, instance, RUN_CONFIG))


@pytest.fixture(scope="module")
def classifier_run(world) -> str:
    """A completed classification run of btc25 beside the regression one."""
    target = {"kind": "classification", "horizon": 3, "dead_zone": 0.0005}
    return completed_run(world.resources, world.instance, {**RUN_CONFIG, "target": target})


def start_sim(world: World, **config) -> dg.ExecuteInProcessResult:
    return start_simulation.execute_in_process(
        run_config={"ops": {"register_simulation_op": {"config": {"run": world.run, **config}}}},
        resources=world.resources,
        instance=world.instance,
        raise_on_error=False,
    )


def materialise(world: World, sim: str) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [simulation],
        partition_key=sim,
        resources=world.resources,
        instance=world.instance,
        raise_on_error=False,
    )


def registered(world: World, **config) -> str:
    result = start_sim(world, **config)
    assert result.success
    return result.output_for_node("register_simulation_op")


def completed(world: World, **config) -> tuple[str, dg.ExecuteInProcessResult]:
    name = registered(world, **config)
    result = materialise(world, name)
    assert result.success
    return name, result


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    return " ".join(str(e.event_specific_data) for e in result.all_events if e.is_failure)


@pytest.fixture(scope="module")
def sim(world) -> tuple[str, dg.ExecuteInProcessResult]:
    """A completed sim of the regression run with every rule in SIM, and its materialisation."""
    return completed(world, **SIM)


@dataclass(frozen=True)
class Replayed:
    """What a sim of `run` replays, read here from the stores and the catalog without the glue."""

    ts: np.ndarray
    prices: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    signal: np.ndarray
    long: np.ndarray
    short: np.ndarray


def replayed(world: World, run: str, column: str) -> Replayed:
    predictions = world.store.read(run)
    pred_ts = predictions.column("ts").cast(pa.int64()).to_numpy()
    bars = world.store.read(world.catalog.get_dataset("btc25").table_name)
    ts = bars.column("ts").cast(pa.int64()).to_numpy()
    inside = (ts >= pred_ts[0]) & (ts <= pred_ts[-1])
    ts = ts[inside]
    prices = tuple(bars.column(c).to_numpy()[inside].astype(float) for c in ("open", "high", "low", "close"))
    at = np.searchsorted(ts, pred_ts)
    assert np.array_equal(ts[at], pred_ts)
    by_fold = {t.fold: t for t in world.catalog.list_walkforward_thresholds(run)}
    folds = predictions.column("fold").to_numpy()
    signal, long, short = (np.full(ts.size, np.nan) for _ in range(3))
    signal[at] = predictions.column(column).to_numpy()
    long[at] = [by_fold[f].long_threshold for f in folds]
    short[at] = [by_fold[f].short_threshold for f in folds]
    return Replayed(ts, prices, signal, long, short)


def bars_per_year(ts: np.ndarray) -> float:
    """Bar intervals per year of time the bars span (1-minute bars, outages counted as time)."""
    return (ts.size - 1) / ((ts[-1] - ts[0]) / 60e6) * MINUTES_PER_YEAR


def test_start_simulation_registers_the_datasets_next_sims_with_bars_per_year_and_thresholds(world):
    catalog = world.catalog
    before = len(catalog.list_simulations(dataset="btc25"))
    first = registered(world, **SIM)
    second = registered(world, thresholds="given", long_threshold=0.001, short_threshold=-0.001)
    assert [first, second] == [f"btc25_sim{before + 1}", f"btc25_sim{before + 2}"]
    assert world.instance.has_dynamic_partition(simulations.name, first)
    assert world.instance.has_dynamic_partition(simulations.name, second)

    record = catalog.get_simulation(first)
    assert (record.dataset, record.number, record.run, record.status) == (
        "btc25",
        before + 1,
        world.run,
        "registered",
    )
    spec = SimulationSpec.from_json(record.config)
    assert record.config_sha256 == spec.sha256() == hashlib.sha256(record.config.encode()).hexdigest()
    assert spec.thresholds == "run"
    assert {k: getattr(spec.sim, k) for k in SIM} == SIM
    # One-minute bars with outages: fewer than 525,949 bars a year, as many as the replayed span holds.
    expected = bars_per_year(replayed(world, world.run, "y_pred").ts)
    assert spec.sim.bars_per_year == pytest.approx(expected, rel=1e-12)
    assert spec.sim.bars_per_year < MINUTES_PER_YEAR
    stored = catalog.list_walkforward_thresholds(world.run)
    assert json.loads(record.thresholds) == {
        str(t.fold): [t.long_threshold, t.short_threshold] for t in stored
    }
    assert record.dataset_version == catalog.get_walkforward_run(world.run).dataset_version

    given = catalog.get_simulation(second)
    spec = SimulationSpec.from_json(given.config)
    assert (spec.thresholds, spec.long_threshold, spec.short_threshold) == ("given", 0.001, -0.001)
    assert json.loads(given.thresholds) == {}


def test_the_launchpad_config_builds_the_spec_field_by_field():
    config = SimulationConfig(
        run="btc25_run1", dead_zone="hold", sizing="units", units=0.1, take_profit_pct=0.02
    )
    spec = config.spec()
    assert (spec.run, spec.thresholds, spec.dead_zone) == ("btc25_run1", "run", "hold")
    assert (spec.sim.sizing, spec.sim.units, spec.sim.take_profit_pct) == ("units", 0.1, 0.02)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"thresholds": "given"}, "thresholds 'given' needs finite long_threshold and short_threshold"),
        (
            {"thresholds": "given", "long_threshold": -0.001, "short_threshold": 0.001},
            "short_threshold 0.001 is",
        ),
        ({"long_threshold": 0.001, "short_threshold": -0.001}, "only for thresholds 'given'"),
        ({"fee_bps": -1.0}, "fee_bps must be >= 0.0, got -1.0"),
        ({"sizing": "units"}, "units must be set when sizing='units'"),
        ({"stop_loss_pct": 1.5}, "stop_loss_pct must be > 0.0 and < 1.0, got 1.5"),
        ({"max_bars_held": 0}, "max_bars_held"),
        ({"fill": "later"}, "fill"),
    ],
)
def test_an_invalid_simulation_config_names_the_field(change, message):
    with pytest.raises((ValueError, SimulationError), match=re.escape(message)):
        SimulationConfig(**{"run": "btc25_run1", **change}).spec()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"run": "btc25_run9"}, "no walkforward run 'btc25_run9' in the catalog"),
        ({"thresholds": "given", "long_threshold": -0.001, "short_threshold": 0.001}, "short_threshold"),
        ({"sizing": "units"}, "units must be set"),
    ],
)
def test_an_invalid_simulation_fails_to_start_with_a_readable_message_and_registers_nothing(
    world, change, message
):
    sims = world.catalog.list_simulations()
    partitions = world.instance.get_dynamic_partitions(simulations.name)
    result = start_sim(world, **change)
    assert not result.success
    assert message in failure_text(result)
    assert world.catalog.list_simulations() == sims
    assert world.instance.get_dynamic_partitions(simulations.name) == partitions


def test_a_run_without_predictions_and_thresholds_cannot_be_simulated(world):
    spec = WalkforwardConfig(**{**RUN_CONFIG, "folds": {**RUN_CONFIG["folds"], "max_folds": 1}}).spec()
    run = register_run(world.store, world.catalog, "btc25", 1, spec).name
    sims = world.catalog.list_simulations()
    result = start_sim(world, run=run)
    assert not result.success
    assert f"run {run} has no predictions yet" in failure_text(result)
    assert world.catalog.list_simulations() == sims


def test_a_simulation_stores_its_series_trades_and_metrics_and_passes_its_checks(world, sim):
    name, result = sim
    assert {c.check_name: c.passed for c in result.get_asset_check_evaluations()} == {
        checks.SIMULATION_REPRODUCES: True,
        checks.ACCOUNTING_BALANCES: True,
    }
    ts = replayed(world, world.run, "y_pred").ts
    series = world.store.read(name)
    assert series.column_names == SERIES_COLUMNS
    assert np.array_equal(series.column("ts").cast(pa.int64()).to_numpy(), ts)

    record = world.catalog.get_simulation(name)
    trades = world.catalog.list_simulation_trades(name)
    metrics = record.metric_values()
    assert (record.status, record.message) == ("completed", None)
    assert record.n_trades == len(trades) == metrics["n_trades"] > 0
    assert (record.row_count, record.series_columns) == (ts.size, tuple(SERIES_SCHEMA.column_names))
    assert [int(t.timestamp() * 1e6) for t in (record.first_ts, record.last_ts)] == [ts[0], ts[-1]]
    assert [t.trade for t in trades] == list(range(len(trades)))
    for t in trades:
        assert int(t.entry_ts.timestamp() * 1e6) == ts[t.entry_idx]
        assert int(t.exit_ts.timestamp() * 1e6) == ts[t.exit_idx]
    # The rules reached the simulator: stops and the holding limit closed some trades.
    assert {"stop_loss", "max_bars"} <= {t.exit_reason for t in trades}
    assert max(t.bars_held for t in trades) <= SIM["max_bars_held"]

    meta = metadata(result, "simulation")
    for metric in METRIC_NAMES:
        assert meta[metric] == pytest.approx(metrics[metric], nan_ok=True)
    assert isinstance(meta["sharpe"], float) and isinstance(meta["n_trades"], int)
    assert meta["equity"].startswith("![") and "data:image/png;base64," in meta["equity"]
    # A link to the sim's dashboard page (TRADING_DASHBOARD_URL, default the local `trading-assets serve`).
    assert meta["dashboard"] == f"http://127.0.0.1:8000/sims/{record.name}"
    first = meta["first_trades"].records
    assert [r.data["trade"] for r in first] == list(range(min(10, len(trades))))
    worst = [r.data["pnl"] for r in meta["worst_trades"].records]
    assert worst == sorted(worst) and worst[0] == round(min(t.pnl for t in trades), 4)
    # The replayed bars all fall in January 2025: one month, its return from the initial cash; the other
    # months of the year are empty.
    equity = series.column("equity").to_numpy()
    months = [r.data for r in meta["monthly_returns"].records]
    assert months == [
        {"year": 2025, "Jan": round(100 * (equity[-1] / 10_000 - 1), 2)}
        | dict.fromkeys(("Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"))
    ]
    assert (meta["run"], meta["predictions_partition"], meta["thresholds_partition"]) == (world.run,) * 3
    assert (meta["bars_partition"], meta["dagster/row_count"], meta["dagster/table_name"]) == (
        "btc25",
        ts.size,
        name,
    )
    assert (meta["models_version"], meta["dataset_version"]) == (
        record.models_version,
        record.dataset_version,
    )


def assert_simulates_like_the_compute_library(
    world: World, name: str, inputs: Replayed, config: dict
) -> None:
    """The stored sim equals signals_from_predictions + simulate on inputs read without the glue."""
    target = signals_from_predictions(inputs.signal, inputs.long, inputs.short)
    expected = simulate(*inputs.prices, target, SimConfig(**config, bars_per_year=bars_per_year(inputs.ts)))
    series = world.store.read(name)
    for column in ("target", "position", "cash", "equity", "drawdown"):
        wanted = target if column == "target" else getattr(expected, column)
        assert np.array_equal(series.column(column).to_numpy(), wanted), column
    trades = world.catalog.list_simulation_trades(name)
    stored = pd.DataFrame([t.__dict__ for t in trades])[list(expected.trades.columns)]
    pd.testing.assert_frame_equal(stored, expected.trades, check_dtype=False)
    assert world.catalog.get_simulation(name).metric_values() == pytest.approx(expected.metrics, nan_ok=True)


def test_a_simulation_equals_the_simulator_on_each_folds_thresholds_and_is_flat_between_folds(world, sim):
    name, _ = sim
    inputs = replayed(world, world.run, "y_pred")
    assert_simulates_like_the_compute_library(world, name, inputs, SIM)
    # Each fold has its own thresholds, and the 200 bars between the test windows have no prediction.
    assert len(np.unique(inputs.long[np.isfinite(inputs.long)])) == 2
    gap = np.isnan(inputs.signal)
    assert gap.sum() >= 199
    series = world.store.read(name)
    assert not series.column("target").to_numpy()[gap].any()
    assert not series.column("position").to_numpy()[gap].any()


def test_a_classifiers_simulation_trades_on_the_probability_of_an_up_move(world, classifier_run):
    name, result = completed(world, run=classifier_run, fee_bps=1.0)
    assert all(c.passed for c in result.get_asset_check_evaluations())
    inputs = replayed(world, classifier_run, "prob")
    # Thresholds of a classifier are probabilities: both near 0.5, not the 0/1 labels of y_pred.
    levels = np.r_[inputs.long, inputs.short]
    assert ((levels > 0) & (levels < 1) | np.isnan(levels)).all()
    assert_simulates_like_the_compute_library(world, name, inputs, {"fee_bps": 1.0})
    assert world.catalog.get_simulation(name).n_trades > 0


def written(world: World, **config) -> SimulationRecord:
    """A sim registered (partition included) and stored by the glue the job and the asset call, without a
    Dagster run: for tests that tamper with what is stored."""
    spec = SimulationConfig(run=world.run, **config).spec()
    folds = world.catalog.list_walkforward_folds(world.run)
    record = register_simulation(world.store, world.catalog, spec, models_version(folds))
    world.instance.add_dynamic_partitions(simulations.name, [record.name])
    _, inputs, target, result = replay(
        world.store, world.catalog, world.catalog.start_simulation(record.name)
    )
    return write_simulation(world.store, world.catalog, record, inputs, target, result)


def test_simulation_reproduces_fails_on_a_tampered_trade(world):
    record = written(world, **SIM)
    store, catalog = world.store, world.catalog
    assert checks.simulation_reproduces(store, catalog, record).passed
    trades = catalog.list_simulation_trades(record.name)
    trades[3] = replace(trades[3], pnl=trades[3].pnl + 0.01)
    tampered = catalog.record_simulation(
        record.name,
        SimulationOutcome(
            metrics=record.metric_values(),
            trades=trades,
            series_columns=record.series_columns,
            row_count=record.row_count,
            first_ts=record.first_ts,
            last_ts=record.last_ts,
        ),
    )
    result = checks.simulation_reproduces(store, catalog, tampered)
    assert not result.passed
    assert result.description.startswith("trades differ from trade 3 on")
    # The trades' pnl no longer adds up to the equity's change either.
    balances = checks.accounting_balances(store, catalog, tampered)
    assert not balances.passed and "the trades' pnl sums to" in balances.description


def test_accounting_balances_fails_on_a_tampered_equity_bar(world):
    record = written(world, **SIM)
    store, catalog = world.store, world.catalog
    assert checks.accounting_balances(store, catalog, record).passed
    series = store.read(record.name)
    equity = series.column("equity").to_numpy().copy()
    equity[1000] += 1.0
    store.replace(record.name, series.set_column(4, "equity", pa.array(equity)), SERIES_SCHEMA)
    balances = checks.accounting_balances(store, catalog, record)
    assert not balances.passed
    assert balances.description.startswith("cash + position x close != equity at bar 1000")
    reproduces = checks.simulation_reproduces(store, catalog, record)
    assert (
        not reproduces.passed and reproduces.description == "series column 'equity' differs from the re-run's"
    )


def test_a_failed_simulation_is_recorded_and_completes_when_rematerialised_after_the_fix(world):
    name = registered(world, **SIM)
    predictions = world.store.read(world.run)
    world.store.replace(world.run, predictions.slice(0, 0), prediction_schema("regression"))
    try:
        result = materialise(world, name)
    finally:
        world.store.replace(world.run, predictions, prediction_schema("regression"))
    assert not result.success
    # A dg.Failure (the step's own message, no retry), not an unexpected error.
    (failure,) = [e.step_failure_data for e in result.all_events if e.is_step_failure]
    assert failure.user_failure_data.description == f"{world.run}: the predictions table is empty"
    assert result.asset_materializations_for_node("simulation") == []
    record = world.catalog.get_simulation(name)
    assert (record.status, record.metrics, record.n_trades) == ("failed", None, None)
    assert record.message == f"SimulationError: {world.run}: the predictions table is empty"
    assert world.catalog.list_simulation_trades(name) == []

    assert materialise(world, name).success
    record = world.catalog.get_simulation(name)
    assert (record.status, record.message) == ("completed", None)
    assert record.n_trades == len(world.catalog.list_simulation_trades(name)) > 0


def test_a_sweep_writes_the_grids_metrics_heatmap_and_deflated_sharpe(world):
    grid = {"long_quantiles": [0.7, 0.8, 0.9], "short_quantiles": [0.1, 0.2, 0.3], "stop_loss_pcts": [0.005]}
    result = dg.materialize(
        [simulation_sweep],
        partition_key=world.run,
        resources=world.resources,
        instance=world.instance,
        run_config={"ops": {"simulation_sweep": {"config": grid}}},
    )
    assert result.success
    meta = metadata(result, "simulation_sweep")
    path = Path(meta["metrics_table"])
    assert path.is_file() and meta["metrics_table_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    table = pd.read_parquet(path)
    # Thresholds are the quantiles of the run's own predictions, the long one outermost; quantiles that
    # land on the same value (a small model predicts few distinct values) make one cell, not two trials.
    y_pred = world.store.read(world.run).column("y_pred").to_numpy()
    longs, shorts = (
        list(dict.fromkeys(float(np.quantile(y_pred, q)) for q in grid[k]))
        for k in ("long_quantiles", "short_quantiles")
    )
    cells = len(longs) * len(shorts)
    assert (
        meta["cells"] == len(table) == cells
        and len(set(zip(table.long_threshold, table.short_threshold, strict=True))) == cells
    )
    assert {"long_threshold", "short_threshold", "stop_loss_pct", *METRIC_NAMES} <= set(table.columns)
    assert (table["stop_loss_pct"] == 0.005).all() and table["take_profit_pct"].isna().all()
    assert table["long_threshold"].tolist() == np.repeat(longs, len(shorts)).tolist()
    assert table["short_threshold"].tolist() == np.tile(shorts, len(longs)).tolist()
    best = meta["best_cell"]
    assert (
        best["n_trials"] == cells and best["sharpe"] == table["sharpe"].max() == table["sharpe"][best["row"]]
    )
    dsr = meta["deflated_sharpe_ratio"]
    assert np.isnan(dsr) or 0 <= dsr <= 1
    assert dsr == pytest.approx(best["deflated_sharpe_ratio"], nan_ok=True)
    assert meta["heatmap"].startswith("![") and "data:image/png;base64," in meta["heatmap"]


def test_the_comparison_lists_every_simulation_of_the_dataset_the_newest_last(world, sim):
    name, _ = sim
    failed = registered(world, fee_bps=5.0)
    world.catalog.start_simulation(failed)
    world.catalog.record_simulation_failure(failed, "RuntimeError: out of memory")
    result = dg.materialize(
        [simulation_comparison],
        partition_key="btc25",
        resources=world.resources,
        instance=world.instance,
    )
    assert result.success
    meta = metadata(result, "simulation_comparison")
    every = world.catalog.list_simulations(dataset="btc25")
    rows = {r.data["simulation"]: r.data for r in meta["comparison"].records}
    assert [r.data["simulation"] for r in meta["comparison"].records] == [s.name for s in every]
    assert (meta["simulations"], meta["latest"]) == (len(every), failed)
    assert meta["completed"] == sum(s.status == "completed" for s in every)
    assert (
        rows[failed]["status"] == "failed"
        and rows[failed]["sharpe"] is None
        and rows[failed]["fee_bps"] == 5.0
    )
    metrics = world.catalog.get_simulation(name).metric_values()
    assert rows[name]["status"] == "completed" and rows[name]["run"] == world.run
    assert (rows[name]["sharpe"], rows[name]["n_trades"]) == (metrics["sharpe"], metrics["n_trades"])
    assert (rows[name]["stop_loss_pct"], rows[name]["thresholds"]) == (SIM["stop_loss_pct"], "run")


def evaluate(world: World) -> dg.SensorResult:
    with dg.build_sensor_context(instance=world.instance, resources=world.resources) as context:
        return simulation_sensor(context)


def test_the_sensor_runs_a_registered_simulation_once_then_compares_the_dataset_again(world):
    # Registered outside the launchpad job (a notebook): its partition is not there yet.
    spec = SimulationConfig(run=world.run, fee_bps=3.0).spec()
    folds = world.catalog.list_walkforward_folds(world.run)
    record = register_simulation(world.store, world.catalog, spec, models_version(folds))
    name = record.name
    assert not world.instance.has_dynamic_partition(simulations.name, name)

    def requests(result: dg.SensorResult) -> dict[str, list[tuple[str, str]]]:
        by_job: dict[str, list[tuple[str, str]]] = {}
        for r in result.run_requests:
            by_job.setdefault(r.job_name, []).append((r.partition_key, r.run_key))
        return by_job

    tick = evaluate(world)
    assert [r.partition_keys for r in tick.dynamic_partitions_requests] == [[name]]
    first = requests(tick)
    waiting = {s.name for s in world.catalog.list_simulations() if s.status == "registered"}
    assert {key for key, _ in first["simulate"]} == waiting and name in waiting
    registered_at = record.created_at.isoformat()
    key = f"{name}:simulate:{record.config_sha256[:16]}:{registered_at}:{record.models_version}"
    assert (name, key) in first["simulate"]
    # Only finished sims are compared: the new one asks for no comparison until it ends.
    before = first.get("compare_simulations", [])
    assert [key for key, _ in before] in ([], ["btc25"])
    assert requests(evaluate(world)) == first  # the same run keys every tick: the daemon runs each once

    world.instance.add_dynamic_partitions(
        simulations.name, tick.dynamic_partitions_requests[0].partition_keys
    )
    assert materialise(world, name).success
    tick = evaluate(world)
    assert tick.dynamic_partitions_requests == []
    after = requests(tick)
    assert name not in {key for key, _ in after.get("simulate", [])}
    assert [key for key, _ in after["compare_simulations"]] == ["btc25"]
    assert after["compare_simulations"] != before


def test_a_simulations_lineage_names_predictions_thresholds_and_bars():
    dg.Definitions.validate_loadable(defs)
    for job in ("start_simulation", "simulate", "sweep_thresholds", "compare_simulations"):
        assert defs.resolve_job_def(job) is not None
    assert defs.resolve_sensor_def("simulation_sensor") is not None
    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey("simulation")).parent_entity_keys == {
        dg.AssetKey("predictions"),
        dg.AssetKey("thresholds"),
        dg.AssetKey("bars"),
    }
    assert graph.get(dg.AssetKey("simulation_sweep")).parent_entity_keys == {dg.AssetKey("predictions")}
    assert graph.get(dg.AssetKey("simulation_comparison")).parent_entity_keys == {dg.AssetKey("simulation")}
    assert {c.name for c in graph.get(dg.AssetKey("simulation")).check_keys} == {
        checks.SIMULATION_REPRODUCES,
        checks.ACCOUNTING_BALANCES,
    }


def test_a_simulation_of_a_run_whose_folds_were_retrained_since_is_refused(world):
    record = written(world, **SIM)
    stale = replace(record, models_version="0" * 16)
    with pytest.raises(SimulationError, match="were trained again since the sim was registered"):
        replay(world.store, world.catalog, stale)


def test_accounting_balances_fails_on_a_position_held_outside_every_trade(world):
    record = written(world, **SIM)
    store, catalog = world.store, world.catalog
    series = store.read(record.name)
    position, cash = (series.column(n).to_numpy().copy() for n in ("position", "cash"))
    flat = int(np.flatnonzero(position == 0)[0])
    # 5 units bought out of cash: cash + position x close still equals equity on that bar.
    bars = store.read("btc25", start=series.column("ts")[flat].as_py(), columns=["ts", "close"])
    price = bars.column("close")[0].as_py()
    position[flat] += 5.0
    cash[flat] -= 5.0 * price
    tampered = series.set_column(series.schema.get_field_index("position"), "position", pa.array(position))
    tampered = tampered.set_column(tampered.schema.get_field_index("cash"), "cash", pa.array(cash))
    store.replace(record.name, tampered, SERIES_SCHEMA)
    result = checks.accounting_balances(store, catalog, record)
    assert not result.passed and "a position outside every trade" in result.description
