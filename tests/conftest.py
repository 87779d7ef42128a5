"""Fixtures for integration tests against a real Postgres and real DuckDB files.

Postgres comes from TRADING_ASSETS_TEST_PG (a libpq conninfo), by default the local test database.
Every test that touches Postgres works in its own throwaway schema, dropped afterwards, so runs on a
shared server never see each other's tables.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from resources.duckdb_file import file_lock
from trading_assets.live.soak.research import Research, build_research, open_research

PG_CONNINFO_ENV = "TRADING_ASSETS_TEST_PG"
# `make test` sets it (from `scripts/services.sh env`) after starting the services: then a server that does
# not answer is a failure, never a skip.
SERVICES_REQUIRED = os.environ.get("TRADING_TEST_SERVICES") == "required"
DEFAULT_PG_CONNINFO = "host=127.0.0.1 port=5432 user=postgres dbname=test"
T = TypeVar("T")
# How long a worker waits for another to build what they share (pytest's own timeout may end it sooner).
BUILD_WAIT_S = 900.0


# The slowest files first, slowest at the top (seconds on one worker, from `--durations` of `make test`).
# `make test` runs files side by side (`-n 3 --dist loadfile --no-loadscope-reorder`), each file on one
# worker, handed out in collection order as workers free up: started first, the long files run beside the
# many short ones instead of after them, so no worker is left alone with a three-minute file at the end.
# (pytest-xdist's own reordering, by number of tests, hands out the one-test files that take longest last.)
# Files not listed follow in their usual order; a file that becomes slow belongs in this list.
SLOW_FILES_FIRST = (
    "tests/trading/test_soak.py",  # 210 s
    "tests/browser/test_walkthrough.py",  # 180 s
    "tests/trading/test_end_to_end.py",  # 75 s
    "tests/integration/test_ingest_processes.py",  # 70 s
    "tests/live/test_production_profile.py",  # 60 s
    "tests/ops/test_backup.py",  # 60 s
    "tests/ops/test_loadtest.py",  # 90 s
    "tests/trading/test_recorder.py",  # 55 s
    "tests/integration/test_celery_gpu_queue.py",  # 50 s
    "tests/trading/test_supervisor.py",  # 50 s
    "tests/trading/test_restarts.py",  # 45 s
    "tests/api/test_live_lost_link.py",  # 40 s
    "tests/api/test_api_fuzz.py",  # 40 s
    "tests/trading/test_recorder_spool.py",  # 40 s
    "tests/trading/test_eviction.py",  # 40 s
    "tests/trading/test_executor.py",  # 35 s
    "tests/api/test_api.py",  # 30 s
    "tests/definitions/test_pipeline_shapes.py",  # 30 s
    "tests/api/test_live_dashboard.py",  # 30 s
    "tests/trading/test_executor_venue.py",  # 25 s
    "tests/trading/test_postgres_restart.py",  # 25 s
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: i for i, path in enumerate(SLOW_FILES_FIRST)}
    # A stable sort: each file's tests stay together and in their order.
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


@contextmanager
def _built_once(
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    build: Callable[[Path], T],
    open_: Callable[[Path], T],
    release: Callable[[T], None] | None = None,
) -> Iterator[T]:
    """`build(root)` once per test session. Under pytest-xdist the first worker to ask builds it in a folder
    the workers share, under a file lock, and the others `open_(root)` what it built; `release` (what lives
    outside the folder: databases, tables) is called by the last worker done with it. The folder stays, for
    pytest to remove with its temporary folders."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        made = build(tmp_path_factory.mktemp(name))
        try:
            yield made
        finally:
            if release is not None:
                release(made)
        return
    shared = tmp_path_factory.getbasetemp().parent  # the run's folder, above each worker's own
    root, users, lock = shared / name, shared / f"{name}.users", shared / f"{name}.lock"
    with file_lock(lock, exclusive=True, timeout_s=BUILD_WAIT_S):
        if users.exists():
            made, count = open_(root), int(users.read_text())
        else:
            # A worker whose build failed (or the last user's release) left it: it is nobody's now.
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir()
            made, count = build(root), 0
        users.write_text(str(count + 1))
    try:
        yield made
    finally:
        if release is not None:
            with file_lock(lock, exclusive=True, timeout_s=BUILD_WAIT_S):
                count = int(users.read_text()) - 1
                if count:
                    users.write_text(str(count))
                else:
                    users.unlink()
                    release(made)


