"""Job requests: walkforward runs and simulations asked for through the catalog's `job_requests` table.

Three doors lead here, and all validate with the same typed configs (trading_assets.configs): the
launchpad jobs `start_walkforward`/`start_simulation` (a request registered at once), a row a program
inserts, and `trading-assets submit` (both taken by the walkforward and simulation sensors). Registering
gives the request its target (run or simulation) in the registration's own transaction, so a request never
gets two. Every Dagster run launched for a request carries its id in the REQUEST_TAG tag, which is how the
run-status sensors (sensors/job_requests.py) mirror the runs into the request's lifecycle.
"""

import json
import os
import typing
from typing import Any

import dagster as dg
from pydantic import ValidationError

from resources.catalog import (
    Catalog,
    CatalogError,
    JobRequestRecord,
    SimulationRecord,
    WalkforwardRunRecord,
)
from resources.timeseries import TimeSeriesStore
from trading_assets import naming
from trading_assets.configs import SimulationConfig, WalkforwardConfig
from trading_assets.partitions import fold_numbers, simulations, walkforward_runs
from trading_assets.simulations import SimulationError, register_simulation
from trading_assets.walkforward_runs import RunError, models_version, register_run

REQUEST_TAG = "trading/job_request"
# Intake attempts that end in an error other than an invalid config (a store that cannot be read, say)
# before the request is FAILED: a request is never retried forever.
MAX_INTAKE_ATTEMPTS = 3
# Where the Dagster UI is, for the links to runs kept with each request.
DAGSTER_URL_ENV = "TRADING_DAGSTER_URL"
DEFAULT_DAGSTER_URL = "http://127.0.0.1:3000"
CONFIGS: dict[str, type[WalkforwardConfig] | type[SimulationConfig]] = {
    "walkforward": WalkforwardConfig,
    "simulation": SimulationConfig,
}
OPEN = ("QUEUED", "RUNNING", "FAILED")


class RequestInvalid(ValueError):
    """The request cannot be registered as asked; the message says which field and why."""


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
    if not isinstance(data, dict):
        raise RequestInvalid(f"{source} must be a mapping of fields, not {type(data).__name__}")
    # Dagster's Config classes ignore unknown keys outside the launchpad (whose schema refuses them), and
    # a misspelt optional field would silently take its default: name them, and missing ones, here.
    if problems := _field_problems(CONFIGS[kind], data, ""):
        raise RequestInvalid(f"{source} is not a valid {kind} config: {'; '.join(problems)}")
    try:
        return CONFIGS[kind](**data)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '(top)'}: {error['msg']}"
            for error in err.errors()
        )
        raise RequestInvalid(f"{source} is not a valid {kind} config: {problems}") from None


def _field_problems(model: type[dg.Config], data: dict[str, Any], prefix: str) -> list[str]:
    """Unknown and missing fields of `data` for `model`, nested configs included, as 'path: problem'."""
    problems = [f"{prefix}{key}: unknown field" for key in data if key not in model.model_fields]
    for name, field in model.model_fields.items():
        if name not in data:
            if field.is_required():
                problems.append(f"{prefix}{name}: field required")
            continue
        nested = [t for t in typing.get_args(field.annotation) or (field.annotation,) if _is_config(t)]
        if nested and isinstance(data[name], dict):
            problems.extend(_field_problems(nested[0], data[name], f"{prefix}{name}."))
    return problems


def _is_config(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, dg.Config)


def register(
    config: WalkforwardConfig | SimulationConfig,
    request_id: int,
    timeseries: TimeSeriesStore,
    catalog: Catalog,
    instance: dg.DagsterInstance,
) -> WalkforwardRunRecord | SimulationRecord:
    """Register the config's run or simulation as the request's target and add its partitions.

    RequestInvalid if it does not fit the data or the catalog (no such dataset, too few bars, a run that
    is not completed, ...): the same checks and messages as the launchpad.
    """
    try:
        if isinstance(config, WalkforwardConfig):
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
    except (ValueError, RunError, SimulationError, CatalogError) as err:
        raise RequestInvalid(str(err)) from None
    if not instance.has_dynamic_partition(simulations.name, sim.name):
        instance.add_dynamic_partitions(simulations.name, [sim.name])
    return sim


