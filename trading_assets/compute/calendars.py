"""Trading calendars: when a market is open, so that gaps are counted only where bars were due.

Pure compute: no Dagster, no storage. A dataset names its calendar (`XNYS`, `24/5`, `24/7`, ...); every
calendar gives the same thing, its sessions over a span (`Sessions`), and `bar_slots` turns sessions into
the bars a calendar expects at a bar interval:

- `24/7`: always open (crypto); one session per UTC day.
- `24/5`: spot FX, open from Sunday 17:00 to Friday 17:00 in New York (22:00 UTC in winter, 21:00 UTC in
  summer); one session per weekday D, from 17:00 New York on D-1 to 17:00 on D. No holidays.
- any `exchange_calendars` code or alias (`XNYS`, `XLON`, `XHKG`, `NYSE`, ...): the exchange's sessions with
  holidays, early closes and lunch breaks, as that package publishes them.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

DAY_US = 86_400_000_000
ALWAYS_OPEN = "24/7"
FX_WEEK = "24/5"
_FX_ZONE = "America/New_York"
_FX_CUTOFF = pd.Timedelta(hours=17)
# Sessions are fetched with this margin around a span, so that a span's edges fall inside known sessions.
_MARGIN_DAYS = 7


@dataclass(frozen=True)
class Sessions:
    """A calendar's sessions over a span, as int64 UTC microseconds, one entry per session.

    `labels_us` is the session's date at 00:00 UTC; a session is open over [opens_us, closes_us) except,
    where `break_starts_us` < `break_ends_us`, over its break.
    """

    labels_us: np.ndarray
    opens_us: np.ndarray
    closes_us: np.ndarray
    break_starts_us: np.ndarray
    break_ends_us: np.ndarray

    def segments(self) -> tuple[np.ndarray, np.ndarray]:
        """Start and end of every stretch of open market, in time order: a session, or its two halves."""
        has_break = self.break_starts_us < self.break_ends_us
        starts = np.concatenate((self.opens_us, self.break_ends_us[has_break]))
        first_halves = np.where(has_break, self.break_starts_us, self.closes_us)
        ends = np.concatenate((first_halves, self.closes_us[has_break]))
        order = np.argsort(starts, kind="stable")
        return starts[order], ends[order]


@dataclass(frozen=True)
class TradingCalendar:
    """A named calendar; `describe` is how a gap report names it."""

    name: str
    describe: str

    def sessions(self, first_us: int, last_us: int) -> Sessions:
        """The sessions whose dates lie within a week of [first_us, last_us]."""
        first_day = np.datetime64(int(first_us) // DAY_US - _MARGIN_DAYS, "D")
        last_day = np.datetime64(int(last_us) // DAY_US + _MARGIN_DAYS, "D")
        if self.name == ALWAYS_OPEN:
            return _always_open(first_day, last_day)
        if self.name == FX_WEEK:
            return _fx_week(first_day, last_day)
        return _exchange_sessions(self.name, str(first_day), str(last_day))


def trading_calendar(name: str) -> TradingCalendar:
    """The calendar called `name`; ValueError naming the choices when there is none."""
    if name == ALWAYS_OPEN:
        return TradingCalendar(name, "24/7 (always open)")
    if name == FX_WEEK:
        return TradingCalendar(name, "24/5 FX (Sunday 17:00 to Friday 17:00 New York time)")
    import exchange_calendars as xc

    if name not in xc.get_calendar_names(include_aliases=True):
        raise ValueError(
            f"unknown trading calendar {name!r}: use 24/7, 24/5 or an exchange_calendars code such as "
            "XNYS, XNAS, XLON, XETR, XTKS, XHKG"
        )
    return TradingCalendar(name, f"{name} (exchange_calendars {xc.__version__})")


def bar_slots(sessions: Sessions, interval_us: int, phase_us: int = 0) -> np.ndarray:
    """Open times of the bars a calendar expects at `interval_us`, sorted and unique (int64 UTC us).

    Daily bars (`interval_us` of one day) are due once per session, at its date (00:00 UTC). Shorter bars
    are due at every time of the grid `phase_us + k * interval_us` whose bar overlaps open market: a session
    opening at 09:30 has an hourly bar at 09:00 on a grid of whole hours, and at 09:30 on a grid through
    09:30. Longer intervals have no calendar meaning (ValueError).
    """
    if interval_us == DAY_US:
        return sessions.labels_us
    if not 0 < interval_us < DAY_US:
        raise ValueError(f"a calendar gives bars of one day or shorter, not {interval_us // 1_000_000}s")
    starts, ends = sessions.segments()
    first = starts - (starts - phase_us) % interval_us  # the grid time at or before each segment's start
    counts = (ends - 1 - first) // interval_us + 1  # through the grid time of the segment's last instant
    offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    slots = np.repeat(first, counts) + offsets * interval_us
    # Segments are disjoint and in order, so slots never decrease; two segments closer than one interval
    # (a short lunch break, back-to-back FX days) share the grid time between them: keep it once.
    return slots[np.r_[True, np.diff(slots) > 0]]


def _sessions_from_days(days: np.ndarray, opens: np.ndarray, closes: np.ndarray) -> Sessions:
    labels = days.astype("datetime64[us]").astype(np.int64)
    no_break = np.zeros(labels.size, dtype=np.int64)
    return Sessions(labels, opens, closes, no_break, no_break)


def _always_open(first_day: np.datetime64, last_day: np.datetime64) -> Sessions:
    days = np.arange(first_day, last_day + 1)
    midnights = days.astype("datetime64[us]").astype(np.int64)
    return _sessions_from_days(days, midnights, midnights + DAY_US)


def _fx_week(first_day: np.datetime64, last_day: np.datetime64) -> Sessions:
    days = np.arange(first_day, last_day + 1)
    days = days[np.is_busday(days)]  # Monday to Friday
    # Each trading day ends at 17:00 New York time and starts where the previous one ended.
    local = pd.DatetimeIndex(days.astype("datetime64[ns]")) + _FX_CUTOFF
    closes = np.asarray(local.tz_localize(_FX_ZONE).tz_convert("UTC").as_unit("us").asi8)
    local_opens = pd.DatetimeIndex((days - 1).astype("datetime64[ns]")) + _FX_CUTOFF
    opens = np.asarray(local_opens.tz_localize(_FX_ZONE).tz_convert("UTC").as_unit("us").asi8)
    return _sessions_from_days(days, opens, closes)


@functools.lru_cache(maxsize=32)
def _exchange_sessions(name: str, first_day: str, last_day: str) -> Sessions:
    import exchange_calendars as xc

    # exchange_calendars 4.13 uses pandas APIs that pandas 3.1 deprecates; the values are unaffected.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pd.errors.Pandas4Warning)
        try:
            calendar = xc.get_calendar(name, start=first_day, end=last_day)
        except ValueError as err:
            raise ValueError(f"trading calendar {name}: {err}") from None
        opens, closes = calendar.opens_nanos // 1_000, calendar.closes_nanos // 1_000
        break_starts, break_ends = calendar.break_starts_nanos, calendar.break_ends_nanos
        labels = calendar.sessions.as_unit("us").asi8
    has_break = (break_starts != np.iinfo(np.int64).min) & (break_ends != np.iinfo(np.int64).min)
    return Sessions(
        np.asarray(labels, dtype=np.int64),
        np.asarray(opens, dtype=np.int64),
        np.asarray(closes, dtype=np.int64),
        np.where(has_break, break_starts // 1_000, 0),
        np.where(has_break, break_ends // 1_000, 0),
    )
