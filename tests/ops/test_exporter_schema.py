"""The catalog schema version the code needs, which the exporter sets beside the catalog's applied one
(trading_catalog_schema_expected_version), is on every run as the tag trading/schema_version: each job of
the code location carries it, so each run launched of it does (Dagster gives a run its job's tags).
Dagster's implicit asset job (an ad-hoc materialisation from the asset graph) takes no tags."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from monitoring_setup import REPO

from trading_assets import settings as cfg
from trading_assets.cli.launcher import Launcher
from trading_assets.definitions import defs
from trading_assets.metadata import SCHEMA_VERSION_TAG

NEWEST = max(path.name[:4] for path in (REPO / "migrations" / "postgres").glob("[0-9]*.sql"))


def test_every_job_of_the_code_location_gives_its_runs_the_schema_version() -> None:
    jobs = [job for job in defs.resolve_all_job_defs() if job.name != "__ASSET_JOB"]
    assert len(jobs) > 10
    assert {job.name: job.run_tags.get(SCHEMA_VERSION_TAG) for job in jobs} == {
        job.name: NEWEST for job in jobs
    }


def test_a_launched_run_is_recorded_with_the_schema_version(data_dir: Path) -> None:
    launcher = Launcher.for_settings(cfg.Settings.from_env())
    result = launcher.execute("take_job_request", ops={"take_queued_request": {"config": {"request_id": 1}}})

    run = launcher.instance.get_run_by_id(result.run_id)
    assert run is not None and run.status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE)
    assert run.tags[SCHEMA_VERSION_TAG] == NEWEST
