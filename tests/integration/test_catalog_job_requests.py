"""Job requests and their runs in both catalogs: Postgres in a throwaway schema, DuckDB in a tmp file."""

from __future__ import annotations

import json
from datetime import datetime

import duckdb
import psycopg
import pytest
from catalog_setup import minute, new_run, with_indicators

from resources.catalog import Catalog
from resources.duckdb_catalog import DuckDBCatalog
from trading_assets.records import CatalogError, JobRunRecord, NewJobRequest

CONFIG = json.dumps({"dataset": "btc", "indicator_version": 1, "folds": {"train": "100", "test": "20"}})


def run(request_id: int, run_id: str, status: str, *, job: str = "train_folds", partition: str | None = "0|x",
        start: int = 0, end: int | None = None, message: str | None = None) -> JobRunRecord:  # fmt: skip
    return JobRunRecord(
        request_id=request_id,
        run_id=run_id,
        job_name=job,
        partition=partition,
        status=status,
        message=message,
        url=f"http://ui/runs/{run_id}",
        started_at=minute(start),
        finished_at=None if end is None else minute(end),
    )


def register_run(catalog: Catalog, request_id: int | None) -> str:
    """Register walkforward run btc_run<n> (with its dataset and indicator set on first use)."""
    if catalog.get_dataset("btc") is None:
        with_indicators(catalog, "btc")
    return catalog.register_walkforward_run(new_run(catalog, folds=1, request_id=request_id)).name


# Submitting


def test_a_bare_submission_is_queued_with_defaults(catalog: Catalog) -> None:
    request = catalog.submit_job_request(NewJobRequest("walkforward", CONFIG, "ana"))
    assert (request.status, request.target, request.message, request.intake_attempts) == (
        "QUEUED",
        None,
        None,
        0,
    )
    assert request.created_at is not None and request.finished_at is None
    assert catalog.get_job_request(request.id) == request
    assert catalog.list_job_requests(["QUEUED"]) == [request]


@pytest.mark.parametrize(
    ("kind", "config", "by", "says"),
    [
        ("backtest", CONFIG, "ana", "kind 'backtest'"),
        ("walkforward", "{not json", "ana", "not JSON"),
        ("walkforward", "[1, 2]", "ana", "not a JSON object"),
        ("walkforward", CONFIG, " ", "requested_by is empty"),
    ],
)
def test_a_malformed_submission_is_refused_and_nothing_stored(
    catalog: Catalog, kind: str, config: str, by: str, says: str
) -> None:
    with pytest.raises(CatalogError, match=says):
        catalog.submit_job_request(NewJobRequest(kind, config, by))
    assert catalog.list_job_requests() == []


def test_a_row_inserted_with_sql_is_a_request(catalog: Catalog, request: pytest.FixtureRequest) -> None:
    """What a user's program does: INSERT (kind, config, requested_by); the defaults do the rest."""
    catalog.list_job_requests()  # migrates
    insert = (
        "INSERT INTO job_requests (kind, config, requested_by) "
        "VALUES ('simulation', '{\"run\": \"x\"}', 'bot')"
    )
    if isinstance(catalog, DuckDBCatalog):
        with duckdb.connect(catalog.path) as con:
            con.execute(insert)
    else:
        options = f"-c search_path={catalog.schema_name}"
        with psycopg.connect(request.getfixturevalue("pg_conninfo"), autocommit=True, options=options) as con:
            con.execute(insert)
    (found,) = catalog.list_job_requests(["QUEUED"], kind="simulation")
    assert (found.config, found.requested_by, found.status) == ('{"run": "x"}', "bot", "QUEUED")


def test_chaining_twice_adds_one_request(catalog: Catalog) -> None:
    parent = catalog.submit_job_request(NewJobRequest("walkforward", CONFIG, "ana"))
    first = catalog.submit_job_request(
        NewJobRequest("simulation", '{"run": "btc_run1"}', "ana", parent_id=parent.id)
    )
    again = catalog.submit_job_request(
        NewJobRequest("simulation", '{"run": "btc_run1"}', "ana", parent_id=parent.id)
    )
    assert again == first and first.parent_id == parent.id
    assert len(catalog.list_job_requests(kind="simulation")) == 1
    with pytest.raises(CatalogError, match="no job request 999"):
        catalog.submit_job_request(NewJobRequest("simulation", "{}", "ana", parent_id=999))


