"""QuestDB as the time-series store: explicit DDL and reads over the HTTP REST API, writes over ILP/HTTP.

Every table is created by `create_table_sql` before the first row is sent, so QuestDB never invents a
schema from ILP (auto-create would guess types and skip the dedup keys). SQL text is built by the small
pure functions below from names validated by `trading_assets.naming` and from `datetime` objects only.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from questdb import QuestDBError, Sender

from resources.timeseries import TIMESTAMP_COLUMN, TS_TYPE, ColumnType, StoreError, TableSchema
from trading_assets import naming

QUESTDB_TYPES: dict[ColumnType, str] = {
    "double": "DOUBLE",
    "long": "LONG",
    "symbol": "SYMBOL",
    "string": "VARCHAR",
    "boolean": "BOOLEAN",
    "timestamp": "TIMESTAMP",
}

# Arrow types of the QuestDB column types a read can meet; STRING is VARCHAR's pre-7.6 sibling.
ARROW_FROM_QUESTDB: dict[str, pa.DataType] = {
    "DOUBLE": pa.float64(),
    "LONG": pa.int64(),
    "SYMBOL": pa.string(),
    "VARCHAR": pa.string(),
    "STRING": pa.string(),
    "BOOLEAN": pa.bool_(),
    "TIMESTAMP": TS_TYPE,
}

LIST_TABLES_SQL = "SELECT table_name FROM tables();"


def _column_list(names: Sequence[str]) -> str:
    return ", ".join(naming.quote(naming.column_name(n)) for n in names)


def sql_timestamp(value: datetime) -> str:
    """A QuestDB timestamp literal ('2024-01-01T00:00:00.000000Z') for a tz-aware datetime."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise StoreError(f"timestamp bound {value!r} is naive; pass a tz-aware (UTC) datetime")
    return "'" + value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") + "'"


def create_table_sql(name: str, schema: TableSchema) -> str:
    """`CREATE TABLE IF NOT EXISTS` with designated `ts`, partitioning, WAL and the dedup keys."""
    columns = ", ".join(
        f"{naming.quote(naming.column_name(col))} {QUESTDB_TYPES[kind]}"
        for col, kind in ((TIMESTAMP_COLUMN, "timestamp"), *schema.columns)
    )
    ts = naming.quote(TIMESTAMP_COLUMN)
    return (
        f"CREATE TABLE IF NOT EXISTS {naming.quote(_table_or_staging(name))} ({columns}) "
        f"TIMESTAMP({ts}) PARTITION BY {schema.partition_by} WAL "
        f"DEDUP UPSERT KEYS({_column_list([TIMESTAMP_COLUMN, *schema.dedup_keys])});"
    )


def select_sql(
    name: str,
    columns: Sequence[str],
    start: datetime | None = None,
    end: datetime | None = None,
    limit: tuple[int, int] | None = None,
) -> str:
    """Rows with start <= ts < end, ordered by ts; `limit=(lo, hi)` keeps rows lo+1..hi (QuestDB's LIMIT)."""
    ts = naming.quote(TIMESTAMP_COLUMN)
    bounds = [f"{ts} >= {sql_timestamp(start)}"] if start is not None else []
    bounds += [f"{ts} < {sql_timestamp(end)}"] if end is not None else []
    where = f" WHERE {' AND '.join(bounds)}" if bounds else ""
    page = f" LIMIT {int(limit[0])}, {int(limit[1])}" if limit is not None else ""
    table = naming.quote(naming.table_name(name))
    return f"SELECT {_column_list(columns)} FROM {table}{where} ORDER BY {ts}{page};"


def drop_table_sql(name: str) -> str:
    """`DROP TABLE IF EXISTS` for a validated table name (staging names included)."""
    return f"DROP TABLE IF EXISTS {naming.quote(_table_or_staging(name))};"


def rename_table_sql(old: str, new: str) -> str:
    """`RENAME TABLE old TO new` for validated names."""
    return f"RENAME TABLE {naming.quote(_table_or_staging(old))} TO {naming.quote(naming.table_name(new))};"


def table_columns_sql(name: str) -> str:
    """Column names, QuestDB types and upsert-key flags of a table, in column order."""
    return f'SELECT "column", "type", "upsertKey" FROM table_columns(\'{_table_or_staging(name)}\');'


