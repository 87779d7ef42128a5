"""Deterministic sample bar exports: BTC-like bars and the MetaTrader 4 text they arrive as.

Pure compute: no Dagster, no storage. `generate_bars` simulates a price path with the stylised facts a
research pipeline has to cope with, and `write_export` renders bars exactly as an MT4 history export
does, so demos and tests go through the same parser as real files.

The model, per bar t on a regular grid (outages are simulated, then their bars dropped):

    r_t     = mu[regime_t] + sd_t * z_t                       log return, z_t ~ standardised Student-t
    sd_t    = bar_vol * sqrt(h_t) * season(t) * vol[regime_t]
    h_t     = (1 - a - b) + a * (sqrt(h_{t-1}) z_{t-1})^2 + b * h_{t-1}     GARCH(1,1), mean 1

High and low are the extremes of a Brownian bridge from open to close with the bar's volatility, and
volume scales with both the conditional volatility and the bar's absolute shock.

On a trading calendar (`calendar=`), bars are kept only where the calendar expects one; the path moves on
while the market is closed, so a Monday opens away from Friday's close, and a daily bar of an early-close
session has the volatility and volume of its shorter session. `SHAPES` are the data sets a user has:
10 years of daily equity bars on the NYSE calendar, hourly FX with weekend closures, 24/7 crypto minutes.

The numba kernels (`_garch_sd`, `_format_export` and its helpers) hold only the loops that numpy
cannot vectorise; validation and the typed API are the public functions at the bottom.
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
from numba import njit

from trading_assets.compute.calendars import DAY_US, TradingCalendar, bar_slots, trading_calendar
from trading_assets.compute.numba_cache import guard

_SECONDS_PER_YEAR = 365 * 86_400
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DEFAULT_START = datetime(2025, 1, 1, tzinfo=UTC)

# alpha + beta = 0.997 gives volatility shocks a half-life of ~4 hours of minute bars, and
# alpha^2 * E[z^4] + 2 alpha beta + beta^2 < 1 (E[z^4] = 9 at 5 dof) keeps the kurtosis finite.
_GARCH_ALPHA = 0.02
_GARCH_BETA = 0.977
_T_DOF = 5.0
# Trend regimes bull / range / bear: annualised log drift and volatility multiplier.
_REGIME_DRIFT = np.array([0.9, 0.0, -0.7])
_REGIME_VOL = np.array([0.9, 0.8, 1.25])
_REGIME_MEAN_DAYS = 14.0
# Volume scale in base units (BTC): minute bars then average ~10 with a long right tail.
_VOLUME_SCALE = 15.0
_VOLUME_NOISE = 0.4  # log-normal spread of volume not explained by volatility

_PRICE_COLUMNS = ("open", "high", "low", "close")
BAR_SCHEMA = pa.schema(
    [("ts", pa.timestamp("us", tz="UTC"))] + [(name, pa.float64()) for name in (*_PRICE_COLUMNS, "volume")]
)

# Longest line the export kernel can write: "YYYYYY.MM.DD,HH:MM" (int64 microseconds end in year
# 294247), five ",<20 characters at most>" (19 int64 digits and the point) and "\n".
_MAX_EXPORT_LINE = 18 + 5 * 21 + 1
_EXPORT_CHUNK_ROWS = 1 << 18
# Exported values scaled to their last decimal stay well inside the int64 the kernel formats: below
# 1e14 at 2 decimals (prices) and 4 (volume), 1e11 at 5 decimals.
_EXPORT_DIGITS = 16
_VOLUME_DECIMALS = 4


@njit(cache=True)
def _garch_sd(z: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """Conditional standard deviation of a unit-variance GARCH(1,1) driven by innovations `z`."""
    sd = np.empty(z.shape[0])
    omega = 1.0 - alpha - beta
    h = 1.0
    for t in range(z.shape[0]):
        sd[t] = math.sqrt(h)
        shock = sd[t] * z[t]
        h = omega + alpha * shock * shock + beta * h
    return sd


@njit(cache=True)
def _put_uint(out: np.ndarray, pos: int, value: int, min_digits: int) -> int:
    """Write `value` >= 0 in decimal, zero-padded to `min_digits`; return the position after it."""
    n = 1
    rest = value // 10
    while rest > 0:
        n += 1
        rest //= 10
    n = max(n, min_digits)
    for i in range(n - 1, -1, -1):
        out[pos + i] = 48 + value % 10
        value //= 10
    return pos + n


@njit(cache=True)
def _put_fixed(out: np.ndarray, pos: int, units: int, decimals: int) -> int:
    """Write `units` / 10**decimals with exactly `decimals` digits after the point."""
    scale = 10**decimals
    pos = _put_uint(out, pos, units // scale, 1)
    out[pos] = 46  # "."
    return _put_uint(out, pos + 1, units % scale, decimals)


@njit(cache=True)
def _format_export(
    minutes: np.ndarray, price_units: np.ndarray, volume_units: np.ndarray, price_decimals: int
) -> np.ndarray:
    """MT4 export lines as ASCII bytes, from minutes since the epoch and integer price/volume units."""
    out = np.empty(minutes.shape[0] * _MAX_EXPORT_LINE, np.uint8)
    pos = 0
    for i in range(minutes.shape[0]):
        # Civil date from days since 1970-01-01 (H. Hinnant's civil_from_days).
        days = minutes[i] // 1440 + 719_468
        era = days // 146_097
        doe = days - era * 146_097
        yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
        doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
        mp = (5 * doy + 2) // 153
        day = doy - (153 * mp + 2) // 5 + 1
        month = mp + 3 if mp < 10 else mp - 9
        year = yoe + era * 400 + (1 if month <= 2 else 0)
        minute_of_day = minutes[i] % 1440

        pos = _put_uint(out, pos, year, 4)
        out[pos] = 46  # "."
        pos = _put_uint(out, pos + 1, month, 2)
        out[pos] = 46
        pos = _put_uint(out, pos + 1, day, 2)
        out[pos] = 44  # ","
        pos = _put_uint(out, pos + 1, minute_of_day // 60, 2)
        out[pos] = 58  # ":"
        pos = _put_uint(out, pos + 1, minute_of_day % 60, 2)
        for j in range(price_units.shape[1]):
            out[pos] = 44
            pos = _put_fixed(out, pos + 1, price_units[i, j], price_decimals)
        out[pos] = 44
        pos = _put_fixed(out, pos + 1, volume_units[i], _VOLUME_DECIMALS)
        out[pos] = 10  # "\n"
        pos += 1
    return out[:pos]


def _raw_seasonality(seconds: np.ndarray) -> np.ndarray:
    """Unnormalised volatility profile: US afternoon busiest, Asian early morning quietest, calm weekends."""
    phase = 2.0 * np.pi * ((seconds % 86_400) / 86_400 - 15.0 / 24.0)
    intraday = 1.0 + 0.35 * np.cos(phase) + 0.08 * np.cos(2.0 * phase)
    weekday = (seconds // 86_400 + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
    return intraday * np.where(weekday >= 5, 0.7, 1.0)


def _seasonality(seconds: np.ndarray) -> np.ndarray:
    """Volatility multiplier by UTC minute of the week, scaled to mean square 1 over a week."""
    # A lookup per minute of the week is ~20x faster than evaluating cosines for every bar, and
    # normalising over a full week keeps the annualised volatility at the requested level.
    week = _raw_seasonality(np.arange(0, 7 * 86_400, 60))
    return (week / np.sqrt(np.mean(week**2)))[(seconds % (7 * 86_400)) // 60]


def _skipped_bars(
    rng: np.random.Generator, n_rows: int, n_gaps: int, gap_minutes: tuple[int, int], interval_s: int
) -> np.ndarray:
    """Bars missing just before each row: zero except at the `n_gaps` outages."""
    skipped = np.zeros(n_rows, dtype=np.int64)
    if n_gaps == 0:
        return skipped
    # One outage per equal slice of the rows keeps them apart and never on the same row.
    edges = 1 + (np.arange(n_gaps + 1) * (n_rows - 1)) // n_gaps
    rows = rng.integers(edges[:-1], edges[1:])
    minutes = rng.integers(gap_minutes[0], gap_minutes[1] + 1, size=n_gaps)
    skipped[rows] = np.maximum(1, -(-minutes * 60 // interval_s))
    return skipped


def _regimes(rng: np.random.Generator, n: int, interval_s: int) -> np.ndarray:
    """Trend regime (0 bull, 1 range, 2 bear) of each bar; regimes last ~two weeks on average."""
    regime_id = np.cumsum(rng.random(n) < interval_s / (_REGIME_MEAN_DAYS * 86_400))
    # Each switch moves to one of the two other regimes.
    moves = np.concatenate(([rng.integers(3)], rng.integers(1, 3, size=int(regime_id[-1]))))
    return (np.cumsum(moves) % 3)[regime_id]


def _due_bars(
    calendar: TradingCalendar, start_us: int, interval_us: int, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """The first `count` bars `calendar` expects from `start_us` on (open times on the grid through
    `start_us`), and each one's session length relative to a regular session (daily bars; 1 otherwise)."""
    span_days = 2 * count * interval_us // DAY_US + 14  # twice the span of an always-open market
    while True:
        sessions = calendar.sessions(start_us, start_us + span_days * DAY_US)
        slots = bar_slots(sessions, interval_us, start_us % interval_us)
        slots = slots[slots >= start_us]
        if slots.size >= count:
            break
        span_days *= 2
    slots = slots[:count]
    if interval_us != DAY_US:
        return slots, np.ones(count)
    hours = (sessions.closes_us - sessions.opens_us)[np.searchsorted(sessions.labels_us, slots)]
    return slots, hours / np.median(hours)