@pytest.fixture(scope="session")
def built_once(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[..., AbstractContextManager[Any]]:
    """`with built_once(name, build, open_, release=None) as made:` what `build(root)` makes, built once per
    test session however many pytest-xdist workers use it (see `_built_once`)."""

    def once(
        name: str,
        build: Callable[[Path], T],
        open_: Callable[[Path], T],
        release: Callable[[T], None] | None = None,
    ) -> AbstractContextManager[T]:
        return _built_once(tmp_path_factory, name, build, open_, release)

    return once


@pytest.fixture(scope="session")
def research(built_once: Callable[..., AbstractContextManager[Any]]) -> Iterator[Research]:
    """The small research pipeline of the live tests (tests/trading/research_setup.py), built once per test
    session (`built_once`: under `make test` by the first pytest-xdist worker to need it, while the others
    wait) and shared by tests/trading and tests/definitions. Read only, as the workers all open its files:
    every test that writes copies its catalog first. Session scope, not package: under `--dist loadfile` a
    worker runs files of several packages in turn, and a package fixture is rebuilt each time the worker
    comes back to its package."""
    with built_once("research", build_research, open_research) as made:
        yield made


@pytest.fixture(scope="session")
def service_missing() -> Callable[[str], None]:
    """Skips a test whose server is not there, or fails it where the services are required."""

    def missing(reason: str) -> None:
        if SERVICES_REQUIRED:
            pytest.fail(f"{reason} (TRADING_TEST_SERVICES=required: `scripts/services.sh up` starts it)")
        pytest.skip(reason)

    return missing


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The embedded default's data folder (TRADING_DATA_DIR) in tmp_path, and the working directory there, for
    tests of the command line: whatever it writes stays out of ./data, in DuckDB whatever the shell says."""
    monkeypatch.setenv("TRADING_DATA_DIR", str(tmp_path / "data"))
    for backend in ("TRADING_TIMESERIES", "TRADING_CATALOG"):
        monkeypatch.delenv(backend, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "data"


@pytest.fixture(scope="session")
def pg_conninfo() -> str:
    """The test server's conninfo. Postgres runs on every machine of this project (and .ci/run starts it),
    so a server that does not answer fails the tests instead of skipping them."""
    conninfo = os.environ.get(PG_CONNINFO_ENV, DEFAULT_PG_CONNINFO)
    try:
        with psycopg.connect(conninfo, connect_timeout=5):
            pass
    except psycopg.OperationalError as err:
        pytest.fail(f"no Postgres at {conninfo!r} (set {PG_CONNINFO_ENV}): {err}")
    return conninfo


@pytest.fixture
def pg_settings(pg_conninfo: str) -> dict[str, Any]:
    """The conninfo as PostgresCatalog fields (host, port, user, password, dbname)."""
    params = conninfo_to_dict(pg_conninfo)
    return {
        "host": params.get("host", "localhost"),
        "port": int(params.get("port", 5432)),
        "user": params.get("user", "postgres"),
        "password": params.get("password"),
        "dbname": params.get("dbname", "postgres"),
    }


@pytest.fixture
def pg_admin(pg_conninfo: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection outside the test's schema, for setup and inspection."""
    with psycopg.connect(pg_conninfo, autocommit=True) as conn:
        yield conn


@pytest.fixture
def dagster_db(pg_admin: psycopg.Connection) -> Iterator[str]:
    """A fresh Postgres database for a Dagster instance's storage, dropped afterwards."""
    name = f"dagster_{uuid.uuid4().hex[:12]}"
    pg_admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield name
    pg_admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def pg_schema_name(pg_admin: psycopg.Connection) -> Iterator[str]:
    """A unique schema name that does not exist yet; whatever is created under it is dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    yield name
    pg_admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def pg_schema(pg_admin: psycopg.Connection, pg_schema_name: str) -> str:
    """A fresh, empty schema, dropped after the test."""
    pg_admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(pg_schema_name)))
    return pg_schema_name


@pytest.fixture
def pg_connect(pg_conninfo: str, pg_schema: str) -> Iterator[Callable[[], psycopg.Connection]]:
    """Opens autocommit connections working in `pg_schema`, as the migration runner expects them."""
    opened: list[psycopg.Connection] = []

    def connect() -> psycopg.Connection:
        conn = psycopg.connect(pg_conninfo, autocommit=True, options=f"-c search_path={pg_schema}")
        opened.append(conn)
        return conn

    yield connect
    for conn in opened:
        conn.close()