def add_run_partitions(instance: dg.DagsterInstance, run: str, fold_count: int) -> None:
    """Register the run's partition and its fold numbers, where missing."""
    if not instance.has_dynamic_partition(walkforward_runs.name, run):
        instance.add_dynamic_partitions(walkforward_runs.name, [run])
    known = set(instance.get_dynamic_partitions(fold_numbers.name))
    missing = [str(k) for k in range(fold_count) if str(k) not in known]
    if missing:
        instance.add_dynamic_partitions(fold_numbers.name, missing)


def take_queued(
    kind: str,
    timeseries: TimeSeriesStore,
    catalog: Catalog,
    instance: dg.DagsterInstance,
    log: Any,
) -> list[JobRequestRecord]:
    """Take every QUEUED request of `kind` with no target yet: register it, or end it as REJECTED (an
    invalid config, with the validation message) or, after MAX_INTAKE_ATTEMPTS other errors, FAILED.
    Returns the requests as they are afterwards."""
    taken = []
    for request in catalog.list_job_requests(["QUEUED"], kind=kind):
        if request.target is not None or catalog.begin_job_intake(request.id) is None:
            continue
        attempts = request.intake_attempts + 1
        try:
            config = parse_config(kind, request.config)
            target = register(config, request.id, timeseries, catalog, instance)
            log.info(f"job request {request.id} ({kind}, by {request.requested_by}): {target.name}")
        except RequestInvalid as err:
            log.warning(f"job request {request.id} rejected: {err}")
            catalog.refuse_job_request(request.id, "REJECTED", str(err))
        except Exception as err:  # anything else may pass on a later tick, but not forever
            if attempts < MAX_INTAKE_ATTEMPTS:
                log.warning(f"job request {request.id}: intake attempt {attempts} failed: {err!r}")
            else:
                log.error(f"job request {request.id}: intake failed {attempts} times: {err!r}")
                catalog.refuse_job_request(
                    request.id, "FAILED", f"intake failed {attempts} times; last error: {err!r}"
                )
        taken.append(catalog.get_job_request(request.id))
    return [request for request in taken if request is not None]


def settle_completed(kind: str, catalog: Catalog, log: Any) -> None:
    """Complete (and chain) open requests of `kind` whose target completed: the run-status sensors do this
    when a tagged run succeeds; this catches a target completed by an untagged run (materialised by hand
    from the UI, say)."""
    for request in catalog.list_job_requests(OPEN, kind=kind):
        if request.target is None or not target_completed(catalog, request):
            continue
        settled = catalog.settle_job_request(request.id, target_completed=True)
        log.info(f"job request {request.id}: {request.target} completed -> {settled.status}")
        chain(catalog, settled)


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
    return catalog.submit_job_request("simulation", config, request.requested_by, parent_id=request.id)


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
    """The launchpad's door: record the config as a request of this run's user, tag this run with it and
    register it now; the request's id and the registered run or sim. dg.Failure (no retry: the same
    config cannot pass) if it is invalid, which REJECTS the request with the same message."""
    kind = "walkforward" if isinstance(config, WalkforwardConfig) else "simulation"
    requested_by = context.run.tags.get("dagster/user") or "launchpad"
    request = catalog.submit_job_request(kind, json.dumps(config.model_dump(), sort_keys=True), requested_by)
    context.instance.add_run_tags(context.run_id, {REQUEST_TAG: str(request.id)})
    try:
        return request.id, register(config, request.id, timeseries, catalog, context.instance)
    except RequestInvalid as err:
        catalog.refuse_job_request(request.id, "REJECTED", str(err))
        raise dg.Failure(description=str(err), allow_retries=False) from None
