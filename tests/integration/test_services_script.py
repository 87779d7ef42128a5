"""scripts/services.sh on QuestDB servers of the tests' own (free ports, data in tmp_path): up waits until
healthy and is idempotent, status says what answers, down stops it, and a server that cannot start fails
the script loudly with its log tail."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "services.sh"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def env(tmp_path: Path, service_missing) -> Iterator[dict[str, str]]:
    """The script's environment for a QuestDB of this test's own; `down` runs afterwards in any case."""
    if not Path(os.environ.get("QUESTDB_JAR", "")).is_file():
        service_missing("QUESTDB_JAR not set (eval `scripts/services.sh env`): the jar is not downloaded")
    env = {
        **os.environ,
        "TRADING_DATA_DIR": str(tmp_path / "data"),
        "QUESTDB_HTTP_PORT": str(free_port()),
        "QUESTDB_PG_PORT": str(free_port()),
        "QUESTDB_ILP_PORT": str(free_port()),
        "QUESTDB_MIN_HTTP_PORT": str(free_port()),
    }
    yield env
    services("down", "questdb", env=env)


def services(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=180, check=False
    )


def test_up_waits_until_questdb_answers_reuses_it_and_down_stops_it(env):
    port = env["QUESTDB_HTTP_PORT"]

    started = services("up", "questdb", env=env)
    assert started.returncode == 0, started.stderr
    assert "starting questdb 9.3.4" in started.stderr
    assert (Path(env["TRADING_DATA_DIR"]) / "questdb" / "db").is_dir()

    again = services("up", "questdb", env=env)
    assert again.returncode == 0 and f"questdb already answers on 127.0.0.1:{port}" in again.stderr
    status = services("status", "questdb", env=env)
    assert (status.returncode, status.stdout) == (0, f"questdb: up (http://127.0.0.1:{port})\n")

    assert services("down", "questdb", env=env).returncode == 0
    status = services("status", "questdb", env=env)
    assert (status.returncode, status.stdout) == (1, "questdb: down\n")


def test_a_questdb_that_cannot_start_fails_the_script_with_its_log_tail(env):
    with socket.socket() as squatter:  # holds QuestDB's HTTP port without ever answering on it
        squatter.bind(("127.0.0.1", int(env["QUESTDB_HTTP_PORT"])))
        squatter.listen()

        failed = services("up", "questdb", env=env)

    assert failed.returncode == 1
    assert "services: questdb did not start; last lines of" in failed.stderr
    assert "questdb.log" in failed.stderr
    port = env["QUESTDB_HTTP_PORT"]
    assert f"could not bind socket [who=http-server, bindTo=127.0.0.1:{port}]" in failed.stderr
    assert not (Path(env["TRADING_DATA_DIR"]) / "questdb" / "questdb.pid").exists()


def test_an_unknown_service_or_command_is_refused(env):
    assert services("up", "mysql", env=env).returncode == 2
    assert services("restart", env=env).returncode == 2
