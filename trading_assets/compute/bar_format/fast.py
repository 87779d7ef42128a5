"""The fast reader: the plain-layout kernels (`plain`) where they apply, else Arrow's multithreaded CSV
reader plus vectorised timestamp parsing."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from trading_assets.compute.bar_format.detect import detect_format, parse_epoch
from trading_assets.compute.bar_format.model import (
    BAR_FIELDS,
    TS_TYPE,
    BarFileError,
    BarFormat,
    ParsedBars,
    ReadOptions,
)
from trading_assets.compute.bar_format.plain import read_plain_columns
from trading_assets.compute.bar_format.reference import first_bad_line, locate_row

# Below this size Arrow reads a file in less time than a fresh process takes to load the compiled
# plain-layout kernels.
_PLAIN_MIN_BYTES = 32 << 20


def read_bars(path: Path, options: ReadOptions | None = None) -> ParsedBars:
    """Read a bar file into a UTC table (unvalidated: see `bar_checks.validate_bars`)."""
    fmt = detect_format(path, options)
    if fmt.kind == "parquet":
        return ParsedBars(_read_parquet(path, fmt), fmt)
    try:
        raw = read_plain_columns(path, fmt) if path.stat().st_size >= _PLAIN_MIN_BYTES else None
        if raw is None:
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
        epoch = parse_epoch(str(first)) if first is not None else None
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
