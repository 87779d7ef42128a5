"""The system under load, on the production profile and on loopback: a Postgres catalog and a Postgres
Dagster storage (fresh databases on the server `scripts/services.sh` runs, dropped afterwards), the
QuestDB store (tables under one fresh prefix, dropped afterwards), `trading-assets serve` and
`dagster-webserver` (the repo's dagster.yaml: QueuedRunCoordinator) in processes of their own.

The data is the live tests' research state made by the project's own jobs (a dataset of one-minute bars,
an indicator set, a 2-fold walkforward run), a simulation of the run, a strategy promoted from it, and a
table of `stream_rows` bars for the streaming scenario.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from resources.local_servers import free_port

ROOT = Path(__file__).resolve().parents[1]
# The environment variable that carries the API's write token to the swarm (never a file or an argument).
TOKEN_ENV = "LOADTEST_WRITE_TOKEN"
STRATEGY, VENUE, SYMBOL = "loadfanout", "loadvenue", "BTC/USDT"
WORKSPACE_QUERY = (
    "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus locationOrLoadError "
    "{ __typename ... on PythonError { message } } } } } }"
)


class StackError(RuntimeError):
    """A part of the system under load did not come up; the message says which and why."""


@dataclass(frozen=True)
class Target:
    """What the scenarios are pointed at (the plan the swarm reads)."""

    api: str
    webserver: str
    dataset: str
    run: str
    simulation: str
    stream_table: str
    stream_rows: int
    strategy: str
    # PostgresCatalog's fields for the live scenario's order writer; a password stays in PGPASSWORD.
    catalog: dict[str, Any]
    # Each server's process, whose CPU time (with its children's: the webserver's code server) is counted.
    pids: dict[str, int]


@dataclass(frozen=True)
class _Postgres:
    host: str
    port: int
    user: str

    @classmethod
    def from_env(cls) -> _Postgres:
        """The server the project's settings use (PGHOST, PGPORT, PGUSER; PGPASSWORD read by libpq)."""
        env = os.environ
        return cls(
            env.get("PGHOST", "127.0.0.1"), int(env.get("PGPORT", "5432")), env.get("PGUSER", "postgres")
        )

    def admin(self) -> psycopg.Connection:
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            dbname="postgres",
            autocommit=True,
            connect_timeout=5,
        )


@contextlib.contextmanager
def stack(stream_rows: int, say: Callable[[str], None]) -> Iterator[Target]:
    """Everything up, yielded as a Target; everything stopped, dropped and deleted afterwards."""
    prefix = f"load{uuid.uuid4().hex[:6]}"
    pg = _Postgres.from_env()
    questdb = os.environ.get("QUESTDB_ADDR", "127.0.0.1:9000")
    _answering(pg, questdb)
    root = Path(tempfile.mkdtemp(prefix="loadtest-"))
    catalog_db, dagster_db = f"{prefix}_catalog", f"{prefix}_dagster"
    profile = {
        "TRADING_CATALOG": "postgres",
        "TRADING_TIMESERIES": "questdb",
        "PGHOST": pg.host,
        "PGPORT": str(pg.port),
        "PGUSER": pg.user,
        "PGDATABASE": catalog_db,
        "TRADING_CATALOG_SCHEMA": "public",
        "QUESTDB_ADDR": questdb,
    }
    servers: list[_Server] = []
    kept = False
    try:
        with pg.admin() as admin:
            for name in (catalog_db, dagster_db):
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        say(f"setup: databases {catalog_db} and {dagster_db} on {pg.host}:{pg.port}, QuestDB {questdb}")
        started = time.monotonic()
        served = {**os.environ, **profile, "TRADING_DATA_DIR": str(root / "research" / "data")}
        token = secrets.token_urlsafe(24)
        # Both servers start while the data is made (they read it only once the scenarios run).
        servers += [_api(root, served, token), _webserver(root, dagster_db, pg, served)]
        target = _data(root, prefix, stream_rows, profile, say)
        for server in servers:
            server.wait()
        api, webserver = (server.url for server in servers)
        say(f"setup: API on {api}, dagster-webserver on {webserver} ({time.monotonic() - started:.0f} s)")
        os.environ[TOKEN_ENV] = token
        pids = {server.name: server.process.pid for server in servers}
        yield Target(api=api, webserver=webserver, pids=pids, **target)
    except StackError:
        kept = True  # its logs, for the error's reader
        raise
    finally:
        os.environ.pop(TOKEN_ENV, None)
        for server in servers:
            server.stop()
        _drop(prefix, profile, pg, (catalog_db, dagster_db))
        if not kept:
            shutil.rmtree(root, ignore_errors=True)


