"""Run-status sensors that mirror Dagster's runs into the lifecycle of the job requests they serve.

Every run launched for a request carries its id (tag trading/job_request). When such a run starts,
succeeds, fails or is canceled, the matching sensor records the run (id, job, partition, start and end,
error message, link to its page in the UI) in the catalog's job_request_runs and settles the request's
status in the same transaction: RUNNING once a run started, FAILED when the latest run of a step failed,
COMPLETED once its target completed (a walkforward run: every fold succeeded and its thresholds are
stored). A completed walkforward request submitted with `simulate` settings then gets its chained
simulation request, which the simulation sensor takes.

Restart safety: each sensor keeps a cursor over Dagster's run-status events, so events that happen while
the daemon is down are recorded when it comes back; recording is idempotent and order-independent
(resources/catalog/job_requests.py), so an event seen twice, or a start seen after its end, changes nothing.
Dagster moves the cursor past an event even when recording it failed (the catalog briefly unreachable):
the walkforward and simulation sensors reconcile every open request with its runs each tick
(trading_assets.requests.service.reconcile), so such an event is not lost either.
"""

import dagster as dg

from resources.catalog import Catalog
from trading_assets.requests.service import REQUEST_TAG, chain, job_run, target_completed


def mirror_run(context: dg.RunStatusSensorContext, catalog: Catalog, status: str) -> None:
    """Record the run of `context` in its request (if it serves one) as `status`, the status of the event
    this sensor saw (the run may have moved on since: the sensor of its next status records that, and a
    run's end is kept over its start), and chain what the request's completion asks."""
    run = context.dagster_run
    tag = run.tags.get(REQUEST_TAG)
    if tag is None:
        return
    request = catalog.get_job_request(int(tag))
    if request is None:
        context.log.warning(f"run {run.run_id} names job request {tag}, which the catalog does not hold")
        return
    record = context.instance.get_run_record_by_id(run.run_id)
    if record is None:
        return  # deleted from the instance since
    settled = catalog.record_job_run(
        job_run(context.instance, request.id, record, status), target_completed(catalog, request)
    )
    context.log.info(f"job request {request.id}: run {run.run_id} {status.lower()} -> {settled.status}")
    chained = chain(catalog, settled)
    if chained is not None:
        context.log.info(f"job request {request.id}: chained simulation request {chained.id}")


def _lifecycle_sensor(run_status: dg.DagsterRunStatus, status: str, name: str) -> dg.SensorDefinition:
    @dg.run_status_sensor(
        name=name,
        run_status=run_status,
        minimum_interval_seconds=1,
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
