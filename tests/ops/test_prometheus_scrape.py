"""A real Prometheus (Debian's) scrapes `trading-assets exporter`, run as a deployment runs it, every second,
with the repository's alerts.yml evaluated every second: a run that fails in the Dagster instance fires
DagsterRunFailed, and a catalog left one migration behind the code makes CatalogSchemaMismatch go pending
(it waits 10 minutes before firing), both seen on Prometheus's /api/v1/alerts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pytest
import yaml
from monitoring_setup import MONITORING, QUIET, binary, broken, free_port

from resources.postgres_catalog import PostgresCatalog

TRADING_ASSETS = str(Path(sys.executable).with_name("trading-assets"))


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def until(what: str, check: Callable[[], Any], timeout_s: float = 30.0) -> Any:
    """`check()`'s first truthy result, polled every 0.2 s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if found := check():
                return found
        except OSError:  # not listening yet
            pass
        time.sleep(0.2)
    pytest.fail(f"{what}: not within {timeout_s:.0f} s")


def started(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)


def stopped(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def deployment(
    tmp_path: Path, pg_settings: dict, pg_schema_name: str, service_missing: Callable[[str], None]
) -> Iterator[dict[str, Any]]:
    """The exporter on a Dagster home of its own and a migrated Postgres catalog, and Prometheus scraping
    it with the repository's rules; yields their addresses and the home."""
    prometheus = binary("prometheus")
    if prometheus is None:
        service_missing("no prometheus (Debian's package; `scripts/services.sh up` installs it)")
    catalog = PostgresCatalog(**pg_settings, schema_name=pg_schema_name, pool_min_size=0)
    catalog.migrate()
    catalog.close()
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = os.environ | {
        "TRADING_DATA_DIR": str(tmp_path / "data"),
        "DAGSTER_HOME": str(home),
        "TRADING_CATALOG": "postgres",
        "TRADING_CATALOG_SCHEMA": pg_schema_name,
        "PGHOST": pg_settings["host"],
        "PGPORT": str(pg_settings["port"]),
        "PGUSER": pg_settings["user"],
        "PGDATABASE": pg_settings["dbname"],
    }
    exporter_port, prometheus_port = free_port(), free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(MONITORING / "alerts.yml")],
        "scrape_configs": [
            {
                "job_name": "exporter",
                "scrape_timeout": "1s",
                "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    exporter = started(
        [TRADING_ASSETS, "exporter", "--port", str(exporter_port), "--sources", "dagster,catalog"],
        tmp_path / "exporter.log",
        env,
    )
    server = started(
        [
            prometheus,  # type: ignore[list-item]
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
            "--log.level=warn",
        ],
        tmp_path / "prometheus.log",
    )
    try:
        yield {
            "exporter": f"http://127.0.0.1:{exporter_port}",
            "prometheus": f"http://127.0.0.1:{prometheus_port}",
            "home": home,
        }
    finally:
        stopped(server)
        stopped(exporter)


def alerts(prometheus: str) -> dict[str, str]:
    """alertname -> state, of the alerts Prometheus holds now."""
    found = get(f"{prometheus}/api/v1/alerts")["data"]["alerts"]
    return {alert["labels"]["alertname"]: alert["state"] for alert in found}


def test_prometheus_scrapes_the_exporter_and_its_alerts_follow_what_happens(
    deployment: dict[str, Any], pg_admin: psycopg.Connection, pg_schema_name: str
) -> None:
    prometheus, exporter = deployment["prometheus"], deployment["exporter"]
    assert until("the exporter's /healthz", lambda: get(f"{exporter}/healthz")) == {
        "service": "exporter",
        "alive": True,
    }

    def sources_up() -> dict[str, str]:
        result = get(f"{prometheus}/api/v1/query?query=trading_exporter_source_up")["data"]["result"]
        return {r["metric"]["source"]: r["value"][1] for r in result}

    read = until("a scrape by Prometheus", sources_up)
    assert read == {"dagster": "1", "catalog": "1", "catalog_schema": "1"}
    # The first scrape opens the Dagster instance and may outlast the 1 s timeout: quiet from the next.
    until("no alert", lambda: alerts(prometheus) == {})

    with dg.DagsterInstance.from_config(str(deployment["home"])) as instance:
        broken.execute_in_process(instance=instance, run_config=QUIET, raise_on_error=False)
    newest = pg_admin.execute(f"SELECT max(version) FROM {pg_schema_name}.schema_migrations").fetchone()
    pg_admin.execute(f"DELETE FROM {pg_schema_name}.schema_migrations WHERE version = %s", newest)

    expected = {"DagsterRunFailed": "firing", "CatalogSchemaMismatch": "pending"}
    until(f"the alerts {expected}", lambda: alerts(prometheus) == expected, timeout_s=20)
