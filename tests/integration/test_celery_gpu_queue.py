"""Several machines with dagster-celery: fold steps go to the `gpu` queue, every other step to the default
queue. Real Redis, two real celery workers started as docs/deploy.md says (`dagster-celery worker start`
with deploy/celery.yaml), one per queue, and the code location configured only by environment variables
(TRADING_EXECUTOR=celery). Runs are orchestrated by `dagster job execute` in their own processes, as a run
launcher would; which worker ran a step is what dagster-celery records in the run's event log."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import redis

from trading_assets import settings as cfg
from trading_assets.compute.demo_data import generate_bars, write_export
from trading_assets.definitions import build_definitions
from trading_assets.partitions import datasets, fold_key

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
REDIS_HOST, REDIS_PORT = os.environ.get("TRADING_ASSETS_TEST_REDIS", "127.0.0.1:6379").split(":")
# Marks a Redis database as taken by one test session; the queue names are fixed by the code (`gpu`,
# `dagster`), so sessions running at the same time on one server each need a database of their own.
CLAIM = "trading_assets:test_claim"
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
ROWS = 2_500
SET = {"dataset": "btc25", "name": "small", "indicators": [{"indicator": "rsi"}, {"indicator": "ema"}]}
WALKFORWARD = {
    "dataset": "btc25",
    "indicator_version": 1,
    "target": {"kind": "regression", "horizon": 3},
    "folds": {"train": "1000", "test": "400", "embargo": 5, "max_folds": 2},
    "hyperparameters": {"n_estimators": 10, "max_depth": 3},
    "seed": 5,
}
# What dagster-celery's task records in the engine event it writes before running a step.
WORKER_KEY = "Celery worker"


@pytest.fixture
def broker(service_missing) -> Iterator[str]:
    """A Redis database no other session uses, emptied before and after: the broker and result backend."""
    try:
        redis.Redis(host=REDIS_HOST, port=int(REDIS_PORT), socket_connect_timeout=2).ping()
    except (redis.ConnectionError, redis.TimeoutError) as err:
        service_missing(f"no Redis at {REDIS_HOST}:{REDIS_PORT} (set TRADING_ASSETS_TEST_REDIS): {err}")
    token = uuid.uuid4().hex
    for db in range(1, 16):
        client = redis.Redis(host=REDIS_HOST, port=int(REDIS_PORT), db=db)
        # Expires on its own if this session dies before it lets go.
        if client.set(CLAIM, token, nx=True, ex=900):
            break
        client.close()
    else:
        pytest.fail("every Redis database 1..15 is claimed by another test session")
    # Tasks a dead session left queued would reach this session's workers.
    for key in client.scan_iter():
        if key != CLAIM.encode():
            client.delete(key)
    yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"
    if client.get(CLAIM) == token.encode():
        client.flushdb()
    client.close()


@pytest.fixture
def settings(tmp_path: Path, broker: str, monkeypatch) -> cfg.Settings:
    """The environment of every process of the deployment: the test, the orchestrators and the workers.
    One machine stands in for several, so the DuckDB files and the SQLite instance can be shared."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    # The gpu pool limit of the embedded default (the Makefile's dagster.yaml).
    (home / "dagster.yaml").write_text(
        "concurrency:\n  pools:\n    granularity: op\n    default_limit: 1\ntelemetry:\n  enabled: false\n"
    )
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("TRADING_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TRADING_DEVICE", "cpu")
    monkeypatch.setenv("TRADING_EXECUTOR", "celery")
    monkeypatch.setenv("TRADING_CELERY_BROKER", broker)
    monkeypatch.setenv("TRADING_CELERY_BACKEND", broker)
    # dagster-celery starts `celery` from PATH.
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    for name in (
        "TRADING_LANDING_DIR",
        "TRADING_SETS_DIR",
        "TRADING_ARTIFACTS_DIR",
        "TRADING_CATALOG",
        "TRADING_TIMESERIES",
        "TRADING_INDICATOR_MODULES",
    ):
        monkeypatch.delenv(name, raising=False)
    return cfg.Settings.from_env()


