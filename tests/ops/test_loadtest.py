"""The load-test harness (`make loadtest`, loadtests/) works: run for a few seconds a scenario against the
real stack (Postgres catalog and Dagster storage, QuestDB, `trading-assets serve`, `dagster-webserver`), every
scenario makes requests, none fails, the report has every scenario and the exit status follows the verdicts.
How fast is measured by `make loadtest` (docs/operations/loadtest.md), never asserted here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ("api_jobs", "graphql_launch", "catalog_reads", "timeseries_stream", "live_fanout")


def _harness(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "loadtests.run", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=280)


@pytest.fixture(scope="module")
def run(
    tmp_path_factory: pytest.TempPathFactory, pg_conninfo: str, service_missing: Any
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    """One short run of every scenario (5 s each, 2 users, a 20,000-bar table) and its JSON report."""
    if not os.environ.get("QUESTDB_ADDR"):
        service_missing("QUESTDB_ADDR not set: no QuestDB server for the load tests")
    from psycopg.conninfo import conninfo_to_dict

    server = conninfo_to_dict(pg_conninfo)
    env = {
        **os.environ,
        "PGHOST": str(server.get("host", "127.0.0.1")),
        "PGPORT": str(server.get("port", 5432)),
    }
    env["PGUSER"] = str(server.get("user", "postgres"))
    if server.get("password"):
        env["PGPASSWORD"] = str(server["password"])
    report = tmp_path_factory.mktemp("loadtest") / "report.json"
    # Few users and a few seconds: the harness is checked here, beside the other test files; its load and its
    # figures are `make loadtest`'s.
    done = _harness(["--seconds", "5", "--users", "2", "--rows", "20000", "--json", str(report)], env)
    assert done.returncode in (0, 1) and "Traceback" not in done.stderr, done.stderr[-4000:]
    return done, json.loads(report.read_text())


def test_the_report_has_every_scenario_in_order(run) -> None:
    done, report = run
    assert [entry["name"] for entry in report] == list(SCENARIOS)
    table = done.stdout.splitlines()
    for name in SCENARIOS:
        assert any(line.startswith(name) for line in table), name


def test_every_scenario_made_requests_and_none_failed(run) -> None:
    _, report = run
    for entry in report:
        assert entry["requests"] > 0, entry["name"]
        assert (entry["failures"], entry["errors"], entry["check"]) == (0, {}, None), entry["name"]


def test_the_exit_status_is_1_exactly_when_a_scenario_missed_its_limits(run) -> None:
    done, report = run
    assert done.returncode == (0 if all(entry["passed"] for entry in report) else 1)


def test_a_wrong_limits_file_is_refused_in_one_line_naming_the_field(tmp_path: Path) -> None:
    limits = yaml.safe_load((ROOT / "loadtests" / "limits.yaml").read_text())
    limits["scenarios"]["catalog_reads"]["p95_ms"] = -5
    broken = tmp_path / "limits.yaml"
    broken.write_text(yaml.safe_dump(limits))
    done = _harness(["--limits", str(broken)], dict(os.environ))
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {broken}: scenarios.catalog_reads.p95_ms: must be above 0"
