"""Checks and conversions every aggregate's SQL shares: rows to records, time zones and hashes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any, TypeVar

from trading_assets.records import CatalogError

HEX64 = re.compile(r"[0-9a-f]{64}")
R = TypeVar("R")


def require_time_zone(owner: str, field: str, value: datetime) -> None:
    # A naive timestamp would be read in the session's zone, which no caller can be sure of.
    if value.tzinfo is None or value.utcoffset() is None:
        raise CatalogError(f"{owner}: {field} {value} has no time zone; pass UTC")


def utc(value: datetime) -> datetime:
    # Drivers return the session zone's tzinfo (zoneinfo, pytz); one tzinfo keeps records comparable.
    return value.astimezone(UTC)


def utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value)


def where(**equal: Any) -> tuple[str, list[Any]]:
    """A ` WHERE column = %s AND ...` clause of the columns given a value (None leaves one out; "" if
    all are), and its parameters."""
    given = {column: value for column, value in equal.items() if value is not None}
    clause = " AND ".join(f"{column} = %s" for column in given)
    return (f" WHERE {clause}" if clause else ""), list(given.values())


def record_from_row(cls: type[R], row: Sequence[Any], columns: Sequence[str] | None = None) -> R:
    """A `cls` from a row of its fields (or of `columns`) in order: arrays as tuples, timestamps in UTC."""
    names = columns or [field.name for field in fields(cls)]
    return cls(**{name: _value(value) for name, value in zip(names, row, strict=True)})


def _value(value: Any) -> Any:
    if isinstance(value, datetime):
        return utc(value)
    return tuple(value) if isinstance(value, list) else value