def start_worker(name: str, queue: str, concurrency: int, log: Path) -> subprocess.Popen:
    command = [
        str(BIN / "dagster-celery"),
        *("worker", "start", "-A", "dagster_celery.app", "-y", str(ROOT / "deploy" / "celery.yaml")),
        *("-q", queue, "-n", name),
        # Passed on to `celery worker`: no gossip or mingle between the two workers (nothing to share).
        *("--", f"--concurrency={concurrency}", "--without-gossip", "--without-mingle"),
    ]
    with log.open("wb") as out:
        # Its own process group: `dagster-celery` runs `celery`, which forks its pool; all end together.
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(workers: list[subprocess.Popen]) -> None:
    """Ends the workers' process groups: a warm shutdown, killed if it takes longer than 30 s."""
    for process in workers:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    for process in workers:
        with contextlib.suppress(ProcessLookupError):
            while time.monotonic() < deadline:
                # Reaps `dagster-celery` once it exits; a zombie would keep its group alive.
                process.poll()
                os.killpg(process.pid, 0)
                time.sleep(0.1)
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture
def instance(settings: cfg.Settings) -> Iterator[dg.DagsterInstance]:
    """The instance in DAGSTER_HOME, its SQLite storage created before any worker opens it (two processes
    creating it at once collide)."""
    with dg.DagsterInstance.get() as instance:
        # The pool's slot set up front, as `dagster instance concurrency set gpu 1` does (docs/deploy.md):
        # left to `default_limit`, the pool is created by the first claim, and two runs claiming at once
        # both got a slot here (seen once in CI: both folds trained side by side).
        instance.event_log_storage.set_concurrency_slots("gpu", 1)
        yield instance


@pytest.fixture
def workers(instance: dg.DagsterInstance, tmp_path: Path) -> Iterator[dict[str, Path]]:
    """A GPU machine's worker (queue `gpu`, two processes: only the pool may keep folds apart) and a CPU
    machine's (default queue `dagster`), both ready to take tasks; their logs by worker name."""
    logs = {name: tmp_path / f"{name}.log" for name in ("gpu", "cpu")}
    started = [
        start_worker("gpu", "gpu", 2, logs["gpu"]),
        start_worker("cpu", "dagster", 1, logs["cpu"]),
    ]
    try:
        deadline = time.monotonic() + 60
        while not all("ready." in log.read_text(errors="replace") for log in logs.values()):
            exited = [p.args for p in started if p.poll() is not None]
            assert not exited, f"a worker exited: {exited}\n{tails(logs)}"
            assert time.monotonic() < deadline, f"workers not ready after 60 s\n{tails(logs)}"
            time.sleep(0.2)
        yield logs
    finally:
        stop(started)


def tails(logs: dict[str, Path]) -> str:
    return "\n".join(
        f"--- {name} worker ---\n{log.read_text(errors='replace')[-3000:]}" for name, log in logs.items()
    )


def prepare_run(defs: dg.Definitions, settings: cfg.Settings, instance: dg.DagsterInstance) -> str:
    """btc25 imported, a small indicator set computed and a walkforward run of two folds registered, with
    the code location's own jobs (in-process: the executor only matters for the runs under test)."""
    settings.landing_dir.mkdir(parents=True)
    write_export(generate_bars(n_rows=ROWS, seed=4), settings.landing_dir / "btc25.txt")
    instance.add_dynamic_partitions(datasets.name, ["btc25"])
    steps = [
        ("ingest_bars", {"partition_key": "btc25"}),
        ("add_indicator_set", {"run_config": {**QUIET, "ops": {"register_indicator_set": {"config": SET}}}}),
        ("materialize_indicators", {"partition_key": "btc25|1"}),
        (
            "start_walkforward",
            {"run_config": {**QUIET, "ops": {"register_walkforward_run": {"config": WALKFORWARD}}}},
        ),
    ]
    for job, arguments in steps:
        result = defs.resolve_job_def(job).execute_in_process(
            instance=instance, raise_on_error=False, **{"run_config": QUIET, **arguments}
        )
        assert result.success, [str(e.event_specific_data) for e in result.all_events if e.is_failure]
    return result.output_for_node("register_walkforward_run")


