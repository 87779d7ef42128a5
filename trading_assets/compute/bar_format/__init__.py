"""Reading bar exports written by desktop trading apps: format detection and parsing.

`detect` sniffs how a file is laid out (a `BarFormat`); two readers share it:
- `fast`: `read_bars`, numba kernels reading plain layouts in parallel chunks (`plain`, `kernels`), and
  Arrow's multithreaded CSV reader plus vectorised timestamp parsing for every other file.
- `reference`: `parse_line` and `ReferenceReader`, a slow, independent reader of one line at a time in
  plain Python. It locates the exact line and field when the fast reader rejects a file, and the
  `bars_match_source` check uses it as an oracle to compare stored rows with the source file.

Accepted: CSV and whitespace/semicolon/tab/pipe separated text, with or without a header, date and time
in one column or two, epoch seconds/milliseconds/microseconds/nanoseconds, Parquet. Timestamps without
an offset are local times in the dataset's time zone (default UTC); everything comes out in UTC.
"""

from trading_assets.compute.bar_format import kernels
from trading_assets.compute.bar_format.detect import detect_format
from trading_assets.compute.bar_format.fast import localize, read_bars
from trading_assets.compute.bar_format.model import (
    BAR_FIELDS,
    TS_TYPE,
    BarFileError,
    BarFormat,
    ColumnMapping,
    ParsedBars,
    ReadOptions,
    TimeKind,
)
from trading_assets.compute.bar_format.reference import (
    ReferenceReader,
    first_bad_line,
    iter_data_lines,
    locate_row,
    parse_line,
    reference_rows,
)
from trading_assets.compute.numba_cache import guard

guard(kernels)

__all__ = [
    "BAR_FIELDS",
    "TS_TYPE",
    "BarFileError",
    "BarFormat",
    "ColumnMapping",
    "ParsedBars",
    "ReadOptions",
    "ReferenceReader",
    "TimeKind",
    "detect_format",
    "first_bad_line",
    "iter_data_lines",
    "localize",
    "locate_row",
    "parse_line",
    "read_bars",
    "reference_rows",
]
