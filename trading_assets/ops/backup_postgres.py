"""Postgres databases in a backup: `pg_dump -Fc` and `pg_restore` of Debian's client matching the server,
and per-table checksums read in the same snapshot as the dump.

The dump and the checksums see the same data: a REPEATABLE READ transaction exports its snapshot, pg_dump
runs with `--snapshot`, and the checksums are read in that transaction. Credentials reach the client
programs through their environment (PGPASSWORD, or PGPASSFILE as the caller's environment has it), never
on a command line.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from resources.migrations import POSTGRES, schema_status
from trading_assets.ops.backup_files import BackupError, Progress, TableSums

# Session settings that fix how values render as text, so a checksum does not depend on a server's or a
# role's defaults (TimeZone above all: timestamptz renders in it).
CANONICAL_SESSION = (
    "SET TimeZone = 'UTC'",
    "SET DateStyle = 'ISO, YMD'",
    "SET IntervalStyle = 'postgres'",
    "SET extra_float_digits = 1",
    "SET bytea_output = 'hex'",
)
# Where CREATE and DROP DATABASE are sent from (a database cannot drop itself).
MAINTENANCE_DB = "postgres"
_CLIENTS = Path("/usr/lib/postgresql")


@dataclass(frozen=True)
class PgDatabase:
    """A database on a Postgres server, and how to log in to it."""

    host: str
    port: int
    user: str
    dbname: str
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, prefix: str, db_variable: str, default_db: str) -> PgDatabase:
        """From PGHOST, PGPORT, PGUSER, PGPASSWORD (prefix "PG") or DAGSTER_PG_HOST, ... (prefix
        "DAGSTER_PG_"), the database from `db_variable`; the defaults are the catalog's (settings.py)."""
        env = os.environ
        return cls(
            host=env.get(f"{prefix}HOST", "127.0.0.1"),
            port=int(env.get(f"{prefix}PORT", "5432")),
            user=env.get(f"{prefix}USER", "postgres"),
            dbname=env.get(db_variable, default_db),
            password=env.get(f"{prefix}PASSWORD") or None,
        )

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.host, self.port, self.dbname)

    def __str__(self) -> str:
        return f"{self.dbname} on {self.host}:{self.port}"

    def on(self, dbname: str) -> PgDatabase:
        return PgDatabase(self.host, self.port, self.user, dbname, self.password)

    def connect(self, **kwargs: Any) -> psycopg.Connection:
        conninfo = make_conninfo(
            host=self.host, port=self.port, user=self.user, dbname=self.dbname, password=self.password
        )
        try:
            return psycopg.connect(conninfo, connect_timeout=10, **kwargs)
        except psycopg.OperationalError as err:
            raise BackupError(f"postgres {self}: cannot connect: {_first_line(err)}") from None

    def client_env(self) -> dict[str, str]:
        """The environment of pg_dump and pg_restore: the caller's, with this database's login."""
        env = {k: v for k, v in os.environ.items() if k != "PGPASSWORD"}
        env.update(PGHOST=self.host, PGPORT=str(self.port), PGUSER=self.user, PGDATABASE=self.dbname)
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        return env


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def client(program: str, server_major: int) -> Path:
    """Debian's `program` (pg_dump, pg_restore) of the server's major version, else the oldest newer one
    installed (a client older than the server refuses to dump it)."""
    installed = sorted(
        (int(p.parts[-3]), p) for p in _CLIENTS.glob(f"*/bin/{program}") if p.parts[-3].isdigit()
    )
    for major, path in installed:
        if major >= server_major:
            return path
    found = shutil.which(program)
    if found is None:
        raise BackupError(
            f"no {program} for Postgres {server_major}: install Debian's postgresql-client-{server_major}"
        )
    return Path(found)


def server_version(con: psycopg.Connection) -> tuple[str, int]:
    """The server's version text and its major version (from the connection's start, no query)."""
    number = con.info.server_version
    return (con.info.parameter_status("server_version") or str(number), number // 10000)


def table_sums(con: psycopg.Connection) -> TableSums:
    """Rows and checksum of every table outside the system schemas, as `schema.table`: the table's rows
    as COPY renders them in text, sorted by that text (byte order), hashed with SHA-256."""
    for statement in CANONICAL_SESSION:
        con.execute(statement)
    tables = con.execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' ORDER BY 1, 2"
    ).fetchall()
    sums: TableSums = {}
    for schema, table in tables:
        query = sql.SQL('COPY (SELECT t.* FROM {} t ORDER BY t::text COLLATE "C") TO STDOUT').format(
            sql.Identifier(schema, table)
        )
        digest, rows = hashlib.sha256(), 0
        with con.cursor().copy(query) as copy:
            for block in copy:
                data = bytes(block)
                digest.update(data)
                rows += data.count(b"\n")  # text COPY escapes newlines inside values
        sums[f"{schema}.{table}"] = {"rows": rows, "sha256": digest.hexdigest()}
    return sums


