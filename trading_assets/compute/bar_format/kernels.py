"""Numba kernels of the fast reader (delimited text parsed in parallel chunks that start at line starts)
and of the bar checks (every rule in one pass).

They read only the plain layout exporters write: fixed-width digits in the date and time fields, values
like `-123.4500` (at most 15 significant digits), one character between fields, `\\n` or `\\r\\n` line ends.
Anything else makes them give up, and the Arrow reader reads the file instead (and locates errors), so
they never accept a file that reader would refuse or read differently.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit, prange

# What a column holds (its role code): an ignored column, a value (0..4: open..volume), a timestamp part.
IGNORED = -1
TS_PART = 5
# Steps of a timestamp field's program, (kind, argument): a literal byte (the byte); one digit of a
# date/time part (what the part read so far is multiplied by: 0 at its first digit, else 10); an epoch
# integer; the end.
LITERAL, YEAR, MONTH, DAY, HOUR, MINUTE, SECOND, EPOCH, END = range(9)
# Beyond the parts a program reads: the last date converted (yyyymmdd, -1 before any) and its days.
DATE, DAYS = 9, 10
# Clinger's fast path: a mantissa of at most 15 digits (below 2**53, an exact double) over an exact power
# of ten rounds correctly in one division, to the double a correctly rounded parser (Arrow's, Python's
# float) gives.
_POW10 = np.array([10.0**k for k in range(16)])
_NEWLINE, _CR = 10, 13
_DAYS_IN_MONTH = np.array([0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


class Layout(NamedTuple):
    """How the lines of a plain file are laid out, as the kernels read them."""

    roles: np.ndarray  # per column: IGNORED, TS_PART or the index of the value it holds
    programs: np.ndarray  # per timestamp column, in file order: steps of (kind, argument)
    dates: np.ndarray  # per timestamp column: whether it holds a date alone (the same on many lines)
    delimiter: int  # byte between fields
    decimal: int  # decimal point byte
    epoch: bool  # the timestamp is an epoch integer


@njit(cache=True, nogil=True)
def chunk_starts(buf: np.ndarray, start: int, chunks: int) -> np.ndarray:
    """`chunks` + 1 offsets from `start` to the end of `buf`, each at a line start, nearly evenly spaced."""
    n = buf.shape[0]
    out = np.empty(chunks + 1, dtype=np.int64)
    out[0] = start
    for i in range(1, chunks):
        pos = max(start + (n - start) * i // chunks, out[i - 1])
        while 0 < pos < n and buf[pos - 1] != _NEWLINE:
            pos += 1
        out[i] = pos
    out[chunks] = n
    return out


@njit(cache=True, nogil=True)
def _newlines_in_words(words: np.ndarray, lo: int, hi: int) -> int:
    """Newline bytes in words[lo:hi], eight bytes at a time: per byte, the high bit of
    ((x & 0x7f) + 0x7f) | x is clear exactly when x (the byte xor '\\n') is zero."""
    low7 = np.uint64(0x7F7F7F7F7F7F7F7F)
    newlines = np.uint64(0x0A0A0A0A0A0A0A0A)
    high = np.uint64(0x8080808080808080)
    ones = np.uint64(0x0101010101010101)
    count = np.uint64(0)
    for i in range(lo, hi):
        x = words[i] ^ newlines
        zero = ~(((x & low7) + low7) | x) & high
        count += ((zero >> np.uint64(7)) * ones) >> np.uint64(56)  # sums the eight flags
    return int(count)


@njit(cache=True, nogil=True, parallel=True)
def count_lines(buf: np.ndarray, words: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Lines in each chunk `starts[i]:starts[i + 1]` (a last line without `\\n` counts): as many rows as
    the chunk can hold, fewer where lines are empty. `words` is `buf` seen as uint64s."""
    chunks = starts.shape[0] - 1
    out = np.zeros(chunks, dtype=np.int64)
    for c in prange(chunks):
        lo, hi = starts[c], starts[c + 1]
        first_word, last_word = min((lo + 7) // 8, hi // 8), hi // 8
        count = _newlines_in_words(words, first_word, last_word)
        for i in range(lo, first_word * 8):
            count += buf[i] == _NEWLINE
        for i in range(max(last_word * 8, lo), hi):
            count += buf[i] == _NEWLINE
        out[c] = count + (hi > lo and buf[hi - 1] != _NEWLINE)
    return out


@njit(cache=True, nogil=True)
def _digits(buf: np.ndarray, i: int, end: int, value: int) -> tuple[int, int]:
    """Where the run of digits from buf[i] ends (at most at `end`), and `value` followed by its digits."""
    while i < end:
        digit = np.int64(buf[i]) - 48
        if digit < 0 or digit > 9:
            break
        value = value * 10 + digit
        i += 1
    return i, value


@njit(cache=True, nogil=True)
def _value(buf: np.ndarray, i: int, decimal: int) -> tuple[int, float]:
    """The number `-?digits[<decimal>digits]` (at most 15 digits) at buf[i:] as the correctly rounded
    double, and where it ends; -1 when it is not of that form."""
    n = buf.shape[0]
    negative = i < n and buf[i] == 45  # '-'
    if negative:
        i += 1
    start = i
    i, mantissa = _digits(buf, i, min(n, start + 15), 0)
    whole = i - start
    scale = 0
    if whole and i < n and buf[i] == decimal:
        fraction = i + 1
        i, mantissa = _digits(buf, fraction, min(n, fraction + 15 - whole), mantissa)
        scale = i - fraction
        if scale == 0:
            return -1, 0.0
    if whole == 0 or (i < n and 48 <= buf[i] <= 57):  # no digits, or more than 15
        return -1, 0.0
    value = float(mantissa) / _POW10[scale]
    return i, -value if negative else value


@njit(cache=True, nogil=True)
def _timestamp_field(buf: np.ndarray, i: int, programs: np.ndarray, field: int, parts: np.ndarray) -> int:
    """Run the program of timestamp field `field` from buf[i], adding each digit to its part in `parts`;
    where the field ends, or -1 when it does not match."""
    n = buf.shape[0]
    # Indexed, never sliced: a view per line would cost more than the parsing.
    for s in range(programs.shape[1]):
        kind = programs[field, s, 0]
        if kind == END:
            break
        if i >= n:
            return -1
        if kind == LITERAL:
            if buf[i] != programs[field, s, 1]:
                return -1
            i += 1
        elif kind == EPOCH:
            # 18 digits always fit an int64; a 19th only when the result stays below 2**63.
            start = i
            i, value = _digits(buf, i, min(n, start + 18), 0)
            if i < n and 48 <= buf[i] <= 57:
                digit = np.int64(buf[i]) - 48
                if value > (9223372036854775807 - digit) // 10:
                    return -1
                value = value * 10 + digit
                i += 1
            if i == start:
                return -1
            parts[EPOCH] = value
        else:
            digit = np.int64(buf[i]) - 48
            if digit < 0 or digit > 9:
                return -1
            parts[kind] = parts[kind] * programs[field, s, 1] + digit
            i += 1
    return i


@njit(cache=True, nogil=True)
def _same_bytes(buf: np.ndarray, a: int, b: int, length: int) -> bool:
    if b + length > buf.shape[0]:
        return False
    j = 0
    while j < length and buf[a + j] == buf[b + j]:
        j += 1
    return j == length


@njit(cache=True, nogil=True)
def _skip_field(buf: np.ndarray, i: int, delimiter: int) -> int:
    """Where an ignored field ends; -1 at a quote, which could hide a delimiter from Arrow."""
    n = buf.shape[0]
    while i < n:
        b = buf[i]
        if b == 34:
            return -1
        if b == delimiter or b in (_NEWLINE, _CR):
            break
        i += 1
    return i


@njit(cache=True, nogil=True)
def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm)."""
    y = year - 1 if month <= 2 else year
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


@njit(cache=True, nogil=True)
def _timestamp(parts: np.ndarray, epoch: bool) -> tuple[bool, int]:
    """Naive microseconds of the parts read (or the raw epoch integer); False for an impossible date.

    `parts[DAYS]` remembers the last date (`parts[DATE]`) turned into days: the next bars mostly share it.
    """
    if epoch:
        return True, parts[EPOCH]
    year, month, day = parts[YEAR], parts[MONTH], parts[DAY]
    date = (year * 100 + month) * 100 + day
    if date != parts[DATE]:
        if not (year >= 1 and 1 <= month <= 12 and 1 <= day <= _DAYS_IN_MONTH[month]):
            return False, 0
        if month == 2 and day == 29 and not (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)):
            return False, 0
        parts[DATE], parts[DAYS] = date, _days_from_civil(year, month, day)
    hour, minute, second = parts[HOUR], parts[MINUTE], parts[SECOND]
    if not (hour < 24 and minute < 60 and second < 60):
        return False, 0
    return True, (parts[DAYS] * 86400 + hour * 3600 + minute * 60 + second) * 1_000_000


@njit(cache=True, nogil=True)
def _parse_chunk(
    buf: np.ndarray,
    lo: int,
    hi: int,
    row: int,
    last_row: int,
    layout: Layout,
    ts: np.ndarray,
    values: np.ndarray,
) -> int:
    """Rows parsed from the lines of buf[lo:hi] into rows `row`.. of `ts` and `values`; -1 when a line is
    not plain."""
    roles, programs, dates, delimiter, decimal = (
        layout.roles,
        layout.programs,
        layout.dates,
        layout.delimiter,
        layout.decimal,
    )
    n = buf.shape[0]
    columns = roles.shape[0]
    parts = np.zeros(11, dtype=np.int64)
    parts[DATE] = -1
    # Where each timestamp field was last read: a date field like the previous line's is not read again.
    seen_at = np.full(programs.shape[0], -1, dtype=np.int64)
    seen_len = np.zeros(programs.shape[0], dtype=np.int64)
    first = row
    pos = lo
    while pos < hi:
        if buf[pos] == _NEWLINE:  # an empty line, skipped as Arrow skips it
            pos += 1
            continue
        if buf[pos] == _CR and pos + 1 < n and buf[pos + 1] == _NEWLINE:
            pos += 2
            continue
        if row == last_row:
            return -1
        ts_part = 0
        for col in range(columns):
            role = roles[col]
            if role == TS_PART:
                at, length = seen_at[ts_part], seen_len[ts_part]
                if dates[ts_part] and at >= 0 and _same_bytes(buf, at, pos, length):
                    pos += length
                else:
                    start = pos
                    pos = _timestamp_field(buf, pos, programs, ts_part, parts)
                    seen_at[ts_part], seen_len[ts_part] = start, pos - start
                ts_part += 1
            elif role == IGNORED:
                pos = _skip_field(buf, pos, delimiter)
            else:
                pos, value = _value(buf, pos, decimal)
                values[role, row] = value
            if pos < 0:
                return -1
            if col < columns - 1:
                if pos >= n or buf[pos] != delimiter:
                    return -1
                pos += 1
        if pos < n and buf[pos] == _CR:
            pos += 1
        if pos < n:
            if buf[pos] != _NEWLINE:
                return -1
            pos += 1
        good, stamp = _timestamp(parts, layout.epoch)
        if not good:
            return -1
        ts[row] = stamp
        row += 1
    return row - first


@njit(cache=True, nogil=True, parallel=True)
def parse_chunks(
    buf: np.ndarray,
    starts: np.ndarray,
    first_row: np.ndarray,
    layout: Layout,
    ts: np.ndarray,
    values: np.ndarray,
) -> np.ndarray:
    """Parse the lines of chunk c (`starts[c]:starts[c + 1]`) into `ts` and `values` (5 x rows) from row
    first_row[c]; the rows each chunk parsed, -1 for a chunk with a line that is not plain."""
    chunks = starts.shape[0] - 1
    parsed = np.empty(chunks, dtype=np.int64)
    for c in prange(chunks):
        last_row = first_row[c + 1] if c + 1 < chunks else ts.shape[0]
        parsed[c] = _parse_chunk(buf, starts[c], starts[c + 1], first_row[c], last_row, layout, ts, values)
    return parsed


@njit(cache=True, nogil=True, error_model="numpy")
def all_rules_hold(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    ts: np.ndarray,
    allow_nonpositive_prices: bool,
) -> bool:
    """Whether no row breaks any rule of `bar_checks._rules`: the rules' masks, or-ed, in one pass."""
    for i in range(ts.shape[0]):
        o, h, lo, c, v = open_[i], high[i], low[i], close[i], volume[i]
        finite = np.isfinite(o) and np.isfinite(h) and np.isfinite(lo) and np.isfinite(c) and np.isfinite(v)
        if not finite or h < lo or o < lo or o > h or c < lo or c > h or v < 0:
            return False
        if (lo < 0 and h > 0) if allow_nonpositive_prices else lo <= 0:
            return False
        if i and ts[i] <= ts[i - 1]:
            return False
    return True
