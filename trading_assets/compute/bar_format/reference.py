"""The slow reference reader: one line at a time with plain Python (datetime, zoneinfo, float).

Independent of the fast reader's Arrow parsing, it locates the exact line and field when the fast reader
rejects a file, and the `bars_match_source` check uses it as an oracle to compare stored rows with the
source file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq

from trading_assets.compute.bar_format.detect import parse_epoch, split_fields
from trading_assets.compute.bar_format.model import BAR_FIELDS, BarFileError, BarFormat


class ReferenceReader:
    """Reads data lines one at a time with plain Python (datetime, zoneinfo, float).

    Lines must come in file order: the reader remembers the latest wall time it has seen, so a wall time
    repeated by a DST fall-back gets the later offset (fold=1), as an exporter writing local time means it.
    """

    def __init__(self, fmt: BarFormat, file: str) -> None:
        self.fmt, self.file = fmt, file
        self._latest_wall: datetime | None = None

    @property
    def needs_every_line(self) -> bool:
        """Whether a line's value depends on the lines before it (local wall times with DST)."""
        return self.fmt.time_kind == "text" and self.fmt.timezone != "UTC"

    def parse(self, text: str, line: int) -> tuple[int, tuple[float, ...]]:
        """(ts in UTC microseconds, (open, high, low, close, volume)) of one data line, or BarFileError."""
        fmt, file = self.fmt, self.file
        fields = split_fields(text, fmt.delimiter)
        if len(fields) != len(fmt.names):
            raise BarFileError(file, f"has {len(fields)} fields, expected {len(fmt.names)}", line)
        ts_text = " ".join(fields[c] for c in fmt.ts_columns)
        ts = self._timestamp(ts_text, line, fmt.label(fmt.ts_columns, "timestamp"))
        values = []
        for role, col in zip(BAR_FIELDS, fmt.value_columns, strict=True):
            raw = fields[col]
            try:
                values.append(float(raw.replace(fmt.decimal_point, ".") if fmt.decimal_point != "." else raw))
            except ValueError:
                raise BarFileError(
                    file, f"{role} value {raw!r} is not a number", line, fmt.label((col,), role)
                ) from None
        return ts, tuple(values)

    def _timestamp(self, text: str, line: int, field_name: str) -> int:
        fmt, file = self.fmt, self.file
        if fmt.time_kind.startswith("epoch_"):
            unit = fmt.time_kind.removeprefix("epoch_")
            if not re.fullmatch(r"\d{1,19}", text):
                raise BarFileError(file, f"timestamp {text!r} is not an epoch integer", line, field_name)
            value = int(text)
            return value // 1000 if unit == "ns" else value * {"s": 1_000_000, "ms": 1_000, "us": 1}[unit]
        try:
            if fmt.datetime_format is None:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            else:
                parsed = datetime.strptime(text, fmt.datetime_format)
        except ValueError:
            want = fmt.datetime_format or "ISO 8601"
            raise BarFileError(file, f"timestamp {text!r} does not match {want}", line, field_name) from None
        if parsed.tzinfo is None:
            return self._from_wall_time(parsed, text, line, field_name)
        return _epoch_us(parsed)

    def _from_wall_time(self, wall: datetime, text: str, line: int, field_name: str) -> int:
        tz = ZoneInfo(self.fmt.timezone)
        repeated = self._latest_wall is not None and wall <= self._latest_wall
        self._latest_wall = wall if self._latest_wall is None else max(wall, self._latest_wall)
        aware = wall.replace(tzinfo=tz, fold=int(repeated))
        # A wall time skipped by a DST change does not survive the round trip through UTC.
        if aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != wall:
            raise BarFileError(
                self.file,
                f"local time {text!r} does not exist in {self.fmt.timezone} (DST gap)",
                line,
                field_name,
            )
        return _epoch_us(aware)


def _epoch_us(aware: datetime) -> int:
    delta = aware.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def parse_line(text: str, fmt: BarFormat, file: str, line: int) -> tuple[int, tuple[float, ...]]:
    """One data line read on its own (no DST fall-back context): for error messages and single lines."""
    return ReferenceReader(fmt, file).parse(text, line)


def iter_data_lines(path: Path, fmt: BarFormat) -> Iterator[tuple[int, str]]:
    """(line number, text) of every data line, in file order; the line numbers of `BarFileError`s."""
    with path.open(encoding="utf-8-sig", newline="") as fh:
        for number, text in enumerate(fh, start=1):
            if number > fmt.header_lines and text.strip():
                yield number, text


def locate_row(path: Path, fmt: BarFormat, row: int) -> int:
    """The line number of data row `row` (0-based) of a text file."""
    for i, (number, _) in enumerate(iter_data_lines(path, fmt)):
        if i == row:
            return number
    raise IndexError(row)


def first_bad_line(path: Path, fmt: BarFormat) -> BarFileError | None:
    """The first line the reference reader rejects, or None when every line reads."""
    reader = ReferenceReader(fmt, path.name)
    for number, text in iter_data_lines(path, fmt):
        try:
            reader.parse(text, number)
        except BarFileError as err:
            return err
    return None


def reference_rows(path: Path, fmt: BarFormat, rows: set[int]) -> dict[int, tuple[int, tuple[float, ...]]]:
    """Data rows `rows` (0-based) read by the slow reference path: plain Python, value by value."""
    if fmt.kind == "parquet":
        table = pq.read_table(path, columns=[fmt.names[c] for c in (fmt.ts_columns[0], *fmt.value_columns)])
        reader = ReferenceReader(fmt, path.name)
        ts_type = table.schema.types[0]
        in_order = pa.types.is_timestamp(ts_type) and ts_type.tz is None and fmt.timezone != "UTC"
        out = {}
        for r in range(table.num_rows) if in_order else sorted(rows):
            ts, *values = (table.column(i)[r].as_py() for i in range(table.num_columns))
            if isinstance(ts, datetime):
                ts_us = (
                    _epoch_us(ts) if ts.tzinfo else reader._from_wall_time(ts, str(ts), r + 1, "timestamp")
                )
            else:
                epoch_fmt = replace(fmt, time_kind=f"epoch_{parse_epoch(str(ts))[0]}")  # type: ignore[index]
                ts_us = ReferenceReader(epoch_fmt, path.name)._timestamp(str(ts), r + 1, "timestamp")
            if r in rows:
                out[r] = (ts_us, tuple(float(v) for v in values))
        return out
    reader = ReferenceReader(fmt, path.name)
    out = {}
    for i, (number, text) in enumerate(iter_data_lines(path, fmt)):
        if i in rows:
            out[i] = reader.parse(text, number)
        elif reader.needs_every_line:
            reader.parse(text, number)  # keeps the DST fall-back context of the rows that follow
    return out
