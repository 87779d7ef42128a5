"""The job_requests tables (migrations/*/0007_job_requests.sql) and the lifecycle rule of a request.

Each function runs inside the caller's transaction. A registration gives its request its target in the
same transaction (`take`).
A request's status is derived, never pushed: from the request's runs as the run-status sensors recorded
them and whether its target (run or simulation) has completed. Recording the same run twice, or its start
after its end, gives the same status, so a sensor that is stopped and restarted (and sees events again or
late) cannot lose or reorder a transition.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from resources.catalog.dialect import Session
from resources.catalog.rows import record_from_row
from trading_assets.records import (
    JOB_KINDS,
    JOB_RUN_STATUSES,
    CatalogError,
    JobRequestRecord,
    JobRunRecord,
    NewJobRequest,
)

_REQUEST_COLUMNS = (
    "id, kind, config, requested_by, status, message, target, parent_id, intake_attempts, "
    "created_at, started_at, finished_at, updated_at"
)
_RUN_COLUMNS = "request_id, run_id, job_name, partition, status, message, url, started_at, finished_at"
# Ends: a request in one of these never changes again (FAILED does: a re-executed run resumes it).
FINAL = ("COMPLETED", "REJECTED")
# Run statuses that end a run: recording its start afterwards (a sensor seeing events late) keeps the end.
_RUN_ENDS = ("SUCCESS", "FAILURE", "CANCELED")


@dataclass(frozen=True)
class Lifecycle:
    status: str
    message: str | None
    started_at: datetime | None


def lifecycle(request: JobRequestRecord, runs: Sequence[JobRunRecord], target_completed: bool) -> Lifecycle:
    """The status a request has given its runs and its target.

    COMPLETED and REJECTED are final. Otherwise COMPLETED once the target completed; FAILED if the
    latest run of some step (job and partition) failed or was canceled, naming it; RUNNING once any run
    started; QUEUED before. A re-executed step's newer run supersedes its failed one.
    """
    started = min((r.started_at for r in runs if r.started_at is not None), default=request.started_at)
    if request.status in FINAL:
        return Lifecycle(request.status, request.message, request.started_at)
    if target_completed:
        return Lifecycle("COMPLETED", None, started)
    latest: dict[tuple[str, str | None], JobRunRecord] = {}
    for run in sorted(runs, key=lambda r: (r.started_at or datetime.min.replace(tzinfo=UTC), r.run_id)):
        latest[(run.job_name, run.partition)] = run
    failed = [run for run in latest.values() if run.status in ("FAILURE", "CANCELED")]
    if failed:
        first = min(failed, key=lambda r: (r.finished_at or datetime.max.replace(tzinfo=UTC), r.run_id))
        where = first.job_name + (f" {first.partition}" if first.partition else "")
        verb = "was canceled" if first.status == "CANCELED" else "failed"
        detail = f": {first.message}" if first.message else ""
        return Lifecycle("FAILED", f"{where} {verb} (run {first.run_id}){detail}", started)
    if runs:
        return Lifecycle("RUNNING", None, started)
    if request.status == "FAILED":
        return Lifecycle("FAILED", request.message, started)  # intake gave up: no run to resume it
    return Lifecycle("QUEUED", None, started)


def submit(db: Session, new: NewJobRequest) -> JobRequestRecord:
    """Insert a request: QUEUED, with `target` already registered (the launchpad's door), or REJECTED with
    the message `rejected`. With `parent_id`, the parent's one chained request: an existing one is
    returned as it is, so chaining twice (or two sensors at once) adds nothing."""
    if new.kind not in JOB_KINDS:
        raise CatalogError(f"job request kind {new.kind!r} is not one of {', '.join(JOB_KINDS)}")
    try:
        if not isinstance(json.loads(new.config), dict):
            raise CatalogError(f"job request config is not a JSON object: {new.config[:200]!r}")
    except (TypeError, ValueError) as err:
        raise CatalogError(f"job request config is not JSON ({err})") from None
    if not new.requested_by.strip():
        raise CatalogError("job request requested_by is empty; say who asks")
    if new.target is not None and new.rejected is not None:
        raise CatalogError("a rejected job request has no target")
    if new.rejected is not None and not new.rejected:
        raise CatalogError("job request: say why it is REJECTED")
    if new.parent_id is not None and get(db, new.parent_id) is None:
        raise CatalogError(f"no job request {new.parent_id} to chain to")
    # The unique parent_id lets a second chaining insert nothing instead of failing.
    on_conflict = " ON CONFLICT (parent_id) DO NOTHING" if new.parent_id is not None else ""
    status, ended = ("REJECTED", True) if new.rejected is not None else ("QUEUED", False)
    with db.refusing(f"job request ({new.kind}, by {new.requested_by!r})"):
        row = db.one(
            "INSERT INTO job_requests (kind, config, requested_by, parent_id, target, status, message, "
            "finished_at) VALUES (%s, %s, %s, %s, %s, %s, %s, CASE WHEN %s THEN now() END)"
            f"{on_conflict} RETURNING {_REQUEST_COLUMNS}",
            [new.kind, new.config, new.requested_by, new.parent_id, new.target, status, new.rejected, ended],
        )
    if row is None:
        row = db.one(f"SELECT {_REQUEST_COLUMNS} FROM job_requests WHERE parent_id = %s", [new.parent_id])
    return request_from_row(row)


def take(db: Session, request_id: int, kind: str, target: str) -> None:
    """Give a QUEUED job request not yet taken its registered target; CatalogError (rolling the
    registration back) if it is not one, so a request never gets two runs or sims."""
    row = db.one(
        "UPDATE job_requests SET target = %s, updated_at = now() "
        "WHERE id = %s AND kind = %s AND status = 'QUEUED' AND target IS NULL RETURNING id",
        [target, request_id, kind],
    )
    if row is None:
        found = db.one("SELECT kind, status, target FROM job_requests WHERE id = %s", [request_id])
        state = "does not exist" if found is None else "is {}, {}, target {}".format(*found)
        raise CatalogError(f"job request {request_id} cannot take {kind} {target!r}: it {state}")


def get(db: Session, request_id: int) -> JobRequestRecord | None:
    row = db.one(f"SELECT {_REQUEST_COLUMNS} FROM job_requests WHERE id = %s", [request_id])
    return None if row is None else request_from_row(row)


def list_requests(db: Session, statuses: Sequence[str] | None, kind: str | None) -> list[JobRequestRecord]:
    where, params = [], []
    if statuses is not None:
        if not statuses:
            return []
        where.append(f"status IN ({', '.join(['%s'] * len(statuses))})")
        params.extend(statuses)
    if kind is not None:
        where.append("kind = %s")
        params.append(kind)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    rows = db.all(f"SELECT {_REQUEST_COLUMNS} FROM job_requests{clause} ORDER BY id", params)
    return [request_from_row(row) for row in rows]


def list_runs(db: Session, request_id: int) -> list[JobRunRecord]:
    rows = db.all(
        f"SELECT {_RUN_COLUMNS} FROM job_request_runs WHERE request_id = %s ORDER BY started_at, run_id",
        [request_id],
    )
    return [run_from_row(row) for row in rows]


def begin_intake(db: Session, request_id: int) -> JobRequestRecord | None:
    """Count an intake attempt of a QUEUED request not yet taken; None if it is not one."""
    row = db.one(
        f"UPDATE job_requests SET intake_attempts = intake_attempts + 1, updated_at = now() "
        f"WHERE id = %s AND status = 'QUEUED' AND target IS NULL RETURNING {_REQUEST_COLUMNS}",
        [request_id],
    )
    return None if row is None else request_from_row(row)


def refuse(db: Session, request_id: int, status: str, message: str) -> JobRequestRecord:
    """End a QUEUED request not yet taken as REJECTED (invalid config) or FAILED (intake gave up)."""
    if status not in ("REJECTED", "FAILED"):
        raise CatalogError(f"a request is refused as REJECTED or FAILED, not {status!r}")
    if not message:
        raise CatalogError(f"job request {request_id}: say why it is {status}")
    row = db.one(
        f"UPDATE job_requests SET status = %s, message = %s, finished_at = now(), updated_at = now() "
        f"WHERE id = %s AND status = 'QUEUED' AND target IS NULL RETURNING {_REQUEST_COLUMNS}",
        [status, message, request_id],
    )
    if row is None:
        found = get(db, request_id)
        state = "does not exist" if found is None else f"is {found.status}, target {found.target}"
        raise CatalogError(f"job request {request_id} cannot be {status}: it {state}")
    return request_from_row(row)


def record_run(
    db: Session,
    run: JobRunRecord,
    target_completed: bool,
) -> JobRequestRecord:
    """Upsert the run's row (an ended run keeps its end) and settle the request's status."""
    if run.status not in JOB_RUN_STATUSES:
        raise CatalogError(f"run {run.run_id}: status {run.status!r} is not one of {JOB_RUN_STATUSES}")
    for field in ("started_at", "finished_at"):
        value = getattr(run, field)
        if value is not None and value.utcoffset() is None:
            raise CatalogError(f"run {run.run_id}: {field} {value} has no time zone; pass UTC")
    if _lock(db, run.request_id) is None:
        raise CatalogError(f"no job request {run.request_id} for run {run.run_id}")
    found = db.one(
        "SELECT status FROM job_request_runs WHERE request_id = %s AND run_id = %s",
        [run.request_id, run.run_id],
    )
    values = [run.job_name, run.partition, run.status, run.message, run.url, run.started_at, run.finished_at]
    with db.refusing(f"run {run.run_id} of job request {run.request_id}"):
        if found is None:
            db.execute(
                f"INSERT INTO job_request_runs ({_RUN_COLUMNS}) VALUES ({', '.join(['%s'] * 9)})",
                [run.request_id, run.run_id, *values],
            )
        elif not (found[0] in _RUN_ENDS and run.status == "STARTED"):
            db.execute(
                "UPDATE job_request_runs SET job_name = %s, partition = %s, status = %s, message = %s, "
                "url = %s, started_at = coalesce(%s, started_at), finished_at = %s, updated_at = now() "
                "WHERE request_id = %s AND run_id = %s",
                [*values, run.request_id, run.run_id],
            )
    return settle(db, run.request_id, target_completed)


def settle(db: Session, request_id: int, target_completed: bool) -> JobRequestRecord:
    """Set the request's status from its runs and target (see `lifecycle`); unchanged rows stay as
    they are, so settling again is a no-op."""
    request = _lock(db, request_id)
    if request is None:
        raise CatalogError(f"no job request {request_id}")
    if target_completed and request.target is None:
        raise CatalogError(f"job request {request_id} has no target that could have completed")
    state = lifecycle(request, list_runs(db, request_id), target_completed)
    if state == Lifecycle(request.status, request.message, request.started_at):
        return request
    ended = state.status in ("COMPLETED", "FAILED", "REJECTED")
    # An end keeps its time while the status stays (a message refined); a new end (FAILED, then COMPLETED
    # once the step was re-run) is timed now.
    row = db.one(
        f"UPDATE job_requests SET finished_at = CASE WHEN %s THEN CASE WHEN status = %s "
        f"THEN coalesce(finished_at, now()) ELSE now() END END, status = %s, message = %s, "
        f"started_at = %s, updated_at = now() WHERE id = %s RETURNING {_REQUEST_COLUMNS}",
        [ended, state.status, state.status, state.message, state.started_at, request_id],
    )
    return request_from_row(row)


def _lock(db: Session, request_id: int) -> JobRequestRecord | None:
    # Postgres: the UPDATE holds the row until the transaction ends, so two sensors settling one request
    # take turns; DuckDB: every writer already holds the file's exclusive lock.
    row = db.one(
        f"UPDATE job_requests SET updated_at = updated_at WHERE id = %s RETURNING {_REQUEST_COLUMNS}",
        [request_id],
    )
    return None if row is None else request_from_row(row)


def request_from_row(row: Sequence[Any]) -> JobRequestRecord:
    return record_from_row(JobRequestRecord, row)


def run_from_row(row: Sequence[Any]) -> JobRunRecord:
    return record_from_row(JobRunRecord, row)
