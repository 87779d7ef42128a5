"""The migration runner against real Postgres (a throwaway schema) and real DuckDB files."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from resources import duckdb_file
from resources.migrations import (
    DUCKDB,
    POSTGRES,
    Dialect,
    MigrationError,
    SchemaStatus,
    SqlConnection,
    apply_migrations,
    discover_migrations,
    schema_status,
)


@dataclass
class Backend:
    """One database to migrate, with a tmp migrations folder for its dialect."""

    dialect: Dialect
    connect: Callable[[], AbstractContextManager[SqlConnection]]
    migrations_dir: Path

    def write(self, filename: str, text: str) -> Path:
        """Add (or overwrite) a migration file."""
        path = self.migrations_dir / self.dialect.name / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def migrate(self) -> list[str]:
        with self.connect() as con:
            return apply_migrations(con, self.dialect, self.migrations_dir)

    def status(self) -> SchemaStatus:
        with self.connect() as con:
            return schema_status(con, self.dialect, self.migrations_dir)

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        with self.connect() as con:
            return [tuple(row) for row in con.execute(query).fetchall()]

    def tables(self) -> set[str]:
        """Tables in the schema the runner works in (information_schema reads the same in both)."""
        query = "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        return {name for (name,) in self.rows(query)}


@pytest.fixture(params=["postgres", "duckdb"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "postgres":
        pg_connect: Callable[[], psycopg.Connection] = request.getfixturevalue("pg_connect")
        return Backend(POSTGRES, pg_connect, tmp_path / "migrations")

    @contextmanager
    def connect_duckdb() -> Iterator[SqlConnection]:
        with duckdb_file.connect(tmp_path / "catalog.duckdb", write=True) as con:
            yield con

    return Backend(DUCKDB, connect_duckdb, tmp_path / "migrations")


def test_applies_pending_files_in_version_order(backend: Backend) -> None:
    # Written newest first: the order comes from the version numbers, not from when files appeared.
    backend.write("0010_third.sql", "INSERT INTO t VALUES (10);")
    backend.write("0002_second.sql", "INSERT INTO t VALUES (2);")
    backend.write("0001_first.sql", "CREATE TABLE t (x INTEGER);")

    assert backend.migrate() == ["0001", "0002", "0010"]
    assert backend.rows("SELECT x FROM t ORDER BY x") == [(2,), (10,)]


def test_records_version_name_and_sha256_of_each_file(backend: Backend) -> None:
    path = backend.write("0001_first.sql", "CREATE TABLE t (x INTEGER);\n")
    backend.migrate()

    recorded = backend.rows("SELECT version, name, sha256 FROM schema_migrations")
    assert recorded == [("0001", "first", hashlib.sha256(path.read_bytes()).hexdigest())]


def test_a_second_run_applies_only_files_added_since(backend: Backend) -> None:
    backend.write("0001_first.sql", "CREATE TABLE t (x INTEGER);")
    backend.migrate()
    backend.write("0002_second.sql", "INSERT INTO t VALUES (2);")

    assert backend.migrate() == ["0002"]
    assert backend.migrate() == []
    assert backend.rows("SELECT x FROM t") == [(2,)]


def test_the_status_of_a_database_never_migrated_is_every_file_pending(backend: Backend) -> None:
    backend.write("0001_first.sql", "CREATE TABLE t (x INTEGER);")
    backend.write("0002_second.sql", "INSERT INTO t VALUES (2);")

    status = backend.status()
    assert (status.applied, status.pending, status.expected, status.version) == (
        (),
        ("0001", "0002"),
        "0002",
        None,
    )
    assert "schema_migrations" not in backend.tables()  # reading the status created nothing


def test_the_status_after_an_upgrade_names_only_the_new_files_pending(backend: Backend) -> None:
    backend.write("0001_first.sql", "CREATE TABLE t (x INTEGER);")
    backend.migrate()
    backend.write("0002_second.sql", "INSERT INTO t VALUES (2);")

    status = backend.status()
    assert (status.version, status.pending, status.expected) == ("0001", ("0002",), "0002")
    assert backend.rows("SELECT x FROM t") == []  # nothing applied by asking


def test_the_status_refuses_checksum_drift_as_the_runner_does(backend: Backend) -> None:
    backend.write("0001_first.sql", "CREATE TABLE t (x INTEGER);")
    backend.migrate()
    backend.write("0001_first.sql", "CREATE TABLE t (x BIGINT);")

    with pytest.raises(MigrationError, match=r"0001_first\.sql: changed after it was applied"):
        backend.status()


def test_a_changed_applied_file_is_refused_before_anything_runs(backend: Backend) -> None:
    backend.write("0001_first.sql", "CREATE TABLE t (x INTEGER);")
    backend.migrate()
    backend.write("0001_first.sql", "CREATE TABLE t (x BIGINT);")
    backend.write("0002_second.sql", "CREATE TABLE u (x INTEGER);")

    with pytest.raises(MigrationError, match=r"0001_first\.sql: changed after it was applied"):
        backend.migrate()
    assert "u" not in backend.tables()


def test_a_file_numbered_below_the_newest_applied_one_is_refused(backend: Backend) -> None:
    backend.write("0002_second.sql", "CREATE TABLE u (x INTEGER);")
    backend.migrate()
    backend.write("0001_first.sql", "CREATE TABLE t (x INTEGER);")

    with pytest.raises(MigrationError, match=r"0001_first\.sql: numbered below the applied migration 0002"):
        backend.migrate()
    assert "t" not in backend.tables()


def test_an_applied_version_without_its_file_is_refused(backend: Backend) -> None:
    first = backend.write("0001_first.sql", "CREATE TABLE t (x INTEGER);")
    backend.migrate()
    first.unlink()
    backend.write("0002_second.sql", "CREATE TABLE u (x INTEGER);")

    with pytest.raises(MigrationError, match=r"0001_first\.sql was applied but its file is missing"):
        backend.migrate()
    assert "u" not in backend.tables()


def test_a_failing_file_leaves_no_partial_change_and_no_record(backend: Backend) -> None:
    backend.write("0001_first.sql", "CREATE TABLE t (x INTEGER);")
    # The second statement fails in both dialects: the text is not an integer.
    backend.write("0002_broken.sql", "CREATE TABLE u (x INTEGER);\nINSERT INTO t VALUES ('not a number');")

    with pytest.raises(MigrationError, match=r"0002_broken\.sql: failed"):
        backend.migrate()
    assert "u" not in backend.tables()
    assert backend.rows("SELECT version FROM schema_migrations") == [("0001",)]


@pytest.mark.parametrize(
    "filename",
    ["1_first.sql", "00001_first.sql", "0001-first.sql", "0001_First.sql", "0001_first.txt", "notes.md"],
)
def test_a_badly_named_file_is_refused(tmp_path: Path, filename: str) -> None:
    (tmp_path / "postgres").mkdir()
    (tmp_path / "postgres" / filename).write_text("SELECT 1;")

    with pytest.raises(MigrationError, match="not a migration file"):
        discover_migrations(POSTGRES, tmp_path)


def test_two_files_with_one_version_are_refused(tmp_path: Path) -> None:
    (tmp_path / "postgres").mkdir()
    (tmp_path / "postgres" / "0001_first.sql").write_text("SELECT 1;")
    (tmp_path / "postgres" / "0001_other.sql").write_text("SELECT 1;")

    with pytest.raises(MigrationError, match=r"version 0001 is also used by 0001_first\.sql"):
        discover_migrations(POSTGRES, tmp_path)


def test_the_repository_has_the_same_migrations_for_postgres_and_duckdb() -> None:
    def listed(dialect: Dialect) -> list[tuple[str, str]]:
        return [(m.version, m.name) for m in discover_migrations(dialect)]

    assert listed(POSTGRES) == listed(DUCKDB)
    assert listed(POSTGRES)[0] == ("0001", "datasets")


def test_concurrent_runners_apply_each_file_exactly_once(
    pg_connect: Callable[[], psycopg.Connection], tmp_path: Path
) -> None:
    postgres = Backend(POSTGRES, pg_connect, tmp_path / "migrations")
    # The sleep holds the first runner inside its transaction while the second one starts.
    postgres.write("0001_log.sql", "CREATE TABLE log (version TEXT); SELECT pg_sleep(0.3);")
    for version in ("0002", "0003"):
        postgres.write(f"{version}_entry.sql", f"INSERT INTO log VALUES ('{version}');")
    connections = [pg_connect(), pg_connect()]
    start = threading.Barrier(len(connections))
    applied: list[list[str]] = []
    errors: list[BaseException] = []

    def run(con: psycopg.Connection) -> None:
        start.wait()
        try:
            applied.append(apply_migrations(con, POSTGRES, postgres.migrations_dir))
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=run, args=(con,)) for con in connections]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(v for versions in applied for v in versions) == ["0001", "0002", "0003"]
    log = connections[0].execute("SELECT version FROM log ORDER BY version").fetchall()
    assert log == [("0002",), ("0003",)]
