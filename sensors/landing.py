"""`landing_sensor`: new or changed exports in the landing folder become dataset partitions and runs."""

import json

import dagster as dg

from resources.catalog import Catalog
from resources.landing import LandingFile, LandingFolder
from trading_assets.bars.jobs import INGEST_JOB
from trading_assets.partitions import datasets
from trading_assets.records import DatasetRecord


def _cursor(raw: str | None) -> dict[str, dict[str, object]]:
    return json.loads(raw) if raw else {}


def already_imported(record: DatasetRecord | None, data_sha: str, found: LandingFile) -> bool:
    """The catalog holds this exact content, read with the options the landing folder now gives."""
    if record is None or record.source_sha256 != data_sha:
        return False
    try:
        return record.read_options == found.read_options().to_json()
    except ValueError:
        return False  # a broken sidecar: let the run report it


def _unfinished_imports(
    context: dg.SensorEvaluationContext, catalog: Catalog, landed: set[str]
) -> list[dg.RunRequest]:
    """A run for each landed dataset whose last import died between its commit point and publishing the
    bars (the run's `ingest_bars` completes it first), unless a run of it is queued or going. A dataset
    imported from elsewhere (the CLI) is completed by importing it again."""
    requests = []
    for record in catalog.list_datasets():
        if not record.publish_pending or record.name not in landed:
            continue
        active = context.instance.get_run_records(
            dg.RunsFilter(
                job_name=INGEST_JOB,
                tags={"dagster/partition": record.name},
                statuses=[
                    dg.DagsterRunStatus.QUEUED,
                    dg.DagsterRunStatus.NOT_STARTED,
                    dg.DagsterRunStatus.STARTING,
                    dg.DagsterRunStatus.STARTED,
                ],
            ),
            limit=1,
        )
        if active:
            continue
        context.log.warning(f"{record.name}: its last import did not finish publishing; running it again")
        requests.append(
            dg.RunRequest(
                partition_key=record.name,
                run_key=f"{record.name}:finish:{record.version}:{record.updated_at}",
                tags={"trading/finishes_import": record.version},
            )
        )
    return requests


@dg.sensor(
    job_name=INGEST_JOB,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Registers each export in the landing folder as a dataset and ingests it when its content "
    "(or its reading options) changed. Unchanged files are never re-ingested. An import that died after its "
    "commit point (the catalog row says publish_pending) is run again, which completes it.",
)
def landing_sensor(
    context: dg.SensorEvaluationContext, landing: LandingFolder, catalog: dg.ResourceParam[Catalog]
) -> dg.SensorResult:
    # Cursor: dataset -> (size, mtime, fingerprint). Size and mtime only decide whether to re-hash;
    # the content fingerprint decides whether to ingest.
    seen = _cursor(context.cursor)
    files, problems = landing.scan()
    for problem in problems:
        context.log.warning(f"skipped: {problem}")
    known = set(context.instance.get_dynamic_partitions(datasets.name))
    new_partitions, requests, cursor = [], [], {}
    for found in files:
        stat = found.path.stat()
        sidecar_mtime = found.sidecar.stat().st_mtime_ns if found.sidecar else 0
        stamp = [stat.st_size, stat.st_mtime_ns, sidecar_mtime]
        previous = seen.get(found.dataset, {})
        fingerprint = previous.get("fingerprint") if previous.get("stamp") == stamp else found.fingerprint()
        cursor[found.dataset] = {"stamp": stamp, "fingerprint": fingerprint}
        if found.dataset not in known:
            new_partitions.append(found.dataset)
        if previous.get("fingerprint") == fingerprint:
            continue
        record = catalog.get_dataset(found.dataset)
        data_sha = str(fingerprint).split(":", 1)[0]
        if not previous and already_imported(record, data_sha, found):
            continue  # imported before this cursor existed (e.g. by the CLI or `make demo`)
        requests.append(
            dg.RunRequest(
                partition_key=found.dataset,
                run_key=f"{found.dataset}:{fingerprint}",
                tags={"trading/source_file": found.path.name, "trading/source_sha256": data_sha},
            )
        )
    requested = {r.partition_key for r in requests}
    requests += _unfinished_imports(context, catalog, {f.dataset for f in files} - requested)
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[datasets.build_add_request(new_partitions)] if new_partitions else [],
        cursor=json.dumps(cursor, sort_keys=True),
    )
