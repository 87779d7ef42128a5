"""SQL text, row conversion and the indicator-set registration steps that both catalogs share.

Both backends accept the same statements here; only the parameter placeholder differs (`%s` for
psycopg, `?` for DuckDB), so each function takes the dialect's placeholder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any, Protocol

from resources.catalog import CatalogError, DatasetRecord, IndicatorOutputs, IndicatorSetRecord
from trading_assets import naming

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
        _require_time_zone(f"dataset {record.name!r}", field, getattr(record, field))
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


# IndicatorSetRecord's fields in order: every SELECT and RETURNING lists them so, for indicator_set_from_row.
_INDICATOR_SET_FIELDS = tuple(field.name for field in fields(IndicatorSetRecord))
_INDICATOR_SET_OUTPUT = ", ".join(_INDICATOR_SET_FIELDS)
# What registering writes; the outputs stay NULL and the status starts as 'registered'.
_INDICATOR_SET_INPUT = (
    "measurement",
    "dataset",
    "version",
    "label",
    "spec",
    "spec_sha256",
    "columns",
    "lookbacks",
)
# What record_indicator_output replaces: never the spec or what is derived from it.
_INDICATOR_OUTPUTS = (
    "status",
    "row_count",
    "first_ts",
    "last_ts",
    "bars_sha256",
    "dataset_version",
    "state",
    "code_version",
    "message",
)

LIST_INDICATOR_SETS = f"SELECT {_INDICATOR_SET_OUTPUT} FROM indicator_sets ORDER BY dataset, version"


class Cursor(Protocol):
    """What the registration steps read from `execute`: psycopg's cursor and DuckDB's connection qualify."""

    def fetchone(self) -> Any: ...


class Connection(Protocol):
    """A connection whose `execute` takes positional parameters (psycopg's and DuckDB's)."""

    def execute(self, query: str, params: Sequence[Any], /) -> Cursor: ...


def list_indicator_sets_of_sql(placeholder: str) -> str:
    """SELECT the indicator sets of one dataset, ordered by version."""
    return (
        f"SELECT {_INDICATOR_SET_OUTPUT} FROM indicator_sets WHERE dataset = {placeholder} ORDER BY version"
    )


def get_indicator_set_sql(placeholder: str) -> str:
    """SELECT one indicator set by dataset and version."""
    return (
        f"SELECT {_INDICATOR_SET_OUTPUT} FROM indicator_sets "
        f"WHERE dataset = {placeholder} AND version = {placeholder}"
    )


def get_indicator_set_by_measurement_sql(placeholder: str) -> str:
    """SELECT one indicator set by the name of its time-series table."""
    return f"SELECT {_INDICATOR_SET_OUTPUT} FROM indicator_sets WHERE measurement = {placeholder}"


def record_indicator_output_sql(placeholder: str) -> str:
    """UPDATE the outputs of one indicator set (by dataset and version); RETURNING the stored row."""
    updates = ", ".join(f"{column} = {placeholder}" for column in _INDICATOR_OUTPUTS)
    return (
        f"UPDATE indicator_sets SET {updates}, updated_at = now() "
        f"WHERE dataset = {placeholder} AND version = {placeholder} "
        f"RETURNING {_INDICATOR_SET_OUTPUT}"
    )


def indicator_output_params(dataset: str, version: int, outputs: IndicatorOutputs) -> list[Any]:
    """The parameters of `record_indicator_output_sql`; refuses naive timestamps."""
    for field in ("first_ts", "last_ts"):
        if (value := getattr(outputs, field)) is not None:
            _require_time_zone(f"indicator set {dataset!r} version {version}", field, value)
    return [*(getattr(outputs, column) for column in _INDICATOR_OUTPUTS), dataset, version]


def register_indicator_set(
    con: Connection,
    placeholder: str,
    dataset: str,
    label: str,
    spec: str,
    spec_sha256: str,
    columns: Sequence[str],
    lookbacks: Sequence[int],
) -> tuple[IndicatorSetRecord, bool]:
    """The steps of `Catalog.register_indicator_set` on `con`; returns (record, created).

    The caller must serialise registrations for `dataset` until its transaction ends (Postgres: an
    advisory lock; DuckDB: the exclusive file lock), so the next version read here is still free at the
    INSERT and two callers registering one spec find each other's row instead of colliding.
    """
    if len(columns) != len(lookbacks):
        raise CatalogError(
            f"indicator set {label!r} of dataset {dataset!r}: {len(columns)} columns "
            f"but {len(lookbacks)} lookbacks; give one lookback per column"
        )
    p = placeholder
    # Checked here, not left to the foreign key: DuckDB has none, and the message can say what to do.
    if con.execute(f"SELECT 1 FROM datasets WHERE name = {p}", [dataset]).fetchone() is None:
        raise CatalogError(
            f"dataset {dataset!r} is not in the catalog; import its bars before registering indicator sets"
        )
    found = con.execute(
        f"SELECT {_INDICATOR_SET_OUTPUT} FROM indicator_sets WHERE dataset = {p} AND spec_sha256 = {p}",
        [dataset, spec_sha256],
    ).fetchone()
    if found is not None:
        existing = indicator_set_from_row(found)
        # The hash is the caller's: a different text under it is a bug that would silently reuse values.
        if existing.spec != spec:
            raise CatalogError(
                f"indicator set {existing.measurement!r} has spec_sha256 {spec_sha256} but a different spec"
            )
        return existing, False
    (version,) = con.execute(
        f"SELECT coalesce(max(version), 0) + 1 FROM indicator_sets WHERE dataset = {p}", [dataset]
    ).fetchone()
    try:
        measurement = naming.indicator_table(dataset, str(version))
    except naming.InvalidNameError as err:
        raise CatalogError(f"dataset {dataset!r} cannot have indicator sets: {err}") from err
    row = con.execute(
        f"INSERT INTO indicator_sets ({', '.join(_INDICATOR_SET_INPUT)}, status) "
        f"VALUES ({', '.join([p] * len(_INDICATOR_SET_INPUT))}, 'registered') "
        f"RETURNING {_INDICATOR_SET_OUTPUT}",
        # Both drivers bind a list (not a tuple) as an array.
        [measurement, dataset, version, label, spec, spec_sha256, list(columns), list(lookbacks)],
    ).fetchone()
    assert row is not None  # RETURNING always yields the row
    return indicator_set_from_row(row), True


def indicator_set_from_row(row: Sequence[Any]) -> IndicatorSetRecord:
    """An IndicatorSetRecord from a row in `_INDICATOR_SET_FIELDS` order, every timestamp in UTC."""
    values = dict(zip(_INDICATOR_SET_FIELDS, row, strict=True))
    values["columns"] = tuple(values["columns"])
    values["lookbacks"] = tuple(values["lookbacks"])
    for field in ("first_ts", "last_ts", "created_at", "updated_at"):
        if values[field] is not None:
            values[field] = _utc(values[field])
    return IndicatorSetRecord(**values)


def indicator_set_refused(what: str, err: Exception) -> CatalogError:
    """The error to raise when the database rejects an indicator-set row; `what` names the set."""
    return CatalogError(f"{what} refused by the catalog: {err}")


def _require_time_zone(owner: str, field: str, value: datetime) -> None:
    # A naive timestamp would be read in the session's zone, which no caller can be sure of.
    if value.tzinfo is None or value.utcoffset() is None:
        raise CatalogError(f"{owner}: {field} {value} has no time zone; pass UTC")


def _utc(value: datetime) -> datetime:
    # Drivers return the session zone's tzinfo (zoneinfo, pytz); one tzinfo keeps records comparable.
    return value.astimezone(UTC)
