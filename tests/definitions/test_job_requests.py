"""Job requests end to end, as the daemon runs them: a row in the catalog's job_requests table taken by an
intake run the sensors ask for, the runs they launch executed in-process with the tags the sensors gave
them, and the run-status sensors evaluated against the instance's event log with their cursors, stopped
and restarted. Real resources: DuckDB files, and Postgres in a throwaway schema for the catalog."""

import json
import uuid

import dagster as dg
import pytest
from test_walkforward_assets import CONFIG, ROWS, land_and_compute, start

from resources.catalog import Catalog
from sensors.intake import job_request_intake_sensor
from sensors.job_requests import LIFECYCLE_SENSORS, job_request_failed, job_request_started
from sensors.simulation import simulation_sensor
from sensors.walkforward import RANGE_END, RANGE_START, walkforward_sensor
from trading_assets.compute import walkforward
from trading_assets.definitions import defs
from trading_assets.partitions import fold_key
from trading_assets.records import NewJobRequest
from trading_assets.requests import service as job_requests
from trading_assets.requests.jobs import TAKE_JOB_REQUEST_JOB, take_job_request
from trading_assets.simulation.assets import simulation
from trading_assets.simulation.jobs import start_simulation
from trading_assets.walkforward.assets import fold_models, predictions, thresholds

# The requests' lifecycle is the catalog coordinating runs and sensor ticks: on both dialects.
pytestmark = pytest.mark.parametrize("resources", ["duckdb", "postgres"], indirect=True)

TWO_FOLDS = {**CONFIG, "folds": {**CONFIG["folds"], "max_folds": 2}}
ASSETS_OF_JOB = {
    "train_folds": [fold_models],
    "predict_walkforward": [predictions, thresholds],
    "simulate": [simulation],
}


@pytest.fixture(scope="module")
def export_lines(tmp_path_factory) -> list[str]:
    from trading_assets.compute.demo_data import generate_bars, write_export

    path = tmp_path_factory.mktemp("export") / "btc25.txt"
    write_export(generate_bars(n_rows=ROWS, seed=4), path)
    return path.read_text().splitlines(keepends=True)


@pytest.fixture
def world(resources, instance, export_lines) -> "World":
    land_and_compute(resources, instance, export_lines, ROWS)
    return World(resources, instance)


