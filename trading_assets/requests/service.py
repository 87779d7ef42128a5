"""Job requests: walkforward runs and simulations asked for through the catalog's `job_requests` table.

Three doors lead here, and all validate with the same typed configs (the walkforward and simulation rooms'
config.py): the launchpad jobs `start_walkforward`/`start_simulation` (a request registered at once), a row
a program inserts, and `trading-assets submit` (both taken by a `take_job_request` run, which the
walkforward and simulation sensors ask for: trading_assets/requests/jobs.py).
Registering gives the request its target (run or simulation) in the registration's own transaction, so a
request never gets two. Every Dagster run launched for a request carries its id in the REQUEST_TAG tag,
which is how the run-status sensors (sensors/job_requests.py) mirror the runs into the request's lifecycle.
"""

import json
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from pydantic import ValidationError

from resources.catalog import Catalog
from resources.timeseries import TimeSeriesStore
from trading_assets import naming
from trading_assets.partitions import simulations
from trading_assets.records import (
    CatalogError,
    CatalogUnavailable,
    JobRequestRecord,
    JobRunRecord,
    NewJobRequest,
    SimulationRecord,
    WalkforwardRunRecord,
)
from trading_assets.simulation.config import SimulationConfig
from trading_assets.simulation.service import SimulationError, register_simulation
from trading_assets.walkforward.config import WalkforwardConfig
from trading_assets.walkforward.service import (
    RunError,
    RunNotReady,
    add_run_partitions,
    models_version,
    register_run,
)

REQUEST_TAG = "trading/job_request"
# On the launchpad run that submitted a request: not REQUEST_TAG, as registering is not part of the
# request's work (and a re-execution of that run, which copies its tags, would be taken for it).
SUBMITTED_TAG = "trading/submitted_job_request"
# On the intake run that takes a queued request (`take_job_request`): not REQUEST_TAG either, for the same
# reason.
INTAKE_TAG = "trading/job_request_intake"
# A request whose intake keeps ending in an error other than an invalid config (its indicator set still
# computing, the catalog unreachable, a store that cannot be read) is retried by later intake runs until it
# has had this many attempts and waited this long, then FAILED: never retried forever.
MAX_INTAKE_ATTEMPTS = 3
MAX_INTAKE_WAIT_S = 3600.0
# Where the Dagster UI is, for the links to runs kept with each request.
DAGSTER_URL_ENV = "TRADING_DAGSTER_URL"
DEFAULT_DAGSTER_URL = "http://127.0.0.1:3000"
CONFIGS: dict[str, type[WalkforwardConfig] | type[SimulationConfig]] = {
    "walkforward": WalkforwardConfig,
    "simulation": SimulationConfig,
}
OPEN = ("QUEUED", "RUNNING", "FAILED")
C = typing.TypeVar("C", bound=dg.Config)


@dataclass(frozen=True)
class Intake:
    """What one intake attempt of a request did: `outcome` is registered, waiting (left QUEUED for a later
    attempt), REJECTED, FAILED or taken (someone else took it); `detail` the target's name or the why."""

    outcome: str
    detail: str


