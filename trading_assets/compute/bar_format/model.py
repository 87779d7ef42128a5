"""What reading a bar file works with: the options a dataset gives, the layout detected from a file (or
configured), the table read from it, and the error that names the file, line and field."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Literal

import pyarrow as pa

from trading_assets.compute.calendars import trading_calendar

BAR_FIELDS = ("open", "high", "low", "close", "volume")
TS_TYPE = pa.timestamp("us", tz="UTC")

TimeKind = Literal["text", "epoch_s", "epoch_ms", "epoch_us", "epoch_ns", "native"]


class BarFileError(ValueError):
    """A bar file that cannot be read, naming the file, line (or row) and field."""

    def __init__(
        self,
        file: str,
        message: str,
        line: int | None = None,
        field: str | None = None,
        *,
        row_label: str = "line",
    ) -> None:
        where = file
        if line is not None:
            where += f" {row_label} {line}"
        if field is not None:
            where += f", field '{field}'"
        super().__init__(f"{where}: {message}")
        self.file, self.line, self.field, self.reason = file, line, field, message


@dataclass(frozen=True)
class ColumnMapping:
    """Which source column holds which bar field: header names, or 0-based positions for files without one.

    Give either `timestamp` (one column: date and time, or epoch) or `date` and `time`. Fields left as None
    are detected. `ignore` lists extra header columns to drop silently.
    """

    timestamp: str | int | None = None
    date: str | int | None = None
    time: str | int | None = None
    open: str | int | None = None
    high: str | int | None = None
    low: str | int | None = None
    close: str | int | None = None
    volume: str | int | None = None
    ignore: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, values: dict[str, object]) -> ColumnMapping:
        unknown = set(values) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise ValueError(f"unknown column mapping keys {sorted(unknown)}")
        data = dict(values)
        data["ignore"] = tuple(data.get("ignore", ()))  # type: ignore[call-overload]
        return cls(**data)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ReadOptions:
    """Per-dataset reading options: column mapping, source time zone and explicit formats."""

    timezone: str = "UTC"
    columns: ColumnMapping = field(default_factory=ColumnMapping)
    # strptime format of the date (+ ' ' + time) text, when detection is ambiguous (e.g. '%d/%m/%Y %H:%M').
    datetime_format: str | None = None
    # Trading calendar the gaps are counted against (`compute/calendars.py`: XNYS, 24/5, 24/7, ...).
    calendar: str | None = None

    @classmethod
    def from_dict(cls, values: dict[str, object]) -> ReadOptions:
        """From the JSON form (a dataset's `<stem>.json`, or the catalog's record of an import)."""
        unknown = set(values) - {"timezone", "columns", "datetime_format", "calendar"}
        if unknown:
            raise ValueError(f"unknown reading option keys {sorted(unknown)}")
        calendar = values.get("calendar")
        if calendar is not None:
            trading_calendar(str(calendar))  # an unknown name is refused here, before any reading
        return cls(
            timezone=str(values.get("timezone", "UTC")),
            columns=ColumnMapping.from_dict(dict(values.get("columns", {}))),  # type: ignore[call-overload]
            datetime_format=values.get("datetime_format"),  # type: ignore[arg-type]
            calendar=None if calendar is None else str(calendar),
        )

    def to_json(self) -> str:
        mapping = {k: v for k, v in asdict(self.columns).items() if v not in (None, ())}
        values = {
            "timezone": self.timezone,
            "columns": mapping,
            "datetime_format": self.datetime_format,
            "calendar": self.calendar,
        }
        return json.dumps({k: v for k, v in values.items() if v not in (None, {})}, sort_keys=True)


@dataclass(frozen=True)
class BarFormat:
    """How one file is laid out, as detected (or configured); enough to read any line of it."""

    kind: Literal["text", "parquet"]
    delimiter: str | None  # None: runs of whitespace
    header_lines: int
    names: tuple[str, ...]  # source column names (generated 'column1'... without a header)
    ts_columns: tuple[int, ...]  # one (timestamp) or two (date, time) column positions
    value_columns: tuple[int, int, int, int, int]  # positions of open, high, low, close, volume
    time_kind: TimeKind
    datetime_format: str | None  # strptime format of the joined timestamp text; None for ISO / epoch
    timezone: str
    decimal_point: str = "."
    ignored: tuple[str, ...] = ()
    has_header: bool = False  # names are the file's own (header or Parquet schema)

    def label(self, positions: tuple[int, ...], role: str) -> str:
        """How an error names a field: its header name, or its role and position without a header."""
        if self.has_header and all(self.names[p] for p in positions):
            return "/".join(self.names[p] for p in positions)
        cols = "-".join(str(p + 1) for p in positions)
        return f"{role} (column{'s' if len(positions) > 1 else ''} {cols})"


@dataclass(frozen=True)
class ParsedBars:
    table: pa.Table  # ts (UTC, us), open, high, low, close, volume (float64)
    format: BarFormat
