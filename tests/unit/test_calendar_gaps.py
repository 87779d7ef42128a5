"""Gaps counted against a trading calendar: a bar is due only when the calendar has the market open.

Oracles are written out by hand from the published schedules (NYSE holidays and early closes of 2024, the
FX week's Sunday-to-Friday 17:00 New York hours around the 2024 DST change), not derived from the code.
"""

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from trading_assets.compute.bar_checks import bars_report
from trading_assets.compute.bar_format import ReadOptions
from trading_assets.compute.calendars import trading_calendar

MINUTE = 60_000_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR

# NYSE full-day holidays of 2024; early closes (13:00 New York) on 3 July, 29 November, 24 December.
NYSE_HOLIDAYS_2024 = [
    "2024-01-01", "2024-01-15", "2024-02-19", "2024-03-29", "2024-05-27",
    "2024-06-19", "2024-07-04", "2024-09-02", "2024-11-28", "2024-12-25",
]  # fmt: skip


def us(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1_000_000)


def nyse_days_2024() -> np.ndarray:
    """Every NYSE session of 2024 at 00:00 UTC: weekdays that are not holidays (252 of them)."""
    days = np.arange(np.datetime64("2024-01-01"), np.datetime64("2025-01-01"))
    days = days[np.is_busday(days, holidays=NYSE_HOLIDAYS_2024)]
    assert days.size == 252
    return days.astype("datetime64[us]").astype(np.int64)


def minutes(start: str, end: str) -> np.ndarray:
    """1-minute bar opens from `start` up to, not including, `end` (UTC)."""
    return np.arange(us(start), us(end), MINUTE)


def without(ts: np.ndarray, *dropped: str) -> np.ndarray:
    return ts[~np.isin(ts, [us(d) for d in dropped])]


XNYS = trading_calendar("XNYS")


def test_a_daily_equity_series_on_its_exchange_calendar_has_no_gaps():
    report = bars_report(nyse_days_2024(), XNYS)
    assert (report.gap_count, report.missing_bars, report.off_calendar_bars) == (0, 0, 0)
    assert (report.largest_gap_after, report.largest_gap_bars) == (None, 0)
    assert report.calendar.startswith("XNYS (exchange_calendars ")


def test_without_a_calendar_every_weekend_and_holiday_of_a_daily_series_is_a_gap():
    report = bars_report(nyse_days_2024())
    # 2 January to 31 December: 52 weekends, five of them a day longer by a Monday or Friday holiday (15
    # January, 19 February, 29 March, 27 May, 2 September), and four midweek holidays.
    assert (report.gap_count, report.missing_bars) == (52 + 4, 52 * 2 + 5 + 4)
    assert report.calendar is None


def test_missing_sessions_are_gaps_counted_in_sessions_not_days():
    # Friday 5 July (after the 4 July holiday), Thursday 28 March (before Good Friday), and Monday to
    # Wednesday before Thanksgiving: three gaps missing 1, 1 and 3 sessions.
    ts = without(nyse_days_2024(), "2024-07-05", "2024-03-28", "2024-11-25", "2024-11-26", "2024-11-27")
    report = bars_report(ts, XNYS)
    assert (report.gap_count, report.missing_bars) == (3, 5)
    # The largest gap misses the most sessions: Friday 22 November to Friday 29 November (a half day).
    assert report.largest_gap_after == datetime(2024, 11, 22, tzinfo=UTC)
    assert (report.largest_gap_bars, report.largest_gap_s) == (3, 7 * 86_400)


def test_a_bar_on_a_day_the_exchange_is_closed_is_off_calendar_not_a_gap():
    ts = np.sort(np.r_[nyse_days_2024(), us("2024-06-15"), us("2024-12-25")])  # a Saturday, Christmas
    report = bars_report(ts, XNYS)
    assert (report.gap_count, report.off_calendar_bars) == (0, 2)


def test_daily_bars_are_matched_to_sessions_by_their_date_in_the_exports_time_zone():
    # Stamped at midnight Tokyo time: 15:00 UTC the day before.
    tokyo = nyse_days_2024() - 9 * HOUR
    assert bars_report(tokyo, XNYS, "Asia/Tokyo").gap_count == 0
    read_as_utc = bars_report(tokyo, XNYS, "UTC")
    assert read_as_utc.off_calendar_bars > 0


def nyse_thanksgiving_week() -> np.ndarray:
    """Every 1-minute bar of 25-29 November 2024: 09:30-16:00 New York (14:30-21:00 UTC) Monday to
    Wednesday, the Thursday holiday, and Friday's early close at 13:00 (18:00 UTC)."""
    days = [minutes(f"2024-11-{d} 14:30", f"2024-11-{d} 21:00") for d in (25, 26, 27)]
    return np.concatenate([*days, minutes("2024-11-29 14:30", "2024-11-29 18:00")])


def test_minute_bars_of_a_week_with_a_holiday_and_a_half_day_have_no_gaps():
    ts = nyse_thanksgiving_week()
    assert ts.size == 3 * 390 + 210
    report = bars_report(ts, XNYS)
    assert (report.gap_count, report.missing_bars, report.off_calendar_bars) == (0, 0, 0)
    # Without the calendar the three nights and the holiday are gaps.
    assert bars_report(ts).gap_count == 3


