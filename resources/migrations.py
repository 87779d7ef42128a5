"""Versioned SQL migrations for the catalogs, applied in order and recorded with their checksum.

Files live in `migrations/<dialect>/NNNN_name.sql`, package data of the `migrations` package, found through
`importlib.resources` (so an installed wheel carries them). Each pending file runs in one transaction together
with its row in `schema_migrations`, so a failing file leaves neither a partial change nor a record.
An applied file is never re-run: if its bytes change (checksum drift) or it disappears, the runner
refuses to do anything, because the database would no longer match what the files describe.

The runner is dialect-neutral: it needs a DB-API-like connection in autocommit mode (psycopg with
`autocommit=True`, or DuckDB) and a `Dialect` saying where the files are and how runners serialise.
Files must not contain their own BEGIN/COMMIT: the runner owns the transaction.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any, Protocol

from trading_assets.records import CatalogError

MIGRATIONS_DIR = files("migrations")

_FILE_RE = re.compile(r"(?P<version>[0-9]{4})_(?P<name>[a-z0-9][a-z0-9_]*)\.sql")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    TEXT        PRIMARY KEY,
    name       TEXT        NOT NULL,
    sha256     TEXT        NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""


class MigrationError(CatalogError):
    """A migration file is badly named, changed after it was applied, missing, or failed to apply."""


class SqlResult(Protocol):
    """What the runner reads from `execute`: psycopg's cursor and DuckDB's connection both qualify."""

    def fetchall(self) -> list[Any]: ...


class SqlConnection(Protocol):
    """A connection in autocommit mode whose `execute` takes positional parameters."""

    def execute(self, query: Any, params: Any = ..., /) -> SqlResult: ...


@dataclass(frozen=True)
class Dialect:
    """Where a backend's migration files live and how its SQL differs where the runner cares.

    `lock_sql` runs first in every runner transaction and holds until it ends, so concurrent runners
    take turns; empty where something else already serialises them (DuckDB's exclusive file lock).
    """

    name: str
    placeholder: str
    lock_sql: str = ""


POSTGRES = Dialect(
    name="postgres",
    placeholder="%s",
    lock_sql="SELECT pg_advisory_xact_lock(hashtext('trading_assets.schema_migrations'))",
)
DUCKDB = Dialect(name="duckdb", placeholder="?")


@dataclass(frozen=True)
class Migration:
    """One migration file: `version` is its four-digit prefix, `sha256` the hash of its bytes."""

    version: str
    name: str
    path: Traversable
    sql: str
    sha256: str


def discover_migrations(dialect: Dialect, migrations_dir: Traversable = MIGRATIONS_DIR) -> list[Migration]:
    """Every migration file of `dialect`, in version order; refuses bad names and duplicate versions."""
    folder = migrations_dir / dialect.name
    if not folder.is_dir():
        raise MigrationError(f"{folder}: no migrations folder for dialect {dialect.name!r}")
    by_version: dict[str, Migration] = {}
    # Hidden files (.gitkeep, editor swap files) are not migrations; anything else must be one.
    for path in sorted(p for p in folder.iterdir() if not p.name.startswith(".")):
        match = _FILE_RE.fullmatch(path.name)
        if match is None or not path.is_file():
            raise MigrationError(
                f"{path}: not a migration file; name it NNNN_name.sql (four digits, lowercase name)"
            )
        version = match["version"]
        if version in by_version:
            raise MigrationError(f"{path}: version {version} is also used by {by_version[version].path.name}")
        data = path.read_bytes()
        by_version[version] = Migration(
            version=version,
            name=match["name"],
            path=path,
            sql=data.decode("utf-8"),
            sha256=hashlib.sha256(data).hexdigest(),
        )
    # Versions have a fixed width, so name order (sorted above) is version order.
    return list(by_version.values())


def apply_migrations(
    con: SqlConnection, dialect: Dialect, migrations_dir: Traversable = MIGRATIONS_DIR
) -> list[str]:
    """Apply the pending migrations of `dialect` in order; return the versions applied by this call.

    Each file runs in its own transaction with its `schema_migrations` row. Every transaction first
    takes the dialect's lock and re-reads what is applied, so a concurrent runner's work is seen and
    never repeated, and checks every applied file before anything new runs.
    """
    migrations = discover_migrations(dialect, migrations_dir)
    applied_now: list[str] = []
    while True:
        with _transaction(con):
            if dialect.lock_sql:
                con.execute(dialect.lock_sql)
            con.execute(_CREATE_TABLE)
            rows = con.execute("SELECT version, name, sha256 FROM schema_migrations").fetchall()
            pending = _pending(migrations, {version: (name, sha) for version, name, sha in rows})
            if not pending:
                return applied_now
            migration = pending[0]
            try:
                con.execute(migration.sql)
            except Exception as err:
                raise MigrationError(f"{migration.path}: failed, nothing of it was applied: {err}") from err
            p = dialect.placeholder
            con.execute(
                f"INSERT INTO schema_migrations (version, name, sha256) VALUES ({p}, {p}, {p})",
                (migration.version, migration.name, migration.sha256),
            )
        applied_now.append(migration.version)


@dataclass(frozen=True)
class SchemaStatus:
    """Where a catalog's schema stands against the migrations this code ships."""

    applied: tuple[str, ...]  # versions applied, in order
    pending: tuple[str, ...]  # versions shipped and not applied yet, in order
    expected: str  # the newest version shipped: the schema this code needs

    @property
    def version(self) -> str | None:
        """The newest applied version, or None on a database never migrated."""
        return self.applied[-1] if self.applied else None


def schema_status(
    con: SqlConnection, dialect: Dialect, migrations_dir: Traversable = MIGRATIONS_DIR
) -> SchemaStatus:
    """The applied and pending versions, read without changing anything (an upgrade's dry run); refuses
    checksum drift as `apply_migrations` does. A database whose `schema_migrations` is missing has none."""
    migrations = discover_migrations(dialect, migrations_dir)
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_name = 'schema_migrations' AND table_schema = current_schema() "
        # A DuckDB reader may have other files attached: their tables are listed too.
        "AND table_catalog = current_database()"
    ).fetchall()[0][0]
    rows = con.execute("SELECT version, name, sha256 FROM schema_migrations").fetchall() if exists else []
    applied = {version: (name, sha) for version, name, sha in rows}
    pending = _pending(migrations, applied)
    return SchemaStatus(
        applied=tuple(sorted(applied, key=int)),
        pending=tuple(m.version for m in pending),
        expected=migrations[-1].version if migrations else "",
    )


def _pending(migrations: Sequence[Migration], applied: dict[str, tuple[str, str]]) -> list[Migration]:
    """The migrations not applied yet, after checking that the applied ones still match their files."""
    files = {m.version: m for m in migrations}
    for version, (name, sha256) in sorted(applied.items()):
        migration = files.get(version)
        if migration is None:
            raise MigrationError(f"migration {version}_{name}.sql was applied but its file is missing")
        if (migration.name, migration.sha256) != (name, sha256):
            raise MigrationError(
                f"{migration.path}: changed after it was applied (checksum drift; applied as "
                f"{version}_{name}.sql with sha256 {sha256}); add a new migration instead of editing it"
            )
    pending = [m for m in migrations if m.version not in applied]
    last_applied = max(applied, key=int, default=None)
    # A file numbered below the newest applied one would run after it, out of the order it claims.
    if pending and last_applied is not None and int(pending[0].version) < int(last_applied):
        raise MigrationError(
            f"{pending[0].path}: numbered below the applied migration {last_applied}; renumber it"
        )
    return pending


@contextmanager
def _transaction(con: SqlConnection) -> Iterator[None]:
    # Plain SQL rather than a driver API, so one code path serves every dialect.
    con.execute("BEGIN")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