def generate_bars(
    n_rows: int = 525_600,
    start: datetime = _DEFAULT_START,
    interval_s: int = 60,
    seed: int = 25,
    start_price: float = 94_000.0,
    n_gaps: int = 3,
    gap_minutes: tuple[int, int] = (5, 90),
    annual_vol: float = 0.55,
    calendar: str | None = None,
    drift_scale: float = 1.0,
    price_decimals: int = 2,
) -> pa.Table:
    """Simulate `n_rows` BTC-like OHLCV bars; the same arguments always give a bit-identical table.

    `start` (timezone-aware) is the first bar's open time. `n_gaps` exchange outages, each lasting a
    whole number of minutes drawn from `gap_minutes` (inclusive), remove bars from the timeline; the
    table still has `n_rows` rows and the price keeps moving during an outage, so the first bar after
    one opens away from the last close. Everywhere else a bar opens at the previous close.

    With a trading `calendar` (`compute/calendars.py`) the bars are the ones it expects, from `start` on:
    daily bars (`interval_s` 86400, `start` at 00:00 UTC) at each session's date, shorter ones on the
    grid through `start`; an outage then removes whole bars (at least one) of that list, and the price
    moves while the market is closed too. `drift_scale` multiplies the regimes' drifts (assets calmer
    than BTC trend less).

    Prices are rounded to `price_decimals` decimals and volumes to 0.0001, with low <= open,
    close <= high on every row.
    The GARCH and regime parameters are calibrated for minute bars; other intervals scale the
    volatility and drift but keep the per-bar persistence.
    """
    if n_rows < 1:
        raise ValueError(f"n_rows must be at least 1, got {n_rows}")
    if interval_s < 1:
        raise ValueError(f"interval_s must be at least 1 second, got {interval_s}")
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware (e.g. tzinfo=UTC)")
    if not start_price > 0 or not annual_vol > 0:
        raise ValueError("start_price and annual_vol must be positive")
    if not 0 <= n_gaps <= n_rows - 1:
        raise ValueError(f"n_gaps must be between 0 and n_rows - 1 = {n_rows - 1}, got {n_gaps}")
    if not 1 <= gap_minutes[0] <= gap_minutes[1]:
        raise ValueError(f"gap_minutes must be (low, high) with 1 <= low <= high, got {gap_minutes}")

    rng = np.random.Generator(np.random.PCG64(seed))
    grid_index = np.arange(n_rows) + np.cumsum(_skipped_bars(rng, n_rows, n_gaps, gap_minutes, interval_s))
    start_us = (start - _EPOCH) // timedelta(microseconds=1)
    session_share = None
    if calendar is not None:
        interval_us = interval_s * 1_000_000
        if interval_us == DAY_US and start_us % DAY_US:
            raise ValueError("daily bars on a calendar start at 00:00 UTC")
        due, share = _due_bars(trading_calendar(calendar), start_us, interval_us, int(grid_index[-1]) + 1)
        grid_index, session_share = (due[grid_index] - start_us) // interval_us, share[grid_index]
    n_grid = int(grid_index[-1]) + 1
    grid_seconds = start_us // 1_000_000 + np.arange(n_grid, dtype=np.int64) * interval_s

    years_per_bar = interval_s / _SECONDS_PER_YEAR
    z = rng.standard_t(_T_DOF, size=n_grid) * math.sqrt((_T_DOF - 2.0) / _T_DOF)
    regime = _regimes(rng, n_grid, interval_s)
    regime_vol = _REGIME_VOL / np.sqrt(np.mean(_REGIME_VOL**2))
    relative_sd = _garch_sd(z, _GARCH_ALPHA, _GARCH_BETA) * _seasonality(grid_seconds) * regime_vol[regime]
    if session_share is not None:  # an early close trades a shorter session
        relative_sd[grid_index] *= np.sqrt(session_share)
    sd = annual_vol * math.sqrt(years_per_bar) * relative_sd
    log_return = (_REGIME_DRIFT * drift_scale)[regime] * years_per_bar + sd * z

    log_path = math.log(start_price) + np.concatenate(([0.0], np.cumsum(log_return)))
    path = np.round(np.exp(log_path), price_decimals)
    open_, close = path[grid_index], path[grid_index + 1]

    # High and low: extremes of a Brownian bridge from open to close with the bar's volatility, drawn
    # exactly by inverse CDF, P(max > m) = exp(-2 m (m - r) / sd^2), where -log(U) is Exp(1).
    bar_return, bar_sd, log_open = log_return[grid_index], sd[grid_index], log_path[grid_index]
    spread_up = np.sqrt(bar_return**2 + 2.0 * bar_sd**2 * rng.standard_exponential(n_rows))
    spread_down = np.sqrt(bar_return**2 + 2.0 * bar_sd**2 * rng.standard_exponential(n_rows))
    high = np.round(np.exp(log_open + 0.5 * (bar_return + spread_up)), price_decimals)
    low = np.round(np.exp(log_open + 0.5 * (bar_return - spread_down)), price_decimals)
    # Only matters where float rounding of the path left an extreme a hair inside the open or close.
    high = np.maximum(high, np.maximum(open_, close))
    low = np.minimum(low, np.minimum(open_, close))

    noise = np.exp(_VOLUME_NOISE * rng.standard_normal(n_rows) - 0.5 * _VOLUME_NOISE**2)
    activity = relative_sd[grid_index] * (0.3 + 0.7 * np.abs(z[grid_index]))
    if session_share is not None:
        activity = activity * np.sqrt(session_share)  # and with relative_sd's share: volume ~ session length
    volume = np.round(_VOLUME_SCALE * interval_s / 60 * activity * noise, 4)

    ts = pa.array(start_us + grid_index * (interval_s * 1_000_000), type=BAR_SCHEMA.field("ts").type)
    return pa.Table.from_arrays([ts, open_, high, low, close, volume], schema=BAR_SCHEMA)


