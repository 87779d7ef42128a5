"""The plain-layout path of the fast reader: the numba kernels read a delimited export on every core.

Most exports are plain: one character between fields, fixed-width dates and times, short decimals. For
those, `read_plain_columns` returns the same columns the Arrow reader would, several times faster. For any
other file (or a file with one line that is not plain) it returns None and the Arrow reader reads it.
"""

from __future__ import annotations

import mmap
import re
from pathlib import Path

import numba
import numpy as np
import pyarrow as pa

from trading_assets.compute.bar_format import kernels as k
from trading_assets.compute.bar_format.model import BAR_FIELDS, BarFormat

# Fixed-width strptime directives: the part each digit adds to, and how many digits.
_DIRECTIVES = {
    "Y": (k.YEAR, 4),
    "m": (k.MONTH, 2),
    "d": (k.DAY, 2),
    "H": (k.HOUR, 2),
    "M": (k.MINUTE, 2),
    "S": (k.SECOND, 2),
}
# Chunks per thread: enough for a thread slowed by other work to leave its share to the others.
_CHUNKS_PER_THREAD = 8
_MIN_CHUNK_BYTES = 1 << 20


def read_plain_columns(path: Path, fmt: BarFormat, chunk_bytes: int | None = None) -> pa.Table | None:
    """Columns `ts` (naive microseconds, or the raw epoch integers) and open..volume of a plain text
    export, as the Arrow reader reads them; None when the file is not plain. `chunk_bytes` sets the
    size of the pieces read in parallel (by default a few per thread)."""
    programs = _programs(fmt)
    if programs is None:
        return None
    data = _mapped(path)
    if data is None:
        return None
    start = _data_start(data, fmt.header_lines)
    if start is None:
        return None
    if chunk_bytes is None:
        chunk_bytes = max(_MIN_CHUNK_BYTES, data.size // (numba.get_num_threads() * _CHUNKS_PER_THREAD))
    starts = k.chunk_starts(data, start, max(1, -(-(data.size - start) // chunk_bytes)))
    # Chunks go one at a time to whichever thread is free: a core busy with other work takes fewer.
    with numba.parallel_chunksize(1):
        capacity = k.count_lines(data, data[: data.size // 8 * 8].view(np.uint64), starts)
        first_row = np.concatenate(([0], np.cumsum(capacity)[:-1]))
        ts = np.empty(int(capacity.sum()), dtype=np.int64)
        values = np.empty((len(BAR_FIELDS), ts.size), dtype=np.float64)
        parsed = k.parse_chunks(data, starts, first_row, _layout(fmt, programs), ts, values)
    if (parsed < 0).any():
        return None
    if (parsed != capacity).any():  # empty lines: close the chunks' gaps
        keep = np.concatenate([np.arange(f, f + p) for f, p in zip(first_row, parsed, strict=True)])
        ts, values = ts[keep], values[:, keep]
    stamps = pa.array(ts, pa.int64() if fmt.time_kind.startswith("epoch_") else pa.timestamp("us"))
    return pa.table({"ts": stamps, **{f: values[i] for i, f in enumerate(BAR_FIELDS)}})


def _layout(fmt: BarFormat, programs: np.ndarray) -> k.Layout:
    roles = np.full(len(fmt.names), k.IGNORED, dtype=np.int64)
    roles[list(fmt.ts_columns)] = k.TS_PART
    roles[list(fmt.value_columns)] = np.arange(len(BAR_FIELDS))
    return k.Layout(
        roles=roles,
        programs=programs,
        dates=~np.isin(programs[:, :, 0], (k.HOUR, k.MINUTE, k.SECOND, k.EPOCH)).any(axis=1),
        delimiter=ord(fmt.delimiter),  # type: ignore[arg-type]
        decimal=ord(fmt.decimal_point),
        epoch=fmt.time_kind.startswith("epoch_"),
    )


def _mapped(path: Path) -> np.ndarray | None:
    """The file's bytes, mapped (read-only, pages loaded up front); unmapped once no array refers to it.
    None for an empty file, which cannot be mapped."""
    with path.open("rb") as fh:
        if not path.stat().st_size:
            return None
        flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
        return np.frombuffer(mmap.mmap(fh.fileno(), 0, flags=flags, prot=mmap.PROT_READ), np.uint8)


def _programs(fmt: BarFormat) -> np.ndarray | None:
    """One program per timestamp column (steps of (kind, argument), padded with END), or None when the
    layout is not plain."""
    if fmt.kind != "text" or not _single_ascii(fmt.delimiter) or not _single_ascii(fmt.decimal_point):
        return None
    if fmt.delimiter == fmt.decimal_point:
        return None
    if fmt.time_kind.startswith("epoch_"):
        return np.array([[[k.EPOCH, 0]]], dtype=np.int64)
    if fmt.time_kind != "text" or fmt.datetime_format is None:
        return None
    # Two columns hold the date and the time, as the Arrow reader splits the format.
    texts = fmt.datetime_format.partition(" ")[::2] if len(fmt.ts_columns) == 2 else (fmt.datetime_format,)
    programs = [_program(t, fmt.delimiter) for t in texts]
    if list(fmt.ts_columns) != sorted(fmt.ts_columns):
        programs.reverse()  # the kernel meets the timestamp columns in file order
    if any(p is None for p in programs):
        return None
    directives = re.findall(r"%(.)", "".join(texts))
    if any(directives.count(d) != 1 for d in "Ymd") or any(directives.count(d) > 1 for d in "HMS"):
        return None
    out = np.full((len(programs), max(map(len, programs)), 2), k.END, dtype=np.int64)  # type: ignore[arg-type]
    for i, program in enumerate(programs):
        out[i, : len(program)] = program  # type: ignore[arg-type]
    return out


def _program(text: str, delimiter: str) -> list[tuple[int, int]] | None:
    steps = []
    for directive, literal in re.findall(r"%(.)|([^%])", text):
        if directive:
            if directive not in _DIRECTIVES:
                return None
            part, width = _DIRECTIVES[directive]
            steps += [(part, 0)] + [(part, 10)] * (width - 1)
        elif literal.isascii() and literal not in f'\r\n"{delimiter}':
            steps.append((k.LITERAL, ord(literal)))
        else:
            return None
    return steps or None


def _single_ascii(text: str | None) -> bool:
    return text is not None and len(text) == 1 and text.isascii() and text not in '\r\n"0123456789'


def _data_start(data: np.ndarray, header_lines: int) -> int | None:
    """Offset of the first data line; None when a header line could read differently in Arrow (empty,
    or with an odd number of quotes, which would carry a field over the line end)."""
    pos = 0
    for _ in range(header_lines):
        end = _find(data, b"\n", pos)
        line = data[pos:end]
        if line.size == 0 or (line.size == 1 and line[0] == 13) or int((line == ord('"')).sum()) % 2:
            return None
        pos = end + 1
    return min(pos, data.size)


def _find(data: np.ndarray, byte: bytes, pos: int) -> int:
    hits = np.flatnonzero(data[pos : pos + (1 << 16)] == byte[0])
    if hits.size:
        return pos + int(hits[0])
    rest = np.flatnonzero(data[pos:] == byte[0])
    return pos + int(rest[0]) if rest.size else data.size