def _answering(pg: _Postgres, questdb: str) -> None:
    """StackError naming the server that does not answer."""
    try:
        pg.admin().close()
    except psycopg.OperationalError as err:
        reason = str(err).strip().splitlines()[0]
        raise StackError(
            f"no Postgres at {pg.host}:{pg.port} ({reason}); scripts/services.sh up starts it"
        ) from None
    if _get(f"http://{questdb}/ping") is None:
        raise StackError(f"no QuestDB at {questdb} (QUESTDB_ADDR); scripts/services.sh up starts it")


def _data(
    root: Path, prefix: str, stream_rows: int, profile: dict[str, str], say: Callable[[str], None]
) -> dict:
    """The research state, a simulation, a promoted strategy and the streamed table, made in this process
    (the jobs' output goes to setup.log)."""
    from resources.landing import landing_file
    from trading_assets import cli
    from trading_assets import settings as cfg
    from trading_assets.bars.service import ingest_bars
    from trading_assets.compute.demo_data import generate_bars, write_export
    from trading_assets.live.config import PromoteConfig
    from trading_assets.live.service import promote
    from trading_assets.live.soak.research import build_research, environment

    started = time.monotonic()
    log = root / "setup.log"
    stream_table = f"{prefix}big"
    with log.open("w") as out, contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            research = build_research(root / "research", dataset=prefix, later_bars=0, **profile)
            home = research.data / "dagster_home"
            with environment(**profile, TRADING_DATA_DIR=str(research.data), DAGSTER_HOME=str(home)):
                sim = root / "sim.yaml"
                sim.write_text(f"run: {research.run}\nfee_bps: 1\nslippage_bps: 1\n")
                if cli.main(["simulate", str(sim)]) != 0:
                    raise StackError(f"the simulation of {research.run} failed")
                settings = cfg.Settings.from_env()
                with (
                    cfg.catalog(settings).process_config_and_initialize_cm() as catalog,
                    cfg.timeseries_store(settings).process_config_and_initialize_cm() as store,
                ):
                    bars = generate_bars(n_rows=stream_rows, seed=7, n_gaps=0)
                    export = write_export(bars, root / f"{stream_table}.txt")
                    ingest_bars(landing_file(export, stream_table), store, catalog)
                    rows = catalog.get_dataset(stream_table).row_count
                    config = PromoteConfig(name=STRATEGY, run=research.run, symbol=SYMBOL, venue=VENUE)
                    promote(catalog, config)
                    simulation = catalog.list_simulations(prefix)[0].name
        except Exception as err:
            raise StackError(f"setup failed: {err} (log: {log})\n{_tail(log)}") from err
    say(
        f"setup: dataset {prefix} with run {research.run} and simulation {simulation}, strategy {STRATEGY}, "
        f"{rows:,} bars in {stream_table} ({time.monotonic() - started:.0f} s)"
    )
    return {
        "dataset": prefix,
        "run": research.run,
        "simulation": simulation,
        "stream_table": stream_table,
        "stream_rows": rows,
        "strategy": STRATEGY,
        "catalog": {
            "host": profile["PGHOST"],
            "port": int(profile["PGPORT"]),
            "user": profile["PGUSER"],
            "dbname": profile["PGDATABASE"],
            "schema_name": profile["TRADING_CATALOG_SCHEMA"],
        },
    }