def write_export(bars: pa.Table, path: Path, price_decimals: int = 2) -> Path:
    """Write `bars` as an MT4 history export at `path` and return the path.

    One line per bar, no header: `YYYY.MM.DD,HH:MM,open,high,low,close,volume` with the time in UTC
    truncated to the minute, prices with exactly `price_decimals` decimals (0 to 8; 5 for FX) and volume
    with 4 (values are rounded half-to-even at that precision). The file appears at `path` only when
    complete: it is written beside it under a hidden temporary name and renamed into place.
    """
    if not 0 <= price_decimals <= 8:
        raise ValueError(f"price_decimals must be between 0 and 8, got {price_decimals}")
    path = Path(path)
    for name in ("ts", *_PRICE_COLUMNS, "volume"):
        if name not in bars.column_names:
            raise ValueError(f"bars have no {name!r} column")
        if bars[name].null_count:
            raise ValueError(f"bars column {name!r} has nulls")
    minutes = bars["ts"].cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy() // 60_000_000
    prices = np.column_stack([bars[name].to_numpy() for name in _PRICE_COLUMNS])
    volume = bars["volume"].to_numpy()
    for name, values, decimals in (("price", prices, price_decimals), ("volume", volume, _VOLUME_DECIMALS)):
        bound = 10.0 ** (_EXPORT_DIGITS - max(decimals, 2))
        if not np.all((values >= 0) & (values < bound)):
            raise ValueError(f"every {name} must be finite, non-negative and below {bound:g}")
    price_units = np.rint(prices * 10**price_decimals).astype(np.int64)
    volume_units = np.rint(volume * 10**_VOLUME_DECIMALS).astype(np.int64)

    # A hidden name with the process id: watchers skip dotfiles, and concurrent writers never share it.
    # Created with open() rather than mkstemp so the file gets the usual umask permissions, not 0600.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with open(tmp, "wb") as sink:
            for first in range(0, bars.num_rows, _EXPORT_CHUNK_ROWS):
                rows = slice(first, first + _EXPORT_CHUNK_ROWS)
                sink.write(
                    _format_export(minutes[rows], price_units[rows], volume_units[rows], price_decimals)
                )
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


