"""`live up`'s supervisor on real processes: `Supervisor` runs in a process of its own (as `trading-assets
live up` runs it) over real strategy runners (`trading-assets live runner`), which the tests kill -9, freeze
with SIGSTOP, or block on a locked table until their loop stops beating; and over a process that never
answers its health URL and ignores SIGTERM. Each restart must come with its one log line, within the time
the supervision settings state.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from trading_assets.cli.live import Supervision

# Quick probes, so that a test sees a restart in seconds; the formula is Supervision's.
FAST = Supervision(probe_every_s=0.5, probe_timeout_s=0.5, failures=3, start_grace_s=60.0, stop_grace_s=5.0)
# A runner's start (imports, the catalog's migrations) on a busy two-core machine.
START_S = 60.0
STARTED = re.compile(r"live up: (\w+) started \(pid (\d+)\)")

SUPERVISE = """
import json, os, sys
from trading_assets.cli.live import Supervision, Supervisor
spec = json.loads(sys.argv[1])
sys.exit(Supervisor(spec["commands"], dict(os.environ), spec["health"], Supervision(**spec["rules"])).run())
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _runner(port: int, *extra: str) -> list[str]:
    cli = [sys.executable, "-m", "trading_assets.cli"]
    return [*cli, "live", "runner", "--poll", "0.2", "--port", str(port), *extra]


def _healthz(port: int) -> int | None:
    """The status /healthz answers, or None when nothing answers within a second."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return None


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


class Supervised:
    """The supervisor's process and its output (its children's too), read line by line as it comes."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def close(self) -> None:
        self._reader.join(10)
        assert self.process.stdout is not None
        self.process.stdout.close()

    def output(self) -> str:
        return "\n".join(self.lines[-60:])

    def wait_for(self, pattern: str, timeout_s: float, after: int = 0) -> tuple[int, re.Match[str]]:
        """The first line from index `after` on that matches `pattern`, and its index."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for index in range(after, len(self.lines)):
                if match := re.search(pattern, self.lines[index]):
                    return index, match
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"no line matching {pattern!r} within {timeout_s:.0f} s:\n{self.output()}")

    def started(self, name: str, timeout_s: float = START_S, after: int = 0) -> tuple[int, int]:
        """(line index, pid) of `name`'s next start."""
        index, match = self.wait_for(rf"live up: {name} started \(pid (\d+)\)", timeout_s, after)
        return index, int(match.group(1))

    def pids(self) -> set[int]:
        return {int(m.group(2)) for line in self.lines if (m := STARTED.search(line))}


@contextmanager
def supervised(
    tmp_path: Path,
    commands: dict[str, list[str]],
    health: dict[str, str],
    rules: Supervision = FAST,
    env: dict[str, str] | None = None,
) -> Iterator[Supervised]:
    spec = json.dumps({"commands": commands, "health": health, "rules": asdict(rules)})
    environment = {**os.environ, "TRADING_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-c", SUPERVISE, spec],
        env={**environment, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    supervisor = Supervised(process)
    try:
        yield supervisor
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(rules.stop_grace_s + 20)
            except subprocess.TimeoutExpired:
                process.kill()
        for pid in supervisor.pids():  # whatever a failed test left behind
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)
        supervisor.close()


def _wait_healthy(supervisor: Supervised, name: str, after: int, port: int) -> None:
    """Until the supervisor has seen `name`'s start from line `after` on answer its probe, and it answers
    /healthz here."""
    supervisor.wait_for(rf"live up: {name} healthy \(", START_S, after)
    assert _healthz(port) == 200, supervisor.output()


def test_a_child_killed_with_sigkill_is_started_again(tmp_path: Path) -> None:
    port = _free_port()
    health = {"runner": f"http://127.0.0.1:{port}/healthz"}
    with supervised(tmp_path, {"runner": _runner(port)}, health) as supervisor:
        index, first = supervisor.started("runner")
        _wait_healthy(supervisor, "runner", index, port)
        os.kill(first, signal.SIGKILL)

        exited, _ = supervisor.wait_for(r"live up: runner exited \(-9\); again in 1 s", 10, index)
        again, second = supervisor.started("runner", after=exited)
        assert second != first
        _wait_healthy(supervisor, "runner", again, port)


def test_a_frozen_child_is_restarted_within_the_stated_time(tmp_path: Path) -> None:
    """SIGSTOP freezes the runner for real: its /healthz stops answering. The supervisor must notice within
    failures x (probe_every_s + probe_timeout_s), stop it (SIGCONT lets it act on SIGTERM: a clean exit)
    and start it again after its backoff."""
    port = _free_port()
    health = {"runner": f"http://127.0.0.1:{port}/healthz"}
    with supervised(tmp_path, {"runner": _runner(port)}, health) as supervisor:
        index, first = supervisor.started("runner")
        _wait_healthy(supervisor, "runner", index, port)
        os.kill(first, signal.SIGSTOP)
        frozen = time.monotonic()

        stated = FAST.failures * (FAST.probe_every_s + FAST.probe_timeout_s) + FAST.stop_grace_s + 1.0
        restarted, _ = supervisor.wait_for(
            r"live up: runner restarted: 3 health probes failed in a row \(no answer from "
            rf"http://127\.0\.0\.1:{port}/healthz within 0\.5 s\) \(exit 0\); again in 1 s",
            # the bound, plus the slack of a loaded machine's scheduling
            stated + 5.0,
            index,
        )
        assert time.monotonic() - frozen < stated + 5.0
        assert _gone(first)
        again, second = supervisor.started("runner", after=restarted)
        assert second != first
        _wait_healthy(supervisor, "runner", again, port)