# Intake


def test_registering_with_a_request_gives_it_its_target(catalog: Catalog) -> None:
    request = catalog.submit_job_request(NewJobRequest("walkforward", CONFIG, "ana"))
    name = register_run(catalog, request.id)
    assert catalog.get_job_request(request.id).target == name == "btc_run1"


def test_a_request_is_taken_once_and_a_second_registration_rolls_back(catalog: Catalog) -> None:
    request = catalog.submit_job_request(NewJobRequest("walkforward", CONFIG, "ana"))
    register_run(catalog, request.id)
    with pytest.raises(CatalogError, match=f"job request {request.id} cannot take walkforward 'btc_run2'"):
        register_run(catalog, request.id)
    assert [r.name for r in catalog.list_walkforward_runs()] == ["btc_run1"]


def test_a_request_of_another_kind_cannot_be_taken(catalog: Catalog) -> None:
    request = catalog.submit_job_request(NewJobRequest("simulation", '{"run": "btc_run1"}', "ana"))
    with pytest.raises(CatalogError, match="is simulation, QUEUED"):
        register_run(catalog, request.id)
    assert catalog.list_walkforward_runs() == []


def test_intake_attempts_count_and_stop_once_taken(catalog: Catalog) -> None:
    request = catalog.submit_job_request(NewJobRequest("walkforward", CONFIG, "ana"))
    assert catalog.begin_job_intake(request.id).intake_attempts == 1
    assert catalog.begin_job_intake(request.id).intake_attempts == 2
    register_run(catalog, request.id)
    assert catalog.begin_job_intake(request.id) is None


def test_rejecting_keeps_the_message_and_is_final(catalog: Catalog) -> None:
    request = catalog.submit_job_request(NewJobRequest("walkforward", CONFIG, "ana"))
    rejected = catalog.refuse_job_request(request.id, "REJECTED", "folds.train: field required")
    assert (rejected.status, rejected.message) == ("REJECTED", "folds.train: field required")
    assert rejected.finished_at is not None
    assert catalog.begin_job_intake(request.id) is None
    with pytest.raises(CatalogError, match="cannot be REJECTED: it is REJECTED"):
        catalog.refuse_job_request(request.id, "REJECTED", "again")
    assert catalog.settle_job_request(request.id, False) == rejected


@pytest.mark.parametrize(
    ("status", "message", "says"), [("COMPLETED", "x", "REJECTED or FAILED"), ("FAILED", "", "say why")]
)
def test_refusing_needs_an_end_and_a_reason(catalog: Catalog, status: str, message: str, says: str) -> None:
    request = catalog.submit_job_request(NewJobRequest("walkforward", CONFIG, "ana"))
    with pytest.raises(CatalogError, match=says):
        catalog.refuse_job_request(request.id, status, message)
    assert catalog.get_job_request(request.id).status == "QUEUED"


# Lifecycle


@pytest.fixture
def taken(catalog: Catalog) -> int:
    request = catalog.submit_job_request(NewJobRequest("walkforward", CONFIG, "ana"))
    register_run(catalog, request.id)
    return request.id


def test_a_started_run_makes_the_request_running(catalog: Catalog, taken: int) -> None:
    request = catalog.record_job_run(run(taken, "r1", "STARTED", start=5), target_completed=False)
    assert (request.status, request.started_at, request.finished_at) == ("RUNNING", minute(5), None)
    assert [r.run_id for r in catalog.list_job_runs(taken)] == ["r1"]


def test_a_failed_run_fails_the_request_naming_the_step(catalog: Catalog, taken: int) -> None:
    catalog.record_job_run(run(taken, "r1", "STARTED"), False)
    failed = catalog.record_job_run(run(taken, "r1", "FAILURE", end=3, message="boom"), False)
    assert failed.status == "FAILED"
    assert failed.message == "train_folds 0|x failed (run r1): boom"
    assert failed.finished_at is not None


def test_a_start_seen_after_the_end_keeps_the_end(catalog: Catalog, taken: int) -> None:
    """Two sensors (started, failed) each resume from their own cursor after a restart: order varies."""
    catalog.record_job_run(run(taken, "r1", "FAILURE", end=3, message="boom"), False)
    late = catalog.record_job_run(run(taken, "r1", "STARTED"), False)
    assert late.status == "FAILED"
    assert [r.status for r in catalog.list_job_runs(taken)] == ["FAILURE"]


