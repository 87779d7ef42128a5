"""Schedules: rolling walkforward runs forward, and a rescan of the landing folder behind its sensor.

`rolling_walkforward_schedule` (hourly) asks for a `roll_walkforward` run of each rolling walkforward run that
could change, judged on catalog rows only (no bars read, nothing hashed: `nothing_to_roll`): a completed run
whose dataset holds other bars, ready to be read, or that has simulations to refresh; else it skips, saying
why. That run reads the bars and changes only the catalog and the partitions: the walkforward sensor trains
the folds it adds and assembles the run (a request from here too would train each fold twice, since run keys
are only unique per sensor or schedule), and the simulation sensor re-runs the simulations it refreshes. Each
roll is a decision on the catalog's and the data's state, so a roll that runs again changes nothing.

`landing_rescan_schedule` (every 15 minutes) launches `ingest_bars` for an export the landing sensor
should have imported and did not: its content (with its reading options) is not the catalog's, the file
has been there for a while, and no ingest of its dataset is under way nor did one of that content fail.
"""

from datetime import UTC, datetime

import dagster as dg

from resources.catalog import Catalog
from resources.landing import LandingFile, LandingFolder
from sensors.landing import already_imported
from sensors.runs import IN_FLIGHT
from trading_assets.bars.jobs import INGEST_JOB
from trading_assets.partitions import datasets
from trading_assets.records import DatasetRecord
from trading_assets.rolling.jobs import roll_walkforward
from trading_assets.rolling.service import nothing_to_roll

# An export younger than this is the landing sensor's (every 30 s) to import: launching it here too could
# ingest it twice.
RESCAN_AFTER_S = 300


@dg.schedule(
    cron_schedule="0 * * * *",
    job=roll_walkforward,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Asks for a roll_walkforward run of each walkforward run marked rolling that has something "
    "to roll, judged on the catalog: it extends the run with the next folds when its dataset has gained "
    "bars for another test window (and its history is unchanged), then, once the extended run has "
    "completed, marks its simulations to be run again. The sensors launch the training and the replays.",
)
def rolling_walkforward_schedule(
    context: dg.ScheduleEvaluationContext, catalog: dg.ResourceParam[Catalog]
) -> list[dg.RunRequest] | dg.SkipReason:
    # None only when evaluated by hand (the UI's test, a test): the daemon always gives its tick's time.
    tick = (context.scheduled_execution_time or datetime.now(UTC)).isoformat()
    requests: list[dg.RunRequest] = []
    reasons: list[str] = []
    for run in catalog.list_walkforward_runs():
        if not run.rolling:
            continue
        if (why := nothing_to_roll(catalog, run)) is not None:
            reasons.append(why)
            continue
        requests.append(
            dg.RunRequest(
                # Unique per tick: whether the bars give new folds is decided in the run; the key only keeps
                # a tick that is evaluated again from launching twice.
                run_key=f"{run.name}:roll:{tick}",
                run_config={"ops": {"roll_walkforward_run": {"config": {"run": run.name}}}},
                tags={"trading/walkforward_run": run.name},
            )
        )
    return requests or dg.SkipReason("; ".join(reasons) or "no rolling walkforward runs")


def _missed(
    instance: dg.DagsterInstance, found: LandingFile, record: DatasetRecord | None, now: datetime
) -> str | None:
    """The content SHA-256 of an export the landing sensor missed, or None if there is nothing to do."""
    changed = max(path.stat().st_mtime for path in (found.path, found.sidecar) if path is not None)
    if now.timestamp() - changed < RESCAN_AFTER_S:
        return None
    data_sha = found.fingerprint().split(":", 1)[0]
    if already_imported(record, data_sha, found):
        return None
    partition = {"dagster/partition": found.dataset}
    if instance.get_runs(dg.RunsFilter(job_name=INGEST_JOB, tags=partition, statuses=IN_FLIGHT), limit=1):
        return None
    latest = instance.get_runs(
        dg.RunsFilter(job_name=INGEST_JOB, tags={**partition, "trading/source_sha256": data_sha}), limit=1
    )
    if latest:
        # A failed ingest is not retried blindly (fix the file); a succeeded one counts while the catalog
        # still holds its content (read otherwise on purpose, e.g. with the launchpad's time zone), not once
        # other content replaced it or the catalog lost it: the sensor's run key for it is spent then.
        succeeded = latest[0].status == dg.DagsterRunStatus.SUCCESS
        if not succeeded or (record is not None and record.source_sha256 == data_sha):
            return None
    return data_sha


@dg.schedule(
    cron_schedule="*/15 * * * *",
    job_name=INGEST_JOB,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Safety net for the landing sensor: ingests an export that has been in the landing folder "
    "for 5 minutes when the catalog does not hold its content and no ingest of it is under way or failed.",
)
def landing_rescan_schedule(
    context: dg.ScheduleEvaluationContext, landing: LandingFolder, catalog: dg.ResourceParam[Catalog]
) -> list[dg.RunRequest] | dg.SkipReason:
    now = context.scheduled_execution_time or datetime.now(UTC)
    files, _ = landing.scan()  # the landing sensor logs the files it skips
    requests = []
    for found in files:
        data_sha = _missed(context.instance, found, catalog.get_dataset(found.dataset), now)
        if data_sha is None:
            continue
        # A schedule cannot ask for partitions in its result: an export the sensor never saw needs its own.
        if not context.instance.has_dynamic_partition(datasets.name, found.dataset):
            context.instance.add_dynamic_partitions(datasets.name, [found.dataset])
        context.log.warning(f"{found.path.name}: not imported by the landing sensor; ingesting it")
        requests.append(
            dg.RunRequest(
                partition_key=found.dataset,
                # Unique per tick: whether to ingest is decided on the state above, the key only keeps a
                # tick that is evaluated again from launching twice.
                run_key=f"{found.dataset}:{data_sha}:{now.isoformat()}",
                tags={"trading/source_file": found.path.name, "trading/source_sha256": data_sha},
            )
        )
    return requests or dg.SkipReason("every export in the landing folder is imported or on its way")