@dataclass
class _Server:
    """A server of the stack in a process (and session) of its own, with its log under the stack's folder."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    ready: Callable[[str], bool]
    limit_s: float

    def wait(self) -> None:
        deadline = time.monotonic() + self.limit_s
        while not self.ready(self.url):
            if self.process.poll() is not None:
                raise StackError(
                    f"{self.name} exited with status {self.process.returncode}\n{_tail(self.log)}"
                )
            if time.monotonic() > deadline:
                raise StackError(f"{self.name} did not answer within {self.limit_s:.0f} s\n{_tail(self.log)}")
            time.sleep(0.25)

    def stop(self) -> None:
        """SIGTERM to its session (the webserver's code server too), SIGKILL after 20 s."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


def _start(name: str, command: list[str], env: dict[str, str], log: Path, port: int, **wait: Any) -> _Server:
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return _Server(name, f"http://127.0.0.1:{port}", process, log, **wait)


def _api(root: Path, env: dict[str, str], token: str) -> _Server:
    """`trading-assets serve` with a write token and open reads."""
    port = free_port()
    env = {**env, "TRADING_API_WRITE_TOKEN": token}
    env.pop("TRADING_API_READ_TOKEN", None)
    command = [sys.executable, "-m", "trading_assets.cli", "serve", "--port", str(port)]
    return _start("api", command, env, root / "api.log", port, ready=_api_answers, limit_s=120)


def _webserver(root: Path, db: str, pg: _Postgres, env: dict[str, str]) -> _Server:
    """dagster-webserver on the repo's dagster.yaml (Postgres storage, QueuedRunCoordinator) in a fresh
    DAGSTER_HOME; no daemon runs, so launched runs stay queued."""
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    dagster_env = {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_HOST": pg.host,
        "DAGSTER_PG_PORT": str(pg.port),
        "DAGSTER_PG_USER": pg.user,
        "DAGSTER_PG_PASSWORD": os.environ.get("PGPASSWORD", ""),
        "DAGSTER_PG_DB": db,
    }
    port = free_port()
    command = [sys.executable, "-m", "dagster_webserver", "-h", "127.0.0.1", "-p", str(port)]
    command += ["-w", str(ROOT / "workspace.yaml")]
    log = root / "webserver.log"
    return _start(
        "webserver", command, {**env, **dagster_env}, log, port, ready=_location_loaded, limit_s=300
    )


def _get(url: str, body: bytes | None = None) -> bytes | None:
    headers = {"Content-Type": "application/json"} if body else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, body, headers), timeout=5) as response:
            return response.read()  # type: ignore[no-any-return]
    except (urllib.error.URLError, OSError):
        return None


def _api_answers(api: str) -> bool:
    return _get(f"{api}/api/v1/openapi.json") is not None


def _location_loaded(webserver: str) -> bool:
    """Whether the webserver has loaded the code location; StackError when it failed to."""
    raw = _get(f"{webserver}/graphql", json.dumps({"query": WORKSPACE_QUERY}).encode())
    if raw is None:
        return False
    entries = json.loads(raw)["data"]["workspaceOrError"]["locationEntries"]
    for entry in entries:
        loaded = entry["locationOrLoadError"] or {}
        if loaded.get("__typename") == "PythonError":
            raise StackError(f"the code location {entry['name']} did not load: {loaded['message']}")
    return bool(entries) and all(entry["loadStatus"] == "LOADED" for entry in entries)


def _drop(prefix: str, profile: dict[str, str], pg: _Postgres, databases: tuple[str, ...]) -> None:
    """The QuestDB tables under `prefix` and the databases, best effort (a stack half up included)."""
    from trading_assets import settings as cfg
    from trading_assets.live.soak.research import environment

    with contextlib.suppress(Exception), environment(**profile):
        settings = cfg.Settings.from_env()
        with cfg.timeseries_store(settings).process_config_and_initialize_cm() as store:
            for table in store.list_tables():
                if table.startswith(prefix):
                    store.drop(table)
    with contextlib.suppress(psycopg.Error), pg.admin() as admin:
        for name in databases:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"
