"""The exporter against a real Dagster instance (SQLite files under a temporary DAGSTER_HOME, and the
production Postgres storage) holding runs of two small jobs in several states, and a real Postgres catalog
(a schema per test) holding job requests, datasets and live heartbeats: each figure a scrape gives is the
one put there. A source that cannot be read leaves the scrape answering, its up gauge 0 and one log line
per scrape. This machine has no GPU: what its tests see is NVML saying it is unavailable, and why."""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pytest
from dagster._core.remote_origin import InProcessCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._daemon.types import DaemonHeartbeat
from monitoring_setup import QUIET, REPO, broken, exporter_metrics, free_port, training
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from resources.catalog import Catalog
from resources.postgres_catalog import PostgresCatalog
from trading_assets.ops.metrics import Build, Exporter, Source
from trading_assets.ops.metrics_catalog import CatalogSource, SchemaSource
from trading_assets.ops.metrics_dagster import DagsterLimits, DagsterSource
from trading_assets.ops.metrics_gpu import GpuSource
from trading_assets.records import (
    DatasetRecord,
    FoldWindow,
    NewIndicatorSet,
    NewJobRequest,
    NewWalkforwardRun,
)

BUILD = Build("9.9.9", "1.13.0", "abc123def456")


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(*sources: Source, now: datetime | None = None) -> Samples:
    """One scrape of an exporter of `sources`, parsed from the text Prometheus would read."""
    registry = CollectorRegistry()
    registry.register(Exporter(sources, BUILD, clock=lambda: now or datetime.now(UTC)))
    samples: Samples = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def series(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


def sqlite_home(folder: Path) -> Path:
    """A DAGSTER_HOME whose dagster.yaml names no storage: the instance's SQLite files there."""
    folder.mkdir()
    (folder / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return folder


def with_runs(home: Path) -> dict[str, Any]:
    """Two successful runs of `training`, a failed run of `broken`, then a run of `training` queued as the
    run queue's coordinator queues one."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for job in (training, training, broken):
            job.execute_in_process(instance=instance, run_config=QUIET, raise_on_error=False)
        # A queued run names the code location the daemon would launch it from (nothing launches it).
        location = InProcessCodeLocationOrigin(LoadableTargetOrigin(python_file=__file__))
        origin = RemoteJobOrigin(RemoteRepositoryOrigin(location, "__repository__"), training.name)
        queued = instance.create_run_for_job(training, remote_job_origin=origin)
        instance.report_dagster_event(dg.DagsterEvent.job_enqueue(queued), run_id=queued.run_id)
        return {
            "succeeded": instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS])),
            "queued": instance.get_run_record_by_id(queued.run_id),
        }


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A SQLite instance with the runs of `with_runs`, made once: the tests only read it."""
    home = sqlite_home(tmp_path_factory.mktemp("runs") / "dagster_home")
    return home, with_runs(home)


@pytest.fixture(scope="module")
def empty_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An instance with no runs, its storage created once (seconds of Dagster's schema migrations)."""
    home = sqlite_home(tmp_path_factory.mktemp("empty") / "dagster_home")
    dg.DagsterInstance.from_config(str(home)).dispose()
    return home


@pytest.fixture
def empty_home(empty_template: Path, tmp_path: Path) -> Path:
    """A copy of the empty instance of its own."""
    return Path(shutil.copytree(empty_template, tmp_path / "dagster_home"))


def test_runs_are_counted_by_job_and_status_on_sqlite_storage(runs: tuple[Path, dict[str, Any]]) -> None:
    assert counted_runs(runs[0]) == {
        ("training", "SUCCESS"): 2,
        ("training", "QUEUED"): 1,
        ("broken", "FAILURE"): 1,
    }


def test_runs_are_counted_by_job_and_status_on_the_production_postgres_storage(
    tmp_path: Path, dagster_db: str, pg_settings: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    for key, setting in (("HOST", "host"), ("PORT", "port"), ("USER", "user"), ("PASSWORD", "password")):
        monkeypatch.setenv(f"DAGSTER_PG_{key}", str(pg_settings[setting] or ""))
    monkeypatch.setenv("DAGSTER_PG_DB", dagster_db)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        broken.execute_in_process(instance=instance, run_config=QUIET, raise_on_error=False)

    assert counted_runs(home) == {("broken", "FAILURE"): 1}


def counted_runs(home: Path) -> dict[tuple[str, str], float]:
    """The runs a scrape counts, by job and status, where not 0; every status of a job is there."""
    found = series(scrape(DagsterSource(home)), "trading_dagster_runs")
    jobs = {dict(labels)["dagster_job"] for labels in found}
    assert len(found) == len(jobs) * len(dg.DagsterRunStatus)
    return {(dict(k)["dagster_job"], dict(k)["status"]): n for k, n in found.items() if n}


def test_the_oldest_queued_run_waits_since_it_was_created(runs: tuple[Path, dict[str, Any]]) -> None:
    home, made = runs
    queued, source = made["queued"], DagsterSource(home)

    later = queued.create_timestamp + timedelta(seconds=125)
    assert value(scrape(source, now=later), "trading_dagster_oldest_queued_run_age_seconds") == 125.0


def test_an_empty_queue_waits_zero_seconds(empty_home: Path) -> None:
    assert value(scrape(DagsterSource(empty_home)), "trading_dagster_oldest_queued_run_age_seconds") == 0.0


def test_the_runs_finished_within_the_window_give_durations_and_failures(
    runs: tuple[Path, dict[str, Any]],
) -> None:
    home, made = runs
    samples = scrape(DagsterSource(home))

    durations = [r.end_time - r.start_time for r in made["succeeded"]]
    labels = {"dagster_job": "training", "status": "SUCCESS"}
    assert value(samples, "trading_dagster_run_duration_seconds_gcount", **labels) == 2
    assert value(samples, "trading_dagster_run_duration_seconds_gsum", **labels) == pytest.approx(
        sum(durations)
    )
    for bound in ("1.0", "60.0", "+Inf"):
        within = sum(d <= float(bound) for d in durations)
        assert value(samples, "trading_dagster_run_duration_seconds_bucket", le=bound, **labels) == within
    failed = series(samples, "trading_dagster_recent_failed_runs")
    assert {dict(k)["dagster_job"]: v for k, v in failed.items()} == {"training": 0, "broken": 1}
    assert value(samples, "trading_dagster_window_seconds") == 3600


def test_runs_that_finished_before_the_window_are_left_out(runs: tuple[Path, dict[str, Any]]) -> None:
    samples = scrape(DagsterSource(runs[0]), now=datetime.now(UTC) + timedelta(hours=2))
    assert series(samples, "trading_dagster_run_duration_seconds_gcount") == {}
    assert series(samples, "trading_dagster_recent_failed_runs") == {}


def test_steps_are_timed_on_the_newest_finished_runs_only(runs: tuple[Path, dict[str, Any]]) -> None:
    every = series(scrape(DagsterSource(runs[0])), "trading_dagster_step_duration_seconds_gcount")
    assert {tuple(sorted(k)): v for k, v in every.items()} == {
        (("dagster_job", "training"), ("status", "SUCCESS"), ("step", "train")): 2,
        (("dagster_job", "broken"), ("status", "FAILURE"), ("step", "diverge")): 1,
    }
    newest = DagsterSource(runs[0], DagsterLimits(step_runs=1))
    steps = series(scrape(newest), "trading_dagster_step_duration_seconds_gcount")
    assert [dict(k)["step"] for k in steps] == ["diverge"]  # the failed run was the last to finish


def test_each_daemon_heartbeat_has_its_age(empty_home: Path) -> None:
    beat = datetime(2026, 3, 1, 12, tzinfo=UTC)
    with dg.DagsterInstance.from_config(str(empty_home)) as instance:
        instance.add_daemon_heartbeat(DaemonHeartbeat(beat.timestamp(), "SENSOR", "d1", None))

    samples = scrape(DagsterSource(empty_home), now=beat + timedelta(seconds=42))
    assert value(samples, "trading_dagster_daemon_heartbeat_age_seconds", daemon="SENSOR") == 42.0


@pytest.fixture
def catalog(pg_settings: dict, pg_schema_name: str) -> Iterator[PostgresCatalog]:
    """A migrated catalog in a fresh Postgres schema."""
    catalog = PostgresCatalog(**pg_settings, schema_name=pg_schema_name, pool_min_size=0, pool_max_size=2)
    catalog.migrate()
    yield catalog
    catalog.close()


def test_job_requests_are_counted_by_kind_and_status_with_the_oldest_queued_age(catalog: Catalog) -> None:
    first = catalog.submit_job_request(NewJobRequest("walkforward", "{}", "ana"))
    catalog.submit_job_request(NewJobRequest("walkforward", "{}", "ben"))
    catalog.submit_job_request(NewJobRequest("simulation", "{}", "ana", rejected="no such run"))

    samples = scrape(CatalogSource(catalog), now=first.created_at + timedelta(seconds=300))
    requests = series(samples, "trading_job_requests")
    assert len(requests) == 2 * 5
    assert {tuple(sorted(dict(k).values())): v for k, v in requests.items() if v} == {
        ("QUEUED", "walkforward"): 2,
        ("REJECTED", "simulation"): 1,
    }
    assert value(samples, "trading_job_request_oldest_queued_age_seconds", kind="walkforward") == 300.0
    assert value(samples, "trading_job_request_oldest_queued_age_seconds", kind="simulation") == 0.0


T0 = datetime(2026, 3, 2, tzinfo=UTC)


def dataset(name: str, last_ts: datetime) -> DatasetRecord:
    return DatasetRecord(
        name=name,
        source_file=f"landing/{name}.csv",
        source_sha256="ab" * 32,
        bar_interval_s=60,
        row_count=200,
        first_ts=last_ts - timedelta(minutes=199),
        last_ts=last_ts,
        table_name=name,
        columns=("open", "high", "low", "close", "volume"),
    )


def rolling_run(catalog: Catalog, stored: DatasetRecord) -> NewWalkforwardRun:
    """A rolling walkforward run of one fold on `stored`'s first 125 bars."""
    catalog.register_indicator_set(NewIndicatorSet(stored.name, "default", "{}", "ef" * 32, ["rsi_14"], [14]))
    ts = [stored.first_ts + timedelta(minutes=row) for row in (0, 99, 105, 124)]
    window = FoldWindow(0, ((0, 100),), 105, 125, *ts)
    return NewWalkforwardRun(
        stored.name, 1, "{}", "cd" * 32, "{}", "{}", ["rsi_14"], stored.version, "abc", [window],
        rolling=True, history_sha256="12" * 32,
    )  # fmt: skip


def test_each_dataset_lags_from_its_newest_bar_and_its_last_import(catalog: Catalog) -> None:
    btc = catalog.upsert_dataset(dataset("btc", T0))
    eth = catalog.upsert_dataset(dataset("eth", T0 - timedelta(hours=5)))
    catalog.register_walkforward_run(rolling_run(catalog, btc))
    now = max(btc.updated_at, eth.updated_at) + timedelta(minutes=10)  # type: ignore[type-var, operator]

    samples = scrape(CatalogSource(catalog), now=now)
    for stored in (btc, eth):
        assert value(samples, "trading_dataset_last_bar_age_seconds", dataset=stored.name) == (
            (now - stored.last_ts).total_seconds()
        )
        assert value(samples, "trading_dataset_last_import_age_seconds", dataset=stored.name) == (
            (now - stored.updated_at).total_seconds()  # type: ignore[operator]
        )
        assert value(samples, "trading_dataset_bar_interval_seconds", dataset=stored.name) == 60
    assert value(samples, "trading_dataset_rolling_runs", dataset="btc") == 1
    assert value(samples, "trading_dataset_rolling_runs", dataset="eth") == 0


def states(samples: Samples) -> dict[tuple[str, str], tuple[str, str]]:
    """(service, scope) -> (the state it is in, the runbook named)."""
    found = series(samples, "trading_live_service_state")
    current = [dict(labels) for labels, v in found.items() if v == 1]
    assert len(found) == 5 * len(current)  # one series per state of each service, one of them 1
    return {(s["service"], s["scope"]): (s["state"], s["runbook"]) for s in current}


def test_live_services_are_judged_from_their_heartbeats_as_the_live_page_does(catalog: Catalog) -> None:
    recorder = catalog.heartbeat("recorder", "host-1", "ok", '{"venue": "binance"}')
    catalog.heartbeat("runner", "host-2", "starting", '{"reasons": ["has not read the strategies yet"]}')
    catalog.heartbeat("executor", "host-3", "stopped", '{"venue": "binance", "account": "main"}')
    beats = {b.service: b.last_beat for b in catalog.list_heartbeats()}
    now = max(beats.values()) + timedelta(seconds=1)

    samples = scrape(CatalogSource(catalog), now=now)
    assert states(samples) == {
        ("recorder", "binance"): ("ok", ""),
        ("runner", ""): ("not ready", "service-stuck"),
        ("executor", "binance/main"): ("stopped", "pod-eviction"),
    }
    age = value(samples, "trading_live_heartbeat_age_seconds", service="recorder", scope="binance",
                service_instance="host-1")  # fmt: skip
    assert age == pytest.approx((now - recorder.last_beat).total_seconds(), abs=1e-3)

    silent = scrape(CatalogSource(catalog), now=now + timedelta(seconds=20))
    assert states(silent) == {
        ("recorder", "binance"): ("down", "service-stuck"),
        ("runner", ""): ("down", "service-stuck"),
        ("executor", "binance/main"): ("down", "pod-eviction"),
    }


def test_the_schema_version_applied_is_set_beside_the_one_the_code_needs(
    catalog: Catalog, pg_admin: psycopg.Connection, pg_schema_name: str
) -> None:
    newest = max(p.name[:4] for p in (REPO / "migrations" / "postgres").glob("*.sql"))
    figures = ("trading_catalog_schema_version", "trading_catalog_schema_expected_version")

    samples = scrape(SchemaSource(catalog))
    assert [value(samples, name) for name in figures] == [int(newest)] * 2
    assert value(samples, "trading_catalog_schema_pending_migrations") == 0

    # The catalog one migration behind: as if the last upgrade had not run `trading-assets migrate`.
    pg_admin.execute(f"DELETE FROM {pg_schema_name}.schema_migrations WHERE version = %s", [newest])
    samples = scrape(SchemaSource(catalog))
    assert [value(samples, name) for name in figures] == [int(newest) - 1, int(newest)]
    assert value(samples, "trading_catalog_schema_pending_migrations") == 1


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    handler = Lines()
    logger = logging.getLogger("trading_assets.ops.exporter")
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


def test_a_source_that_cannot_be_read_costs_only_its_own_metrics_and_one_line_a_scrape(
    runs: tuple[Path, dict[str, Any]], pg_settings: dict, log_lines: list[str]
) -> None:
    away = PostgresCatalog(
        **(pg_settings | {"port": free_port()}), auto_migrate=False, pool_min_size=0, pool_timeout_s=0.5,
        retry_attempts=1,
    )  # fmt: skip
    sources = (DagsterSource(runs[0]), CatalogSource(away), GpuSource())
    try:
        for _ in range(2):
            samples = scrape(*sources)
            up = {dict(k)["source"]: v for k, v in series(samples, "trading_exporter_source_up").items()}
            assert up == {"dagster": 1, "catalog": 0, "gpu": 1}
            assert series(samples, "trading_job_requests") == {}
            assert len(series(samples, "trading_dagster_runs")) == 2 * len(dg.DagsterRunStatus)
            assert value(samples, "trading_dagster_window_seconds") == 3600
    finally:
        away.close()
    assert len(log_lines) == 2
    assert all(
        line.startswith("exporter: source catalog not read: CatalogUnavailable: ") for line in log_lines
    )
    assert all("\n" not in line for line in log_lines)


def test_a_dagster_home_that_does_not_exist_is_said_so(tmp_path: Path, log_lines: list[str]) -> None:
    samples = scrape(DagsterSource(tmp_path / "nowhere"))
    assert value(samples, "trading_exporter_source_up", source="dagster") == 0
    assert log_lines == [
        f"exporter: source dagster not read: FileNotFoundError: {tmp_path / 'nowhere'}: no such Dagster "
        "home (DAGSTER_HOME)"
    ]


def test_gpus_are_reported_where_nvml_answers_and_its_absence_is_said_with_the_reason() -> None:
    samples = scrape(GpuSource())
    available = series(samples, "trading_gpu_nvml_available")
    try:
        import pynvml

        pynvml.nvmlInit()
    except pynvml.NVMLError as err:  # this machine: no NVIDIA driver
        assert available == {frozenset({("reason", str(err))}): 0}
        assert series(samples, "trading_gpu_utilization_ratio") == {}
    else:
        assert available == {frozenset({("reason", "")}): 1}
        assert len(series(samples, "trading_gpu_memory_total_bytes")) == pynvml.nvmlDeviceGetCount()
    assert value(samples, "trading_exporter_source_up", source="gpu") == 1


def test_the_build_names_the_versions_and_the_commit_an_image_was_built_from(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRADING_GIT_COMMIT", "0123456789ab")
    assert Build.of_this_process() == Build(
        metadata.version("trading-assets"), dg.__version__, "0123456789ab"
    )

    samples = scrape()
    info = {"version": "9.9.9", "dagster_version": "1.13.0", "commit": "abc123def456"}
    assert value(samples, "trading_build_info", **info) == 1


def test_the_commit_is_read_from_the_checkout_when_no_image_says_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRADING_GIT_COMMIT", raising=False)
    head = subprocess.run(
        ["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO, capture_output=True, text=True
    )
    assert Build.of_this_process().commit == head.stdout.strip()


def test_every_metric_is_documented_with_its_type_and_labels() -> None:
    page = (REPO / "docs" / "operations" / "monitoring.md").read_text()
    for metric in exporter_metrics():
        assert f"| `{metric.name}` | {metric.kind} | {', '.join(metric.labels) or '-'} |" in page, metric.name
