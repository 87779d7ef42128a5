"""The datasets table: one row per imported bars dataset."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from resources.catalog.dialect import Session
from resources.catalog.rows import record_from_row, require_time_zone
from trading_assets.records import CatalogError, DatasetRecord

# Columns the caller provides, in DatasetRecord's field order; the catalog sets the two timestamps.
_INPUT = (
    "name",
    "source_file",
    "source_sha256",
    "bar_interval_s",
    "row_count",
    "first_ts",
    "last_ts",
    "table_name",
    "read_options",
    "publish_pending",
    "columns",  # last: upsert binds it as a list
)
_OUTPUT = ", ".join((*_INPUT, "created_at", "updated_at"))
_UPDATES = ", ".join(f"{column} = excluded.{column}" for column in _INPUT[1:])
# INSERT a dataset row, or UPDATE it by name keeping created_at.
_UPSERT = (
    f"INSERT INTO datasets ({', '.join(_INPUT)}) VALUES ({', '.join(['%s'] * len(_INPUT))}) "
    f"ON CONFLICT (name) DO UPDATE SET {_UPDATES}, updated_at = now() RETURNING {_OUTPUT}"
)


def upsert(db: Session, record: DatasetRecord) -> DatasetRecord:
    """Insert or update the row of `record` in one statement; refuses naive timestamps, which no backend
    can place."""
    for field in ("first_ts", "last_ts"):
        require_time_zone(f"dataset {record.name!r}", field, getattr(record, field))
    # Both drivers bind a list (not a tuple) as an array.
    params = [getattr(record, column) for column in _INPUT[:-1]] + [list(record.columns)]
    with db.refusing(f"dataset {record.name!r}"):
        return _from_row(db.one(_UPSERT, params))


def get(db: Session, name: str) -> DatasetRecord | None:
    row = db.one(f"SELECT {_OUTPUT} FROM datasets WHERE name = %s", [name])
    return None if row is None else _from_row(row)


def list_all(db: Session) -> list[DatasetRecord]:
    return [_from_row(row) for row in db.all(f"SELECT {_OUTPUT} FROM datasets ORDER BY name")]


def version(db: Session, name: str) -> str | None:
    """The dataset's version now (`DatasetRecord.version`), or None if it is not in the catalog."""
    record = get(db, name)
    return None if record is None else record.version


def require_version(owner: str, dataset: str, given: str, current: str | None, advice: str = "") -> None:
    """CatalogError, naming `owner` and ending with `advice`, unless `given` is `dataset`'s version now."""
    if given != current:
        raise CatalogError(
            f"{owner}: dataset_version {given} is not the version of dataset {dataset!r} now "
            f"({current}){advice}"
        )


def _from_row(row: Sequence[Any]) -> DatasetRecord:
    return record_from_row(DatasetRecord, row, (*_INPUT, "created_at", "updated_at"))
