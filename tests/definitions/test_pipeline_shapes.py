"""The whole pipeline on each shape of data a user has: years of daily equity bars on the NYSE calendar,
hourly FX closed at weekends, 24/7 crypto minutes. A small sample of each is landed with its sidecar and
goes through import, indicators, a walkforward run submitted as a job request with a chained simulation,
and the comparison, as the daemon runs them (sensors ticked, their runs executed in-process)."""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
from test_job_requests import World

from sensors.simulation import simulation_sensor
from sensors.walkforward import walkforward_sensor
from trading_assets.bars.assets import bars
from trading_assets.bars.checks import bars_match_source
from trading_assets.compute.demo_data import SHAPES, shape_bars, write_shape
from trading_assets.compute.indicators import parse_spec
from trading_assets.indicators.assets import indicators
from trading_assets.indicators.service import register_set
from trading_assets.partitions import indicator_set_key
from trading_assets.simulation.assets import simulation_comparison

# Bars per sample: four years of sessions, three months of FX hours, two days of minutes.
SAMPLE_ROWS = {"equity-daily": 1_000, "fx-hourly": 1_500, "crypto-minute": 3_000}
SET = {
    "name": "small",
    "indicators": [
        {"indicator": "rsi", "params": {"n": 14}},
        {"indicator": "logret", "params": {"n": 5}},
        {"indicator": "atr", "params": {"n": 14}},
    ],
}
# Folds in bars, so one config fits every shape: two test windows of 200 bars after 400 to train on.
WALKFORWARD = {
    "indicator_version": 1,
    "target": {"kind": "regression", "horizon": 3},
    "folds": {"train": "400", "test": "200", "embargo": 5, "max_folds": 2},
    "hyperparameters": {"n_estimators": 20, "max_depth": 3},
    "seed": 3,
    "simulate": {"fee_bps": 1.0, "slippage_bps": 1.0},
}


def metadata(result: dg.ExecuteInProcessResult, node: str) -> dict[str, object]:
    return {k: v.value for k, v in result.asset_materializations_for_node(node)[0].metadata.items()}


@pytest.fixture
def world(resources, instance) -> World:
    return World(resources, instance)


def land_and_compute(world: World, shape_name: str) -> dict[str, object]:
    """Land the shape's sample with its sidecar, import it and compute the small set; the bars' metadata."""
    shape = SHAPES[shape_name]
    write_shape(shape, Path(world.resources["landing"].path), shape_bars(shape, SAMPLE_ROWS[shape_name]))
    world.instance.add_dynamic_partitions("datasets", [shape.dataset])
    world.instance.add_dynamic_partitions("indicator_versions", ["1"])
    imported = dg.materialize(
        [bars, bars_match_source],
        partition_key=shape.dataset,
        resources=world.resources,
        instance=world.instance,
    )
    assert [c.passed for c in imported.get_asset_check_evaluations()] == [True]
    register_set(world.catalog, shape.dataset, parse_spec(SET, source="test"))
    assert dg.materialize(
        [indicators],
        partition_key=indicator_set_key(shape.dataset, 1),
        resources=world.resources,
        instance=world.instance,
    ).success
    return metadata(imported, "bars")


def walkforward_with_chained_simulation(world: World, dataset: str) -> dg.ExecuteInProcessResult:
    """Submit the walkforward with `simulate`, run what the sensors ask for until the chained simulation
    has run; its materialisation."""
    request = world.submit("walkforward", {**WALKFORWARD, "dataset": dataset})
    for fold in world.sensor(walkforward_sensor):
        assert world.execute(fold).success
    (assemble,) = world.sensor(walkforward_sensor)
    assert world.execute(assemble).success
    world.tick_lifecycle()
    assert world.request(request).status == "COMPLETED"
    (chained,) = world.catalog.list_job_requests(kind="simulation")
    (simulate,) = [r for r in world.sensor(simulation_sensor) if r.job_name == "simulate"]
    result = world.execute(simulate)
    assert result.success
    world.tick_lifecycle()
    assert world.request(chained.id).status == "COMPLETED"
    return result


