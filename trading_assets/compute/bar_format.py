"""Reading bar exports written by desktop trading apps: format detection and parsing.

Two readers share one `BarFormat`:
- `read_bars` is the fast path: Arrow's multithreaded CSV reader plus vectorised timestamp parsing.
- `parse_line` is a slow, independent reference that reads one line with plain Python. It locates
  the exact line and field when the fast path rejects a file, and the `bars_match_source` check uses it
  as an oracle to compare stored rows with the source file.

Accepted: CSV and whitespace/semicolon/tab/pipe separated text, with or without a header, date and time
in one column or two, epoch seconds/milliseconds/microseconds/nanoseconds, Parquet. Timestamps without
an offset are local times in the dataset's time zone (default UTC); everything comes out in UTC.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from trading_assets.compute.calendars import trading_calendar

BAR_FIELDS = ("open", "high", "low", "close", "volume")
TS_TYPE = pa.timestamp("us", tz="UTC")
_SNIFF_BYTES = 64 * 1024

# Header names exporters use, normalised (lowercase, without <>, quotes, spaces, '_', '-').
_ALIASES: dict[str, tuple[str, ...]] = {
    "timestamp": (
        "timestamp",
        "datetime",
        "ts",
        "time_stamp",
        "opentime",
        "gmttime",
        "localtime",
        "date_time",
    ),
    "date": ("date", "day"),
    "time": ("time",),
    "open": ("open", "o", "openprice"),
    "high": ("high", "h", "highprice"),
    "low": ("low", "l", "lowprice"),
    "close": ("close", "c", "last", "closeprice"),
    "volume": ("volume", "vol", "v", "tickvol", "tickvolume", "realvolume", "basevolume"),
}
# Columns exporters add that bars do not keep: ignored (and reported), never an error.
_KNOWN_EXTRAS = frozenset(
    {
        "spread",
        "openinterest",
        "oi",
        "trades",
        "count",
        "numberoftrades",
        "vwap",
        "quotevolume",
        "upvolume",
        "downvolume",
        "tickvol",
        "tickvolume",
        "realvolume",
        "vol",
        "volume",
        "closetime",
        "adjclose",
    }
)

_DATE_FORMATS = ("%Y-%m-%d", "%Y.%m.%d", "%Y/%m/%d", "%Y%m%d", "%d.%m.%Y", "%m/%d/%Y", "%d/%m/%Y", "%d-%m-%Y")
_TIME_FORMATS = ("%H:%M:%S", "%H:%M", "%H%M%S", "%H%M")
_EPOCH_UNITS = (
    ("s", 1_000_000, 10**8, 10**10),
    ("ms", 1_000, 10**11, 10**13),
    ("us", 1, 10**14, 10**16),
    ("ns", None, 10**17, 10**19),
)

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


def _normalise(name: str) -> str:
    return re.sub(r"[<>\"'\s_\-./]", "", name).lower()


def _is_number(text: str, decimal_point: str = ".") -> bool:
    if decimal_point != ".":
        text = text.replace(decimal_point, ".")
    try:
        float(text)
    except ValueError:
        return False
    return True


def _split(line: str, delimiter: str | None) -> list[str]:
    parts = line.strip().split() if delimiter is None else line.rstrip("\r\n").split(delimiter)
    return [p.strip().strip('"') for p in parts]


def _sample_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of the non-empty lines in the first 64 KiB and the last 16 KiB."""
    with path.open("rb") as fh:
        head = fh.read(_SNIFF_BYTES)
        size = path.stat().st_size
        tail = b""
        if size > _SNIFF_BYTES:
            fh.seek(max(_SNIFF_BYTES, size - 16 * 1024))
            tail = fh.read()
    try:
        head_text = head.decode("utf-8-sig")
        tail_text = tail.decode("utf-8", errors="strict")
    except UnicodeDecodeError as err:
        raise BarFileError(path.name, f"not UTF-8 text ({err.reason} at byte {err.start})") from None
    head_lines = head_text.splitlines()
    if size > _SNIFF_BYTES and head_lines:
        head_lines = head_lines[:-1]  # the last line of the block may be cut
    out = [(i + 1, t) for i, t in enumerate(head_lines) if t.strip()]
    if tail:
        # Tail lines are only used to pick formats; their line numbers are unknown without a full scan.
        out += [(-1, t) for t in tail_text.splitlines()[1:] if t.strip()]
    return out


