"""Validation of parsed bars and the statistics reported with them (interval, gaps).

On large tables one fused pass (`bar_format.kernels.all_rules_hold`) checks every rule on every row; only
when it finds a bad row (and on small tables) are the rules applied one by one, each a vectorised mask
over the whole table, and the file scanned to turn the first offending row into a line number. Gaps are
facts about the market, not errors: they are measured and reported, never rejected. Without a trading
calendar every bar interval is a bar due; with one (`compute/calendars.py`), only the bars the calendar
expects are, so a daily equity series does not report its weekends and holidays as gaps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from trading_assets.compute.bar_format import BAR_FIELDS, BarFileError, BarFormat, ParsedBars, locate_row
from trading_assets.compute.bar_format.kernels import all_rules_hold
from trading_assets.compute.calendars import DAY_US, TradingCalendar, bar_slots, trading_calendar

# Below this many rows the rules' masks take less time than a fresh process takes to load the compiled
# fused pass.
_FUSED_MIN_ROWS = 500_000
# Bars per strided sample when estimating the bar interval: plenty for a mode, cheap on 5M rows.
_INTERVAL_SAMPLE = 100_000


@dataclass(frozen=True)
class BarsReport:
    """What a person wants to know about a valid bars table."""

    rows: int
    first_ts: datetime
    last_ts: datetime
    interval_s: int
    gap_count: int
    missing_bars: int
    largest_gap_s: int  # time from the bar before the largest gap to the bar after it
    largest_gap_after: datetime | None  # the last bar before the largest gap
    # The calendar the gaps were counted against (its description), None when every interval is due.
    calendar: str | None = None
    largest_gap_bars: int = 0  # bars missing in the largest gap
    off_calendar_bars: int = 0  # bars at times the calendar has the market closed


@dataclass(frozen=True)
class BarRules:
    """A dataset's choices among the rules (its sidecar's keys of the same names)."""

    # Spreads and some futures go to zero or below; by default every price must be positive.
    allow_nonpositive_prices: bool = False


@dataclass(frozen=True)
class _Rule:
    field: str
    mask: Callable[[dict[str, np.ndarray]], np.ndarray]
    describe: Callable[[dict[str, np.ndarray], int], str]


def _fmt(x: float) -> str:
    return f"{x:.10g}"


_PRICE_RULES = (
    *(
        _Rule(
            f,
            lambda c, f=f: ~np.isfinite(c[f]),
            lambda c, i, f=f: f"{f} is {_fmt(c[f][i])}, not a finite number",
        )
        for f in BAR_FIELDS
    ),
    _Rule(
        "high",
        lambda c: c["high"] < c["low"],
        lambda c, i: f"high {_fmt(c['high'][i])} is below low {_fmt(c['low'][i])}",
    ),
    *(
        _Rule(
            f,
            lambda c, f=f: (c[f] < c["low"]) | (c[f] > c["high"]),
            lambda c, i, f=f: (
                f"{f} {_fmt(c[f][i])} is outside [low {_fmt(c['low'][i])}, high {_fmt(c['high'][i])}]"
            ),
        )
        for f in ("open", "close")
    ),
)
_LATER_RULES = (
    _Rule("volume", lambda c: c["volume"] < 0, lambda c, i: f"volume {_fmt(c['volume'][i])} is negative"),
    _Rule(
        "timestamp",
        lambda c: np.concatenate(([False], np.diff(c["ts"]) == 0)),
        lambda c, i: f"timestamp {_iso(c['ts'][i])} repeats the previous bar's",
    ),
    _Rule(
        "timestamp",
        lambda c: np.concatenate(([False], np.diff(c["ts"]) < 0)),
        lambda c, i: f"timestamp {_iso(c['ts'][i])} is before the previous bar's {_iso(c['ts'][i - 1])}",
    ),
)


# Once the price rules hold, low is the bar's smallest price and high its largest.
_POSITIVE_PRICES = _Rule(
    "low",
    lambda c: c["low"] <= 0,
    lambda c, i: (
        f"low {_fmt(c['low'][i])} is not a positive price "
        "(set allow_nonpositive_prices in the dataset's options for spreads and the like)"
    ),
)
_ONE_SIGN_PER_BAR = _Rule(
    "low",
    lambda c: (c["low"] < 0) & (c["high"] > 0),
    lambda c, i: f"prices change sign within the bar (low {_fmt(c['low'][i])}, high {_fmt(c['high'][i])})",
)


def _rules(choices: BarRules) -> tuple[_Rule, ...]:
    sign = _ONE_SIGN_PER_BAR if choices.allow_nonpositive_prices else _POSITIVE_PRICES
    return (*_PRICE_RULES, sign, *_LATER_RULES)


def _iso(us: int) -> str:
    return _utc(us).strftime("%Y-%m-%d %H:%M:%S UTC")


def _columns(table: pa.Table) -> dict[str, np.ndarray]:
    cols = {f: table.column(f).to_numpy() for f in BAR_FIELDS}
    cols["ts"] = table.column("ts").cast(pa.int64()).to_numpy()
    return cols


def validate_bars(
    parsed: ParsedBars, path: Path, choices: BarRules = BarRules(), calendar: str | None = None
) -> BarsReport:
    """Check every rule on every row; raise `BarFileError` at the first offending line of the first rule.
    Gaps are counted against the trading calendar named `calendar`, if any."""
    table, fmt = parsed.table, parsed.format
    if table.num_rows == 0:
        raise BarFileError(path.name, "no data rows")
    cols = _columns(table)
    large = table.num_rows >= _FUSED_MIN_ROWS
    if large and all_rules_hold(*(cols[f] for f in (*BAR_FIELDS, "ts")), choices.allow_nonpositive_prices):
        return bars_report(cols["ts"], trading_calendar(calendar) if calendar else None, fmt.timezone)
    for rule in _rules(choices):
        bad = rule.mask(cols)
        if bad.any():
            rows = np.flatnonzero(bad)
            row = int(rows[0])
            more = f" ({len(rows) - 1} more rows like it)" if len(rows) > 1 else ""
            raise BarFileError(
                path.name,
                rule.describe(cols, row) + more,
                row + 1 if fmt.kind == "parquet" else locate_row(path, fmt, row),
                _field_label(fmt, rule.field),
                row_label="row" if fmt.kind == "parquet" else "line",
            )
    return bars_report(cols["ts"], trading_calendar(calendar) if calendar else None, fmt.timezone)


def _field_label(fmt: BarFormat, field: str) -> str:
    if field == "timestamp":
        return fmt.label(fmt.ts_columns, "timestamp")
    return fmt.label((fmt.value_columns[BAR_FIELDS.index(field)],), field)


def bar_interval_us(ts: np.ndarray) -> int:
    """The bar interval: the most common step between consecutive timestamps (of a strided sample)."""
    steps = np.diff(ts)
    if steps.size == 0:
        return 0
    sample = steps[:: max(1, steps.size // _INTERVAL_SAMPLE)]
    values, counts = np.unique(sample[sample > 0], return_counts=True)
    return int(values[np.argmax(counts)]) if values.size else 0


def bars_report(ts: np.ndarray, calendar: TradingCalendar | None = None, timezone: str = "UTC") -> BarsReport:
    """Row count, time range, interval and gaps of strictly increasing UTC microsecond timestamps.

    A gap is a step between consecutive bars over at least one missing bar. Without a calendar a bar is
    due every interval; with one, only where `bar_slots` expects one, and the largest gap is the one
    missing the most bars. Daily bars are matched to sessions by their date in `timezone`, the zone the
    export wrote them in (a bar stamped 2025-01-02 00:00 local is the session of 2 January).
    """
    interval = bar_interval_us(ts)
    steps = np.diff(ts)
    if calendar is None or not 0 < interval <= DAY_US:
        gaps = steps > interval if interval else np.zeros(steps.size, dtype=bool)
        missing = steps // interval - 1 if interval else np.zeros(steps.size, dtype=np.int64)
        largest = int(np.argmax(steps)) if gaps.any() else None
        off_calendar = 0
    else:
        missing, off_calendar = _missing_on_calendar(ts, interval, calendar, timezone)
        gaps = missing > 0
        largest = int(np.argmax(missing)) if gaps.any() else None
    return BarsReport(
        rows=int(ts.size),
        first_ts=_utc(ts[0]),
        last_ts=_utc(ts[-1]),
        interval_s=interval // 1_000_000,
        gap_count=int(gaps.sum()),
        missing_bars=int(missing[gaps].sum()),
        largest_gap_s=int(steps[largest]) // 1_000_000 if largest is not None else 0,
        largest_gap_after=_utc(ts[largest]) if largest is not None else None,
        calendar=_calendar_label(calendar, interval),
        largest_gap_bars=int(missing[largest]) if largest is not None else 0,
        off_calendar_bars=off_calendar,
    )


def _calendar_label(calendar: TradingCalendar | None, interval: int) -> str | None:
    if calendar is None:
        return None
    if 0 < interval <= DAY_US:
        return calendar.describe
    return f"{calendar.describe}, not applied: bars longer than a day are all due"


def _missing_on_calendar(
    ts: np.ndarray, interval: int, calendar: TradingCalendar, timezone: str
) -> tuple[np.ndarray, int]:
    """Bars the calendar expects strictly between each two consecutive bars, and how many bars fall
    where it expects none. Two binary searches of the bars in the calendar's slots: fast on 1-minute
    bars over years."""
    if interval == DAY_US:
        keys = _local_midnights(ts, timezone)
        phase = 0
    else:
        keys = ts
        residues = ts[:: max(1, ts.size // _INTERVAL_SAMPLE)] % interval
        values, counts = np.unique(residues, return_counts=True)
        phase = int(values[np.argmax(counts)])  # bars on the grid of whole hours, or of 09:30, ...
    slots = bar_slots(calendar.sessions(int(keys[0]), int(keys[-1])), interval, phase)
    slot = np.searchsorted(slots, keys, side="right") - 1  # the slot each bar falls in (or the one before)
    on = (slot >= 0) & (keys < slots[np.maximum(slot, 0)] + interval)
    return np.maximum(np.diff(slot) - 1, 0), int(ts.size - on.sum())


def _local_midnights(ts: np.ndarray, timezone: str) -> np.ndarray:
    """00:00 UTC of each timestamp's date in `timezone`, as int64 microseconds."""
    local = pd.DatetimeIndex(ts.astype("datetime64[us]")).tz_localize("UTC").tz_convert(timezone)
    return local.tz_localize(None).normalize().as_unit("us").asi8


def _utc(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(us))
