"""The indicator_sets table: a spec applied to a dataset, its version there and the table of its values."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from resources.catalog.dialect import Session
from resources.catalog.rows import record_from_row, require_time_zone, where
from trading_assets import naming
from trading_assets.records import CatalogError, IndicatorOutputs, IndicatorSetRecord, NewIndicatorSet

# IndicatorSetRecord's fields in order: every SELECT and RETURNING lists them so, for _from_row.
_FIELDS = tuple(field.name for field in fields(IndicatorSetRecord))
_SELECT = f"SELECT {', '.join(_FIELDS)} FROM indicator_sets"
# What registering writes; the outputs stay NULL and the status starts as 'registered'.
_INPUT = ("measurement", "dataset", "version", "label", "spec", "spec_sha256", "columns", "lookbacks")
_INSERT = (
    f"INSERT INTO indicator_sets ({', '.join(_INPUT)}, status) "
    f"VALUES ({', '.join(['%s'] * len(_INPUT))}, 'registered') RETURNING {', '.join(_FIELDS)}"
)
# What record_output replaces: never the spec or what is derived from it.
_OUTPUTS = tuple(field.name for field in fields(IndicatorOutputs))
_RECORD_OUTPUT = (
    f"UPDATE indicator_sets SET {', '.join(f'{column} = %s' for column in _OUTPUTS)}, updated_at = now() "
    f"WHERE dataset = %s AND version = %s RETURNING {', '.join(_FIELDS)}"
)


def register(db: Session, new: NewIndicatorSet) -> tuple[IndicatorSetRecord, bool]:
    """The steps of `Catalog.register_indicator_set`, under the dataset's numbering lock, so the next
    version read here is still free at the INSERT and two callers registering one spec find each other's
    row instead of colliding."""
    owner = f"indicator set {new.label!r} of dataset {new.dataset!r}"
    if len(new.columns) != len(new.lookbacks):
        raise CatalogError(
            f"{owner}: {len(new.columns)} columns but {len(new.lookbacks)} lookbacks; "
            "give one lookback per column"
        )
    db.lock_numbering("indicator_sets", new.dataset)
    # Checked here, not left to the foreign key: DuckDB has none, and the message can say what to do.
    if db.one("SELECT 1 FROM datasets WHERE name = %s", [new.dataset]) is None:
        raise CatalogError(
            f"dataset {new.dataset!r} is not in the catalog; "
            "import its bars before registering indicator sets"
        )
    found = db.one(f"{_SELECT} WHERE dataset = %s AND spec_sha256 = %s", [new.dataset, new.spec_sha256])
    if found is not None:
        existing = _from_row(found)
        # The hash is the caller's: a different text under it is a bug that would silently reuse values.
        if existing.spec != new.spec:
            raise CatalogError(
                f"indicator set {existing.measurement!r} has spec_sha256 {new.spec_sha256} but a different "
                "spec"
            )
        return existing, False
    (version,) = db.one(
        "SELECT coalesce(max(version), 0) + 1 FROM indicator_sets WHERE dataset = %s", [new.dataset]
    )
    try:
        measurement = naming.indicator_table(new.dataset, str(version))
    except naming.InvalidNameError as err:
        raise CatalogError(f"dataset {new.dataset!r} cannot have indicator sets: {err}") from err
    # Both drivers bind a list (not a tuple) as an array.
    params = [measurement, new.dataset, version, new.label, new.spec, new.spec_sha256]
    with db.refusing(owner):
        return _from_row(db.one(_INSERT, [*params, list(new.columns), list(new.lookbacks)])), True


def get(db: Session, dataset: str, version: int) -> IndicatorSetRecord | None:
    return _maybe(db.one(f"{_SELECT} WHERE dataset = %s AND version = %s", [dataset, version]))


def get_by_measurement(db: Session, measurement: str) -> IndicatorSetRecord | None:
    return _maybe(db.one(f"{_SELECT} WHERE measurement = %s", [measurement]))


def list_of(db: Session, dataset: str | None) -> list[IndicatorSetRecord]:
    clause, params = where(dataset=dataset)
    return [_from_row(row) for row in db.all(f"{_SELECT}{clause} ORDER BY dataset, version", params)]


def record_output(db: Session, dataset: str, version: int, outputs: IndicatorOutputs) -> IndicatorSetRecord:
    """Replace the outputs of an existing set in one statement; refuses naive timestamps."""
    owner = f"indicator set {dataset!r} version {version}"
    for field in ("first_ts", "last_ts"):
        if (value := getattr(outputs, field)) is not None:
            require_time_zone(owner, field, value)
    params = [*(getattr(outputs, column) for column in _OUTPUTS), dataset, version]
    with db.refusing(owner):
        row = db.one(_RECORD_OUTPUT, params)
    if row is None:
        raise CatalogError(f"no indicator set version {version} of dataset {dataset!r} in the catalog")
    return _from_row(row)


def _maybe(row: Sequence[Any] | None) -> IndicatorSetRecord | None:
    return None if row is None else _from_row(row)


def _from_row(row: Sequence[Any]) -> IndicatorSetRecord:
    return record_from_row(IndicatorSetRecord, row)