class World:
    """The resources, the instance, and the lifecycle sensors' cursors as the daemon keeps them."""

    def __init__(self, resources: dict, instance: dg.DagsterInstance) -> None:
        self.resources, self.instance = resources, instance
        self.catalog: Catalog = resources["catalog"]
        self.cursors: dict[str, str | None] = {}
        # A daemon starting the sensors: each sets its cursor to the events that exist now.
        self.tick_lifecycle()

    def submit(self, kind: str, config: dict) -> int:
        return self.catalog.submit_job_request(NewJobRequest(kind, json.dumps(config), "ana")).id

    def evaluate(self, sensor: dg.SensorDefinition) -> list[dg.RunRequest]:
        """One evaluation of `sensor`: every run request it returns."""
        with dg.build_sensor_context(instance=self.instance, resources=self.resources) as context:
            return sensor(context).run_requests

    def sensor(self, sensor: dg.SensorDefinition) -> list[dg.RunRequest]:
        """A tick of the intake sensor and the intake runs it asked for, as the daemon runs them, then a
        tick of `sensor`: its run requests."""
        self.launch(self.evaluate(job_request_intake_sensor))
        return self.evaluate(sensor)

    def launch(self, requests: list[dg.RunRequest]) -> list[str]:
        """What the daemon does with the intake sensor's run requests: execute each one whose run key the
        sensor has not used before, tagged as the daemon tags it; the run ids."""
        launched = []
        for request in requests:
            tags = {"dagster/sensor_name": job_request_intake_sensor.name, "dagster/run_key": request.run_key}
            if self.instance.get_runs(dg.RunsFilter(tags=tags)):
                continue
            result = take_job_request.execute_in_process(
                run_config=request.run_config,
                tags={**request.tags, **tags},
                resources=self.resources,
                instance=self.instance,
                raise_on_error=False,
            )
            launched.append(result.run_id)
        return launched

    def tick(self, sensor: dg.SensorDefinition, cursor: str | None) -> str | None:
        """One evaluation of a run-status sensor from `cursor`; the cursor it leaves."""
        with dg.build_sensor_context(
            instance=self.instance, resources=self.resources, cursor=cursor
        ) as context:
            return sensor.evaluate_tick(context).cursor

    def tick_lifecycle(self) -> None:
        for sensor in LIFECYCLE_SENSORS:
            self.cursors[sensor.name] = self.tick(sensor, self.cursors.get(sensor.name))

    def execute(self, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
        """What the daemon does with a run request: run its job's assets with its partition and tags."""
        return dg.materialize(
            ASSETS_OF_JOB[request.job_name],
            partition_key=request.partition_key,
            tags=request.tags,
            resources=self.resources,
            instance=self.instance,
            raise_on_error=False,
        )

    def folds(self, request: dg.RunRequest) -> list[dg.RunRequest]:
        """The cells of a `train_folds` request's range as runs of their own, with the request's other tags:
        what re-executing the fold cells one by one from the UI launches."""
        first = int(request.tags[RANGE_START].split("|")[0])
        last = int(request.tags[RANGE_END].split("|")[0])
        run = request.tags["trading/walkforward_run"]
        tags = {k: v for k, v in request.tags.items() if k not in (RANGE_START, RANGE_END)}
        return [
            dg.RunRequest(job_name="train_folds", partition_key=fold_key(run, k), tags=tags)
            for k in range(first, last + 1)
        ]

    def request(self, request_id: int):
        return self.catalog.get_job_request(request_id)


# Intake


def test_a_tick_only_asks_for_the_intake_run_and_a_repeated_tick_launches_nothing_twice(world):
    request_id = world.submit("walkforward", TWO_FOLDS)
    first, again = world.evaluate(job_request_intake_sensor), world.evaluate(job_request_intake_sensor)
    (intake,) = first
    assert intake.job_name == "take_job_request" and [r.run_key for r in again] == [intake.run_key]
    # The ticks read no data: nothing was taken, registered or added yet.
    request = world.request(request_id)
    assert (request.status, request.target, request.intake_attempts) == ("QUEUED", None, 0)
    assert world.catalog.list_walkforward_runs() == []
    assert not world.instance.has_dynamic_partition("walkforward_runs", "btc25_run1")
    # The daemon launches the first tick's run and skips the repeated tick's duplicate run key.
    (run_id,) = world.launch(first + again)
    assert world.launch(world.evaluate(job_request_intake_sensor)) == []
    request = world.request(request_id)
    assert (request.status, request.target, request.intake_attempts) == ("QUEUED", "btc25_run1", 1)
    assert world.instance.has_dynamic_partition("walkforward_runs", "btc25_run1")
    tags = world.instance.get_run_by_id(run_id).tags
    assert tags[job_requests.INTAKE_TAG] == str(request_id) and job_requests.REQUEST_TAG not in tags
    # The intake run is not part of the request's work: its end is not mirrored.
    world.tick_lifecycle()
    assert world.catalog.list_job_runs(request_id) == []


def test_no_second_intake_run_is_asked_for_while_one_of_the_request_is_in_flight(world):
    """Taking a request computes its folds and can outlast a tick; the attempt it counted at its start
    gives the next tick a new run key, yet only a run that ended leaves room for the next attempt."""
    request_id = world.submit("walkforward", TWO_FOLDS)
    (intake,) = world.evaluate(job_request_intake_sensor)
    # The daemon launched it and it started: it counted its attempt and is computing the folds.
    run = dg.DagsterRun(
        job_name=TAKE_JOB_REQUEST_JOB,
        run_id=str(uuid.uuid4()),
        status=dg.DagsterRunStatus.STARTED,
        tags={**intake.tags, "dagster/run_key": intake.run_key},
    )
    world.instance.add_run(run)
    world.catalog.begin_job_intake(request_id)

    assert world.evaluate(job_request_intake_sensor) == []

    # It died leaving the request QUEUED, its attempt counted: the next tick asks for the next attempt.
    world.instance.report_run_failed(run)
    assert world.request(request_id).status == "QUEUED"
    (again,) = world.evaluate(job_request_intake_sensor)
    assert again.tags[job_requests.INTAKE_TAG] == str(request_id) and again.run_key != intake.run_key


def test_the_intake_run_registers_the_queued_row_and_the_sensor_tags_its_fold_runs(world):
    request_id = world.submit("walkforward", TWO_FOLDS)
    requests = world.sensor(walkforward_sensor)
    assert [(r.job_name, r.partition_key_range) for r in requests] == [
        ("train_folds", dg.PartitionKeyRange(fold_key("btc25_run1", 0), fold_key("btc25_run1", 1))),
    ]
    assert all(r.tags[job_requests.REQUEST_TAG] == str(request_id) for r in requests)
    request = world.request(request_id)
    assert (request.status, request.target, request.intake_attempts) == ("QUEUED", "btc25_run1", 1)
    assert world.instance.has_dynamic_partition("walkforward_runs", "btc25_run1")
    # A second tick takes nothing again and registers no second run.
    world.sensor(walkforward_sensor)
    assert [r.name for r in world.catalog.list_walkforward_runs()] == ["btc25_run1"]


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({**TWO_FOLDS, "folds": {"train": "1500"}}, "folds.test: field required"),
        ({**TWO_FOLDS, "hyperparamters": {"max_depth": 3}}, "hyperparamters: unknown field"),
        ({**TWO_FOLDS, "dataset": "eth"}, "dataset 'eth'"),
        ({**TWO_FOLDS, "folds": {"train": "100000", "test": "500"}}, "not enough data"),
    ],
)
def test_an_invalid_request_is_rejected_with_the_message_once(world, config, says):
    request_id = world.submit("walkforward", config)
    assert world.sensor(walkforward_sensor) == []
    request = world.request(request_id)
    assert request.status == "REJECTED" and says in request.message
    assert world.catalog.list_walkforward_runs() == []
    world.sensor(walkforward_sensor)
    assert world.request(request_id).intake_attempts == 1  # never retried


