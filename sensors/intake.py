"""`job_request_intake_sensor`: asks for the intake of the job requests queued in the catalog.

Each tick, deciding on the catalog's rows and the instance's runs only (the data is read in runs), it asks
for a `take_job_request` run of each walkforward or simulation request that is QUEUED without a target (a
row a program inserted, `trading-assets submit`, a walkforward request's chained `simulate`), once per
request and intake attempt and never while one is in flight (it counts its attempt when it starts). That
run validates the request with the launchpad's typed config and registers its run or sim, or REJECTS it
with the validation message (trading_assets.requests.jobs); the walkforward and simulation sensors launch
the registered target's runs on their next tick.

The one sensor that asks for `take_job_request`, which it names (`job_name`): a sensor holding an op job
that needs resources is copied when Definitions binds them, and Dagster 1.13 warns there about the beta
`owners` parameter of the copy.
"""

import dagster as dg

from resources.catalog import Catalog
from sensors.runs import unless_in_flight
from trading_assets.records import JobRequestRecord
from trading_assets.requests.jobs import TAKE_JOB_REQUEST_JOB
from trading_assets.requests.service import INTAKE_TAG


@dg.sensor(
    job_name=TAKE_JOB_REQUEST_JOB,
    # Every loop of the daemon's sensor thread (every 5 s; a minimum of 5 s here skipped a loop whenever the
    # last tick was a hair under 5 s ago): submit to result is a chain of runs, each link waiting for a tick.
    # Its evaluation reads a few catalog rows.
    minimum_interval_seconds=1,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Asks for a take_job_request run of each walkforward or simulation job request queued in "
    "the catalog, once per intake attempt and never while one is in flight: the run validates and registers "
    "it, or rejects it with the message.",
)
def job_request_intake_sensor(
    context: dg.SensorEvaluationContext,
    catalog: dg.ResourceParam[Catalog],
) -> dg.SensorResult:
    # The run key names the request and its attempts so far: a tick evaluated again asks for nothing new,
    # and a request left QUEUED by an attempt gets its next attempt on a later tick. The attempt is counted
    # when the run starts, while taking a request can outlast a tick: hence the in-flight check too. The
    # creation time: a catalog reset under a kept Dagster instance numbers requests again.
    requests = [
        dg.RunRequest(
            job_name=TAKE_JOB_REQUEST_JOB,
            run_key=f"job_request:{request.id}:{_created(request)}:intake:{request.intake_attempts}",
            run_config={"ops": {"take_queued_request": {"config": {"request_id": request.id}}}},
            tags={INTAKE_TAG: str(request.id)},
        )
        for request in catalog.list_job_requests(["QUEUED"])
        if request.target is None
    ]
    return dg.SensorResult(run_requests=unless_in_flight(context.instance, requests, INTAKE_TAG))


def _created(request: JobRequestRecord) -> str:
    return request.created_at.isoformat() if request.created_at else ""
