"""The schedules, evaluated against prepared states with the real resources (DuckDB files; the catalog
also in Postgres): rolling walkforward runs extended as their dataset gains bars, then their simulations
refreshed; and the landing folder rescanned behind the landing sensor."""

import json
import os
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from sensors.schedules import RESCAN_AFTER_S, landing_rescan_schedule, rolling_walkforward_schedule
from sensors.simulation import simulation_sensor
from sensors.walkforward import walkforward_sensor
from trading_assets.bars.assets import bars
from trading_assets.compute.demo_data import generate_bars, write_export
from trading_assets.compute.indicators import parse_spec
from trading_assets.definitions import defs
from trading_assets.indicators.assets import indicators
from trading_assets.indicators.service import register_set
from trading_assets.partitions import datasets, fold_key, fold_numbers, indicator_set_key, simulations
from trading_assets.rolling.jobs import roll_walkforward
from trading_assets.simulation.assets import simulation
from trading_assets.simulation.config import SimulationConfig
from trading_assets.simulation.service import register_simulation
from trading_assets.walkforward.assets import fold_models, predictions, thresholds
from trading_assets.walkforward.config import WalkforwardConfig
from trading_assets.walkforward.jobs import start_walkforward
from trading_assets.walkforward.service import add_run_partitions, models_version, register_run

SET = {
    "name": "small",
    "indicators": [
        {"indicator": "rsi", "params": {"n": 14}},
        {"indicator": "ema", "params": {"n": 20}},
        {"indicator": "logret", "params": {"n": 5}},
    ],
}
# Folds test rows [1503, 2003), [2003, 2503), [2503, 3003), ...: 2504 bars hold two whole test windows,
# and the last two rows of the second have no target yet (it looks 3 bars ahead); 3100 bars hold a third.
CONFIG = {
    "dataset": "btc25",
    "indicator_version": 1,
    "target": {"kind": "regression", "horizon": 3},
    "folds": {"train": "1500", "test": "500"},
    "hyperparameters": {"n_estimators": 10, "max_depth": 3, "early_stopping_rounds": 5},
    "seed": 11,
}
FIRST, LONGER = 2504, 3100
RUN = "btc25_run1"


@pytest.fixture(scope="module")
def export_lines(tmp_path_factory) -> list[str]:
    """An MT4 export of LONGER bars (no header); its first FIRST lines are the first export."""
    path = tmp_path_factory.mktemp("export") / "btc25.txt"
    write_export(generate_bars(n_rows=LONGER, seed=4), path)
    return path.read_text().splitlines(keepends=True)


def land(resources, instance, lines: list[str], indicators_too: bool = True, replace: bool = False) -> None:
    """Import `lines` as btc25 and, with `indicators_too`, compute the small set on them (btc25|1), as the
    landing and indicator_sets sensors would have asked; `replace` lets them rewrite the stored history."""
    (Path(resources["landing"].path) / "btc25.txt").write_text("".join(lines))
    if not instance.has_dynamic_partition(datasets.name, "btc25"):
        instance.add_dynamic_partitions(datasets.name, ["btc25"])
        instance.add_dynamic_partitions("indicator_versions", ["1"])
    config = {"ops": {"bars": {"config": {"replace": replace}}}}
    assert dg.materialize(
        [bars], partition_key="btc25", resources=resources, instance=instance, run_config=config
    ).success
    register_set(resources["catalog"], "btc25", parse_spec(SET, source="test"))
    if indicators_too:
        key = indicator_set_key("btc25", 1)
        assert dg.materialize([indicators], partition_key=key, resources=resources, instance=instance).success


def train_and_assemble(resources, instance, folds: range) -> dg.ExecuteInProcessResult:
    """Train `folds` of the run, then write its predictions and thresholds (what the walkforward sensor
    asks for)."""
    for fold in folds:
        key = fold_key(RUN, fold)
        assert dg.materialize(
            [fold_models], partition_key=key, resources=resources, instance=instance
        ).success
    result = dg.materialize(
        [predictions, thresholds], partition_key=RUN, resources=resources, instance=instance
    )
    assert result.success
    return result