def test_a_request_that_keeps_erring_fails_after_a_few_attempts(world, monkeypatch):
    def unreadable(*args, **kwargs):
        raise OSError("disk unreadable")

    monkeypatch.setattr(job_requests, "register_run", unreadable)
    monkeypatch.setattr(job_requests, "MAX_INTAKE_WAIT_S", 0.0)
    request_id = world.submit("walkforward", TWO_FOLDS)
    for attempt in range(1, job_requests.MAX_INTAKE_ATTEMPTS):
        world.sensor(walkforward_sensor)
        assert (world.request(request_id).status, world.request(request_id).intake_attempts) == (
            "QUEUED",
            attempt,
        )
    world.sensor(walkforward_sensor)
    request = world.request(request_id)
    assert request.status == "FAILED" and "disk unreadable" in request.message
    world.sensor(walkforward_sensor)
    assert world.request(request_id).intake_attempts == job_requests.MAX_INTAKE_ATTEMPTS


def test_a_request_waits_while_its_indicator_set_is_not_ready_instead_of_being_rejected(world, monkeypatch):
    monkeypatch.setattr(job_requests, "MAX_INTAKE_WAIT_S", 3600.0)
    request_id = world.submit("walkforward", TWO_FOLDS)
    real = world.catalog.get_indicator_set

    def computing(dataset, version):
        from dataclasses import replace

        return replace(real(dataset, version), status="registered")

    monkeypatch.setattr(type(world.catalog), "get_indicator_set", lambda self, d, v: computing(d, v))
    for _ in range(job_requests.MAX_INTAKE_ATTEMPTS + 1):
        assert world.sensor(walkforward_sensor) == []
    assert world.request(request_id).status == "QUEUED"  # still within MAX_INTAKE_WAIT_S
    monkeypatch.undo()
    assert len(world.sensor(walkforward_sensor)) == 1  # one run for both folds
    assert world.request(request_id).target == "btc25_run1"


def test_unworkable_simulate_settings_are_rejected_at_intake_not_after_training(world):
    config = {**TWO_FOLDS, "simulate": {"sizing": "notional"}}
    request_id = world.submit("walkforward", config)
    assert world.sensor(walkforward_sensor) == []
    request = world.request(request_id)
    assert request.status == "REJECTED" and "notional" in request.message
    assert world.catalog.list_walkforward_runs() == []


def test_the_launchpad_records_its_own_request_taken_and_the_sensor_launches_it(world):
    result = start(world.resources, world.instance, TWO_FOLDS)
    assert result.success
    (request,) = world.catalog.list_job_requests()
    assert (request.kind, request.requested_by, request.target) == ("walkforward", "launchpad", "btc25_run1")
    assert (request.status, request.intake_attempts) == ("QUEUED", 0)
    tags = world.instance.get_run_by_id(result.run_id).tags
    assert tags[job_requests.SUBMITTED_TAG] == str(request.id) and job_requests.REQUEST_TAG not in tags
    assert json.loads(request.config)["folds"]["max_folds"] == 2
    # The registering run is not part of the request's work: its end is not mirrored.
    world.tick_lifecycle()
    assert world.catalog.list_job_runs(request.id) == []
    folds = world.sensor(walkforward_sensor)
    assert [r.tags[job_requests.REQUEST_TAG] for r in folds] == [str(request.id)]  # one run, both folds
    assert world.request(request.id).intake_attempts == 0  # not taken a second time