@dataclass(frozen=True)
class DemoShape:
    """A kind of data set users have: its market's calendar, bar interval, span and price scale."""

    dataset: str  # the export's stem, so the dataset's name
    describe: str
    calendar: str
    interval_s: int
    start: datetime
    years: int  # the default span: every bar the calendar expects in these years from `start`
    start_price: float
    annual_vol: float
    price_decimals: int
    gap_minutes: tuple[int, int]  # three outages of this many minutes (at least one bar each)


SHAPES = {
    "equity-daily": DemoShape(
        "equity_d1",
        "10 years of daily equity bars on the NYSE calendar (holidays, early closes)",
        "XNYS",
        86_400,
        datetime(2015, 1, 2, tzinfo=UTC),
        10,
        180.0,
        0.18,
        2,
        (1, 1),
    ),
    "fx-hourly": DemoShape(
        "eurusd_h1",
        "2 years of hourly EUR/USD bars, closed from Friday to Sunday 17:00 New York",
        "24/5",
        3_600,
        datetime(2023, 1, 1, 22, tzinfo=UTC),  # the Sunday open of the first week
        2,
        1.0850,
        0.08,
        5,
        (60, 300),
    ),
    "crypto-minute": DemoShape(
        "btc_m1",
        "1 year of 1-minute BTC bars, trading around the clock",
        "24/7",
        60,
        _DEFAULT_START,
        1,
        94_000.0,
        0.55,
        2,
        (5, 90),
    ),
}