def orchestrate(defs: dg.Definitions, job: str, partition_key: str) -> subprocess.Popen:
    """A run of `job` orchestrated in its own process from the code location as the environment configures
    it (not from `defs`, built before the test set the environment): the celery executor submits each step
    to its queue and collects what the workers report."""
    tags = defs.resolve_job_def(job).get_tags_for_partition_key(partition_key, None)
    command = [str(BIN / "dagster"), "job", "execute", "-m", "trading_assets.definitions", "-a", "defs"]
    return subprocess.Popen(
        [*command, "-j", job, "--tags", json.dumps(dict(tags))],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def finish(orchestrators: list[subprocess.Popen], logs: dict[str, Path]) -> None:
    """Waits for every orchestrator (killed after 180 s); fails with their output if a run failed."""
    deadline = time.monotonic() + 180
    failed = []
    for process in orchestrators:
        try:
            output, _ = process.communicate(timeout=max(deadline - time.monotonic(), 1))
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        if process.returncode != 0:
            failed.append(output.decode(errors="replace")[-4000:])
    assert not failed, "\n".join([*failed, tails(logs)])


def runs_of(instance: dg.DagsterInstance, job: str) -> list[dg.DagsterRun]:
    runs = instance.get_runs(filters=dg.RunsFilter(job_name=job))
    assert [r.status for r in runs] == [dg.DagsterRunStatus.SUCCESS] * len(runs)
    return runs


def workers_by_step(instance: dg.DagsterInstance, job: str) -> dict[str, set[str]]:
    """For every step of every run of `job` ("<partition> <step>"), the names of the workers that ran it
    (without their host: `gpu`, `cpu`)."""
    found: dict[str, set[str]] = {}
    for run in runs_of(instance, job):
        for record in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
            event = record.dagster_event
            metadata = event.engine_event_data.metadata
            if WORKER_KEY in metadata:
                worker = str(metadata[WORKER_KEY].value).split("@")[0]
                found.setdefault(f"{run.tags['dagster/partition']} {event.step_key}", set()).add(worker)
    return found


def step_windows(instance: dg.DagsterInstance, job: str) -> list[tuple[float, float]]:
    """When each run of `job` started and finished its (one) step, in order of start."""
    windows = []
    for run in runs_of(instance, job):
        (start,) = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)
        (end,) = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)
        windows.append((start.timestamp, end.timestamp))
    return sorted(windows)


def test_fold_steps_run_on_the_gpu_worker_and_the_rest_on_the_cpu_worker(settings, instance, workers):
    defs = build_definitions(settings)
    run = prepare_run(defs, settings, instance)
    # Both folds at once: the gpu worker has room for both, but the gpu pool lets one train at a time.
    finish([orchestrate(defs, "train_folds", fold_key(run, fold)) for fold in (0, 1)], workers)
    finish([orchestrate(defs, "predict_walkforward", run)], workers)

    assert {
        **workers_by_step(instance, "train_folds"),
        **workers_by_step(instance, "predict_walkforward"),
    } == {
        f"0|{run} fold_models": {"gpu"},
        f"1|{run} fold_models": {"gpu"},
        f"{run} predictions": {"cpu"},
        f"{run} thresholds": {"cpu"},
    }
    (_, first_end), (second_start, _) = step_windows(instance, "train_folds")
    assert first_end <= second_start
    record = cfg.catalog(settings).process_config_and_initialize().get_walkforward_run(run)
    assert record.status == "completed"


def test_the_default_executor_runs_a_runs_steps_in_its_own_process(monkeypatch):
    monkeypatch.delenv("TRADING_EXECUTOR", raising=False)
    assert cfg.executor(cfg.Settings.from_env()) is dg.in_process_executor
    monkeypatch.setenv("TRADING_EXECUTOR", "multiprocess")
    assert cfg.executor(cfg.Settings.from_env()) is None  # Dagster's default: a process per step
    monkeypatch.setenv("TRADING_EXECUTOR", "threads")
    with pytest.raises(ValueError, match="TRADING_EXECUTOR must be in_process, multiprocess, celery or k8s"):
        cfg.Settings.from_env()


def test_the_celery_executor_is_refused_at_load_without_its_backend(monkeypatch):
    monkeypatch.setenv("TRADING_EXECUTOR", "celery")
    monkeypatch.setenv("TRADING_CELERY_BROKER", "redis://127.0.0.1:6379/0")
    monkeypatch.delenv("TRADING_CELERY_BACKEND", raising=False)
    with pytest.raises(ValueError, match="TRADING_EXECUTOR=celery needs TRADING_CELERY_BACKEND"):
        cfg.Settings.from_env()
