"""deploy/monitoring/grafana/: every panel's query of the dashboards parses as PromQL (promtool checks each
one written as a recording rule; a broken one is refused), queries only metrics the exporter or the live
services export, and reads the data source the provisioning file defines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from monitoring_setup import MONITORING, PROJECT_METRIC, exporter_samples, live_samples, run

GRAFANA = MONITORING / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))  # a collapsed row holds its panels


def queries(dashboard: Path) -> list[tuple[str, str]]:
    """(panel title, expression) of every query of the dashboard."""
    found = json.loads(dashboard.read_text())["panels"]
    return [(p["title"], t["expr"]) for p in panels(found) for t in p.get("targets", [])]


def check_as_rules(promtool: str, exprs: list[str], folder: Path) -> Any:
    rules = {
        "groups": [
            {"name": "panels", "rules": [{"record": f"panel:{i}", "expr": e} for i, e in enumerate(exprs)]}
        ]
    }
    (folder / "panels.yml").write_text(yaml.safe_dump(rules))
    return run(promtool, "check", "rules", "panels.yml", cwd=folder)


def test_there_are_the_platform_and_the_live_dashboards() -> None:
    assert [d.name for d in DASHBOARDS] == ["live.json", "platform.json"]
    assert all(queries(d) for d in DASHBOARDS)


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=lambda d: d.stem)
def test_every_panel_query_parses_as_promql(promtool: str, dashboard: Path, tmp_path: Path) -> None:
    checked = check_as_rules(promtool, [expr for _, expr in queries(dashboard)], tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_panel_query_that_does_not_parse_is_refused(promtool: str, tmp_path: Path) -> None:
    broken = "histogram_quantile(0.95, sum by (le) (rate(live_order_round_trip_seconds_bucket[5m]))"
    checked = check_as_rules(promtool, [broken], tmp_path)
    assert checked.returncode != 0
    assert "parse error" in checked.stdout + checked.stderr


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=lambda d: d.stem)
def test_every_panel_queries_only_metrics_that_are_exported(dashboard: Path) -> None:
    exported = exporter_samples() | live_samples()
    unknown = {(title, name) for title, expr in queries(dashboard) for name in PROJECT_METRIC.findall(expr)}
    assert {(title, name) for title, name in unknown if name not in exported} == set()


def test_every_panel_reads_the_provisioned_data_source() -> None:
    provisioned = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uids = {source["uid"] for source in provisioned["datasources"]}
    for dashboard in DASHBOARDS:
        found = json.loads(dashboard.read_text())["panels"]
        used = {p["datasource"]["uid"] for p in panels(found) if p["type"] != "row"}
        assert used <= uids, dashboard.name
