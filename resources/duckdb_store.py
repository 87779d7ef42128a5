"""`DuckDBStore`: the embedded time-series store, one DuckDB file under the data directory."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pyarrow as pa

from resources.duckdb_file import connect
from resources.timeseries import TIMESTAMP_COLUMN, StoreError, TableSchema, time_window
from trading_assets import naming

# Memory DuckDB may use while streaming a table in ts order (iter_batches); the rest of a sort spills to disk.
STREAM_MEMORY_LIMIT = "256MB"

_SQL_TYPES = {
    "double": "DOUBLE",
    "long": "BIGINT",
    "symbol": "VARCHAR",
    "string": "VARCHAR",
    "boolean": "BOOLEAN",
    "timestamp": "TIMESTAMPTZ",
}


def create_table_sql(name: str, schema: TableSchema) -> str:
    return _create_sql(naming.quote(naming.table_name(name)), schema)


def _create_sql(quoted: str, schema: TableSchema) -> str:
    cols = [f"{TIMESTAMP_COLUMN} TIMESTAMPTZ NOT NULL"]
    cols += [f"{naming.quote(n)} {_SQL_TYPES[t]}" for n, t in schema.columns]
    return f"CREATE TABLE IF NOT EXISTS {quoted} ({', '.join(cols)})"


class DuckDBStore(dg.ConfigurableResource):
    """Time-series tables in one embedded DuckDB file (the default when no QuestDB is configured).

    Each call opens the file for one operation under an OS lock (shared for reads, exclusive for
    writes), so steps in separate processes queue instead of failing on DuckDB's single-writer lock.
    A write is one transaction: it either fully replaces its time window or leaves the table untouched.
    """

    path: str
    lock_timeout_s: float = 300.0

    def _file(self) -> Path:
        return Path(self.path)

    def ensure_table(self, name: str, schema: TableSchema) -> None:
        with connect(self._file(), write=True, timeout_s=self.lock_timeout_s) as con:
            self._ensure(con, name, schema)

    def write(self, name: str, data: pa.Table, schema: TableSchema) -> int:
        naming.table_name(name)
        rows = _conform(data, schema, name)
        window = time_window(rows)
        table = naming.quote(name)
        with self._transaction() as con, _incoming(con, rows):
            self._ensure(con, name, schema)
            if window is not None:
                self._delete_window(con, table, schema, window)
            _insert(con, table, rows)
        return rows.num_rows

    def replace(self, name: str, data: pa.Table, schema: TableSchema) -> int:
        rows = self.stage(name, data, schema)
        self.publish(name)
        return rows

    def stage(self, name: str, data: pa.Table, schema: TableSchema) -> int:
        staging = naming.quote(naming.staging_table(name))
        rows = _conform(data, schema, name)
        with self._transaction() as con, _incoming(con, rows):
            if max(column.num_chunks for column in rows.columns) > 1:
                # Several threads write row groups that are then rewritten (at close, and again after
                # publish's rename: twice the time, twice the file) unless each input batch ends on a row
                # group boundary. One batch does; many (Arrow's CSV blocks) do not: one thread, then.
                con.execute("SET threads = 1")
            con.execute(f"DROP TABLE IF EXISTS {staging}")
            con.execute(_create_sql(staging, schema))
            _insert(con, staging, rows)
        return rows.num_rows

    def publish(self, name: str) -> bool:
        table, staging = naming.quote(naming.table_name(name)), naming.staging_table(name)
        with self._transaction() as con:
            if not _exists(con, staging):
                return False
            # One transaction: a reader sees the old table or the new one, never none.
            con.execute(f"DROP TABLE IF EXISTS {table}")
            con.execute(f"ALTER TABLE {naming.quote(staging)} RENAME TO {table}")
        return True

    def read(
        self,
        name: str,
        start: datetime | None = None,
        end: datetime | None = None,
        columns: Sequence[str] | None = None,
    ) -> pa.Table:
        with connect(self._file(), write=False, timeout_s=self.lock_timeout_s) as con:
            return self._select(con, name, start, end, columns).to_arrow_table()

    def iter_batches(
        self,
        name: str,
        start: datetime | None = None,
        end: datetime | None = None,
        columns: Sequence[str] | None = None,
        batch_rows: int = 1_000_000,
    ) -> Iterator[pa.RecordBatch]:
        # The shared lock is held while the caller consumes the batches; writers wait until it is done.
        with (
            connect(self._file(), write=False, timeout_s=self.lock_timeout_s) as con,
            tempfile.TemporaryDirectory(prefix="duckdb-spill-", dir=self._file().parent) as spill,
        ):
            # ORDER BY ts sorts the whole selection before the first batch: bounded memory makes DuckDB
            # spill the sort to disk instead, so a stream's memory does not grow with the table.
            con.execute(f"SET memory_limit = '{STREAM_MEMORY_LIMIT}'")
            con.execute("SET temp_directory = $dir", {"dir": spill})
            reader = self._select(con, name, start, end, columns).to_arrow_reader(batch_rows)
            yield from reader

    def last_ts(self, name: str) -> datetime | None:
        table = naming.table_name(name)
        if not self._file().exists():
            return None
        with connect(self._file(), write=False, timeout_s=self.lock_timeout_s) as con:
            if not _exists(con, table):
                return None
            row = con.execute(f"SELECT max({TIMESTAMP_COLUMN}) FROM {naming.quote(table)}").fetchone()
        return None if row is None or row[0] is None else row[0].astimezone(UTC)

    def list_tables(self) -> list[str]:
        with connect(self._file(), write=False, timeout_s=self.lock_timeout_s) as con:
            rows = con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY 1"
            ).fetchall()
        return [r[0] for r in rows if not r[0].endswith("__staging")]

    def drop(self, name: str) -> None:
        with connect(self._file(), write=True, timeout_s=self.lock_timeout_s) as con:
            con.execute(f"DROP TABLE IF EXISTS {naming.quote(naming.table_name(name))}")

    def _ensure(self, con: duckdb.DuckDBPyConnection, name: str, schema: TableSchema) -> None:
        con.execute(create_table_sql(name, schema))
        found = [(r[0], r[1]) for r in con.execute(f"DESCRIBE {naming.quote(name)}").fetchall()]
        wanted = [(TIMESTAMP_COLUMN, "TIMESTAMP WITH TIME ZONE")]
        wanted += [
            (n, _SQL_TYPES[t].replace("TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE")) for n, t in schema.columns
        ]
        if found != wanted:
            raise StoreError(f"{name}: existing table has columns {found}, expected {wanted}")

    @contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A write connection inside one transaction: committed if the block ends normally, else rolled
        back, so the tables are as they were."""
        with connect(self._file(), write=True, timeout_s=self.lock_timeout_s) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    @staticmethod
    def _delete_window(
        con: duckdb.DuckDBPyConnection, table: str, schema: TableSchema, window: tuple[datetime, datetime]
    ) -> None:
        # With extra dedup keys (e.g. a symbol), only the incoming keys' rows in the window are replaced.
        key_match = "".join(
            f" AND {table}.{naming.quote(k)} IN (SELECT DISTINCT {naming.quote(k)} FROM _incoming)"
            for k in schema.dedup_keys
        )
        con.execute(
            f"DELETE FROM {table} WHERE {TIMESTAMP_COLUMN} BETWEEN $lo AND $hi{key_match}",
            {"lo": window[0], "hi": window[1]},
        )

    @staticmethod
    def _select(
        con: duckdb.DuckDBPyConnection,
        name: str,
        start: datetime | None,
        end: datetime | None,
        columns: Sequence[str] | None,
    ) -> duckdb.DuckDBPyRelation:
        table = naming.quote(naming.table_name(name))
        known = {
            r[0]
            for r in con.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = 'main' AND table_name = $t",
                {"t": name},
            ).fetchall()
        }
        if not known:
            raise StoreError(f"table {name!r} does not exist")
        wanted = list(columns) if columns is not None else None
        if wanted is not None:
            unknown = [c for c in wanted if c not in known]
            if unknown:
                raise StoreError(f"{name}: unknown columns {unknown}")
        select = "*" if wanted is None else ", ".join(naming.quote(naming.column_name(c)) for c in wanted)
        where, params = [], {}
        if start is not None:
            where.append(f"{TIMESTAMP_COLUMN} >= $start")
            params["start"] = start
        if end is not None:
            where.append(f"{TIMESTAMP_COLUMN} < $end")
            params["end"] = end
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        return con.sql(f"SELECT {select} FROM {table}{clause} ORDER BY {TIMESTAMP_COLUMN}", params=params)