def completed_run(resources, instance, export_lines, rolling: bool = True) -> None:
    """btc25 imported with FIRST bars and run btc25_run1 (rolling unless said) trained and completed."""
    land(resources, instance, export_lines[:FIRST])
    spec = WalkforwardConfig(**CONFIG).spec()
    record = register_run(resources["timeseries"], resources["catalog"], "btc25", 1, spec, rolling=rolling)
    add_run_partitions(instance, record.name, record.fold_count)
    train_and_assemble(resources, instance, range(record.fold_count))


def simulated(resources, instance) -> str:
    """A completed simulation of the run; its name."""
    catalog = resources["catalog"]
    spec = SimulationConfig(run=RUN, fee_bps=2.0).spec()
    sim = register_simulation(
        resources["timeseries"], catalog, spec, models_version(catalog.list_walkforward_folds(RUN))
    )
    instance.add_dynamic_partitions(simulations.name, [sim.name])
    assert dg.materialize(
        [simulation], partition_key=sim.name, resources=resources, instance=instance
    ).success
    return sim.name


def roll(resources, instance) -> str:
    """One tick of the rolling schedule and the roll_walkforward runs it asks for, executed as the daemon
    would: what they said (or why the tick skipped)."""
    with dg.build_schedule_context(
        instance=instance, scheduled_execution_time=datetime.now(UTC), resources=resources
    ) as context:
        tick = rolling_walkforward_schedule(context)
    if isinstance(tick, dg.SkipReason):
        return tick.skip_message
    said = []
    for request in tick:
        result = roll_walkforward.execute_in_process(
            run_config=request.run_config, tags=request.tags, resources=resources, instance=instance
        )
        said.append(result.output_for_node("roll_walkforward_run"))
    return "; ".join(said)


def sensor_requests(sensor, resources, instance) -> list[tuple[str, str, str]]:
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        result = sensor(context)
    return [(r.job_name, r.partition_key, r.run_key) for r in result.run_requests]


def snapshot(catalog) -> tuple[object, list[object]]:
    """The run's row (but its touch time) and its folds."""
    run = catalog.get_walkforward_run(RUN)
    return replace(run, updated_at=None), catalog.list_walkforward_folds(RUN)


def test_definitions_carry_both_schedules_running_by_default():
    dg.Definitions.validate_loadable(defs)
    for name in ("rolling_walkforward_schedule", "landing_rescan_schedule"):
        assert defs.resolve_schedule_def(name).default_status == dg.DefaultScheduleStatus.RUNNING


def test_the_launchpad_registers_a_rolling_run_with_the_same_spec_as_a_fixed_one(
    resources, instance, export_lines
):
    land(resources, instance, export_lines[:FIRST])
    for rolling in (False, True):
        result = start_walkforward.execute_in_process(
            run_config={"ops": {"register_walkforward_run": {"config": {**CONFIG, "rolling": rolling}}}},
            resources=resources,
            instance=instance,
        )
        assert result.success

    fixed, rolling = resources["catalog"].list_walkforward_runs()
    assert (fixed.rolling, rolling.rolling) == (False, True)
    assert rolling.config_sha256 == fixed.config_sha256
    assert rolling.history_sha256 == fixed.history_sha256 is not None


