"""Run-status sensors that mirror Dagster's runs into the lifecycle of the job requests they serve.

Every run launched for a request carries its id (tag trading/job_request). When such a run starts,
succeeds, fails or is canceled, the matching sensor records the run (id, job, partition, start and end,
error message, link to its page in the UI) in the catalog's job_request_runs and settles the request's
status in the same transaction: RUNNING once a run started, FAILED when the latest run of a step failed,
COMPLETED once its target completed (a walkforward run: every fold succeeded and its thresholds are
stored). A completed walkforward request submitted with `simulate` settings then gets its chained
simulation request, which the simulation sensor takes.

Restart safety: each sensor keeps a cursor over Dagster's run-status events and only moves it past an
event once the event is recorded, so events that happen while the daemon is down are recorded when it
comes back; recording is idempotent and order-independent (resources/job_requests_sql.py), so an event
seen twice, or a start seen after its end, changes nothing.
"""

from datetime import UTC, datetime

import dagster as dg

from resources.catalog import Catalog, JobRunRecord
from trading_assets.job_requests import REQUEST_TAG, chain, run_url, target_completed

# Longest error message kept per run: the first lines say what failed; the run's page has the rest.
MESSAGE_CHARS = 2000


def _when(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


def _failure_message(context: dg.RunStatusSensorContext) -> str | None:
    """What failed: the failed steps' errors, else the run's own failure event."""
    steps = context.instance.all_logs(context.dagster_run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    messages = []
    for entry in steps:
        event = entry.dagster_event
        data = event.step_failure_data if event is not None else None
        if data is None:
            continue
        description = data.user_failure_data.description if data.user_failure_data else None
        error = data.error
        # Dagster wraps the step's own exception: its innermost cause says what went wrong.
        while error is not None and error.cause is not None:
            error = error.cause
        text = error.message.strip() if error is not None else None
        messages.append(f"{event.step_key}: {description or text}")
    if not messages and context.dagster_event is not None:
        messages.append(context.dagster_event.message or "")
    text = "; ".join(m for m in messages if m)
    return text[:MESSAGE_CHARS] or None


def mirror_run(context: dg.RunStatusSensorContext, catalog: Catalog, status: str) -> None:
    """Record the run of `context` in its request (if it serves one) and chain what its completion asks."""
    run = context.dagster_run
    tag = run.tags.get(REQUEST_TAG)
    if tag is None:
        return
    request = catalog.get_job_request(int(tag))
    if request is None:
        context.log.warning(f"run {run.run_id} names job request {tag}, which the catalog does not hold")
        return
    record = context.instance.get_run_record_by_id(run.run_id)
    settled = catalog.record_job_run(
        JobRunRecord(
            request_id=request.id,
            run_id=run.run_id,
            job_name=run.job_name,
            partition=run.tags.get("dagster/partition"),
            status=status,
            message=_failure_message(context) if status in ("FAILURE", "CANCELED") else None,
            url=run_url(run.run_id),
            started_at=_when(record.start_time) if record else None,
            finished_at=_when(record.end_time) if record and status != "STARTED" else None,
        ),
        target_completed=target_completed(catalog, request),
    )
    context.log.info(f"job request {request.id}: run {run.run_id} {status.lower()} -> {settled.status}")
    chained = chain(catalog, settled)
    if chained is not None:
        context.log.info(f"job request {request.id}: chained simulation request {chained.id}")


def _lifecycle_sensor(run_status: dg.DagsterRunStatus, status: str, name: str) -> dg.SensorDefinition:
    @dg.run_status_sensor(
        name=name,
        run_status=run_status,
        minimum_interval_seconds=15,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Mirrors runs of job requests that {status.lower()} into the catalog's job_requests "
        "lifecycle (QUEUED, RUNNING, COMPLETED, FAILED); chains a completed walkforward request's "
        "simulation.",
    )
    def lifecycle(context: dg.RunStatusSensorContext, catalog: dg.ResourceParam[Catalog]) -> None:
        mirror_run(context, catalog, status)

    return lifecycle


job_request_started = _lifecycle_sensor(dg.DagsterRunStatus.STARTED, "STARTED", "job_request_started")
job_request_succeeded = _lifecycle_sensor(dg.DagsterRunStatus.SUCCESS, "SUCCESS", "job_request_succeeded")
job_request_failed = _lifecycle_sensor(dg.DagsterRunStatus.FAILURE, "FAILURE", "job_request_failed")
job_request_canceled = _lifecycle_sensor(dg.DagsterRunStatus.CANCELED, "CANCELED", "job_request_canceled")
LIFECYCLE_SENSORS = (job_request_started, job_request_succeeded, job_request_failed, job_request_canceled)