def test_missing_minutes_inside_a_session_are_one_gap_with_their_count():
    missing = [f"2024-11-26 15:{m:02d}" for m in range(5)]  # 10:00-10:04 New York
    report = bars_report(without(nyse_thanksgiving_week(), *missing), XNYS)
    assert (report.gap_count, report.missing_bars, report.largest_gap_bars) == (1, 5, 5)
    assert report.largest_gap_after == datetime(2024, 11, 26, 14, 59, tzinfo=UTC)
    assert report.largest_gap_s == 6 * 60


def test_a_session_closing_early_is_a_gap_when_its_last_bars_are_missing():
    # Friday's bars stop at 12:00 New York instead of 13:00; Monday 2 December continues.
    ts = np.r_[
        minutes("2024-11-29 14:30", "2024-11-29 17:00"), minutes("2024-12-02 14:30", "2024-12-02 15:00")
    ]
    report = bars_report(ts, XNYS)
    assert (report.gap_count, report.missing_bars) == (1, 60)


@pytest.mark.parametrize("first_bar", ["14:00", "14:30"])
def test_hourly_bars_on_whole_hours_or_on_the_half_hour_of_the_open_both_fit(first_bar):
    # 7 bars a full day, 4 on the half day (09:30-13:00 New York), on either grid.
    hours = [f"2024-11-{d} {first_bar}" for d in (25, 26, 27)]
    ts = np.concatenate(
        [us(h) + np.arange(7) * HOUR for h in hours] + [us(f"2024-11-29 {first_bar}") + np.arange(4) * HOUR]
    )
    report = bars_report(ts, XNYS)
    assert (report.interval_s, report.gap_count, report.off_calendar_bars) == (3600, 0, 0)
    report = bars_report(np.delete(ts, [9, 10]), XNYS)  # Tuesday's 3rd and 4th bars
    assert (report.gap_count, report.missing_bars) == (1, 2)


def fx_hours(sunday_open: str, friday_close: str) -> np.ndarray:
    return np.arange(us(sunday_open), us(friday_close), HOUR)


def test_hourly_fx_over_a_weekend_and_a_dst_change_has_no_gaps_on_the_24_5_calendar():
    # 17:00 New York is 22:00 UTC in winter; the US moves to summer time on Sunday 10 March 2024, so the
    # next week runs 21:00 UTC Sunday to 21:00 UTC Friday.
    ts = np.r_[
        fx_hours("2024-03-03 22:00", "2024-03-08 22:00"), fx_hours("2024-03-10 21:00", "2024-03-15 21:00")
    ]
    assert ts.size == 240
    fx = trading_calendar("24/5")
    report = bars_report(ts, fx)
    assert (report.gap_count, report.off_calendar_bars) == (0, 0)
    assert report.calendar.startswith("24/5 FX")
    assert bars_report(ts).gap_count == 1  # the weekend, without a calendar
    # A bar on Saturday is off the calendar; a missing Wednesday noon bar is a gap.
    assert bars_report(np.sort(np.r_[ts, us("2024-03-09 12:00")]), fx).off_calendar_bars == 1
    report = bars_report(without(ts, "2024-03-06 12:00"), fx)
    assert (report.gap_count, report.missing_bars) == (1, 1)
    # A feed that opens at 22:00 UTC in summer too misses the first hour of that week.
    report = bars_report(without(ts, "2024-03-10 21:00"), fx)
    assert (report.gap_count, report.missing_bars) == (1, 1)


def test_the_24_7_calendar_expects_every_bar_as_counting_without_a_calendar_does():
    ts = without(minutes("2024-03-09 00:00", "2024-03-11 00:00"), *(f"2024-03-10 03:0{m}" for m in range(5)))
    with_calendar, without_calendar = bars_report(ts, trading_calendar("24/7")), bars_report(ts)
    assert (with_calendar.gap_count, with_calendar.missing_bars, with_calendar.largest_gap_bars) == (1, 5, 5)
    assert (without_calendar.gap_count, without_calendar.missing_bars) == (1, 5)
    assert with_calendar.largest_gap_after == without_calendar.largest_gap_after


def test_bars_longer_than_a_day_are_counted_without_the_calendar_and_the_report_says_so():
    weeks = us("2024-01-01") + np.array([0, 1, 2, 4]) * 7 * DAY
    report = bars_report(weeks, XNYS)
    assert (report.gap_count, report.missing_bars) == (1, 1)
    assert "not applied" in report.calendar


def test_an_unknown_calendar_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="unknown trading calendar 'XNYZ': use 24/7, 24/5 or an exchange"):
        trading_calendar("XNYZ")
    with pytest.raises(ValueError, match="unknown trading calendar 'NYSE '"):
        ReadOptions.from_dict({"calendar": "NYSE "})
    assert ReadOptions.from_dict({"calendar": "XNYS"}).calendar == "XNYS"
    assert ReadOptions.from_dict({"calendar": "24/5"}).to_json() == '{"calendar": "24/5", "timezone": "UTC"}'
    assert ReadOptions().to_json() == '{"timezone": "UTC"}'  # datasets without one keep their record


def test_ten_years_of_minute_bars_on_the_nyse_calendar_have_no_gap():
    sessions = pd.DataFrame(
        {"open": pd.bdate_range("2015-01-05", "2024-12-31", tz="America/New_York") + pd.Timedelta("9.5h")}
    )
    opens = sessions["open"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[us]")
    ts = (opens.astype(np.int64)[:, None] + np.arange(390) * MINUTE).ravel()
    report = bars_report(ts, XNYS)
    # Every weekday has a full day of bars: holidays and the hours after an early close are off the
    # calendar, and nothing is missing.
    assert (report.rows, report.gap_count) == (ts.size, 0)
    assert report.off_calendar_bars > 0