def test_a_rolling_run_gains_a_fold_when_its_dataset_has_bars_for_one_then_its_sims_run_again(
    resources, instance, export_lines
):
    catalog, store = resources["catalog"], resources["timeseries"]
    completed_run(resources, instance, export_lines)
    sim = simulated(resources, instance)
    before = store.read(RUN)
    first_sim = sensor_requests(simulation_sensor, resources, instance)
    land(resources, instance, export_lines[:LONGER])

    tick = roll(resources, instance)

    assert "added folds 2..2" in tick
    run = catalog.get_walkforward_run(RUN)
    assert (run.fold_count, run.status, run.dataset_version) == (
        3,
        "running",
        catalog.get_dataset("btc25").version,
    )
    assert instance.has_dynamic_partition(fold_numbers.name, "2")
    # The walkforward sensor trains the new fold, and only it.
    assert sensor_requests(walkforward_sensor, resources, instance) == [
        ("train_folds", None, f"{RUN}:folds:2-2")
    ]
    assembled = train_and_assemble(resources, instance, range(2, 3))
    assert all(check.passed for check in assembled.get_asset_check_evaluations())
    after = store.read(RUN)
    old = after.filter(np.isin(after.column("fold").to_numpy(), [0, 1]))
    assert old.column("ts").equals(before.column("ts"))
    assert old.column("y_pred").equals(before.column("y_pred"))
    # The last two rows of fold 1 had no target (2504 bars, horizon 3); now they have one.
    assert (before.column("y_true").null_count, old.column("y_true").null_count) == (2, 0)
    assert set(after.column("fold").to_pylist()) == {0, 1, 2}

    tick = roll(resources, instance)

    assert f"{sim}: registered again" in tick
    record = catalog.get_simulation(sim)
    assert (record.status, record.models_version) == (
        "registered",
        models_version(catalog.list_walkforward_folds(RUN)),
    )
    assert sorted(int(k) for k in json.loads(record.thresholds)) == [0, 1, 2]
    again = [r for r in sensor_requests(simulation_sensor, resources, instance) if r[0] == "simulate"]
    assert [r[1] for r in again] == [sim] and again[0][2] not in {r[2] for r in first_sim}
    assert dg.materialize([simulation], partition_key=sim, resources=resources, instance=instance).success
    assert catalog.get_simulation(sim).status == "completed"
    # A later tick finds nothing to do.
    state = snapshot(catalog)
    roll(resources, instance)
    assert snapshot(catalog) == state and catalog.get_simulation(sim).status == "completed"


def test_a_tick_with_nothing_to_roll_launches_no_run_and_says_why(resources, instance, export_lines):
    completed_run(resources, instance, export_lines)
    simulated(resources, instance)  # replays the run as it is
    with dg.build_schedule_context(
        instance=instance, scheduled_execution_time=datetime.now(UTC), resources=resources
    ) as context:
        tick = rolling_walkforward_schedule(context)

    assert isinstance(tick, dg.SkipReason)
    assert tick.skip_message == f"{RUN}: 'btc25' holds the bars the run was computed on"


def test_a_rolling_run_without_bars_for_another_whole_test_window_is_left_as_it_is(
    resources, instance, export_lines
):
    completed_run(resources, instance, export_lines)
    land(resources, instance, export_lines[: FIRST + 400])
    state = snapshot(resources["catalog"])

    tick = roll(resources, instance)

    assert "hold no whole test window after fold 1 yet" in tick
    assert snapshot(resources["catalog"]) == state


def test_a_rolling_run_waits_for_its_indicators_to_be_computed_on_the_new_bars(
    resources, instance, export_lines
):
    completed_run(resources, instance, export_lines)
    land(resources, instance, export_lines[:LONGER], indicators_too=False)
    state = snapshot(resources["catalog"])

    tick = roll(resources, instance)

    assert "indicators btc25|1 (ready) are not computed on its new bars yet" in tick
    assert snapshot(resources["catalog"]) == state


def changed_prices(lines: list[str], row: int) -> list[str]:
    """`lines` with bar `row`'s open, high, low and close 1 % higher."""
    day, minute, *prices, volume = lines[row].rstrip("\n").split(",")
    moved = [f"{float(price) * 1.01:.2f}" for price in prices]
    return [*lines[:row], ",".join([day, minute, *moved, volume]) + "\n", *lines[row + 1 :]]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda lines: changed_prices(lines, 700), "differ from those its folds were computed on"),
        (lambda lines: lines[:100] + lines[101:], "fold 0 no longer has its window"),
    ],
    ids=["prices", "a_bar_removed"],
)
def test_a_rolling_run_whose_history_changed_is_refused_and_left_as_it_is(
    resources, instance, export_lines, change, reason
):
    completed_run(resources, instance, export_lines)
    land(resources, instance, change(export_lines[:LONGER]), replace=True)
    state = snapshot(resources["catalog"])

    tick = roll(resources, instance)

    assert reason in tick
    assert snapshot(resources["catalog"]) == state


