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

The numba kernels (`_garch_sd`, `_format_export` and its helpers) hold only the loops that numpy
cannot vectorise; validation and the typed API are the two public functions at the bottom.
"""

from __future__ import annotations

import math
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
from numba import njit

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
# Bound on exported values: scaled to units of 0.0001 they stay well inside the int64 the kernel formats.
_MAX_EXPORT_VALUE = 1e14


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
def _format_export(minutes: np.ndarray, cents: np.ndarray, volume_units: np.ndarray) -> np.ndarray:
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
        for j in range(cents.shape[1]):
            out[pos] = 44
            pos = _put_fixed(out, pos + 1, cents[i, j], 2)
        out[pos] = 44
        pos = _put_fixed(out, pos + 1, volume_units[i], 4)
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


def generate_bars(
    n_rows: int = 525_600,
    start: datetime = _DEFAULT_START,
    interval_s: int = 60,
    seed: int = 25,
    start_price: float = 94_000.0,
    n_gaps: int = 3,
    gap_minutes: tuple[int, int] = (5, 90),
    annual_vol: float = 0.55,
) -> pa.Table:
    """Simulate `n_rows` BTC-like OHLCV bars; the same arguments always give a bit-identical table.

    `start` (timezone-aware) is the first bar's open time. `n_gaps` exchange outages, each lasting a
    whole number of minutes drawn from `gap_minutes` (inclusive), remove bars from the timeline; the
    table still has `n_rows` rows and the price keeps moving during an outage, so the first bar after
    one opens away from the last close. Everywhere else a bar opens at the previous close.

    Prices are rounded to 0.01 and volumes to 0.0001, with low <= open, close <= high on every row.
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
    n_grid = int(grid_index[-1]) + 1
    start_us = (start - _EPOCH) // timedelta(microseconds=1)
    grid_seconds = start_us // 1_000_000 + np.arange(n_grid, dtype=np.int64) * interval_s

    years_per_bar = interval_s / _SECONDS_PER_YEAR
    z = rng.standard_t(_T_DOF, size=n_grid) * math.sqrt((_T_DOF - 2.0) / _T_DOF)
    regime = _regimes(rng, n_grid, interval_s)
    regime_vol = _REGIME_VOL / np.sqrt(np.mean(_REGIME_VOL**2))
    relative_sd = _garch_sd(z, _GARCH_ALPHA, _GARCH_BETA) * _seasonality(grid_seconds) * regime_vol[regime]
    sd = annual_vol * math.sqrt(years_per_bar) * relative_sd
    log_return = _REGIME_DRIFT[regime] * years_per_bar + sd * z

    log_path = math.log(start_price) + np.concatenate(([0.0], np.cumsum(log_return)))
    path = np.round(np.exp(log_path), 2)
    open_, close = path[grid_index], path[grid_index + 1]

    # High and low: extremes of a Brownian bridge from open to close with the bar's volatility, drawn
    # exactly by inverse CDF, P(max > m) = exp(-2 m (m - r) / sd^2), where -log(U) is Exp(1).
    bar_return, bar_sd, log_open = log_return[grid_index], sd[grid_index], log_path[grid_index]
    spread_up = np.sqrt(bar_return**2 + 2.0 * bar_sd**2 * rng.standard_exponential(n_rows))
    spread_down = np.sqrt(bar_return**2 + 2.0 * bar_sd**2 * rng.standard_exponential(n_rows))
    high = np.round(np.exp(log_open + 0.5 * (bar_return + spread_up)), 2)
    low = np.round(np.exp(log_open + 0.5 * (bar_return - spread_down)), 2)
    # Only matters where float rounding of the path left an extreme a hair inside the open or close.
    high = np.maximum(high, np.maximum(open_, close))
    low = np.minimum(low, np.minimum(open_, close))

    noise = np.exp(_VOLUME_NOISE * rng.standard_normal(n_rows) - 0.5 * _VOLUME_NOISE**2)
    activity = relative_sd[grid_index] * (0.3 + 0.7 * np.abs(z[grid_index]))
    volume = np.round(_VOLUME_SCALE * interval_s / 60 * activity * noise, 4)

    ts = pa.array(start_us + grid_index * (interval_s * 1_000_000), type=BAR_SCHEMA.field("ts").type)
    return pa.Table.from_arrays([ts, open_, high, low, close, volume], schema=BAR_SCHEMA)


def write_export(bars: pa.Table, path: Path) -> Path:
    """Write `bars` as an MT4 history export at `path` and return the path.

    One line per bar, no header: `YYYY.MM.DD,HH:MM,open,high,low,close,volume` with the time in UTC
    truncated to the minute, prices with exactly 2 decimals and volume with 4 (values are rounded
    half-to-even at that precision). The file appears at `path` only when complete: it is written
    beside it under a hidden temporary name and renamed into place.
    """
    path = Path(path)
    for name in ("ts", *_PRICE_COLUMNS, "volume"):
        if name not in bars.column_names:
            raise ValueError(f"bars have no {name!r} column")
        if bars[name].null_count:
            raise ValueError(f"bars column {name!r} has nulls")
    minutes = bars["ts"].cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy() // 60_000_000
    prices = np.column_stack([bars[name].to_numpy() for name in _PRICE_COLUMNS])
    volume = bars["volume"].to_numpy()
    for name, values in (("price", prices), ("volume", volume)):
        if not np.all((values >= 0) & (values < _MAX_EXPORT_VALUE)):
            raise ValueError(f"every {name} must be finite, non-negative and below {_MAX_EXPORT_VALUE:g}")
    cents = np.rint(prices * 100).astype(np.int64)
    volume_units = np.rint(volume * 10_000).astype(np.int64)

    # A hidden name with the process id: watchers skip dotfiles, and concurrent writers never share it.
    # Created with open() rather than mkstemp so the file gets the usual umask permissions, not 0600.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with open(tmp, "wb") as sink:
            for first in range(0, bars.num_rows, _EXPORT_CHUNK_ROWS):
                rows = slice(first, first + _EXPORT_CHUNK_ROWS)
                sink.write(_format_export(minutes[rows], cents[rows], volume_units[rows]))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
