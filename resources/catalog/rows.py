"""Checks and conversions every aggregate's SQL shares: time zones and hashes."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from trading_assets.records import CatalogError

HEX64 = re.compile(r"[0-9a-f]{64}")


def require_time_zone(owner: str, field: str, value: datetime) -> None:
    # A naive timestamp would be read in the session's zone, which no caller can be sure of.
    if value.tzinfo is None or value.utcoffset() is None:
        raise CatalogError(f"{owner}: {field} {value} has no time zone; pass UTC")


def utc(value: datetime) -> datetime:
    # Drivers return the session zone's tzinfo (zoneinfo, pytz); one tzinfo keeps records comparable.
    return value.astimezone(UTC)


def utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value)
