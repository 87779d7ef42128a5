"""The requests room's job: take one queued job request (validate it on the data, register its run or
simulation, or reject it). The walkforward and simulation sensors ask for one run per queued request and
attempt; the intake itself happens here, in a run, never in a sensor's tick."""

import dagster as dg

from resources.catalog import Catalog
from resources.timeseries import TimeSeriesStore
from trading_assets.records import JobRequestRecord
from trading_assets.requests.service import INTAKE_TAG, take

TAKE_JOB_REQUEST_JOB = "take_job_request"


class JobRequestIntake(dg.Config):
    """Which request of the catalog's job_requests table to take."""

    request_id: int


@dg.op(
    description="Counts an intake attempt of the queued request, validates its config on the data and "
    "registers its run (folds computed) or simulation with the request as its target, adding their "
    "partitions; or REJECTS it with the validation message. An error that may pass (its indicator set still "
    "computing, the catalog unreachable) leaves it QUEUED for the sensor's next intake run, until the "
    "request has had its attempts and waited long enough: then it is FAILED.",
)
def take_queued_request(
    context: dg.OpExecutionContext,
    config: JobRequestIntake,
    timeseries: dg.ResourceParam[TimeSeriesStore],
    catalog: dg.ResourceParam[Catalog],
) -> dg.Output[str]:
    intake = take(config.request_id, timeseries, catalog, context.instance, context.log)
    if intake.outcome in ("REJECTED", "FAILED"):
        # The request ended with this message; running the same intake again cannot change it.
        raise dg.Failure(
            description=f"job request {config.request_id} {intake.outcome}: {intake.detail}",
            allow_retries=False,
        )
    return dg.Output(
        intake.detail,
        metadata={"job_request": config.request_id, "outcome": intake.outcome, "detail": intake.detail},
    )


@dg.job(
    name=TAKE_JOB_REQUEST_JOB,
    description="Take one queued walkforward or simulation job request (config: its id); the walkforward "
    "and simulation sensors ask for it and then launch the registered target's runs.",
    tags={"trading/kind": "job_request"},
)
def take_job_request() -> None:
    take_queued_request()


def intake_requests(catalog: Catalog, kind: str) -> list[dg.RunRequest]:
    """A `take_job_request` run for each QUEUED request of `kind` with no target yet, tagged INTAKE_TAG.
    The run key names the request and its attempts so far: a tick evaluated again asks for nothing new,
    and a request left QUEUED by an attempt (which counts itself) gets its next attempt on a later tick;
    the sensors drop the requests whose intake run is still in flight, as the count moves when it starts.
    The creation time too: a catalog reset under a kept Dagster instance numbers requests again."""
    return [
        dg.RunRequest(
            job_name=TAKE_JOB_REQUEST_JOB,
            run_key=f"job_request:{request.id}:{_created(request)}:intake:{request.intake_attempts}",
            run_config={"ops": {"take_queued_request": {"config": {"request_id": request.id}}}},
            tags={INTAKE_TAG: str(request.id)},
        )
        for request in catalog.list_job_requests(["QUEUED"], kind=kind)
        if request.target is None
    ]


def _created(request: JobRequestRecord) -> str:
    return request.created_at.isoformat() if request.created_at else ""
