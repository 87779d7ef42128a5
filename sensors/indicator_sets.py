"""`indicator_sets_sensor`: indicator sets to compute, from set files and from the catalog.

Each tick it
1. registers the sets of new or changed files in the sets folder for the datasets they name (a dataset
   not imported yet is retried on later ticks; an invalid file is logged once per content);
2. asks for a run of every registered set that has never been computed (sets added from the launchpad
   arrive here too), adding the partitions it needs;
3. asks for a run of every computed set whose dataset's bars changed since, so a longer export updates
   the set (only its tail is recomputed).
Run keys make each request happen once per set and per bars version.
"""

import hashlib
import json

import dagster as dg

from resources.catalog import Catalog
from resources.sets_folder import SetsFolder
from trading_assets.compute.files import file_sha256
from trading_assets.compute.indicators import REGISTRY, SpecError, load_set_file
from trading_assets.indicators.jobs import MATERIALIZE_INDICATORS_JOB
from trading_assets.indicators.service import register_set
from trading_assets.partitions import datasets, indicator_set_key, indicator_versions
from trading_assets.records import CatalogError, DatasetRecord, IndicatorSetRecord


def _register_files(
    context: dg.SensorEvaluationContext, folder: SetsFolder, catalog: Catalog, seen: dict[str, dict]
) -> dict[str, dict]:
    """Register sets from new or changed files; return the files part of the next cursor."""
    known = hashlib.sha256(",".join(REGISTRY.names()).encode()).hexdigest()[:16]
    cursor = {}
    for path in folder.files():
        sha = file_sha256(path)
        previous = seen.get(path.name, {})
        # A refused file is read again when the indicators known change (TRADING_INDICATOR_MODULES fixed).
        if (
            previous.get("sha") == sha
            and not previous.get("pending")
            and previous.get("known") in (None, known)
        ):
            cursor[path.name] = previous
            continue
        try:
            set_file = load_set_file(path)
        except SpecError as err:
            if previous.get("sha") != sha or previous.get("known") != known:
                context.log.error(f"indicator set file refused: {err}")
            cursor[path.name] = {"sha": sha, "pending": [], "error": str(err), "known": known}
            continue
        pending = []
        for dataset in set_file.datasets:
            try:
                record, created = register_set(catalog, dataset, set_file.spec)
            except CatalogError as err:
                pending.append(dataset)
                if dataset not in previous.get("pending", []) or previous.get("sha") != sha:
                    context.log.warning(f"{path.name}: {dataset} not registered yet: {err}")
                continue
            if created:
                context.log.info(f"{path.name}: registered {record.measurement}")
        cursor[path.name] = {"sha": sha, "pending": pending}
    return cursor


def _stale(record: IndicatorSetRecord, dataset: DatasetRecord | None) -> bool:
    """A computed set whose dataset was imported from other content (or read otherwise) since. Compared by
    the dataset version the values were computed from, so an import that lands while a set is being
    computed still shows as stale afterwards."""
    return (
        dataset is not None
        and not dataset.publish_pending  # computed once the import completes, under the final version
        and record.status != "registered"
        and record.dataset_version != dataset.version
    )


@dg.sensor(
    job_name=MATERIALIZE_INDICATORS_JOB,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Registers indicator-set files from the sets folder, then computes every set not computed "
    "yet and every set whose dataset's bars were imported again.",
)
def indicator_sets_sensor(
    context: dg.SensorEvaluationContext, sets_folder: SetsFolder, catalog: dg.ResourceParam[Catalog]
) -> dg.SensorResult:
    seen = json.loads(context.cursor) if context.cursor else {}
    files = _register_files(context, sets_folder, catalog, seen.get("files", {}))
    known_datasets = set(context.instance.get_dynamic_partitions(datasets.name))
    known_versions = set(context.instance.get_dynamic_partitions(indicator_versions.name))
    dataset_rows = {d.name: d for d in catalog.list_datasets()}
    new_datasets, new_versions, requests = set(), set(), []
    for record in catalog.list_indicator_sets():
        if record.status == "registered":
            run_key = f"{record.measurement}:{record.spec_sha256[:16]}"
        elif _stale(record, dataset_rows.get(record.dataset)):
            run_key = f"{record.measurement}:bars:{dataset_rows[record.dataset].version[:16]}"
        else:
            continue
        if record.dataset not in known_datasets:
            new_datasets.add(record.dataset)
        if str(record.version) not in known_versions:
            new_versions.add(str(record.version))
        requests.append(
            dg.RunRequest(
                partition_key=indicator_set_key(record.dataset, record.version),
                run_key=run_key,
                tags={"trading/indicator_set": record.measurement},
            )
        )
    partition_requests = []
    if new_datasets:
        partition_requests.append(datasets.build_add_request(sorted(new_datasets)))
    if new_versions:
        partition_requests.append(indicator_versions.build_add_request(sorted(new_versions, key=int)))
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=partition_requests,
        cursor=json.dumps({"files": files}, sort_keys=True),
    )
