"""Format detection: delimiter, header, column roles and timestamp format, sniffed from a sample of a file.

`split_fields` and `parse_epoch` are how a line splits into fields and what an epoch looks like: the
readers use the same ones, so they read a file the way it was detected.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow.parquet as pq

from trading_assets.compute.bar_format.model import (
    BAR_FIELDS,
    BarFileError,
    BarFormat,
    ColumnMapping,
    ReadOptions,
)

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


def split_fields(line: str, delimiter: str | None) -> list[str]:
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
        counts = {len(split_fields(t, delim)) for t in lines}
        if len(counts) == 1 and (n := counts.pop()) >= 5 and n > best[0]:
            best = (n, delim)
    return best[1]


def parse_epoch(text: str) -> tuple[str, int] | None:
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
            (i for i, f in enumerate(fields) if _is_number(f, decimal_point) and parse_epoch(f) is None),
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
    rows = [split_fields(t, delimiter) for t in texts]
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
    epochs = [parse_epoch(t) for t in ts_samples]
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