def test_a_child_that_never_answers_and_ignores_sigterm_is_killed_and_started_again(tmp_path: Path) -> None:
    """A process that has not answered its health URL within the start grace is stopped; one that ignores
    SIGTERM is killed after the stop grace."""
    deaf = [
        sys.executable,
        "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('deaf up', flush=True); "
        "time.sleep(600)",
    ]
    rules = Supervision(probe_every_s=0.5, probe_timeout_s=0.5, start_grace_s=2.0, stop_grace_s=2.0)
    health = {"deaf": f"http://127.0.0.1:{_free_port()}/healthz"}
    with supervised(tmp_path, {"deaf": deaf}, health, rules) as supervisor:
        index, first = supervisor.started("deaf", 20)
        supervisor.wait_for("deaf up", 20, index)
        restarted, _ = supervisor.wait_for(
            r"live up: deaf restarted: no healthy answer within 2 s of its start \(.*\) \(exit -9\); "
            r"again in 1 s",
            20,
            index,
        )
        _, second = supervisor.started("deaf", 20, after=restarted)
        assert second != first and _gone(first)


def _wait_ready(supervisor: Supervised, port: int) -> None:
    deadline = time.monotonic() + START_S
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"/readyz on {port}: not ready:\n{supervisor.output()}") from None
            time.sleep(0.2)


@pytest.fixture
def postgres_env(pg_conninfo: str) -> Iterator[tuple[str, dict[str, str]]]:
    """A schema of its own on the test Postgres, and the env a service needs to use it as its catalog."""
    params = psycopg.conninfo.conninfo_to_dict(pg_conninfo)
    schema = f"sup_{uuid.uuid4().hex[:12]}"
    env = {
        "TRADING_CATALOG": "postgres",
        "TRADING_CATALOG_SCHEMA": schema,
        "PGHOST": str(params.get("host", "127.0.0.1")),
        "PGPORT": str(params.get("port", 5432)),
        "PGUSER": str(params.get("user", "postgres")),
        "PGDATABASE": str(params.get("dbname", "postgres")),
    }
    yield schema, env
    with psycopg.connect(pg_conninfo, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def test_a_child_whose_loop_stops_beating_is_restarted(
    tmp_path: Path, pg_conninfo: str, postgres_env: tuple[str, dict[str, str]]
) -> None:
    """A runner whose poll blocks on a locked table: its loop stops beating, /healthz still answers but with
    503 once the beat is older than the runner's --stale-after (5 s here), and the supervisor restarts it. Its
    SIGTERM cannot end a poll stuck in the database, so it is killed after the stop grace."""
    schema, env = postgres_env
    port = _free_port()
    health = {"runner": f"http://127.0.0.1:{port}/healthz"}
    with supervised(tmp_path, {"runner": _runner(port, "--stale-after", "5")}, health, env=env) as supervisor:
        index, first = supervisor.started("runner")
        _wait_healthy(supervisor, "runner", index, port)
        _wait_ready(supervisor, port)  # it has made its schema and read the strategies once
        with psycopg.connect(pg_conninfo) as locker:
            locker.execute(
                sql.SQL("LOCK TABLE {}.strategies IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(schema))
            )
            # The stale beat (5 s), three failed probes, the stop grace.
            restarted, _ = supervisor.wait_for(
                rf"live up: runner restarted: 3 health probes failed in a row \(HTTP 503 from "
                rf"http://127\.0\.0\.1:{port}/healthz\) \(exit -9\); again in 1 s",
                5 + 3 * (FAST.probe_every_s + FAST.probe_timeout_s) + FAST.stop_grace_s + 15,
                index,
            )
            locker.rollback()
        again, second = supervisor.started("runner", after=restarted)
        assert second != first and _gone(first)
        _wait_healthy(supervisor, "runner", again, port)


def test_sigterm_of_the_supervisor_stops_every_child(tmp_path: Path) -> None:
    ports = {"runner_a": _free_port(), "runner_b": _free_port()}
    commands = {name: _runner(port) for name, port in ports.items()}
    health = {name: f"http://127.0.0.1:{port}/healthz" for name, port in ports.items()}
    with supervised(tmp_path, commands, health) as supervisor:
        starts = {name: supervisor.started(name) for name in ports}
        for name, port in ports.items():
            _wait_healthy(supervisor, name, starts[name][0], port)
        pids = {name: pid for name, (_, pid) in starts.items()}

        supervisor.process.send_signal(signal.SIGTERM)
        assert supervisor.process.wait(FAST.stop_grace_s + 20) == 0
        supervisor.wait_for("live up: stopped", 5)
        assert all(_gone(pid) for pid in pids.values()), supervisor.output()
        # Each runner stopped on its SIGTERM, not on the SIGKILL after the grace.
        assert sum(line == "runner: stopped" for line in supervisor.lines) == 2, supervisor.output()