def wal_state_sql(name: str) -> str:
    """Whether a WAL table is suspended, its last applied and last committed transaction."""
    table = _table_or_staging(name)
    return f"SELECT suspended, writerTxn, sequencerTxn FROM wal_tables() WHERE name = '{table}';"


def _table_or_staging(name: str) -> str:
    # A staging name is a valid table name plus the reserved '__staging' suffix, and nothing else.
    base = name.removesuffix("__staging")
    return naming.staging_table(base) if base != name else naming.table_name(name)


def parse_export_csv(body: bytes, schema: pa.Schema) -> pa.Table:
    """Parse a QuestDB `/exp` CSV body into a table of exactly `schema`.

    QuestDB quotes strings and timestamps and leaves nulls empty, so an unquoted empty field is null
    and a quoted one ("") is an empty string.
    """
    header = body.split(b"\n", 1)[0].strip().decode()
    names = [n.strip('"') for n in header.split(",")] if header else []
    if names != schema.names:
        raise StoreError(f"QuestDB export has columns {names}, expected {schema.names}")
    convert = pacsv.ConvertOptions(
        column_types=schema,
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
    )
    try:
        table = pacsv.read_csv(io.BytesIO(body), convert_options=convert)
    except pa.ArrowInvalid as err:
        raise StoreError(f"cannot parse QuestDB export: {err}") from None
    return table.cast(schema)


