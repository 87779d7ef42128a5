"""The ops room's jobs: `backup`, a complete backup of the deployment (trading_assets.ops.backup) that then
keeps the newest N, and its daily schedule."""

import dagster as dg
from pydantic import Field

from trading_assets.metadata import job_tags
from trading_assets.ops import backup as backups
from trading_assets.ops.backup_files import BackupError, Progress, human_bytes

BACKUP_JOB = "backup"


class BackupConfig(dg.Config):
    """How many complete backups to keep in TRADING_BACKUP_DIR after this one (the oldest go first)."""

    keep: int = Field(default=7, ge=1)


@dg.op(
    name="take_backup",
    description="Backs up the catalog and Dagster storage (pg_dump), the DuckDB files (under their lock), "
    "QuestDB (under a checkpoint) and the artifacts into TRADING_BACKUP_DIR with a manifest of checksums, "
    "then deletes the oldest complete backups beyond `keep`.",
)
def take_backup(context: dg.OpExecutionContext, config: BackupConfig) -> dg.Output[str]:
    profile = backups.Profile.from_env()
    try:
        path = backups.create(profile, Progress(log=context.log.info))
        deleted = backups.prune(profile.backup_dir, config.keep)
    except BackupError as err:
        raise dg.Failure(description=str(err), allow_retries=False) from None
    manifest = backups.load_manifest(path)
    return dg.Output(
        path.name,
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "size": human_bytes(sum(f["bytes"] for f in manifest["files"].values())),
            "contents": dg.MetadataValue.md(
                "\n".join(f"- **{component}**: {what}" for component, what in backups.contents(manifest))
            ),
            "deleted": ", ".join(p.name for p in deleted) or "none",
            "kept": len(backups.complete_backups(profile.backup_dir)),
        },
    )


@dg.job(
    name=BACKUP_JOB,
    description="Back up the deployment (docs/operations/backup.md) and keep the newest `keep` backups.",
    tags=job_tags("ops"),
)
def backup() -> None:
    take_backup()


@dg.schedule(
    cron_schedule="30 1 * * *",
    execution_timezone="UTC",
    job=backup,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="A backup every day at 01:30 UTC, after the day's reconciliation (00:15), keeping seven.",
)
def backup_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    tick = context.scheduled_execution_time
    return dg.RunRequest(
        run_key=None if tick is None else f"{tick:%Y-%m-%d}",
        run_config=dg.RunConfig(ops={"take_backup": BackupConfig()}),
    )
