"""What differs between the catalog's two databases, and the session every SQL step runs on.

The catalog's SQL is written once, in psycopg's paramstyle (`%s`). A dialect adds only how a call gets its
connection and transaction, the lock that serialises numbering within a dataset, the bulk insert of trades,
which driver errors mean a refused row, the SQL's placeholder, and what runs before the migrations; the way
Dagster's PostgresRunStorage adds only connect/upgrade/upsert to SqlRunStorage.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

import duckdb
import psycopg
import pyarrow as pa
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from resources import duckdb_file, migrations
from trading_assets.records import CatalogError, CatalogUnavailable, SimulationTrade

T = TypeVar("T")

# simulation_trades' columns in table order: the sim's name, then SimulationTrade's fields. The rows
# handed to `insert_trades` are tuples in this order.
TRADE_COLUMNS = ("simulation", *(field.name for field in fields(SimulationTrade)))


class Cursor(Protocol):
    """What the SQL steps read from `execute`: psycopg's cursor and DuckDB's connection qualify."""

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


@dataclass(frozen=True)
class Session:
    """One catalog call's connection and its dialect: what every SQL step runs on."""

    con: Any
    dialect: Dialect

    def execute(self, query: str, params: Sequence[Any] | None = None) -> Cursor:
        return self.con.execute(self.dialect.sql(query), params)

    def one(self, query: str, params: Sequence[Any] | None = None) -> Any:
        """The first row of the result, or None."""
        return self.execute(query, params).fetchone()

    def all(self, query: str, params: Sequence[Any] | None = None) -> list[Any]:
        return self.execute(query, params).fetchall()

    @contextmanager
    def refusing(self, owner: str) -> Iterator[None]:
        """Turn the database refusing a row of `owner` (a constraint or data error) into a CatalogError."""
        try:
            yield
        except self.dialect.refusals as err:
            raise CatalogError(f"{owner} refused by the catalog: {err}") from err

    def lock_numbering(self, table: str, dataset: str) -> None:
        """Hold the numbering of `dataset`'s rows in `table` until the transaction ends, so concurrent
        registrations take turns and each reads the numbers the others committed."""
        self.dialect.lock_numbering(self.con, table, dataset)

    def insert_trades(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert simulation_trades rows (TRADE_COLUMNS order) in one bulk write."""
        self.dialect.insert_trades(self.con, rows)


class Dialect(ABC):
    """How one database runs the catalog's SQL."""

    migrations: ClassVar[migrations.Dialect]
    # The driver's errors for a row the database refuses (constraint or data errors).
    refusals: ClassVar[tuple[type[Exception], ...]]

    @abstractmethod
    def run(self, op: Callable[[Session], T], *, write: bool, transaction: bool) -> T:
        """`op` on a connection: for one statement (autocommit), or inside one transaction that commits
        all of its writes or none. `write` says whether a call without a transaction writes."""

    @abstractmethod
    def lock_numbering(self, con: Any, table: str, dataset: str) -> None: ...

    @abstractmethod
    def insert_trades(self, con: Any, rows: Sequence[tuple[Any, ...]]) -> None: ...

    def sql(self, query: str) -> str:
        """`query` in the driver's paramstyle."""
        return query

    @abstractmethod
    def prepare(self, con: Any) -> None:
        """Create what must exist before the migrations run."""

    def migrate(self) -> list[str]:
        """Prepare the database and apply pending migrations; return the versions applied."""

        def migrate(session: Session) -> list[str]:
            self.prepare(session.con)
            return migrations.apply_migrations(session.con, self.migrations)

        return self.run(migrate, write=True, transaction=False)

    def schema_status(self) -> migrations.SchemaStatus:
        """Applied and pending migrations, read without applying any."""
        return self.run(
            lambda session: migrations.schema_status(session.con, self.migrations),
            write=False,
            transaction=False,
        )


# simulation_trades' column types, in TRADE_COLUMNS order, for the Arrow table of DuckDB's bulk insert.
_TRADE_SCHEMA = pa.schema(
    zip(
        TRADE_COLUMNS,
        [pa.string(), pa.int32(), pa.int64(), pa.int64()]
        + [pa.timestamp("us", tz="UTC")] * 2
        + [pa.int16()]
        + [pa.float64()] * 6
        + [pa.int64(), pa.string()],
        strict=True,
    )
)
# The name the Arrow table of trades is registered under while it is inserted.
_TRADES_VIEW = "simulation_trades_input"


@dataclass(frozen=True)
class DuckDBDialect(Dialect):
    """One DuckDB file, opened per call under duckdb_file's lock: shared to read, exclusive to write."""

    migrations = migrations.DUCKDB
    refusals = (duckdb.IntegrityError, duckdb.DataError)

    path: Path

    def run(self, op: Callable[[Session], T], *, write: bool, transaction: bool) -> T:
        with duckdb_file.connect(self.path, write=write or transaction, small=True) as con:
            if not transaction:
                return op(Session(con, self))
            con.begin()
            try:
                result = op(Session(con, self))
            except BaseException:
                con.rollback()
                raise
            con.commit()
            return result

    def lock_numbering(self, con: Any, table: str, dataset: str) -> None:
        """Nothing to take: every writer already holds the file's exclusive lock."""

    def prepare(self, con: Any) -> None:
        """Nothing to create: connecting creates the file."""

    def insert_trades(self, con: Any, rows: Sequence[tuple[Any, ...]]) -> None:
        """One INSERT from an Arrow table: Arrow converts aware datetimes to UTC instants and keeps every
        float's bits."""
        columns = zip(*rows, strict=True)
        table = pa.Table.from_arrays(
            [pa.array(values, field.type) for values, field in zip(columns, _TRADE_SCHEMA, strict=True)],
            schema=_TRADE_SCHEMA,
        )
        con.register(_TRADES_VIEW, table)
        try:
            con.execute(f"INSERT INTO simulation_trades SELECT * FROM {_TRADES_VIEW}")
        finally:
            con.unregister(_TRADES_VIEW)

    def sql(self, query: str) -> str:
        # The catalog's SQL has no literal %: psycopg would need it written %%.
        return query.replace("%s", "?")


# Binary COPY: the fastest bulk path, and floats travel as their 8 bytes, so they round-trip exactly.
_COPY_TRADES = f"COPY simulation_trades ({', '.join(TRADE_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
# The Postgres types of TRADE_COLUMNS, in order.
_TRADE_TYPES = [
    "text",
    "int4",
    "int8",
    "int8",
    "timestamptz",
    "timestamptz",
    "int2",
    *["float8"] * 6,
    "int8",
    "text",
]


def _why_unreachable(pool: ConnectionPool) -> str:
    """The server's address and why one direct connection fails now (the pool only says it timed out);
    never the password."""
    params = conninfo_to_dict(pool.conninfo)
    where = f"{params.get('host', 'localhost')}:{params.get('port', 5432)}/{params.get('dbname', '')}"
    try:
        with psycopg.connect(pool.conninfo, connect_timeout=5):
            return f"{where} answers now, but the pool had no free connection"
    except psycopg.Error as err:
        return f"{where}: {' '.join(line.strip() for line in str(err).splitlines()) or type(err).__name__}"


@dataclass(frozen=True)
class PostgresDialect(Dialect):
    """Postgres through a connection pool whose connections work in `schema`; calls that lose their
    connection are retried with exponential backoff. Every call is one statement, one transaction or a
    migration run, so a retry repeats it whole. (Only when the connection drops after a COMMIT was sent
    does a retry repeat work that was done: a run registered twice, an attempt counted twice.)"""

    migrations = migrations.POSTGRES
    refusals = (psycopg.IntegrityError, psycopg.DataError)

    pool: ConnectionPool
    schema: str
    pool_timeout_s: float
    retry_attempts: int
    retry_delay_s: float

    def run(self, op: Callable[[Session], T], *, write: bool, transaction: bool) -> T:
        last_error: psycopg.OperationalError | None = None
        for attempt in range(self.retry_attempts):
            if attempt:
                time.sleep(self.retry_delay_s * 2 ** (attempt - 1))
            try:
                with self.pool.connection() as conn:
                    if not transaction:
                        return op(Session(conn, self))
                    with conn.transaction():
                        return op(Session(conn, self))
            except PoolTimeout as err:
                # The pool has already been reconnecting for pool_timeout_s; waiting more will not help.
                raise CatalogUnavailable(
                    f"no Postgres connection within {self.pool_timeout_s}s: {_why_unreachable(self.pool)}"
                ) from err
            except psycopg.OperationalError as err:
                last_error = err
        raise CatalogUnavailable(
            f"Postgres catalog failed after {self.retry_attempts} attempts: {last_error}"
        ) from last_error

    def lock_numbering(self, con: Any, table: str, dataset: str) -> None:
        """A transaction-level advisory lock per schema, table and dataset: other datasets (and other
        catalogs on the server) do not wait."""
        con.execute(
            "SELECT pg_advisory_xact_lock(hashtext(current_schema() || %s::text || %s::text))",
            [f".{table}.", dataset],
        )

    def insert_trades(self, con: Any, rows: Sequence[tuple[Any, ...]]) -> None:
        with con.cursor() as cursor, cursor.copy(_COPY_TRADES) as copy:
            copy.set_types(_TRADE_TYPES)
            for row in rows:
                copy.write_row(row)

    def prepare(self, con: Any) -> None:
        """Create the schema if missing, under the runners' lock: two catalogs creating it at once would
        collide."""
        with con.transaction():
            con.execute(self.migrations.lock_sql)
            if con.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [self.schema]).fetchone() is None:
                con.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.schema)))