def test_an_invalid_launchpad_config_is_a_rejected_request(world):
    assert not start(world.resources, world.instance, {**TWO_FOLDS, "indicator_version": 7}).success
    (request,) = world.catalog.list_job_requests()
    assert request.status == "REJECTED" and "version 7" in request.message


# Lifecycle


def test_a_request_runs_then_completes_only_when_every_fold_and_the_assembly_succeeded(world):
    request_id = world.submit("walkforward", TWO_FOLDS)
    (train,) = world.sensor(walkforward_sensor)
    assert world.execute(train).success
    world.tick_lifecycle()
    request = world.request(request_id)
    assert (request.status, request.finished_at) == ("RUNNING", None)  # trained, not yet assembled
    assert request.started_at is not None
    (assemble,) = world.sensor(walkforward_sensor)
    assert assemble.tags[job_requests.REQUEST_TAG] == str(request_id)
    result = world.execute(assemble)
    world.tick_lifecycle()
    request = world.request(request_id)
    assert request.status == "COMPLETED" and request.finished_at is not None
    runs = world.catalog.list_job_runs(request_id)
    # The training run is recorded with its range of fold cells, as Dagster's UI writes it.
    assert {(r.partition, r.status) for r in runs} == {
        (f"{fold_key('btc25_run1', 0)}...{fold_key('btc25_run1', 1)}", "SUCCESS"),
        ("btc25_run1", "SUCCESS"),
    }
    assert all(r.url.endswith(f"/runs/{r.run_id}") and r.finished_at >= r.started_at for r in runs)
    assert result.run_id in {r.run_id for r in runs}


def test_a_failed_fold_fails_the_request_and_its_re_execution_resumes_it(world, monkeypatch):
    request_id = world.submit("walkforward", TWO_FOLDS)
    (first,) = world.sensor(walkforward_sensor)
    real = walkforward.train_fold

    def broken(*args, **kwargs):
        raise MemoryError("out of device memory")

    monkeypatch.setattr(walkforward, "train_fold", broken)
    failed = world.execute(first)
    world.tick_lifecycle()
    request = world.request(request_id)
    assert request.status == "FAILED"
    cells = f"{fold_key('btc25_run1', 0)}...{fold_key('btc25_run1', 1)}"
    # Which cells the run trained, and which folds failed in it.
    assert f"{cells} failed (run {failed.run_id}): fold_models: btc25_run1 fold 0: Mem" in request.message
    assert "out of device memory" in request.message
    monkeypatch.setattr(walkforward, "train_fold", real)
    assert world.execute(first).success  # a person re-executes the run (same tags)
    world.tick_lifecycle()
    assert world.request(request_id).status == "RUNNING"


def test_a_stopped_and_restarted_daemon_loses_no_transition(world, monkeypatch):
    """Events that happen while the sensors are stopped are mirrored when they start again from their
    cursors; a restart that evaluates from an older cursor (the tick died before saving it) changes
    nothing."""
    request_id = world.submit("walkforward", TWO_FOLDS)
    # The folds as runs of their own (re-executed one by one): two events to mirror in an order.
    first, second = world.folds(*world.sensor(walkforward_sensor))
    saved = dict(world.cursors)  # the daemon stops here
    assert world.execute(first).success

    def broken(*args, **kwargs):
        raise MemoryError("out of device memory")

    monkeypatch.setattr(walkforward, "train_fold", broken)
    assert not world.execute(second).success
    assert world.request(request_id).status == "QUEUED"  # nobody mirrored anything yet
    # The daemon restarts: the failure sensor happens to run before the start sensor.
    world.cursors[job_request_failed.name] = world.tick(job_request_failed, saved[job_request_failed.name])
    assert world.request(request_id).status == "FAILED"
    world.cursors[job_request_started.name] = world.tick(job_request_started, saved[job_request_started.name])
    world.tick_lifecycle()
    after = world.request(request_id)
    assert after.status == "FAILED" and fold_key("btc25_run1", 1) in after.message
    statuses = {r.partition: r.status for r in world.catalog.list_job_runs(request_id)}
    assert statuses == {fold_key("btc25_run1", 0): "SUCCESS", fold_key("btc25_run1", 1): "FAILURE"}
    # A tick that died before its cursor was saved runs again from the old one: same state.
    for sensor in LIFECYCLE_SENSORS:
        world.tick(sensor, saved[sensor.name])
    assert world.request(request_id) == after


