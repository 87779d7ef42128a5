"""Real QuestDB servers for the live suite.

`store` talks to the shared server of `scripts/services.sh` (QUESTDB_ADDR). Tests that stop, kill or
reconfigure a server get one of their own from `own_server`: the same jar (QUESTDB_JAR) on the same Java
(QUESTDB_JAVA), on free loopback ports, with its data in the test's tmp_path.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from resources.questdb_store import QuestDBStore

START_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class QuestDBServer:
    """One QuestDB process on free loopback ports, its data under `root`; restartable on the same data."""

    def __init__(self, jar: str, java: str, root: Path, settings: dict[str, str]) -> None:
        self.jar, self.java, self.root = jar, java, root
        self.http_port = free_port()
        self.settings = {
            "QDB_TELEMETRY_ENABLED": "false",
            "QDB_HTTP_BIND_TO": f"127.0.0.1:{self.http_port}",
            "QDB_HTTP_MIN_NET_BIND_TO": f"127.0.0.1:{free_port()}",
            "QDB_PG_NET_BIND_TO": f"127.0.0.1:{free_port()}",
            "QDB_LINE_TCP_NET_BIND_TO": f"127.0.0.1:{free_port()}",
            "QDB_LINE_UDP_ENABLED": "false",
            "QDB_SHARED_WORKER_COUNT": "1",
            "QDB_HTTP_WORKER_COUNT": "1",
            "QDB_WAL_APPLY_WORKER_COUNT": "1",
            **settings,
        }
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        log = (self.root / "server.log").open("ab")
        self.process = subprocess.Popen(
            [
                self.java,
                "-Xmx256m",
                "-p",
                self.jar,
                "-m",
                "io.questdb/io.questdb.ServerMain",
                "-d",
                str(self.root),
            ],
            env={**os.environ, **self.settings},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = (self.root / "server.log").read_text(errors="replace")[-3000:]
                self.stop(signal.SIGKILL)
                raise RuntimeError(f"QuestDB did not start in {self.root}:\n{tail}")
            time.sleep(0.2)

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/ping", timeout=1):
                return True
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the process (SIGTERM: a clean shutdown; SIGKILL: a crash) and wait until it is gone."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def store(self, **fields) -> QuestDBStore:
        return QuestDBStore(host="127.0.0.1", http_port=self.http_port, **fields)


@pytest.fixture
def store(service_missing) -> QuestDBStore:
    """The shared server (`scripts/services.sh up`), with tiny pages so reads take several."""
    if not os.environ.get("QUESTDB_ADDR"):
        service_missing("QUESTDB_ADDR not set: no QuestDB server for the live suite")
    host, port = os.environ["QUESTDB_ADDR"].rsplit(":", 1)
    store = QuestDBStore(
        host=host,
        http_port=int(port),
        username=os.environ.get("QUESTDB_USER"),
        password=os.environ.get("QUESTDB_PASSWORD"),
        batch_rows=3,
    )
    try:
        store.list_tables()
    except Exception as err:  # any failure to answer means the suite cannot run
        service_missing(f"QuestDB at {os.environ['QUESTDB_ADDR']} does not answer: {err}")
    return store


@pytest.fixture
def table(store: QuestDBStore) -> Iterator[str]:
    name = f"live_{uuid.uuid4().hex[:12]}"
    yield name
    store.drop(name)


@pytest.fixture
def own_server(tmp_path: Path, service_missing) -> Iterator[Callable[..., QuestDBServer]]:
    """Starts QuestDB servers of the test's own (settings as QDB_<KEY> variables); stops them afterwards."""
    jar, java = os.environ.get("QUESTDB_JAR"), os.environ.get("QUESTDB_JAVA")
    if not (jar and java and Path(jar).is_file()):
        service_missing("QUESTDB_JAR/QUESTDB_JAVA not set (eval `scripts/services.sh env`)")
    servers: list[QuestDBServer] = []

    def start(**settings: str) -> QuestDBServer:
        server = QuestDBServer(jar, java, tmp_path / f"questdb{len(servers)}", settings)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop(signal.SIGKILL)