def test_recording_the_same_event_twice_changes_nothing(catalog: Catalog, taken: int) -> None:
    catalog.record_job_run(run(taken, "r1", "STARTED"), False)
    once = catalog.record_job_run(run(taken, "r1", "SUCCESS", end=2), False)
    twice = catalog.record_job_run(run(taken, "r1", "SUCCESS", end=2), False)
    assert twice == once and once.status == "RUNNING"


def test_a_re_executed_step_resumes_a_failed_request(catalog: Catalog, taken: int) -> None:
    catalog.record_job_run(run(taken, "r1", "FAILURE", start=0, end=1, message="boom"), False)
    resumed = catalog.record_job_run(run(taken, "r2", "STARTED", start=10), False)
    assert (resumed.status, resumed.message, resumed.finished_at) == ("RUNNING", None, None)


def test_a_failure_of_another_step_is_not_superseded(catalog: Catalog, taken: int) -> None:
    catalog.record_job_run(run(taken, "r1", "FAILURE", partition="0|x", end=1, message="boom"), False)
    still = catalog.record_job_run(run(taken, "r2", "SUCCESS", partition="1|x", start=10, end=11), False)
    assert still.status == "FAILED" and "0|x" in still.message


def test_the_request_completes_with_its_target_and_stays_completed(catalog: Catalog, taken: int) -> None:
    catalog.record_job_run(run(taken, "r1", "SUCCESS", end=1), False)
    done = catalog.record_job_run(run(taken, "r2", "SUCCESS", job="predict_walkforward", end=2), True)
    assert (done.status, done.message) == ("COMPLETED", None) and done.finished_at is not None
    after = catalog.record_job_run(run(taken, "r3", "FAILURE", start=20, end=21, message="x"), False)
    assert after.status == "COMPLETED"


def test_a_request_without_target_cannot_complete(catalog: Catalog) -> None:
    request = catalog.submit_job_request(NewJobRequest("walkforward", CONFIG, "ana"))
    with pytest.raises(CatalogError, match="has no target"):
        catalog.settle_job_request(request.id, True)


def test_a_run_of_an_unknown_request_is_refused(catalog: Catalog) -> None:
    catalog.list_job_requests()
    with pytest.raises(CatalogError, match="no job request 42"):
        catalog.record_job_run(run(42, "r1", "STARTED"), False)


def test_a_naive_run_time_is_refused(catalog: Catalog, taken: int) -> None:
    naive = JobRunRecord(taken, "r1", "train_folds", None, "STARTED", None, "u", datetime(2024, 1, 1), None)
    with pytest.raises(CatalogError, match="has no time zone"):
        catalog.record_job_run(naive, False)
    assert catalog.list_job_runs(taken) == []


def test_a_request_recorded_with_its_target_is_not_taken_again(catalog: Catalog) -> None:
    name = register_run(catalog, None)
    request = catalog.submit_job_request(NewJobRequest("walkforward", CONFIG, "launchpad", target=name))
    assert (request.status, request.target) == ("QUEUED", "btc_run1")
    assert catalog.begin_job_intake(request.id) is None
    with pytest.raises(CatalogError, match="refused by the catalog"):
        catalog.submit_job_request(NewJobRequest("walkforward", CONFIG, "launchpad", target=name))


def test_a_request_recorded_as_rejected_says_why(catalog: Catalog) -> None:
    request = catalog.submit_job_request(
        NewJobRequest("walkforward", CONFIG, "launchpad", rejected="no dataset 'eth'")
    )
    assert (request.status, request.message) == ("REJECTED", "no dataset 'eth'")
    assert request.finished_at is not None
    with pytest.raises(CatalogError, match="say why"):
        catalog.submit_job_request(NewJobRequest("walkforward", CONFIG, "launchpad", rejected=""))
    with pytest.raises(CatalogError, match="has no target"):
        catalog.submit_job_request(
            NewJobRequest("walkforward", CONFIG, "launchpad", target="x", rejected="why")
        )


def test_a_failed_request_completed_later_is_timed_at_its_completion(catalog: Catalog, taken: int) -> None:
    failed = catalog.record_job_run(run(taken, "r1", "FAILURE", end=1, message="boom"), False)
    done = catalog.settle_job_request(taken, True)
    assert done.status == "COMPLETED" and done.finished_at > failed.finished_at