def test_an_event_whose_recording_failed_is_recovered_by_the_next_sensor_tick(world, monkeypatch):
    """Dagster moves a run-status sensor's cursor past an event even when the sensor raised: the
    walkforward sensor's reconciliation records it on its next tick."""
    request_id = world.submit("walkforward", TWO_FOLDS)
    (first,) = world.sensor(walkforward_sensor)
    assert world.execute(first).success
    real = type(world.catalog).record_job_run

    def unreachable(self, run, target_completed):
        raise OSError("catalog unreachable")

    monkeypatch.setattr(type(world.catalog), "record_job_run", unreachable)
    world.tick_lifecycle()  # the ticks fail; their cursors move on anyway
    monkeypatch.setattr(type(world.catalog), "record_job_run", real)
    world.tick_lifecycle()
    assert world.request(request_id).status == "QUEUED"  # the run-status sensors lost the events
    world.sensor(walkforward_sensor)
    request = world.request(request_id)
    assert request.status == "RUNNING"
    assert [r.status for r in world.catalog.list_job_runs(request_id)] == ["SUCCESS"]


# Chaining


def test_a_walkforward_submitted_with_simulate_gets_its_simulation_when_it_completes(world):
    request_id = world.submit("walkforward", {**TWO_FOLDS, "simulate": {"fee_bps": 2.0}})
    for request in world.sensor(walkforward_sensor):
        assert world.execute(request).success
    (assemble,) = world.sensor(walkforward_sensor)
    assert world.execute(assemble).success
    assert world.catalog.list_job_requests(kind="simulation") == []
    world.tick_lifecycle()
    (chained,) = world.catalog.list_job_requests(kind="simulation")
    assert (chained.parent_id, chained.status, chained.requested_by) == (request_id, "QUEUED", "ana")
    assert json.loads(chained.config)["fee_bps"] == 2.0
    assert json.loads(chained.config)["run"] == "btc25_run1"
    world.tick_lifecycle()  # seeing the completion again chains nothing more
    world.sensor(walkforward_sensor)
    assert len(world.catalog.list_job_requests(kind="simulation")) == 1

    simulate = [r for r in world.sensor(simulation_sensor) if r.job_name == "simulate"]
    assert [(r.partition_key, r.tags[job_requests.REQUEST_TAG]) for r in simulate] == [
        ("btc25_sim1", str(chained.id))
    ]
    result = world.execute(simulate[0])
    assert result.success
    world.tick_lifecycle()
    assert world.request(chained.id).status == "COMPLETED"
    # Lineage: the sim replays the requested run, and its materialisation names that run's partitions.
    sim = world.catalog.get_simulation("btc25_sim1")
    assert (sim.run, json.loads(sim.config)["sim"]["fee_bps"]) == ("btc25_run1", 2.0)
    (materialization,) = result.asset_materializations_for_node("simulation")
    assert "btc25_run1" in str(materialization.metadata)


def test_a_target_completed_by_untagged_runs_still_completes_its_request_and_chains(world):
    """Someone materialises the folds and the assembly by hand from the UI (no request tag): the next
    walkforward_sensor tick sees the run completed."""
    request_id = world.submit("walkforward", {**TWO_FOLDS, "simulate": {}})
    for request in world.sensor(walkforward_sensor):
        # The same range of fold cells, as a backfill from the UI launches it: without the request's tags.
        ranged = {k: v for k, v in request.tags.items() if k.startswith("dagster/asset_partition_range")}
        assert world.execute(dg.RunRequest(tags=ranged, job_name="train_folds")).success
    world.tick_lifecycle()
    assert world.request(request_id).status == "QUEUED"
    assert world.execute(dg.RunRequest(partition_key="btc25_run1", job_name="predict_walkforward")).success
    world.sensor(walkforward_sensor)
    assert world.request(request_id).status == "COMPLETED"
    (chained,) = world.catalog.list_job_requests(kind="simulation")
    assert chained.parent_id == request_id


def test_a_simulation_request_of_a_run_that_is_not_completed_is_rejected(world):
    assert start(world.resources, world.instance, TWO_FOLDS).success
    request_id = world.submit("simulation", {"run": "btc25_run1"})
    assert [r for r in world.sensor(simulation_sensor) if r.job_name == "simulate"] == []
    request = world.request(request_id)
    assert request.status == "REJECTED" and "predictions" in request.message


def test_the_lifecycle_sensors_and_launchpad_jobs_are_defined(world):
    dg.Definitions.validate_loadable(defs)
    for sensor in LIFECYCLE_SENSORS:
        assert defs.resolve_sensor_def(sensor.name) is not None
    assert start_simulation.name == "start_simulation"