class QuestDBStore(dg.ConfigurableResource):
    """Time-series tables in QuestDB (one server, reached over HTTP on `http_port`).

    DDL and reads use the REST API (`/exec`, `/exp`); rows go over ILP/HTTP with the official `questdb`
    client, `batch_rows` rows per request. Each ILP request is one QuestDB transaction, and tables carry
    `DEDUP UPSERT KEYS(ts, ...)`, so a chunk sent twice (a retry, a re-run) is stored once.

    QuestDB cannot DELETE rows, so `write` upserts by the dedup keys: re-writing a range with the same
    timestamps (and keys) replaces those rows and never duplicates them, but a row whose keys are absent
    from the new data stays. `replace` rebuilds the whole table when rows must disappear.

    Writes return once QuestDB has applied them to the table (WAL apply is asynchronous), so a read right
    after a write sees its rows, and a table that QuestDB suspended fails the write instead of losing it.

    Attributes:
        host: QuestDB host name or address.
        http_port: QuestDB's HTTP port (REST API and ILP/HTTP).
        username: HTTP basic-auth user, or None for an open server.
        password: HTTP basic-auth password; in production `dg.EnvVar("QUESTDB_PASSWORD")`.
        batch_rows: rows per ILP request (one QuestDB transaction each) and per export page.
        request_timeout_s: timeout of one HTTP request.
        retry_timeout_s: how long the ILP client retries a request that failed for a retriable reason.
        wal_apply_timeout_s: how long a write waits for QuestDB to apply it to the table.
    """

    host: str = "127.0.0.1"
    http_port: int = 9000
    username: str | None = None
    password: str | None = None
    batch_rows: int = 100_000
    request_timeout_s: float = 60.0
    retry_timeout_s: float = 10.0
    wal_apply_timeout_s: float = 60.0

    def ensure_table(self, name: str, schema: TableSchema) -> None:
        """Create the table if it does not exist; an existing table must have the same columns and keys."""
        name = naming.table_name(name)
        self._exec(create_table_sql(name, schema))
        expected = [
            [col, QUESTDB_TYPES[kind], col in (TIMESTAMP_COLUMN, *schema.dedup_keys)]
            for col, kind in ((TIMESTAMP_COLUMN, "timestamp"), *schema.columns)
        ]
        actual = self._rows(table_columns_sql(name))
        if actual != expected:
            raise StoreError(f"{name}: table exists with columns {actual}, expected {expected}")

    def write(self, name: str, data: pa.Table, schema: TableSchema) -> int:
        """Upsert `data` into the table by (ts, *dedup_keys); return rows written.

        Everything is validated before the first request, so invalid data leaves the server untouched.
        A failure part-way leaves the chunks already sent in the table; sending the same data again
        completes it without duplicates.
        """
        name = naming.table_name(name)
        rows = self._conform(data, schema, name)
        self.ensure_table(name, schema)
        self._send(name, rows, schema)
        return rows.num_rows

    def replace(self, name: str, data: pa.Table, schema: TableSchema) -> int:
        """Make the table hold exactly `data`; on any failure the old table is left as it was.

        The rows go into a fresh staging table first; only once QuestDB has applied all of them is the old
        table dropped and the staging table renamed. Between that DROP and RENAME (two requests,
        milliseconds apart) a concurrent reader finds no table; a failure exactly there leaves the data
        in `<name>__staging`, from where a rerun of `replace` starts afresh.
        """
        name = naming.table_name(name)
        staging = naming.staging_table(name)
        rows = self._conform(data, schema, name)
        self._exec(drop_table_sql(staging))
        self._exec(create_table_sql(staging, schema))
        try:
            self._send(staging, rows, schema)
        except BaseException:
            # Best effort: the next replace drops a stale staging table anyway, and the original error
            # is the one worth raising.
            with contextlib.suppress(StoreError):
                self._exec(drop_table_sql(staging))
            raise
        self._exec(drop_table_sql(name))
        self._exec(rename_table_sql(staging, name))
        return rows.num_rows

    def read(
        self,
        name: str,
        start: datetime | None = None,
        end: datetime | None = None,
        columns: Sequence[str] | None = None,
    ) -> pa.Table:
        """Rows with start <= ts < end (open bounds when None), ordered by ts."""
        schema = self._read_schema(name, columns)
        return pa.Table.from_batches(self._batches(name, schema, start, end, self.batch_rows), schema=schema)

    def iter_batches(
        self,
        name: str,
        start: datetime | None = None,
        end: datetime | None = None,
        columns: Sequence[str] | None = None,
        batch_rows: int = 1_000_000,
    ) -> Iterator[pa.RecordBatch]:
        """The same rows as `read`, fetched in pages (`LIMIT lo, hi`) of at most `batch_rows` rows."""
        return self._batches(name, self._read_schema(name, columns), start, end, batch_rows)

    def list_tables(self) -> list[str]:
        """Names of the time-series tables, sorted; staging and system tables are left out."""
        names = []
        for (table,) in self._rows(LIST_TABLES_SQL):
            with contextlib.suppress(naming.InvalidNameError):
                names.append(naming.table_name(table))
        return sorted(names)

    def drop(self, name: str) -> None:
        """Drop the table if it exists."""
        self._exec(drop_table_sql(naming.table_name(name)))

    def _conform(self, data: pa.Table, schema: TableSchema, name: str) -> pa.Table:
        rows = schema.conform(data, name)
        for col, kind in schema.columns:
            # QuestDB's BOOLEAN has no null: ILP would refuse the row mid-batch, so refuse it up front.
            if kind == "boolean" and rows.column(col).null_count:
                raise StoreError(f"{name}: column {col!r} has null values; QuestDB booleans cannot be null")
        return rows

    def _send(self, name: str, rows: pa.Table, schema: TableSchema) -> None:
        """ILP/HTTP `rows` in chunks of `batch_rows`, then wait until QuestDB has applied them."""
        if rows.num_rows == 0:
            return
        symbols = [col for col, kind in schema.columns if kind == "symbol"]
        # Credentials go as arguments, not in the conf string, where ';' would need escaping.
        conf = f"http::addr={self.host}:{self.http_port};protocol_version=1;auto_flush=off;"
        sent = 0
        try:
            with Sender.from_conf(
                conf,
                username=self.username,
                password=self.password,
                request_timeout=timedelta(seconds=self.request_timeout_s),
                retry_timeout=timedelta(seconds=self.retry_timeout_s),
            ) as sender:
                for chunk in rows.to_batches(max_chunksize=self.batch_rows):
                    # Arrow-backed columns keep nulls as nulls (ILP omits the field) and longs as longs.
                    frame = pa.Table.from_batches([chunk]).to_pandas(types_mapper=pd.ArrowDtype)
                    sender.dataframe(frame, table_name=name, symbols=symbols, at=TIMESTAMP_COLUMN)
                    sender.flush()
                    sent += chunk.num_rows
        except QuestDBError as err:
            raise StoreError(
                f"{name}: ILP write failed after {sent} of {rows.num_rows} rows: {err}"
            ) from None
        self._await_applied(name)

    def _await_applied(self, name: str) -> None:
        """Wait until QuestDB has applied every WAL transaction committed so far to `name`."""
        deadline = time.monotonic() + self.wal_apply_timeout_s
        target: int | None = None
        delay = 0.01
        while True:
            state = self._rows(wal_state_sql(name))
            if not state:
                raise StoreError(f"{name}: not a WAL table")
            suspended, applied, committed = state[0]
            if suspended:
                raise StoreError(f"{name}: QuestDB suspended the table while applying the write")
            # Only wait for the transactions committed up to now: other writers may keep adding more.
            target = committed if target is None else target
            if applied >= target:
                return
            if time.monotonic() >= deadline:
                raise StoreError(
                    f"{name}: QuestDB applied transaction {applied} of {target} "
                    f"within {self.wal_apply_timeout_s:.0f}s"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def _read_schema(self, name: str, columns: Sequence[str] | None) -> pa.Schema:
        """Arrow schema of the requested columns, from the table's QuestDB types."""
        types: dict[str, pa.DataType] = {}
        for col, kind, _ in self._rows(table_columns_sql(name)):
            if kind not in ARROW_FROM_QUESTDB:
                raise StoreError(
                    f"{name}: column {col!r} has QuestDB type {kind}, which the store does not read"
                )
            types[col] = ARROW_FROM_QUESTDB[kind]
        if not types:
            raise StoreError(f"{name}: no such table")
        wanted = list(types) if columns is None else [naming.column_name(c) for c in columns]
        unknown = [c for c in wanted if c not in types]
        if unknown:
            raise StoreError(f"{name}: no columns {unknown}; the table has {list(types)}")
        return pa.schema([(c, types[c]) for c in wanted])

    def _batches(
        self,
        name: str,
        schema: pa.Schema,
        start: datetime | None,
        end: datetime | None,
        batch_rows: int,
    ) -> Iterator[pa.RecordBatch]:
        if batch_rows < 1:
            raise ValueError(f"batch_rows must be positive, got {batch_rows}")
        # `ts` is always fetched (ORDER BY needs it) and dropped again when the caller did not ask for it.
        query_schema = schema
        if TIMESTAMP_COLUMN not in schema.names:
            query_schema = schema.insert(0, pa.field(TIMESTAMP_COLUMN, TS_TYPE))
        lo = 0
        while True:
            sql = select_sql(name, query_schema.names, start, end, limit=(lo, lo + batch_rows))
            page = parse_export_csv(self._get("/exp", sql), query_schema).select(schema.names)
            yield from page.combine_chunks().to_batches(max_chunksize=batch_rows)
            if page.num_rows < batch_rows:
                return
            lo += batch_rows

    def _rows(self, sql: str) -> list[list]:
        return self._exec(sql).get("dataset", [])

    def _exec(self, sql: str) -> dict:
        """Run one statement over `/exec`; QuestDB's JSON answer, or StoreError with its error text."""
        body = self._get("/exec", sql)
        try:
            payload = json.loads(body)
        except ValueError:
            raise StoreError(f"QuestDB answered {body[:200]!r} (in {sql})") from None
        if "error" in payload:
            raise StoreError(f"QuestDB: {payload['error']} (in {sql})")
        return payload

    def _get(self, path: str, sql: str) -> bytes:
        url = f"http://{self.host}:{self.http_port}{path}?{urllib.parse.urlencode({'query': sql})}"
        request = urllib.request.Request(url, headers=self._auth_headers())
        try:
            with _OPENER.open(request, timeout=self.request_timeout_s) as response:
                body = response.read()
        except urllib.error.HTTPError as err:
            with err:
                detail = _error_text(err.read()) or f"HTTP {err.code} {err.reason}"
            raise StoreError(f"QuestDB: {detail} (in {sql})") from None
        except OSError as err:
            raise StoreError(f"QuestDB at {self.host}:{self.http_port} is unreachable: {err}") from err
        # Older servers answer a failed export with status 200 and a JSON error instead of CSV.
        if path == "/exp" and body.startswith(b"{"):
            raise StoreError(f"QuestDB: {_error_text(body) or body[:200]!r} (in {sql})")
        return body

    def _auth_headers(self) -> dict[str, str]:
        if self.username is None:
            return {}
        token = base64.b64encode(f"{self.username}:{self.password or ''}".encode()).decode()
        return {"Authorization": f"Basic {token}"}


# No proxies: the ILP client connects directly too, so both paths always reach the same server.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _error_text(body: bytes) -> str | None:
    with contextlib.suppress(ValueError):
        payload = json.loads(body)
        if isinstance(payload, dict) and "error" in payload:
            return str(payload["error"])
    return None