def test_a_run_that_is_not_rolling_never_gains_folds(resources, instance, export_lines):
    completed_run(resources, instance, export_lines, rolling=False)
    land(resources, instance, export_lines[:LONGER])
    state = snapshot(resources["catalog"])

    tick = roll(resources, instance)

    assert tick == "no rolling walkforward runs"
    assert snapshot(resources["catalog"]) == state


# The landing rescan


def rescan(resources, instance) -> list[dg.RunRequest]:
    with dg.build_schedule_context(
        instance=instance, scheduled_execution_time=datetime.now(UTC), resources=resources
    ) as context:
        result = landing_rescan_schedule(context)
    return [] if isinstance(result, dg.SkipReason) else list(result)


def exported(resources, lines: list[str], age_s: float) -> Path:
    """btc25 written to the landing folder, last modified `age_s` seconds ago."""
    path = Path(resources["landing"].path) / "btc25.txt"
    path.write_text("".join(lines))
    stamp = time.time() - age_s
    os.utime(path, (stamp, stamp))
    return path


def record_run(instance, request: dg.RunRequest, status: dg.DagsterRunStatus) -> None:
    """An ingest run of `request` in the instance, in `status`, as the daemon would have made it."""
    tags = {**request.tags, "dagster/partition": request.partition_key}
    instance.add_run(
        dg.DagsterRun(job_name="ingest_bars", run_id=str(uuid.uuid4()), status=status, tags=tags)
    )


def test_the_rescan_ingests_an_export_the_sensor_missed_once(resources, instance, export_lines):
    path = exported(resources, export_lines[:FIRST], age_s=RESCAN_AFTER_S + 60)

    requests = rescan(resources, instance)

    assert [(r.partition_key, r.tags["trading/source_file"]) for r in requests] == [("btc25", path.name)]
    assert instance.has_dynamic_partition(datasets.name, "btc25")
    record_run(instance, requests[0], dg.DagsterRunStatus.NOT_STARTED)  # launched, not started yet
    assert rescan(resources, instance) == []


@pytest.mark.parametrize("status", [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.FAILURE])
def test_the_rescan_leaves_an_export_whose_ingest_is_under_way_or_failed(
    resources, instance, export_lines, status
):
    exported(resources, export_lines[:FIRST], age_s=RESCAN_AFTER_S + 60)
    record_run(instance, rescan(resources, instance)[0], status)

    assert rescan(resources, instance) == []


def test_the_rescan_leaves_an_imported_export_and_one_the_sensor_has_yet_to_see(
    resources, instance, export_lines
):
    land(resources, instance, export_lines[:FIRST], indicators_too=False)
    exported(resources, export_lines[:FIRST], age_s=RESCAN_AFTER_S + 60)
    assert rescan(resources, instance) == []

    exported(resources, export_lines[:LONGER], age_s=10)
    assert rescan(resources, instance) == []


def test_the_rescan_ingests_content_that_was_imported_before_and_replaced_since(
    resources, instance, export_lines
):
    # Imported by a run, then replaced by a longer export, then the first export came back: the landing
    # sensor's run key for it is spent, so only the rescan brings it back.
    exported(resources, export_lines[:FIRST], age_s=RESCAN_AFTER_S + 60)
    record_run(instance, rescan(resources, instance)[0], dg.DagsterRunStatus.SUCCESS)
    land(resources, instance, export_lines[:LONGER], indicators_too=False)
    exported(resources, export_lines[:FIRST], age_s=RESCAN_AFTER_S + 60)

    assert [r.partition_key for r in rescan(resources, instance)] == ["btc25"]