def compare(world: World, dataset: str) -> dict[str, object]:
    (comparison,) = [r for r in world.sensor(simulation_sensor) if r.job_name == "compare_simulations"]
    result = dg.materialize(
        [simulation_comparison],
        partition_key=comparison.partition_key,
        resources=world.resources,
        instance=world.instance,
    )
    assert (comparison.partition_key, result.success) == (dataset, True)
    return metadata(result, "simulation_comparison")


@pytest.mark.parametrize("shape_name", list(SHAPES))
def test_the_whole_pipeline_runs_on_each_shape_of_data(world, shape_name):
    shape = SHAPES[shape_name]
    meta = land_and_compute(world, shape_name)
    # On its calendar the sample reports only the generator's three outages: no weekend, no holiday.
    assert meta["calendar"].split()[0] == shape.calendar
    assert (meta["gap_count"], meta["off_calendar_bars"]) == (3, 0)
    assert meta["dagster/row_count"] == SAMPLE_ROWS[shape_name]

    sim = walkforward_with_chained_simulation(world, shape.dataset)
    assert all(c.passed for c in sim.get_asset_check_evaluations())
    sim_meta = metadata(sim, "simulation")
    assert sim_meta["run"] == f"{shape.dataset}_run1"
    assert sim_meta["dagster/row_count"] == 2 * 200  # the two test windows, back to back
    # Every year the sim spans is one row with every month.
    months = [r.data for r in sim_meta["monthly_returns"].records]
    first, last = sim_meta["first_ts"], sim_meta["last_ts"]
    assert [m["year"] for m in months] == list(range(_year(first), _year(last) + 1))
    assert all(len(m) == 13 for m in months)

    assert compare(world, shape.dataset)["simulations"] == 1


def test_several_years_of_daily_bars_simulate_with_and_without_trades(world):
    """Today's failure: a sim over years of daily bars could not show its monthly returns. And a sim whose
    thresholds are never reached has no trades, and still shows its metadata and joins the comparison."""
    land_and_compute(world, "equity-daily")
    config = {**WALKFORWARD, "dataset": "equity_d1", "folds": {"train": "200", "test": "250", "max_folds": 3}}
    world.submit("walkforward", config)
    for request in world.sensor(walkforward_sensor):
        assert world.execute(request).success
    (assemble,) = world.sensor(walkforward_sensor)
    assert world.execute(assemble).success
    world.tick_lifecycle()
    never = {"thresholds": "given", "long_threshold": 1e9, "short_threshold": -1e9}
    world.submit("simulation", {"run": "equity_d1_run1", **never})
    simulate = sorted(
        (r for r in world.sensor(simulation_sensor) if r.job_name == "simulate"),
        key=lambda r: r.partition_key,
    )
    assert [r.partition_key for r in simulate] == ["equity_d1_sim1", "equity_d1_sim2"]
    traded, idle = (world.execute(r) for r in simulate)
    assert traded.success and idle.success
    traded_meta, idle_meta = metadata(traded, "simulation"), metadata(idle, "simulation")
    # Three test windows of 250 sessions: three years of months, over four calendar years.
    years = [r.data["year"] for r in traded_meta["monthly_returns"].records]
    assert years == list(range(_year(traded_meta["first_ts"]), _year(traded_meta["last_ts"]) + 1))
    assert len(years) == 4
    assert traded_meta["n_trades"] > 0
    assert idle_meta["n_trades"] == 0
    assert idle_meta["first_trades"].records == [] and idle_meta["worst_trades"].records == []
    assert {v for r in idle_meta["monthly_returns"].records for k, v in r.data.items() if k != "year"} <= {
        0.0,
        None,
    }
    comparison = compare(world, "equity_d1")
    assert (comparison["simulations"], comparison["best_by_sharpe"]) == (2, "equity_d1_sim1")


def _year(ts: float) -> int:
    return datetime.fromtimestamp(ts, tz=UTC).year