def shape_bars(shape: DemoShape, n_rows: int | None = None, seed: int = 25) -> pa.Table:
    """The bars of `shape`: about its `years` (or its first `n_rows` bars), with three outages."""
    if n_rows is None:
        start_us = (shape.start - _EPOCH) // timedelta(microseconds=1)
        end_us = (shape.start.replace(year=shape.start.year + shape.years) - _EPOCH) // timedelta(
            microseconds=1
        )
        interval_us = shape.interval_s * 1_000_000
        slots = bar_slots(trading_calendar(shape.calendar).sessions(start_us, end_us), interval_us, start_us)
        n_rows = int(((slots >= start_us) & (slots < end_us)).sum()) - 3  # the outages take some
    return generate_bars(
        n_rows=n_rows,
        start=shape.start,
        interval_s=shape.interval_s,
        seed=seed,
        start_price=shape.start_price,
        n_gaps=min(3, n_rows - 1),
        gap_minutes=shape.gap_minutes,
        annual_vol=shape.annual_vol,
        calendar=shape.calendar,
        drift_scale=shape.annual_vol / 0.55,
        price_decimals=shape.price_decimals,
    )


def write_shape(shape: DemoShape, folder: Path, bars: pa.Table) -> Path:
    """Write `bars` (of `shape`) as the export `<dataset>.txt` in `folder` with its sidecar `<dataset>.json`,
    which names the calendar; return the export's path. The sidecar comes first, so a landing folder's
    watcher never sees the export without it."""
    folder = Path(folder)
    sidecar = folder / f"{shape.dataset}.json"
    tmp = sidecar.with_name(f".{sidecar.name}.{os.getpid()}.part")
    tmp.write_text(json.dumps({"calendar": shape.calendar}) + "\n")
    os.replace(tmp, sidecar)
    return write_export(bars, folder / f"{shape.dataset}.txt", shape.price_decimals)


# Last, so it sees every kernel of the module; before any is called (compute/numba_cache.py).
guard(sys.modules[__name__])
