"""The time-series store contract shared by `DuckDBStore` (embedded default) and `QuestDBStore`.

A table is described once by a `TableSchema`: a designated timestamp column `ts` (UTC, microseconds),
typed value columns, and the dedup keys. Writes are idempotent: writing rows for a time window replaces
what the table held in that window, so re-running a step never duplicates rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from trading_assets import naming

ColumnType = Literal["double", "long", "symbol", "string", "boolean", "timestamp"]

TIMESTAMP_COLUMN = "ts"
# One precision for every table, stated once: UTC microseconds (QuestDB's TIMESTAMP, DuckDB's TIMESTAMPTZ).
TS_TYPE = pa.timestamp("us", tz="UTC")

ARROW_TYPES: dict[str, pa.DataType] = {
    "double": pa.float64(),
    "long": pa.int64(),
    "symbol": pa.string(),
    "string": pa.string(),
    "boolean": pa.bool_(),
    "timestamp": TS_TYPE,
}

PartitionBy = Literal["HOUR", "DAY", "WEEK", "MONTH", "YEAR"]


class StoreError(RuntimeError):
    """A store refused or failed an operation; the table is as it was before the call."""


@dataclass(frozen=True)
class TableSchema:
    """Columns of a time-series table besides `ts`, in order, and the extra dedup keys."""

    columns: tuple[tuple[str, ColumnType], ...]
    dedup_keys: tuple[str, ...] = ()
    partition_by: PartitionBy = "MONTH"
    _names: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = [naming.column_name(n) for n, _ in self.columns]
        if TIMESTAMP_COLUMN in names:
            raise ValueError(f"'{TIMESTAMP_COLUMN}' is implicit; do not list it among the columns")
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate column names in {names}")
        for name, kind in self.columns:
            if kind not in ARROW_TYPES:
                raise ValueError(f"column {name!r} has unknown type {kind!r}")
        for key in self.dedup_keys:
            if key not in names:
                raise ValueError(f"dedup key {key!r} is not a column")
        object.__setattr__(self, "_names", frozenset(names))

    @property
    def column_names(self) -> list[str]:
        return [TIMESTAMP_COLUMN, *(n for n, _ in self.columns)]

    def arrow_schema(self) -> pa.Schema:
        return pa.schema(
            [pa.field(TIMESTAMP_COLUMN, TS_TYPE, nullable=False)]
            + [pa.field(n, ARROW_TYPES[t]) for n, t in self.columns]
        )

    def conform(self, data: pa.Table, table: str) -> pa.Table:
        """Return `data` with exactly this schema's columns and types, or raise `StoreError` saying why.

        Checks everything a write needs before any byte reaches a store: no unknown or missing columns,
        a tz-aware UTC timestamp without nulls, no NaN/inf in doubles.
        """
        missing = [c for c in self.column_names if c not in data.column_names]
        unknown = [c for c in data.column_names if c not in self.column_names]
        if missing or unknown:
            raise StoreError(
                f"{table}: columns do not match the table (missing {missing}, unknown {unknown})"
            )
        ts = data.column(TIMESTAMP_COLUMN)
        if not pa.types.is_timestamp(ts.type) or ts.type.tz is None:
            raise StoreError(f"{table}: column 'ts' must be a tz-aware timestamp, got {ts.type}")
        if ts.null_count:
            raise StoreError(f"{table}: column 'ts' has {ts.null_count} null values")
        target = self.arrow_schema()
        try:
            out = data.select(self.column_names).cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
            raise StoreError(f"{table}: cannot convert to the table's types: {err}") from None
        for name, kind in self.columns:
            if kind == "double":
                # Nulls are allowed (e.g. indicator warm-up); NaN and inf are not.
                bad = pc.fill_null(pc.invert(pc.is_finite(out.column(name))), False)
                if pc.any(bad).as_py():
                    row = int(np.flatnonzero(bad.to_numpy(zero_copy_only=False))[0])
                    count = pc.sum(bad).as_py()
                    raise StoreError(f"{table}: column {name!r} has NaN/inf at row {row} ({count} rows)")
        return out


def utc_datetime(ts_us: int | np.integer) -> datetime:
    """The tz-aware UTC datetime of a `ts` value in microseconds. Integer arithmetic: a float of seconds
    would round away the last digit of recent timestamps."""
    return _EPOCH + timedelta(microseconds=int(ts_us))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def time_window(data: pa.Table) -> tuple[datetime, datetime] | None:
    """The closed range [first, last] of `data`'s timestamps, or None for an empty table."""
    if data.num_rows == 0:
        return None
    bounds = pc.min_max(data.column(TIMESTAMP_COLUMN))
    return bounds["min"].as_py(), bounds["max"].as_py()


@runtime_checkable
class TimeSeriesStore(Protocol):
    """What assets need from a time-series store. Implemented by DuckDBStore and QuestDBStore."""

    def ensure_table(self, name: str, schema: TableSchema) -> None:
        """Create the table if it does not exist; an existing table must have the same columns."""

    def write(self, name: str, data: pa.Table, schema: TableSchema) -> int:
        """Write `data` idempotently; return rows written. Rows with the same keys are replaced, never
        duplicated. DuckDB also deletes other rows in [min(ts), max(ts)]; QuestDB cannot delete rows, so
        there rows of that window missing from `data` stay (use `replace` for a full re-import)."""

    def replace(self, name: str, data: pa.Table, schema: TableSchema) -> int:
        """Make the table hold exactly `data` (a full re-import): `stage` then `publish`. A failure while
        staging keeps the old rows; on QuestDB, whose publish is two requests (DROP, RENAME), a failure
        between them leaves the rows in the staging table and no table until the next publish."""

    def stage(self, name: str, data: pa.Table, schema: TableSchema) -> int:
        """Load `data` into the table's staging table (`naming.staging_table`), dropping an earlier one;
        the table itself is untouched. Returns once every row is stored, so `publish` can follow later,
        from another process."""

    def publish(self, name: str) -> bool:
        """Make the staged rows the table (the old table is dropped); False, changing nothing, when there
        is no staging table (already published). DuckDB: one transaction; QuestDB: DROP then RENAME."""

    def read(
        self,
        name: str,
        start: datetime | None = None,
        end: datetime | None = None,
        columns: Sequence[str] | None = None,
    ) -> pa.Table:
        """Rows with start <= ts < end (open bounds when None), ordered by ts."""

    def iter_batches(
        self,
        name: str,
        start: datetime | None = None,
        end: datetime | None = None,
        columns: Sequence[str] | None = None,
        batch_rows: int = 1_000_000,
    ) -> Iterator[pa.RecordBatch]:
        """The same rows as `read`, streamed in batches of at most `batch_rows`."""

    def last_ts(self, name: str) -> datetime | None:
        """The latest `ts` in the table; None when the table is empty or does not exist."""

    def list_tables(self) -> list[str]:
        """Names of the time-series tables in the store."""

    def drop(self, name: str) -> None:
        """Drop the table if it exists."""