class RequestInvalid(ValueError):
    """The request cannot be registered as asked; the message says which field and why, and `problems` lists
    each wrong field as (path, problem), the path dotted ("folds.train"; "(top)" for the whole config)."""

    def __init__(self, message: str, problems: typing.Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


def parse_config(kind: str, text: str, source: str = "config") -> WalkforwardConfig | SimulationConfig:
    """The request's typed config; RequestInvalid naming each wrong field."""
    if kind not in CONFIGS:
        raise RequestInvalid(f"kind {kind!r} is not one of {', '.join(CONFIGS)}")
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as err:
        raise RequestInvalid(f"{source} is not JSON: {err}") from None
    return config_from_data(kind, data, source)


def config_from_data(kind: str, data: Any, source: str = "config") -> WalkforwardConfig | SimulationConfig:
    """`data` (parsed JSON or YAML) as the kind's typed config; RequestInvalid naming each wrong field."""
    return typed_config(CONFIGS[kind], data, source, kind)


def typed_config(model: type[C], data: Any, source: str, noun: str) -> C:
    """`data` as the typed config `model` (a `noun` config); RequestInvalid naming each wrong field."""
    if not isinstance(data, dict):
        problem = f"must be a mapping of fields, not {type(data).__name__}"
        raise RequestInvalid(f"{source} {problem}", [("(top)", problem)])
    # Dagster's Config classes ignore unknown keys outside the launchpad (whose schema refuses them), and
    # a misspelt optional field would silently take its default: name them, and missing ones, here.
    problems = _field_problems(model, data, "")
    if not problems:
        try:
            return model(**data)
        except ValidationError as err:
            problems = [
                (".".join(str(part) for part in error["loc"]) or "(top)", error["msg"])
                for error in err.errors()
            ]
    listed = "; ".join(f"{path}: {problem}" for path, problem in problems)
    raise RequestInvalid(f"{source} is not a valid {noun} config: {listed}", problems)


def _field_problems(model: type[dg.Config], data: dict[str, Any], prefix: str) -> list[tuple[str, str]]:
    """Unknown and missing fields of `data` for `model`, nested configs included, as (path, problem)."""
    problems = [(f"{prefix}{key}", "unknown field") for key in data if key not in model.model_fields]
    for name, field in model.model_fields.items():
        if name not in data:
            if field.is_required():
                problems.append((f"{prefix}{name}", "field required"))
            continue
        nested = [t for t in typing.get_args(field.annotation) or (field.annotation,) if _is_config(t)]
        if nested and isinstance(data[name], dict):
            problems.extend(_field_problems(nested[0], data[name], f"{prefix}{name}."))
    return problems


def _is_config(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, dg.Config)


def register(
    config: WalkforwardConfig | SimulationConfig,
    request_id: int | None,
    timeseries: TimeSeriesStore,
    catalog: Catalog,
    instance: dg.DagsterInstance,
) -> WalkforwardRunRecord | SimulationRecord:
    """Register the config's run or simulation (with `request_id`, as that request's target) and add its
    partitions.

    RequestInvalid if it does not fit the data or the catalog (no such dataset, too few bars, a run that
    is not completed, chained `simulate` settings that cannot work, ...): the same checks and messages as
    the launchpad. What is only not ready yet (RunNotReady, CatalogUnavailable) passes through as is.
    """
    try:
        if isinstance(config, WalkforwardConfig):
            if config.simulate is not None:
                # Checked now, not hours later when the run completes and the simulation is chained.
                SimulationConfig(run="chained", **config.simulate.model_dump()).spec()
            dataset = naming.dataset_name(config.dataset)
            run = register_run(
                timeseries,
                catalog,
                dataset,
                config.indicator_version,
                config.spec(),
                request_id=request_id,
                rolling=config.rolling,
            )
            add_run_partitions(instance, run.name, run.fold_count)
            return run
        spec = config.spec()
        folds = catalog.list_walkforward_folds(spec.run)
        sim = register_simulation(timeseries, catalog, spec, models_version(folds), request_id=request_id)
    except (RunNotReady, CatalogUnavailable):
        raise
    except (ValueError, RunError, SimulationError, CatalogError) as err:
        raise RequestInvalid(str(err)) from None
    if not instance.has_dynamic_partition(simulations.name, sim.name):
        instance.add_dynamic_partitions(simulations.name, [sim.name])
    return sim


def take(
    request_id: int,
    timeseries: TimeSeriesStore,
    catalog: Catalog,
    instance: dg.DagsterInstance,
    log: Any,
) -> Intake:
    """Take the QUEUED request `request_id` if it has no target yet: register it, or end it as REJECTED
    (an invalid config, with the validation message) or, once it has had MAX_INTAKE_ATTEMPTS attempts
    over MAX_INTAKE_WAIT_S, FAILED with the last error; else leave it QUEUED for a later attempt."""
    started = catalog.begin_job_intake(request_id)
    if started is None:
        return Intake("taken", "not a QUEUED request without a target: nothing to take")
    kind = started.kind
    try:
        config = parse_config(kind, started.config)
        target = register(config, request_id, timeseries, catalog, instance)
    except RequestInvalid as err:
        log.warning(f"job request {request_id} rejected: {err}")
        catalog.refuse_job_request(request_id, "REJECTED", str(err))
        return Intake("REJECTED", str(err))
    except Exception as err:  # it may pass on a later attempt, but not forever
        now = catalog.get_job_request(request_id)
        if now is None or now.target is not None:  # registered before the error (partitions: the sensors)
            return Intake("registered", f"registered before an error: {err!r}")
        waited = (datetime.now(UTC) - now.created_at).total_seconds() if now.created_at else 0.0
        if started.intake_attempts < MAX_INTAKE_ATTEMPTS or waited < MAX_INTAKE_WAIT_S:
            log.warning(f"job request {request_id}: intake attempt {started.intake_attempts}: {err!r}")
            return Intake("waiting", f"attempt {started.intake_attempts}: {err!r}")
        log.error(f"job request {request_id}: intake gave up after {started.intake_attempts} attempts")
        message = f"intake gave up after {started.intake_attempts} attempts in {waited:.0f} s: {err!r}"
        catalog.refuse_job_request(request_id, "FAILED", message)
        return Intake("FAILED", message)
    log.info(f"job request {request_id} ({kind}, by {started.requested_by}): {target.name}")
    return Intake("registered", target.name)


def reconcile(kind: str, catalog: Catalog, instance: dg.DagsterInstance, log: Any) -> None:
    """Bring every open request of `kind` up to date with its Dagster runs and target, and chain what
    completed walkforward requests ask for.

    The run-status sensors do this as runs change; this is the safety net under them. Dagster moves a
    run-status sensor's cursor past an event even when recording it failed (a catalog that was briefly
    unreachable), a target may be completed by runs without the request's tag (materialised by hand), and
    a chaining may have failed after its parent was marked COMPLETED. Recording is idempotent, so going
    over the same runs every tick changes nothing that is already right."""
    for request in catalog.list_job_requests(OPEN, kind=kind):
        if request.target is None:
            continue
        for record in instance.get_run_records(dg.RunsFilter(tags={REQUEST_TAG: str(request.id)})):
            status = MIRRORED_STATUS.get(record.dagster_run.status)
            if status is not None:
                catalog.record_job_run(job_run(instance, request.id, record, status), False)
        settled = catalog.settle_job_request(request.id, target_completed(catalog, request))
        if settled.status != request.status:
            log.info(f"job request {request.id}: {request.status} -> {settled.status}")
    if kind == "walkforward":
        chained = {r.parent_id for r in catalog.list_job_requests(kind="simulation") if r.parent_id}
        for request in catalog.list_job_requests(["COMPLETED"], kind=kind):
            if request.id not in chained and (child := chain(catalog, request)) is not None:
                log.info(f"job request {request.id}: chained simulation request {child.id}")


# Dagster's run statuses as a request's run records them; a run not started yet is not recorded.
MIRRORED_STATUS = {
    dg.DagsterRunStatus.STARTED: "STARTED",
    dg.DagsterRunStatus.CANCELING: "STARTED",
    dg.DagsterRunStatus.SUCCESS: "SUCCESS",
    dg.DagsterRunStatus.FAILURE: "FAILURE",
    dg.DagsterRunStatus.CANCELED: "CANCELED",
}
# Longest error message kept per run: the first lines say what failed; the run's page has the rest.
MESSAGE_CHARS = 2000


def run_partition(tags: Mapping[str, str]) -> str | None:
    """A run's partition as the catalog records it: its key, or `<first>...<last>` for a run over a range
    of partitions (a walkforward run's folds), as Dagster's UI writes ranges; None for neither."""
    if "dagster/partition" in tags:
        return tags["dagster/partition"]
    first = tags.get("dagster/asset_partition_range_start")
    last = tags.get("dagster/asset_partition_range_end")
    return f"{first}...{last}" if first is not None and last is not None else None


def job_run(instance: dg.DagsterInstance, request_id: int, record: Any, status: str) -> JobRunRecord:
    """The catalog's record of one run of a request (`record`: Dagster's RunRecord of it)."""
    run = record.dagster_run
    # A run that failed to launch never started: its creation time orders it among the step's runs.
    started = record.start_time if record.start_time is not None else record.create_timestamp.timestamp()
    ended = None if status == "STARTED" or record.end_time is None else record.end_time
    return JobRunRecord(
        request_id=request_id,
        run_id=run.run_id,
        job_name=run.job_name,
        partition=run_partition(run.tags),
        status=status,
        message=failure_message(instance, run.run_id) if status in ("FAILURE", "CANCELED") else None,
        url=run_url(run.run_id),
        started_at=datetime.fromtimestamp(started, UTC),
        finished_at=None if ended is None else datetime.fromtimestamp(ended, UTC),
    )


def failure_message(instance: dg.DagsterInstance, run_id: str) -> str | None:
    """What failed in the run: its failed steps' errors (the innermost cause: Dagster wraps the step's own
    exception), else the run's own failure or cancellation event."""
    messages = []
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        event = entry.dagster_event
        data = event.step_failure_data if event is not None else None
        if data is None:
            continue
        description = data.user_failure_data.description if data.user_failure_data else None
        error = data.error
        while error is not None and error.cause is not None:
            error = error.cause
        text = error.message.strip() if error is not None else None
        messages.append(f"{event.step_key}: {description or text}")
    if not messages:
        ends = {dg.DagsterEventType.RUN_FAILURE, dg.DagsterEventType.RUN_CANCELED}
        messages = [entry.message for entry in instance.all_logs(run_id, of_type=ends) if entry.message]
    text = "; ".join(m for m in messages if m)
    return text[:MESSAGE_CHARS] or None


def request_tags(catalog: Catalog, kind: str) -> dict[str, dict[str, str]]:
    """Run tags by target, for the targets of requests still open: runs launched for a target carry its
    request's id, so the run-status sensors can mirror them."""
    return {
        request.target: {REQUEST_TAG: str(request.id)}
        for request in catalog.list_job_requests(OPEN, kind=kind)
        if request.target is not None
    }


def target_completed(catalog: Catalog, request: JobRequestRecord) -> bool:
    """Whether the request's run (every fold succeeded, thresholds stored) or simulation completed."""
    if request.target is None:
        return False
    if request.kind == "walkforward":
        run = catalog.get_walkforward_run(request.target)
        return run is not None and run.status == "completed"
    sim = catalog.get_simulation(request.target)
    return sim is not None and sim.status == "completed"


def chain(catalog: Catalog, request: JobRequestRecord) -> JobRequestRecord | None:
    """The simulation request chained to a completed walkforward request submitted with `simulate`
    settings (submitted once: asking again returns the same request); None if there is none to chain."""
    if request.kind != "walkforward" or request.status != "COMPLETED" or request.target is None:
        return None
    settings = json.loads(request.config).get("simulate")
    if settings is None:
        return None
    config = json.dumps({**settings, "run": request.target}, sort_keys=True)
    return catalog.submit_job_request(
        NewJobRequest("simulation", config, request.requested_by, parent_id=request.id)
    )


def run_url(run_id: str) -> str:
    """The run's page in the Dagster UI (TRADING_DAGSTER_URL, default http://127.0.0.1:3000)."""
    base = os.environ.get(DAGSTER_URL_ENV) or DEFAULT_DAGSTER_URL
    return f"{base.rstrip('/')}/runs/{run_id}"


def submit_from_launchpad(
    context: dg.OpExecutionContext,
    config: WalkforwardConfig | SimulationConfig,
    timeseries: TimeSeriesStore,
    catalog: Catalog,
) -> tuple[int, WalkforwardRunRecord | SimulationRecord]:
    """The launchpad's door: register the config now and record it as a request of this run's user, with
    its target (so no sensor takes it again), then tag this run with it (SUBMITTED_TAG); the request's id
    and the run or sim. An invalid config is recorded as a REJECTED request and fails the run with the
    same message (dg.Failure, no retry: the same config cannot pass)."""
    kind = "walkforward" if isinstance(config, WalkforwardConfig) else "simulation"
    requested_by = context.run.tags.get("dagster/user") or "launchpad"
    text = json.dumps(config.model_dump(), sort_keys=True)
    try:
        record = register(config, None, timeseries, catalog, context.instance)
    except (RequestInvalid, RunNotReady) as err:
        catalog.submit_job_request(NewJobRequest(kind, text, requested_by, rejected=str(err)))
        raise dg.Failure(description=str(err), allow_retries=False) from None
    request = catalog.submit_job_request(NewJobRequest(kind, text, requested_by, target=record.name))
    context.instance.add_run_tags(context.run_id, {SUBMITTED_TAG: str(request.id)})
    return request.id, record
