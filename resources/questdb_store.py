"""QuestDB as the time-series store: explicit DDL over the HTTP REST API, writes over ILP/HTTP, reads as
Parquet from `/exp`.

Every table is created by `create_table_sql` before the first row is sent, so QuestDB never invents a
schema from ILP (auto-create would guess types and skip the dedup keys). SQL text is built by the small
pure functions below from names validated by `trading_assets.naming` and from `datetime` objects only.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
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
    as_string: Sequence[str] = (),
) -> str:
    """Rows with start <= ts < end, ordered by ts; `limit=(lo, hi)` keeps rows lo+1..hi (QuestDB's LIMIT).

    Columns named in `as_string` are selected as `STRING`: QuestDB 9.3's Parquet export writes VARCHAR
    columns as all nulls, while the same values cast to STRING come through intact.
    """
    ts = naming.quote(TIMESTAMP_COLUMN)
    selected = ", ".join(
        f"{naming.quote(c)}::STRING {naming.quote(c)}" if c in as_string else naming.quote(c)
        for c in (naming.column_name(n) for n in columns)
    )
    bounds = [f"{ts} >= {sql_timestamp(start)}"] if start is not None else []
    bounds += [f"{ts} < {sql_timestamp(end)}"] if end is not None else []
    where = f" WHERE {' AND '.join(bounds)}" if bounds else ""
    page = f" LIMIT {int(limit[0])}, {int(limit[1])}" if limit is not None else ""
    table = naming.quote(naming.table_name(name))
    return f"SELECT {selected} FROM {table}{where} ORDER BY {ts}{page};"


def drop_table_sql(name: str) -> str:
    """`DROP TABLE IF EXISTS` for a validated table name (staging names included)."""
    return f"DROP TABLE IF EXISTS {naming.quote(_table_or_staging(name))};"


def rename_table_sql(old: str, new: str) -> str:
    """`RENAME TABLE old TO new` for validated names."""
    return f"RENAME TABLE {naming.quote(_table_or_staging(old))} TO {naming.quote(naming.table_name(new))};"


def insert_select_sql(target: str, source: str, columns: Sequence[str]) -> str:
    """Copy every row of `source` into `target` in one statement, hence one WAL transaction."""
    cols = _column_list(columns)
    return (
        f"INSERT INTO {naming.quote(naming.table_name(target))} ({cols}) "
        f"SELECT {cols} FROM {naming.quote(_table_or_staging(source))};"
    )


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


def parse_export_parquet(body: bytes, schema: pa.Schema) -> pa.Table:
    """Read a QuestDB `/exp?fmt=parquet` body into a table of exactly `schema`."""
    try:
        table = pq.read_table(pa.BufferReader(body))
    except (pa.ArrowInvalid, OSError) as err:
        raise StoreError(f"cannot read QuestDB's Parquet export: {err}") from None
    if table.schema.names != schema.names:
        raise StoreError(f"QuestDB export has columns {table.schema.names}, expected {schema.names}")
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
        raise StoreError(f"QuestDB export does not cast to {schema}: {err}") from None


class QuestDBStore(dg.ConfigurableResource):
    """Time-series tables in QuestDB (one server, reached over HTTP on `http_port`).

    DDL uses the REST API (`/exec`); rows go over ILP/HTTP with the official `questdb` client (protocol
    version 2: doubles travel as binary, so they are stored bit for bit); reads fetch Parquet from
    `/exp?fmt=parquet`, the fastest of the server's read paths (see docs/configuration.md). Tables carry
    `DEDUP UPSERT KEYS(ts, ...)`, so rows sent twice (a retry, a re-run) are stored once.

    Readers never see half a write. One ILP/HTTP request is one QuestDB transaction, so a write that fits
    in one request (`max_request_bytes`) goes straight to the table; a larger one is sent to a staging
    table first and copied in by one `INSERT ... SELECT`, a single transaction. QuestDB cannot DELETE
    rows, so `write` upserts by the dedup keys: rows whose keys are absent from the new data stay.
    `replace` rebuilds the whole table when rows must disappear.

    Writes return once QuestDB has applied them to the table (WAL apply is asynchronous), so a read right
    after a write sees its rows, and a table that QuestDB suspended fails the write instead of losing it.
    A server that refuses connections (restarting) is retried for `retry_timeout_s`, then the call fails.

    Attributes:
        host: QuestDB host name or address.
        http_port: QuestDB's HTTP port (REST API and ILP/HTTP).
        username: HTTP basic-auth user, or None for an open server.
        password: HTTP basic-auth password; in production `dg.EnvVar("QUESTDB_PASSWORD")`.
        batch_rows: rows per export page when reading.
        max_request_bytes: ILP bytes per request (one QuestDB transaction each).
        request_timeout_s: timeout of one HTTP request.
        retry_timeout_s: how long a request that could not reach the server is retried.
        wal_apply_timeout_s: how long a write waits for QuestDB to apply it to the table.
    """

    host: str = "127.0.0.1"
    http_port: int = 9000
    username: str | None = None
    password: str | None = None
    batch_rows: int = 1_000_000
    max_request_bytes: int = 256_000_000
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
        """Upsert `data` into the table by (ts, *dedup_keys) in one transaction; return rows written.

        Everything is validated before the first request, so invalid data leaves the server untouched,
        and a failure at any point leaves the table as it was.
        """
        name = naming.table_name(name)
        rows = self._conform(data, schema, name)
        self.ensure_table(name, schema)
        with self._sender() as sender:
            requests = self._requests(sender, name, rows, schema)
            if len(requests) <= 1:
                self._send(sender, name, requests, schema)
                return rows.num_rows
            staging = naming.staging_table(name)
            self._exec(drop_table_sql(staging))
            self._exec(create_table_sql(staging, schema))
            try:
                self._send(sender, staging, requests, schema)
                columns = [TIMESTAMP_COLUMN, *(col for col, _ in schema.columns)]
                self._exec(insert_select_sql(name, staging, columns))
                self._await_applied(name)
            finally:
                with contextlib.suppress(StoreError):
                    self._exec(drop_table_sql(staging))
        return rows.num_rows

    def replace(self, name: str, data: pa.Table, schema: TableSchema) -> int:
        """Make the table hold exactly `data`; a failure while staging leaves the old table as it was.

        The rows go into a fresh staging table first; only once QuestDB has applied all of them is the old
        table dropped and the staging table renamed. Between that DROP and RENAME (two requests,
        milliseconds apart) a concurrent reader finds no table; a failure exactly there leaves the data
        in `<name>__staging`, from where a rerun of `replace` starts afresh.
        """
        rows = self.stage(name, data, schema)
        self.publish(name)
        return rows

    def stage(self, name: str, data: pa.Table, schema: TableSchema) -> int:
        """Load `data` into a fresh `<name>__staging`, applied by QuestDB when this returns; the table
        itself is untouched. On failure the staging table is dropped."""
        name = naming.table_name(name)
        staging = naming.staging_table(name)
        rows = self._conform(data, schema, name)
        self._exec(drop_table_sql(staging))
        self._exec(create_table_sql(staging, schema))
        try:
            with self._sender() as sender:
                self._send(sender, staging, self._requests(sender, staging, rows, schema), schema)
        except BaseException:
            # Best effort: the next replace drops a stale staging table anyway, and the original error
            # is the one worth raising.
            with contextlib.suppress(StoreError):
                self._exec(drop_table_sql(staging))
            raise
        return rows.num_rows

    def publish(self, name: str) -> bool:
        """Drop the table and rename `<name>__staging` to it (two requests); False without a staging table."""
        name = naming.table_name(name)
        staging = naming.staging_table(name)
        if [staging] not in self._rows(LIST_TABLES_SQL):
            return False
        self._exec(drop_table_sql(name))
        self._exec(rename_table_sql(staging, name))
        return True

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

    def last_ts(self, name: str) -> datetime | None:
        """The latest `ts`, from the designated timestamp's index (`LIMIT -1` reads one row)."""
        table = naming.table_name(name)
        if table not in self.list_tables():
            return None
        rows = self._rows(f"SELECT {TIMESTAMP_COLUMN} FROM {naming.quote(table)} LIMIT -1;")
        if not rows or rows[0][0] is None:
            return None
        return datetime.fromisoformat(rows[0][0].replace("Z", "+00:00")).astimezone(UTC)

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

    @contextlib.contextmanager
    def _sender(self) -> Iterator[Sender]:
        # Credentials go as arguments, not in the conf string, where ';' would need escaping.
        conf = f"http::addr={self.host}:{self.http_port};protocol_version=2;auto_flush=off;"
        try:
            sender = Sender.from_conf(
                conf,
                username=self.username,
                password=self.password,
                request_timeout=timedelta(seconds=self.request_timeout_s),
                retry_timeout=timedelta(seconds=self.retry_timeout_s),
                # Room for a request estimated from its first rows to come out somewhat longer.
                max_buf_size=2 * self.max_request_bytes + 1_000_000,
            )
            with warnings.catch_warnings():
                # One sender per write is deliberate (a write is up to max_request_bytes per request, and
                # the store holds no connection between calls); many small writes in a row (tests, a
                # backfill) trip the client's advice to reuse senders, which is no fault.
                warnings.filterwarnings("ignore", "questdb.Sender: Detected a burst of reconnections")
                sender.establish()
            try:
                yield sender
            finally:
                sender.close(flush=False)  # every request was flushed explicitly, or the write failed
        except QuestDBError as err:
            raise StoreError(f"QuestDB at {self.host}:{self.http_port}: ILP write failed: {err}") from None

    def _requests(self, sender: Sender, name: str, rows: pa.Table, schema: TableSchema) -> list[pa.Table]:
        """`rows` cut into slices of about `max_request_bytes` of ILP each, estimated from the first rows."""
        if rows.num_rows == 0:
            return []
        probe = sender.new_buffer()
        sample = rows.slice(0, 1000)
        probe.dataframe(_frame(sample), table_name=name, symbols=_symbols(schema), at=TIMESTAMP_COLUMN)
        per_request = max(1, int(self.max_request_bytes * sample.num_rows / len(probe)))
        return [rows.slice(lo, per_request) for lo in range(0, rows.num_rows, per_request)]

    def _send(self, sender: Sender, name: str, requests: list[pa.Table], schema: TableSchema) -> None:
        """One ILP/HTTP request (one transaction) per slice, then wait until QuestDB has applied them."""
        sent = 0
        for part in requests:
            try:
                sender.dataframe(_frame(part), table_name=name, symbols=_symbols(schema), at=TIMESTAMP_COLUMN)
                sender.flush()
            except QuestDBError as err:
                total = sum(p.num_rows for p in requests)
                raise StoreError(f"{name}: ILP write failed after {sent} of {total} rows: {err}") from None
            sent += part.num_rows
        if requests:
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
            delay = min(delay * 2, 0.1)

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
        strings = [f.name for f in query_schema if f.type == pa.string()]
        lo = 0
        while True:
            sql = select_sql(name, query_schema.names, start, end, (lo, lo + batch_rows), strings)
            body = self._get("/exp", sql, fmt="parquet")
            page = parse_export_parquet(body, query_schema).select(schema.names)
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

    def _get(self, path: str, sql: str, **params: str) -> bytes:
        query = urllib.parse.urlencode({"query": sql, **params})
        request = urllib.request.Request(
            f"http://{self.host}:{self.http_port}{path}?{query}", headers=self._auth_headers()
        )
        deadline = time.monotonic() + self.retry_timeout_s
        delay = 0.1
        while True:
            try:
                with _OPENER.open(request, timeout=self.request_timeout_s) as response:
                    body = response.read()
                break
            except urllib.error.HTTPError as err:
                with err:
                    detail = _error_text(err.read()) or f"HTTP {err.code} {err.reason}"
                # 429: the server turned the connection away at its per-endpoint limit (exports default
                # to one per CPU core) before running anything, so asking again later is safe.
                if err.code != 429 or time.monotonic() >= deadline:
                    raise StoreError(f"QuestDB: {detail} (in {sql})") from None
            except OSError as err:
                # A refused connection never reached the server, so sending it again is safe; anything
                # later (a reset, a timeout) may have run the statement and is not retried.
                refused = isinstance(getattr(err, "reason", err), ConnectionRefusedError)
                if not refused or time.monotonic() >= deadline:
                    reason = getattr(err, "reason", err)
                    raise StoreError(
                        f"QuestDB at {self.host}:{self.http_port} is unreachable: {reason}"
                    ) from None
            time.sleep(max(0.0, min(delay, deadline - time.monotonic())))
            delay = min(delay * 2, 1.0)
        # Older servers answer a failed export with status 200 and a JSON error instead of the export.
        if path == "/exp" and body.startswith(b"{"):
            raise StoreError(f"QuestDB: {_error_text(body) or body[:200]!r} (in {sql})")
        return body

    def _auth_headers(self) -> dict[str, str]:
        if self.username is None:
            return {}
        token = base64.b64encode(f"{self.username}:{self.password or ''}".encode()).decode()
        return {"Authorization": f"Basic {token}"}


def _frame(rows: pa.Table) -> pd.DataFrame:
    # Arrow-backed columns keep nulls as nulls (ILP omits the field) and longs as longs. Doubles go as numpy
    # floats, a null as NaN, which QuestDB stores as its double null: a row whose every value is null (an
    # indicator set's first bar, in every column's warm-up) would otherwise be a line with no field at all,
    # which ILP refuses.
    return rows.to_pandas(types_mapper=lambda t: None if pa.types.is_float64(t) else pd.ArrowDtype(t))


def _symbols(schema: TableSchema) -> list[str]:
    return [col for col, kind in schema.columns if kind == "symbol"]


# No proxies: the ILP client connects directly too, so both paths always reach the same server.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _error_text(body: bytes) -> str | None:
    with contextlib.suppress(ValueError):
        payload = json.loads(body)
        if isinstance(payload, dict) and "error" in payload:
            return str(payload["error"])
    return None