@dataclass(frozen=True)
class Dump:
    """What the manifest says of one dumped database."""

    server_version: str
    tables: TableSums
    schema_versions: tuple[str, ...] | None  # the catalog's applied migrations, where it holds the catalog


def dump(db: PgDatabase, out: Path, progress: Progress, catalog_schema: str | None) -> Dump:
    """`pg_dump -Fc` of the whole database into `out`, with the checksums of its tables in the same
    snapshot; `catalog_schema` names the schema whose applied migrations are recorded."""
    with db.connect() as con:
        version, major = server_version(con)
        con.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        con.read_only = True
        row = con.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None
        with progress.step(f"postgres {db}: pg_dump"):
            _run(
                [str(client("pg_dump", major)), "-Fc", f"--snapshot={row[0]}", "-f", str(out)],
                db,
                "pg_dump",
            )
        with progress.step(f"postgres {db}: table checksums"):
            tables = table_sums(con)
        applied = None
        if catalog_schema is not None:
            con.execute("SELECT set_config('search_path', %s, true)", (catalog_schema,))
            applied = schema_status(con, POSTGRES).applied
        con.rollback()
    return Dump(server_version=version, tables=tables, schema_versions=applied)


def _run(command: list[str], db: PgDatabase, name: str) -> None:
    done = subprocess.run(
        command, env=db.client_env(), capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
    )
    if done.returncode:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise BackupError(
            f"postgres {db}: {name} failed: {detail[0] if detail else f'exit {done.returncode}'}"
        )


def has_tables(db: PgDatabase) -> bool | None:
    """Whether the database holds any table outside the system schemas; None where it does not exist."""
    with db.on(MAINTENANCE_DB).connect(autocommit=True) as con:
        exists = con.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db.dbname,)).fetchone()
    if not exists:
        return None
    with db.connect() as con:
        found = con.execute(
            "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S') "
            "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' "
            "LIMIT 1"
        ).fetchone()
    return found is not None


def create_fresh(db: PgDatabase, force: bool) -> None:
    """Make `db` an empty database: created where missing, kept where empty, dropped and created anew
    where it holds tables and `force` says so."""
    state = has_tables(db)
    if state and not force:
        raise BackupError(f"postgres {db} is not empty; restore into a fresh database, or pass --force")
    if state is False:
        return
    with db.on(MAINTENANCE_DB).connect(autocommit=True) as con:
        name = sql.Identifier(db.dbname)
        if state:
            con.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(name))
        # template0: the dump recreates whatever template1 would add, so starting from it avoids clashes.
        con.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(name))


def restore(dump_file: Path, db: PgDatabase, progress: Progress) -> None:
    """pg_restore into the empty database `db`, all or nothing (one transaction, stop at the first
    error); objects are owned by the restoring user."""
    with db.connect() as con:
        _, major = server_version(con)
    with progress.step(f"postgres {db}: pg_restore"):
        _run(
            [
                str(client("pg_restore", major)),
                "--exit-on-error",
                "--single-transaction",
                "--no-owner",
                "-d",
                db.dbname,
                str(dump_file),
            ],
            db,
            "pg_restore",
        )


@contextmanager
def scratch_database(server: PgDatabase) -> Iterator[PgDatabase]:
    """A throwaway empty database on `server`, dropped on the way out."""
    scratch = server.on(f"trading_verify_{uuid.uuid4().hex[:12]}")
    create_fresh(scratch, force=False)
    try:
        yield scratch
    finally:
        with server.on(MAINTENANCE_DB).connect(autocommit=True) as con:
            con.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch.dbname))
            )


def dump_name(roles: tuple[str, ...]) -> str:
    """The dump's file in the backup: postgres/catalog.dump, postgres/dagster.dump, or
    postgres/catalog+dagster.dump where both live in one database."""
    return f"postgres/{'+'.join(roles)}.dump"