def _detect_delimiter(lines: list[str]) -> str | None:
    """The separator that splits every sample line into the same number (>= 5) of fields, the most wins."""
    best: tuple[int, str | None] = (0, ",")  # with no fit, the line reader reports the odd line exactly
    for delim in (",", ";", "\t", "|", None):
        counts = {len(_split(t, delim)) for t in lines}
        if len(counts) == 1 and (n := counts.pop()) >= 5 and n > best[0]:
            best = (n, delim)
    return best[1]


def _parse_epoch(text: str) -> tuple[str, int] | None:
    if not re.fullmatch(r"\d{9,19}", text):
        return None
    value = int(text)
    for unit, _, lo, hi in _EPOCH_UNITS:
        if lo <= value < hi:
            return unit, value
    return None


def _datetime_formats(has_time_column: bool) -> list[str]:
    if has_time_column:
        return [f"{d} {t}" for d in _DATE_FORMATS for t in _TIME_FORMATS]
    return [f"{d}{sep}{t}" for d in _DATE_FORMATS for sep in (" ", "T") for t in _TIME_FORMATS] + list(
        _DATE_FORMATS
    )


def _iso_like(texts: list[str]) -> bool:
    return all(
        re.fullmatch(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?", t)
        for t in texts
    )


def _pick_datetime_format(texts: list[str], has_time_column: bool, file: str) -> str | None:
    """The strptime format that reads the most samples; None means ISO 8601 (parsed by Arrow's cast)."""
    if (
        not has_time_column
        and _iso_like(texts)
        and any(re.search(r"\.\d|Z$|[+-]\d{2}:?\d{2}$", t) for t in texts)
    ):
        return None
    # The format that reads the most samples wins; a bad value is then reported with its line by the parser.
    scores: dict[str, int] = {}
    for fmt in _datetime_formats(has_time_column):
        ok = 0
        for t in texts:
            try:
                datetime.strptime(t, fmt)
                ok += 1
            except ValueError:
                pass
        if ok:
            scores[fmt] = ok
    if not scores:
        raise BarFileError(
            file,
            f"cannot recognise the date/time format of {texts[0]!r}; set a datetime_format for this dataset",
        )
    best = max(scores.values())
    fits = [f for f, n in scores.items() if n == best]
    if len({f[:2] for f in fits if f.startswith(("%d", "%m"))}) > 1 and all(
        f.startswith(("%d", "%m")) for f in fits
    ):
        raise BarFileError(
            file,
            f"dates like {texts[0]!r} read as both day/month and month/day; "
            "set a datetime_format for this dataset (e.g. '%d/%m/%Y %H:%M')",
        )
    return fits[0]


def _resolve(mapping_value: str | int | None, names: list[str], what: str, file: str) -> int | None:
    if mapping_value is None:
        return None
    if isinstance(mapping_value, int):
        if not 0 <= mapping_value < len(names):
            raise BarFileError(
                file, f"column mapping {what}={mapping_value} is outside the {len(names)} columns"
            )
        return mapping_value
    normal = [_normalise(n) for n in names]
    if _normalise(mapping_value) not in normal:
        raise BarFileError(file, f"column mapping {what}={mapping_value!r}: no such column in {names}")
    return normal.index(_normalise(mapping_value))


def _roles_from_header(names: list[str], mapping: ColumnMapping, file: str) -> dict[str, int]:
    roles: dict[str, int] = {}
    for role in ("timestamp", "date", "time", *BAR_FIELDS):
        pos = _resolve(getattr(mapping, role), names, role, file)
        if pos is not None:
            roles[role] = pos
    normal = [_normalise(n) for n in names]
    for role, aliases in _ALIASES.items():
        if role in roles:
            continue
        for alias in aliases:  # aliases are in order of preference ("volume" before "tickvol")
            if alias in normal and normal.index(alias) not in roles.values():
                roles[role] = normal.index(alias)
                break
    if not roles.keys() & {"timestamp", "date", "time"} and names and not names[0].strip():
        roles["timestamp"] = 0  # pandas' DataFrame.to_csv() writes the time index under an empty name
    if "date" in roles and "time" not in roles and "timestamp" not in roles:
        roles["timestamp"] = roles.pop("date")
    if "timestamp" not in roles and "time" in roles and "date" not in roles:
        roles["timestamp"] = roles.pop("time")
    return roles


def _roles_from_values(
    fields: list[str], mapping: ColumnMapping, decimal_point: str, file: str
) -> dict[str, int]:
    names = [f"column{i + 1}" for i in range(len(fields))]
    roles = {
        r: p
        for r in ("timestamp", "date", "time", *BAR_FIELDS)
        if (p := _resolve(getattr(mapping, r), names, r, file)) is not None
    }
    if not ({"timestamp"} & roles.keys() or {"date", "time"} <= roles.keys()):
        first_numeric = next(
            (i for i, f in enumerate(fields) if _is_number(f, decimal_point) and _parse_epoch(f) is None),
            len(fields),
        )
        if first_numeric == 2:
            roles.update(date=0, time=1)
        elif first_numeric == 1:
            roles["timestamp"] = 0
        else:
            raise BarFileError(
                file, f"cannot tell which columns hold the date and time in {fields}; give a column mapping"
            )
    start = max(roles.get("timestamp", -1), roles.get("date", -1), roles.get("time", -1)) + 1
    free = [i for i in range(start, len(fields)) if i not in roles.values()]
    for role in BAR_FIELDS:
        if role not in roles and free:
            roles[role] = free.pop(0)
    if free:
        raise BarFileError(
            file,
            f"{len(free)} unexpected columns after open, high, low, close, volume "
            f"(columns {[f + 1 for f in free]}); give a column mapping",
        )
    return roles


def _check_timezone(tz: str, file: str) -> str:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise BarFileError(file, f"unknown time zone {tz!r}") from None
    return tz


def detect_format(path: Path, options: ReadOptions | None = None) -> BarFormat:
    """Detect delimiter, header, column roles and timestamp format from a sample of the file."""
    options = options or ReadOptions()
    file = path.name
    tz = _check_timezone(options.timezone, file)
    if path.suffix.lower() == ".parquet":
        return _detect_parquet(path, options, tz)
    sample = _sample_lines(path)
    if not sample:
        raise BarFileError(file, "the file is empty")
    texts = [t for _, t in sample]
    delimiter = _detect_delimiter(texts[: min(len(texts), 50)])
    rows = [_split(t, delimiter) for t in texts]
    # Decimal commas only make sense with ';' separators; any sampled value like 1,5 decides.
    decimal_comma = delimiter == ";" and any(re.fullmatch(r"-?\d+,\d+", f) for r in rows for f in r)
    decimal_point = "," if decimal_comma else "."
    first, second = rows[0], rows[1] if len(rows) > 1 else rows[0]
    header = (
        len(rows) > 1
        and any(
            _is_number(b, decimal_point) and not _is_number(a, decimal_point)
            for a, b in zip(first, second, strict=False)
        )
        and not any(_is_number(a, decimal_point) for a in first)
    )
    mapping = options.columns
    if header:
        names = list(first)
        roles = _roles_from_header(names, mapping, file)
        used = set(roles.values())
        extras = [n for i, n in enumerate(names) if i not in used]
        unknown = [n for n in extras if _normalise(n) not in _KNOWN_EXTRAS and n not in mapping.ignore]
        if unknown:
            raise BarFileError(
                file,
                f"unknown columns {unknown} in the header; map them or list them in 'ignore'",
                line=sample[0][0],
            )
        data_rows = rows[1:]
    else:
        roles = _roles_from_values(first, mapping, decimal_point, file)
        names = [f"column{i + 1}" for i in range(len(first))]
        extras = []
        data_rows = rows
    missing = [r for r in BAR_FIELDS if r not in roles]
    if "timestamp" not in roles and not {"date", "time"} <= roles.keys():
        missing.insert(0, "timestamp (or date and time)")
    if missing:
        raise BarFileError(file, f"missing columns: {', '.join(missing)} (found {names})")
    ts_columns = (roles["timestamp"],) if "timestamp" in roles else (roles["date"], roles["time"])
    value_columns = tuple(roles[r] for r in BAR_FIELDS)
    complete = [r for r in data_rows if len(r) == len(names)]
    # Head and tail of the sample: enough to tell formats apart (e.g. day 13+ for d/m vs m/d).
    ts_samples = [" ".join(r[c] for c in ts_columns) for r in complete[:100] + complete[-100:]]
    if not ts_samples:
        raise BarFileError(file, "no data rows")
    fmt = BarFormat(
        kind="text",
        delimiter=delimiter,
        header_lines=sample[0][0] if header else sample[0][0] - 1,
        names=tuple(names),
        ts_columns=ts_columns,
        value_columns=value_columns,  # type: ignore[arg-type]
        time_kind="text",
        datetime_format=None,
        timezone=tz,
        decimal_point=decimal_point,
        ignored=tuple(extras),
        has_header=header,
    )
    epochs = [_parse_epoch(t) for t in ts_samples]
    if len(ts_columns) == 1 and all(epochs):
        units = {e[0] for e in epochs if e}
        if len(units) > 1:
            raise BarFileError(file, f"epoch timestamps mix units {sorted(units)}")
        return replace(fmt, time_kind=f"epoch_{units.pop()}")  # type: ignore[arg-type]
    if options.datetime_format:
        return replace(fmt, datetime_format=options.datetime_format)
    return replace(fmt, datetime_format=_pick_datetime_format(ts_samples, len(ts_columns) == 2, file))


def _detect_parquet(path: Path, options: ReadOptions, tz: str) -> BarFormat:
    names = pq.read_schema(path).names
    roles = _roles_from_header(names, options.columns, path.name)
    missing = [r for r in BAR_FIELDS if r not in roles]
    if "timestamp" not in roles:
        missing.insert(0, "timestamp")
    if missing:
        raise BarFileError(path.name, f"missing columns: {', '.join(missing)} (found {names})")
    used = set(roles.values())
    extras = [n for i, n in enumerate(names) if i not in used]
    unknown = [n for n in extras if _normalise(n) not in _KNOWN_EXTRAS and n not in options.columns.ignore]
    if unknown:
        raise BarFileError(path.name, f"unknown columns {unknown}; map them or list them in 'ignore'")
    return BarFormat(
        kind="parquet",
        delimiter=None,
        header_lines=0,
        names=tuple(names),
        ts_columns=(roles["timestamp"],),
        value_columns=tuple(roles[r] for r in BAR_FIELDS),  # type: ignore[arg-type]
        time_kind="native",
        datetime_format=None,
        timezone=tz,
        ignored=tuple(extras),
        has_header=True,
    )


# ---------------------------------------------------------------------------------------------------
# Slow reference reader: one line at a time, plain Python.


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
        fields = _split(text, fmt.delimiter)
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


# ---------------------------------------------------------------------------------------------------
# Fast path.


def read_bars(path: Path, options: ReadOptions | None = None) -> ParsedBars:
    """Read a bar file into a UTC table (unvalidated: see `bar_checks.validate_bars`)."""
    fmt = detect_format(path, options)
    if fmt.kind == "parquet":
        return ParsedBars(_read_parquet(path, fmt), fmt)
    try:
        raw = _read_text_columns(path, fmt)
        ts = _timestamps(raw.column("ts"), fmt)
    except (pa.ArrowInvalid, BarFileError) as err:
        # Arrow says what is wrong but not where: the reference reader finds the exact line and field.
        located = first_bad_line(path, fmt)
        if located is not None:
            raise located from None
        if isinstance(err, BarFileError):
            raise
        raise BarFileError(path.name, str(err).splitlines()[0]) from None
    if isinstance(ts, _BadRow):
        raise BarFileError(
            path.name,
            ts.message,
            locate_row(path, fmt, ts.row),
            fmt.label(fmt.ts_columns, "timestamp"),
        )
    columns = {"ts": ts, **{f: raw.column(f) for f in BAR_FIELDS}}
    return ParsedBars(pa.table(columns), fmt)


# Time-of-day formats Arrow's CSV reader parses natively into time32.
_NATIVE_TIMES = ("%H:%M:%S", "%H:%M")


def _ts_conversion(fmt: BarFormat) -> tuple[list[pa.DataType], list[str]]:
    """Arrow column types (and strptime parsers) that let the CSV reader itself parse the timestamp columns.

    Parsing inside the multithreaded reader is much faster than reading strings and converting after.
    """
    if fmt.time_kind.startswith("epoch_"):
        return [pa.int64()], []
    if fmt.datetime_format is None:
        return [pa.string()], []  # ISO 8601 with fractions or offsets: Arrow's cast parses it later
    if len(fmt.ts_columns) == 2:
        date_format, _, time_format = fmt.datetime_format.partition(" ")
        if time_format in _NATIVE_TIMES:
            return [pa.timestamp("s"), pa.time32("s")], [date_format]
        return [pa.string(), pa.string()], []
    return [pa.timestamp("us")], [fmt.datetime_format]


def _read_text_columns(path: Path, fmt: BarFormat) -> pa.Table:
    ts_names = [fmt.names[c] for c in fmt.ts_columns]
    value_names = [fmt.names[c] for c in fmt.value_columns]
    ts_types, parsers = _ts_conversion(fmt)
    column_types: dict[str, pa.DataType] = {n: pa.float64() for n in value_names}
    column_types.update(zip(ts_names, ts_types, strict=True))
    source: Path | io.BytesIO = path
    delimiter = fmt.delimiter
    if delimiter is None:
        # Arrow splits on one character: squeeze whitespace runs (aligned columns) into single spaces.
        data = re.sub(rb"[ \t]+", b" ", path.read_bytes())
        source = io.BytesIO(re.sub(rb"(?m)^ | (?=\r?$)", b"", data))
        delimiter = " "
    table = pacsv.read_csv(
        source,
        read_options=pacsv.ReadOptions(
            column_names=list(fmt.names), skip_rows=fmt.header_lines, block_size=8 << 20
        ),
        parse_options=pacsv.ParseOptions(delimiter=delimiter),
        convert_options=pacsv.ConvertOptions(
            column_types=column_types,
            include_columns=ts_names + value_names,
            decimal_point=fmt.decimal_point,
            timestamp_parsers=parsers or None,
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    columns = [table.column(n) for n in ts_names]
    if len(columns) == 1:
        ts = columns[0]
    elif pa.types.is_timestamp(columns[0].type):
        # date (midnight, seconds) + time of day (seconds since midnight), in microseconds
        days = columns[0].cast(pa.int64()).to_numpy()
        secs = columns[1].cast(pa.int32()).to_numpy().astype(np.int64)
        ts = pa.array((days + secs) * 1_000_000, pa.timestamp("us"))
    else:
        ts = pc.binary_join_element_wise(columns[0], columns[1], " ")
    return pa.table({"ts": ts, **{f: table.column(n) for f, n in zip(BAR_FIELDS, value_names, strict=True)}})


@dataclass(frozen=True)
class _BadRow:
    row: int
    message: str


def _timestamps(raw: pa.ChunkedArray, fmt: BarFormat) -> pa.ChunkedArray | _BadRow:
    if fmt.time_kind.startswith("epoch_"):
        unit = fmt.time_kind.removeprefix("epoch_")
        if unit == "ns":  # the contract is microseconds; epochs are positive, so integer division floors
            raw, unit = pc.divide(raw, 1000), "us"
        return pc.cast(raw, pa.timestamp(unit)).cast(TS_TYPE)
    if pa.types.is_timestamp(raw.type):
        return localize(raw.cast(pa.timestamp("us")), fmt.timezone)
    if fmt.datetime_format is None:
        text = raw.to_numpy(zero_copy_only=False)
        aware = bool(text.size) and bool(re.search(r"(Z|[+-]\d{2}:?\d{2})$", str(text[0])))
        parsed = pc.cast(raw, TS_TYPE if aware else pa.timestamp("us"))
        if aware:
            return parsed
    else:
        parsed = pc.strptime(raw, format=fmt.datetime_format, unit="us", error_is_null=True)
        if parsed.null_count:
            row = int(np.flatnonzero(pc.is_null(parsed).to_numpy(zero_copy_only=False))[0])
            return _BadRow(row, f"timestamp {raw[row].as_py()!r} does not match {fmt.datetime_format}")
    return localize(parsed, fmt.timezone)


def localize(naive: pa.ChunkedArray | pa.Array, tz: str) -> pa.Array | _BadRow:
    """Wall times in `tz` to UTC.

    A wall time repeated by a DST fall-back takes the earlier offset the first time and the later one when
    it comes round again, as an exporter writing local time produces them. A wall time inside a DST gap
    does not exist and is refused.
    """
    if tz == "UTC":
        return naive.cast(TS_TYPE)

    def assume(ambiguous: str, nonexistent: str) -> np.ndarray:
        aware = pc.assume_timezone(naive, tz, ambiguous=ambiguous, nonexistent=nonexistent)
        return aware.cast(pa.int64()).to_numpy(zero_copy_only=False)

    first = assume("earliest", "earliest")
    gap = first != assume("earliest", "latest")
    if gap.any():
        row = int(np.flatnonzero(gap)[0])
        wall = pc.strftime(naive[row], "%Y-%m-%d %H:%M:%S").as_py()
        return _BadRow(row, f"local time {wall} does not exist in {tz} (DST gap)")
    second = assume("latest", "earliest")
    local = naive.cast(pa.int64()).to_numpy(zero_copy_only=False)
    seen_later = np.concatenate(([False], local[1:] <= np.maximum.accumulate(local)[:-1]))
    return pa.array(np.where((first != second) & seen_later, second, first), pa.int64()).cast(TS_TYPE)


def _read_parquet(path: Path, fmt: BarFormat) -> pa.Table:
    table = pq.read_table(path)
    ts = table.column(fmt.ts_columns[0])
    if pa.types.is_timestamp(ts.type):
        out = (
            ts.cast(pa.timestamp("us", tz=ts.type.tz)).cast(TS_TYPE)
            if ts.type.tz
            else localize(ts.cast(pa.timestamp("us")), fmt.timezone)
        )
    elif pa.types.is_integer(ts.type):
        first = pc.min(ts).as_py()
        epoch = _parse_epoch(str(first)) if first is not None else None
        if epoch is None:
            raise BarFileError(
                path.name,
                f"integer timestamps like {first} are not epoch s/ms/us/ns",
                1,
                fmt.names[fmt.ts_columns[0]],
                row_label="row",
            )
        out = _timestamps(ts, replace(fmt, time_kind=f"epoch_{epoch[0]}"))  # type: ignore[arg-type]
    else:
        raise BarFileError(
            path.name,
            f"timestamp column has type {ts.type}; expected a timestamp or epoch",
            field=fmt.names[fmt.ts_columns[0]],
        )
    if isinstance(out, _BadRow):
        raise BarFileError(path.name, out.message, out.row + 1, fmt.names[fmt.ts_columns[0]], row_label="row")
    values = {}
    for role, col in zip(BAR_FIELDS, fmt.value_columns, strict=True):
        try:
            values[role] = table.column(col).cast(pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
            raise BarFileError(path.name, f"cannot read as numbers: {err}", field=fmt.names[col]) from None
    return pa.table({"ts": out, **values})


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
                epoch_fmt = replace(fmt, time_kind=f"epoch_{_parse_epoch(str(ts))[0]}")  # type: ignore[index]
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
