"""Servers of a caller's own on free loopback ports: a Postgres cluster and a QuestDB under a folder it
chooses, so it can crash, restart or restore them without touching the servers anything else uses (the live
soak, the Postgres-restart test, a backup's restore check).

Postgres is Debian's (the binaries `scripts/services.sh` installs), a fresh cluster made with `initdb`
(trust on loopback); as root it runs as the `postgres` user, which Postgres requires. QuestDB is started
and stopped by `scripts/services.sh` itself, on the caller's ports and data folder, so it runs exactly as the
project's QuestDB does (the same release, Java and light settings).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SERVICES = REPO / "scripts" / "services.sh"


class ServerError(RuntimeError):
    """A server of the soak's that did not start or stop; the message ends with its log's tail."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def _pg_bin() -> Path:
    """Debian's newest Postgres binaries (initdb and pg_ctl are not on PATH there), else PATH's."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    if versions:
        return versions[-1].parent
    found = shutil.which("pg_ctl")
    if found is None:
        raise ServerError("no Postgres binaries (run scripts/services.sh up postgres to install them)")
    return Path(found).parent


class PrivatePostgres:
    """A Postgres cluster in `root` on `port`: `start`, `stop` (fast: connections are cut), `crash`
    (immediate: no shutdown checkpoint, recovery on the next start), `restart`."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = root
        self.port = port or free_port()
        self.bin = _pg_bin()
        self._as_postgres = os.geteuid() == 0
        # As root the cluster belongs to `postgres`, which must reach its folder: one of its own under /tmp,
        # not under `root`, whose parents (pytest's 0700 temp root, which any pytest starting meanwhile
        # resets) it may not be allowed to traverse. `close` copies the log into `root` and removes it.
        self.home = Path(tempfile.mkdtemp(prefix="trading-pg-")) if self._as_postgres else root
        self.data = self.home / "pgdata"
        self.log = self.home / "postgres.log"

    @property
    def env(self) -> dict[str, str]:
        """What the project's settings read to use this cluster as the catalog."""
        return {
            "PGHOST": "127.0.0.1",
            "PGPORT": str(self.port),
            "PGUSER": "postgres",
            "PGDATABASE": "postgres",
        }

    def _run(self, *command: str, timeout: float = 120) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self._as_postgres else []
        done = subprocess.run(
            [*prefix, *command], capture_output=True, text=True, timeout=timeout, cwd="/", check=False
        )
        if done.returncode:
            raise ServerError(
                f"postgres: {Path(command[0]).name} {command[1] if len(command) > 1 else ''} failed: "
                f"{(done.stderr or done.stdout).strip()}\n{_tail(self.log)}"
            )

    def start(self) -> None:
        if not self.data.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            self.data.mkdir()
            if self._as_postgres:
                shutil.chown(self.home, "postgres")
                shutil.chown(self.data, "postgres")
            self._run(
                str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"
            )
        options = f"-p {self.port} -k {self.home} -c listen_addresses=127.0.0.1 -c max_connections=100"
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def crash(self) -> None:
        self.stop("immediate")

    def close(self) -> None:
        """Stop it if it runs (best effort, for clean-up); a cluster outside `root` leaves its log there."""
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(ServerError, subprocess.TimeoutExpired):
                self.stop("immediate")
        if self.home != self.root:
            with contextlib.suppress(OSError):
                self.root.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.log, self.root / "postgres.log")
            shutil.rmtree(self.home, ignore_errors=True)


class PrivateQuestDB:
    """A QuestDB under `root`/questdb on free ports, run by `scripts/services.sh`: `start`, `stop`
    (SIGTERM), `crash` (SIGKILL of the server's JVM)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ports = {
            "QUESTDB_HTTP_PORT": free_port(),
            "QUESTDB_PG_PORT": free_port(),
            "QUESTDB_ILP_PORT": free_port(),
            "QUESTDB_MIN_HTTP_PORT": free_port(),
        }
        self.pid_file = root / "questdb" / "questdb.pid"
        self.log = root / "questdb" / "questdb.log"

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.ports['QUESTDB_HTTP_PORT']}"

    @property
    def env(self) -> dict[str, str]:
        return {"QUESTDB_ADDR": self.addr}

    def _script(self, action: str) -> None:
        env = {**os.environ, **{k: str(v) for k, v in self.ports.items()}, "TRADING_DATA_DIR": str(self.root)}
        done = subprocess.run(
            ["bash", str(SERVICES), action, "questdb"], env=env, capture_output=True, text=True, timeout=180
        )
        if done.returncode:
            raise ServerError(f"questdb: services.sh {action} failed: {done.stderr.strip()[-2000:]}")

    def start(self) -> None:
        self._script("up")

    def stop(self) -> None:
        self._script("down")

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.addr}/ping", timeout=2):
                return True
        except OSError:
            return False

    def crash(self) -> None:
        pid = int(self.pid_file.read_text().strip())
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while _alive(pid):
            if time.monotonic() > deadline:
                raise ServerError(f"questdb: pid {pid} still runs 30 s after SIGKILL")
            time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)

    def close(self) -> None:
        if self.pid_file.exists():
            with contextlib.suppress(ServerError, subprocess.TimeoutExpired):
                self.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child of ours stays a zombie until reaped; services.sh's nohup made it no child of ours.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False
