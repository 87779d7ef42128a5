"""deploy/monitoring/: Prometheus's config and alert rules checked by Prometheus's own promtool, the rules'
unit tests (alerts.test.yml) run by it, Alertmanager's config checked by amtool, and a broken file of each
kind refused. Every rule is seen firing by its unit tests, links a runbook that exists, and queries only
metrics something exports; the live rules carry the live page's alert names."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from monitoring_setup import MONITORING, PROJECT_METRIC, REPO, binary, exporter_samples, live_samples, run

from trading_assets.live import alerts as live_alerts

RULES = yaml.safe_load((MONITORING / "alerts.yml").read_text())
ALERTS = {rule["alert"]: rule for group in RULES["groups"] for rule in group["rules"]}


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A copy of deploy/monitoring/ to break."""
    shutil.copytree(MONITORING, tmp_path / "monitoring")
    return tmp_path / "monitoring"


def test_the_prometheus_config_and_its_rules_pass_promtool(promtool: str) -> None:
    checked = run(promtool, "check", "config", "prometheus.yml", cwd=MONITORING)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in checked.stdout


def test_a_config_whose_rule_file_is_missing_is_refused(promtool: str, copy: Path) -> None:
    (copy / "alerts.yml").unlink()

    checked = run(promtool, "check", "config", "prometheus.yml", cwd=copy)
    assert checked.returncode != 0
    assert "alerts.yml" in checked.stdout + checked.stderr


def test_a_rule_whose_expression_does_not_parse_is_refused(promtool: str, copy: Path) -> None:
    rules = copy / "alerts.yml"
    rules.write_text(rules.read_text().replace("live_bar_lag_bars >= 3", "live_bar_lag_bars >=", 1))

    checked = run(promtool, "check", "rules", "alerts.yml", cwd=copy)
    assert checked.returncode != 0
    assert "parse error" in checked.stdout + checked.stderr


def test_every_rule_fires_and_stays_silent_as_its_unit_tests_say(promtool: str) -> None:
    tested = run(promtool, "test", "rules", "alerts.test.yml", cwd=MONITORING)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_a_rule_changed_under_its_unit_tests_fails_them(promtool: str, copy: Path) -> None:
    rules = copy / "alerts.yml"
    rules.write_text(rules.read_text().replace("live_bar_lag_bars >= 3", "live_bar_lag_bars >= 4", 1))

    tested = run(promtool, "test", "rules", "alerts.test.yml", cwd=copy)
    assert tested.returncode != 0
    assert "alertname: LiveBarsLagging" in tested.stdout + tested.stderr


def test_every_rule_is_seen_firing_and_silent_by_the_unit_tests() -> None:
    tests = yaml.safe_load((MONITORING / "alerts.test.yml").read_text())["tests"]
    checks = [check for test in tests for check in test["alert_rule_test"]]
    firing = {check["alertname"] for check in checks if check["exp_alerts"]}
    silent = {check["alertname"] for check in checks if not check["exp_alerts"]}
    assert firing == set(ALERTS)
    assert silent == set(ALERTS)


@pytest.fixture(scope="module")
def amtool(service_missing: Callable[[str], None]) -> str:
    found = binary("amtool")
    if found is None:
        service_missing("no amtool (Debian's prometheus-alertmanager; `scripts/services.sh up` installs it)")
    return found  # type: ignore[return-value]


def test_the_alertmanager_config_passes_amtool(amtool: str) -> None:
    checked = run(amtool, "check-config", "alertmanager.yml", cwd=MONITORING)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_an_alertmanager_route_to_an_undefined_receiver_is_refused(amtool: str, copy: Path) -> None:
    config = copy / "alertmanager.yml"
    config.write_text(config.read_text().replace("receiver: pager", "receiver: nobody", 1))

    checked = run(amtool, "check-config", "alertmanager.yml", cwd=copy)
    assert checked.returncode != 0
    assert 'undefined receiver "nobody"' in checked.stdout + checked.stderr


def _runbooks(url: str) -> list[str]:
    """The files (and anchors) a runbook_url names; a template over the runbook label names each page
    the live page's states can name."""
    if "{{ $labels.runbook }}" in url:
        return [url.replace("{{ $labels.runbook }}", slug) for slug in live_alerts.RUNBOOKS]
    return [url]


def test_every_rule_links_a_runbook_that_exists() -> None:
    for name, rule in ALERTS.items():
        for link in _runbooks(rule["annotations"]["runbook_url"]):
            path, _, anchor = link.partition("#")
            assert (REPO / path).is_file(), f"{name}: {link}"
            if anchor:
                headings = re.findall(r"^#+ (.+)$", (REPO / path).read_text(), re.M)
                assert anchor in {h.strip().lower().replace(" ", "-") for h in headings}, f"{name}: {link}"


def test_the_live_rules_carry_the_names_of_the_live_page_alerts() -> None:
    page = set(re.findall(r'"(Live[A-Za-z]+)"', Path(live_alerts.__file__).read_text()))
    live = {rule["alert"] for group in RULES["groups"] if group["name"] == "live" for rule in group["rules"]}
    assert live and live <= page


def test_the_rules_query_only_metrics_the_exporter_or_the_live_services_export() -> None:
    exported = exporter_samples() | live_samples()
    for name, rule in ALERTS.items():
        assert set(PROJECT_METRIC.findall(rule["expr"])) <= exported, name
