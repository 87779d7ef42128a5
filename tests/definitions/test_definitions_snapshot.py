"""The whole code location, as the UI would show it, against the snapshot committed beside this file.

A change to an asset's partitions, a job's selection, a sensor's targets or interval, a schedule's cron or
the resource keys shows here as a diff of snapshots/definitions.json. A change made on purpose is recorded
by refreshing the snapshot and committing it with the change:

    UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/definitions/test_definitions_snapshot.py
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from trading_assets.definitions import defs

SNAPSHOT = Path(__file__).with_name("snapshots") / "definitions.json"


def partitions(definition: dg.PartitionsDefinition | None) -> Any:
    if definition is None:
        return None
    if isinstance(definition, dg.DynamicPartitionsDefinition):
        return f"dynamic {definition.name}"
    if isinstance(definition, dg.MultiPartitionsDefinition):
        return {dim.name: partitions(dim.partitions_def) for dim in definition.partitions_defs}
    if isinstance(definition, dg.StaticPartitionsDefinition):
        return {"static": definition.get_partition_keys()}
    if isinstance(definition, dg.TimeWindowPartitionsDefinition):
        return {
            "cron": definition.cron_schedule,
            "start": str(definition.start),
            "timezone": definition.timezone,
        }
    return repr(definition)


def backfill(policy: dg.BackfillPolicy | None) -> Any:
    if policy is None:
        return None
    return {"type": policy.policy_type.value, "max_partitions_per_run": policy.max_partitions_per_run}


def assets_view() -> dict[str, Any]:
    graph = defs.resolve_asset_graph()
    view = {}
    for key in sorted(graph.get_all_asset_keys()):
        node, assets_def = graph.get(key), defs.resolve_assets_def(key)
        # An external asset (written by a service, e.g. live_bars) has no op.
        op = assets_def.op if assets_def.is_executable else None
        view[key.to_user_string()] = {
            "group": node.group_name,
            "partitions": partitions(node.partitions_def),
            "deps": sorted(parent.to_user_string() for parent in node.parent_keys),
            "kinds": sorted(node.kinds),
            "pool": op and op.pool,
            "op_tags": dict(sorted(op.tags.items())) if op else {},
            "backfill_policy": backfill(node.backfill_policy),
            "automation_condition": node.automation_condition and node.automation_condition.get_label(),
        }
    return view


def checks_view() -> dict[str, Any]:
    graph = defs.resolve_asset_graph()
    return {
        key.to_user_string(): {"blocking": graph.get_check_spec(key).blocking}
        for key in sorted(graph.asset_check_keys)
    }


def job_view(job: dg.JobDefinition) -> dict[str, Any]:
    layer = job.asset_layer
    selected = layer.selected_asset_keys
    view: dict[str, Any] = {
        "partitions": partitions(job.partitions_def),
        "tags": dict(sorted(job.tags.items())),
    }
    if selected:
        view["assets"] = sorted(key.to_user_string() for key in selected)
        view["checks"] = sorted(
            check.to_user_string()
            for check in layer.asset_graph.asset_check_keys
            if check.asset_key in selected
        )
    else:
        view["ops"] = sorted(node.name for node in job.nodes)
    return view


def jobs_view() -> dict[str, Any]:
    # Dagster's implicit __ASSET_JOB is derived from the assets above; it is not ours to watch.
    jobs = [job for job in defs.resolve_all_job_defs() if not job.name.startswith("__")]
    return {job.name: job_view(job) for job in sorted(jobs, key=lambda job: job.name)}


def sensors_view() -> dict[str, Any]:
    return {
        sensor.name: {
            "type": sensor.sensor_type.value,
            "jobs": sorted(target.job_name for target in sensor.targets),
            "default_status": sensor.default_status.value,
            "minimum_interval_seconds": sensor.minimum_interval_seconds,
        }
        for sensor in sorted(defs.sensors or [], key=lambda sensor: sensor.name)
    }


def schedules_view() -> dict[str, Any]:
    return {
        schedule.name: {
            "cron": schedule.cron_schedule,
            "timezone": schedule.execution_timezone,
            "job": schedule.job_name,
            "default_status": schedule.default_status.value,
        }
        for schedule in sorted(defs.schedules or [], key=lambda schedule: schedule.name)
    }


def definitions_snapshot() -> str:
    view = {
        "assets": assets_view(),
        "asset_checks": checks_view(),
        "jobs": jobs_view(),
        "sensors": sensors_view(),
        "schedules": schedules_view(),
        "resources": sorted(defs.resources),
    }
    return json.dumps(view, indent=2) + "\n"


def test_definitions_match_the_committed_snapshot():
    current = definitions_snapshot()
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(current)

    committed = SNAPSHOT.read_text()

    diff = difflib.unified_diff(
        committed.splitlines(keepends=True),
        current.splitlines(keepends=True),
        fromfile=f"{SNAPSHOT.name} (committed)",
        tofile=f"{SNAPSHOT.name} (the code now)",
    )
    if current != committed:
        pytest.fail(
            "the Definitions changed; if on purpose, refresh the snapshot with UPDATE_SNAPSHOTS=1 and commit"
            f" it:\n{''.join(diff)}",
            pytrace=False,
        )
