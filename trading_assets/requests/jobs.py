"""The requests room's job: take one queued job request (validate it on the data, register its run or
simulation, or reject it). The intake sensor (sensors/intake.py) asks for one run per queued request and
attempt; the intake itself happens here, in a run, never in a sensor's tick."""

import dagster as dg

from resources.catalog import Catalog
from resources.timeseries import TimeSeriesStore
from trading_assets.metadata import job_tags
from trading_assets.requests.service import take

TAKE_JOB_REQUEST_JOB = "take_job_request"


class JobRequestIntake(dg.Config):
    """Which request of the catalog's job_requests table to take."""

    request_id: int


@dg.op(
    description="Counts an intake attempt of the queued request, validates its config on the data and "
    "registers its run (folds computed) or simulation with the request as its target, adding their "
    "partitions; or REJECTS it with the validation message. An error that may pass (its indicator set still "
    "computing, the catalog unreachable) leaves it QUEUED for the intake sensor's next run, until the "
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
    description="Take one queued walkforward or simulation job request (config: its id); the intake sensor "
    "asks for it, and the walkforward and simulation sensors then launch the registered target's runs.",
    tags=job_tags("job_request"),
)
def take_job_request() -> None:
    take_queued_request()
