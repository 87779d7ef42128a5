"""SQL text and row conversion that `PostgresCatalog` and `DuckDBCatalog` share.

Both backends accept the same statements here; only the parameter placeholder differs (`%s` for
psycopg, `?` for DuckDB), so each function takes the dialect's placeholder.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from resources.catalog import CatalogError, DatasetRecord

# Columns the caller provides, in DatasetRecord's field order; the catalog sets the two timestamps.
_DATASET_INPUT = (
    "name",
    "source_file",
    "source_sha256",
    "bar_interval_s",
    "row_count",
    "first_ts",
    "last_ts",
    "table_name",
    "read_options",
    "columns",  # last: dataset_params binds it as a list
)
_DATASET_OUTPUT = ", ".join((*_DATASET_INPUT, "created_at", "updated_at"))

LIST_DATASETS = f"SELECT {_DATASET_OUTPUT} FROM datasets ORDER BY name"


def get_dataset_sql(placeholder: str) -> str:
    """SELECT one dataset row by name."""
    return f"SELECT {_DATASET_OUTPUT} FROM datasets WHERE name = {placeholder}"


def upsert_dataset_sql(placeholder: str) -> str:
    """INSERT a dataset row, or UPDATE it by name keeping created_at; RETURNING the stored row."""
    updates = ", ".join(f"{column} = excluded.{column}" for column in _DATASET_INPUT[1:])
    return (
        f"INSERT INTO datasets ({', '.join(_DATASET_INPUT)}) "
        f"VALUES ({', '.join([placeholder] * len(_DATASET_INPUT))}) "
        f"ON CONFLICT (name) DO UPDATE SET {updates}, updated_at = now() "
        f"RETURNING {_DATASET_OUTPUT}"
    )


def dataset_params(record: DatasetRecord) -> list[Any]:
    """The parameters of `upsert_dataset_sql`; refuses naive timestamps, which no backend can place."""
    for field in ("first_ts", "last_ts"):
        value: datetime = getattr(record, field)
        if value.tzinfo is None or value.utcoffset() is None:
            raise CatalogError(f"dataset {record.name!r}: {field} {value} has no time zone; pass UTC")
    # Both drivers bind a list (not a tuple) as an array.
    return [getattr(record, column) for column in _DATASET_INPUT[:-1]] + [list(record.columns)]


def dataset_from_row(row: Sequence[Any]) -> DatasetRecord:
    """A DatasetRecord from a row in `_DATASET_OUTPUT` order, every timestamp in UTC."""
    (
        name,
        source_file,
        sha256,
        interval,
        row_count,
        first_ts,
        last_ts,
        table,
        options,
        columns,
        created,
        updated,
    ) = row
    return DatasetRecord(
        name=name,
        source_file=source_file,
        source_sha256=sha256,
        bar_interval_s=interval,
        row_count=row_count,
        first_ts=_utc(first_ts),
        last_ts=_utc(last_ts),
        table_name=table,
        read_options=options,
        columns=tuple(columns),
        created_at=_utc(created),
        updated_at=_utc(updated),
    )


def refused(record: DatasetRecord, err: Exception) -> CatalogError:
    """The error to raise when the database rejects a dataset row (constraint or data error)."""
    return CatalogError(f"dataset {record.name!r} refused by the catalog: {err}")


def _utc(value: datetime) -> datetime:
    # Drivers return the session zone's tzinfo (zoneinfo, pytz); one tzinfo keeps records comparable.
    return value.astimezone(UTC)