def _conform(data: pa.Table, schema: TableSchema, name: str) -> pa.Table:
    rows = schema.conform(data, name)
    _refuse_duplicate_keys(rows, schema, name)
    return rows


@contextmanager
def _incoming(con: duckdb.DuckDBPyConnection, rows: pa.Table) -> Iterator[None]:
    """`rows` visible to SQL as `_incoming` for the block."""
    con.register("_incoming", rows)
    try:
        yield
    finally:
        con.unregister("_incoming")


def _insert(con: duckdb.DuckDBPyConnection, table: str, rows: pa.Table) -> None:
    # Stored in time order so reads stream without a big sort; bars arrive sorted already.
    order = "" if _is_sorted(rows) else f" ORDER BY {TIMESTAMP_COLUMN}"
    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _incoming{order}")


def _exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    sql = "SELECT 1 FROM information_schema.tables WHERE table_schema = 'main' AND table_name = $t"
    return con.execute(sql, {"t": table}).fetchone() is not None


def _refuse_duplicate_keys(rows: pa.Table, schema: TableSchema, name: str) -> None:
    keys = [TIMESTAMP_COLUMN, *schema.dedup_keys]
    if len(keys) == 1:
        ts = rows.column(TIMESTAMP_COLUMN).cast(pa.int64()).to_numpy()
        # Bars arrive sorted: one pass proves uniqueness; only unsorted input pays for a sort.
        if ts.size < 2 or bool((ts[1:] > ts[:-1]).all()):
            return
        distinct = np.unique(ts).size
    else:
        distinct = rows.group_by(keys).aggregate([]).num_rows
    if distinct != rows.num_rows:
        raise StoreError(f"{name}: {rows.num_rows - distinct} rows repeat a key {keys} within one write")


def _is_sorted(rows: pa.Table) -> bool:
    ts = rows.column(TIMESTAMP_COLUMN).cast(pa.int64()).to_numpy()
    return ts.size < 2 or bool((ts[1:] >= ts[:-1]).all())
