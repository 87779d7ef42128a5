"""Sample bar generator and MT4 export writer: determinism, bar invariants, realism, exact text."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from trading_assets.compute.demo_data import (
    BAR_SCHEMA,
    SHAPES,
    generate_bars,
    shape_bars,
    write_export,
    write_shape,
)

N = 200_000
MINUTE_US = 60_000_000
MINUTES_PER_YEAR = 525_600


@pytest.fixture(scope="module")
def bars() -> pa.Table:
    return generate_bars(N, seed=7)


def _col(table: pa.Table, name: str) -> np.ndarray:
    return table[name].to_numpy()


def _ts_us(table: pa.Table) -> np.ndarray:
    return table["ts"].cast(pa.int64()).to_numpy()


def _bar_returns(table: pa.Table) -> np.ndarray:
    """Open-to-close log returns: a bar after an outage does not carry the outage's move."""
    return np.log(_col(table, "close") / _col(table, "open"))


def _acf(x: np.ndarray, lag: int) -> float:
    x = x - x.mean()
    return float(np.dot(x[:-lag], x[lag:]) / np.dot(x, x))


def test_same_seed_gives_identical_table_and_other_seed_does_not(bars: pa.Table) -> None:
    assert generate_bars(N, seed=7).equals(bars)
    other = generate_bars(N, seed=8)
    assert not np.array_equal(_col(other, "close"), _col(bars, "close"))


def test_schema_and_row_count(bars: pa.Table) -> None:
    assert bars.schema == BAR_SCHEMA
    assert bars.num_rows == N
    assert generate_bars(1, n_gaps=0).num_rows == 1
    assert _ts_us(bars)[0] == datetime(2025, 1, 1, tzinfo=UTC).timestamp() * 1_000_000


def test_ohlc_invariants_hold_on_every_row(bars: pa.Table) -> None:
    o, h, lo, c, v = (_col(bars, name) for name in ("open", "high", "low", "close", "volume"))
    assert np.all(lo <= np.minimum(o, c))
    assert np.all(h >= np.maximum(o, c))
    assert np.all(lo > 0)
    assert np.all(v >= 0)
    # Exactly on the 0.01 tick and 0.0001 volume step after rounding.
    for prices in (o, h, lo, c):
        assert np.array_equal(prices, np.round(prices, 2))
    assert np.array_equal(v, np.round(v, 4))
    # Bars have real ranges, not degenerate ones.
    assert np.median((h - lo) / o) > 2e-4


def test_bars_open_at_the_previous_close_except_after_an_outage(bars: pa.Table) -> None:
    contiguous = np.diff(_ts_us(bars)) == MINUTE_US
    o, c = _col(bars, "open"), _col(bars, "close")
    assert np.array_equal(o[1:][contiguous], c[:-1][contiguous])
    assert o[0] == 94_000.0
    # The price moved while the exchange was down.
    assert np.all(o[1:][~contiguous] != c[:-1][~contiguous])


@pytest.mark.parametrize(("n_gaps", "interval_s"), [(0, 60), (3, 60), (7, 60), (2, 300)])
def test_timestamps_increase_and_skip_exactly_the_requested_outages(n_gaps: int, interval_s: int) -> None:
    table = generate_bars(20_000, interval_s=interval_s, seed=3, n_gaps=n_gaps, gap_minutes=(5, 90))
    steps = np.diff(_ts_us(table))
    interval_us = interval_s * 1_000_000
    assert table.num_rows == 20_000
    assert np.all(steps >= interval_us)
    gaps = steps[steps > interval_us]
    assert len(gaps) == n_gaps
    # An outage of 5..90 minutes, rounded up to whole bars, plus the bar itself.
    assert np.all(gaps >= 5 * MINUTE_US + interval_us)
    assert np.all(gaps <= 90 * MINUTE_US + interval_us)


def test_start_and_interval_define_the_grid() -> None:
    start = datetime(2024, 2, 29, 23, 0, tzinfo=timezone(timedelta(hours=2)))
    table = generate_bars(10, start=start, interval_s=3600, n_gaps=0)
    expected = start.timestamp() * 1_000_000 + np.arange(10) * 3_600_000_000
    assert np.array_equal(_ts_us(table), expected.astype(np.int64))


def test_annualised_volatility_is_btc_like(bars: pa.Table) -> None:
    vol = _bar_returns(bars).std() * np.sqrt(MINUTES_PER_YEAR)
    assert 0.35 < vol < 0.8
    calm = generate_bars(N, seed=7, annual_vol=0.2)
    assert _bar_returns(calm).std() * np.sqrt(MINUTES_PER_YEAR) < 0.3


def test_volatility_clusters_while_returns_stay_uncorrelated(bars: pa.Table) -> None:
    r = _bar_returns(bars)
    # Scale out the hour-of-week profile first: seasonality alone would make |r| autocorrelated
    # (~0.04 here without the GARCH recursion); with it the shocks cluster at ~0.12.
    hour_of_week = (_ts_us(bars) // 3_600_000_000) % 168
    typical = np.bincount(hour_of_week, np.abs(r)) / np.bincount(hour_of_week)
    shocks = np.abs(r) / typical[hour_of_week]
    assert all(_acf(shocks, lag) > 0.07 for lag in range(1, 11))
    assert all(abs(_acf(r, lag)) < 0.03 for lag in range(1, 11))


def test_returns_have_fat_tails(bars: pa.Table) -> None:
    r = _bar_returns(bars)
    r = r - r.mean()
    excess_kurtosis = np.mean(r**4) / np.mean(r**2) ** 2 - 3.0
    assert excess_kurtosis > 2.0


def test_us_afternoon_is_busier_than_asian_night_and_volume_follows_moves(bars: pa.Table) -> None:
    hour = (_ts_us(bars) // 3_600_000_000) % 24
    moves = np.abs(_bar_returns(bars))
    assert moves[(hour >= 14) & (hour < 18)].mean() > 1.3 * moves[(hour >= 2) & (hour < 6)].mean()
    volume = _col(bars, "volume")
    assert np.corrcoef(moves, volume)[0, 1] > 0.3


def test_trend_regimes_drift_the_price() -> None:
    # With the noise turned almost off (2% a year moves the daily close ~4% over a year), what is
    # left is the regimes' drift: bull and bear runs of about two weeks at -70%..+90% a year.
    closes = _col(generate_bars(MINUTES_PER_YEAR, seed=25, annual_vol=0.02, n_gaps=0), "close")
    assert np.ptp(np.log(closes[::1440])) > 0.08


def test_invalid_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        generate_bars(10, start=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="n_gaps"):
        generate_bars(3, n_gaps=3)
    with pytest.raises(ValueError, match="gap_minutes"):
        generate_bars(10, gap_minutes=(0, 5))


def _table(rows: list[tuple[datetime, float, float, float, float, float]]) -> pa.Table:
    columns = list(zip(*rows, strict=True))
    return pa.Table.from_arrays([pa.array(col) for col in columns], schema=BAR_SCHEMA)


def test_write_export_text_is_exact(tmp_path: Path) -> None:
    table = _table(
        [
            (datetime(2025, 1, 1, 0, 0, tzinfo=UTC), 94000.0, 94012.35, 93990.1, 94005.2, 12.3456),
            (datetime(2024, 2, 29, 23, 59, 42, tzinfo=UTC), 9.99, 10.5, 0.05, 10.0, 0.0),
        ]
    )
    path = write_export(table, tmp_path / "btcusd.csv")
    assert path == tmp_path / "btcusd.csv"
    assert path.read_bytes() == (
        b"2025.01.01,00:00,94000.00,94012.35,93990.10,94005.20,12.3456\n"
        b"2024.02.29,23:59,9.99,10.50,0.05,10.00,0.0000\n"
    )
    assert os.listdir(tmp_path) == ["btcusd.csv"]


def test_write_export_matches_python_formatting(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 3_000
    # Timestamps from 1970 to 2100 exercise the kernel's calendar, values span many digit counts.
    us = np.sort(rng.integers(0, 4_102_444_800_000_000, size=n))
    prices = np.round(10.0 ** rng.uniform(-2, 7, size=(n, 4)), 2)
    volume = np.round(10.0 ** rng.uniform(-4, 6, size=n), 4)
    table = pa.Table.from_arrays(
        [pa.array(us, type=BAR_SCHEMA.field("ts").type), *prices.T, volume], schema=BAR_SCHEMA
    )
    expected = "".join(
        f"{datetime.fromtimestamp(t / 1e6, UTC):%Y.%m.%d,%H:%M},"
        f"{p[0]:.2f},{p[1]:.2f},{p[2]:.2f},{p[3]:.2f},{v:.4f}\n"
        for t, p, v in zip(us.tolist(), prices.tolist(), volume.tolist(), strict=True)
    )
    assert write_export(table, tmp_path / "x.csv").read_text() == expected


def test_write_export_is_deterministic_and_replaces_the_file(tmp_path: Path) -> None:
    table = generate_bars(1_000, seed=1)
    first = write_export(table, tmp_path / "a.csv").read_bytes()
    (tmp_path / "b.csv").write_text("stale")
    assert write_export(table, tmp_path / "b.csv").read_bytes() == first
    assert len(first.splitlines()) == 1_000
    assert sorted(os.listdir(tmp_path)) == ["a.csv", "b.csv"]


@pytest.mark.parametrize("bad", [float("nan"), -1.0, float("inf")])
def test_write_export_rejects_values_it_cannot_write_and_leaves_nothing(tmp_path: Path, bad: float) -> None:
    table = _table([(datetime(2025, 1, 1, tzinfo=UTC), 1.0, bad, 1.0, 1.0, 1.0)])
    with pytest.raises(ValueError, match="price"):
        write_export(table, tmp_path / "x.csv")
    assert os.listdir(tmp_path) == []


def test_the_default_demo_export_is_bit_identical_to_the_one_before_calendars_and_shapes(
    tmp_path: Path,
) -> None:
    # sha256 of the export as `make demo` wrote it before the generator learnt calendars and shapes.
    export = write_export(generate_bars(n_rows=20_000), tmp_path / "btc25.txt")
    assert hashlib.sha256(export.read_bytes()).hexdigest() == (
        "639d972ee57ee75f67a8963cc0bc669b1394fe964ac29c870e6c184a33e32933"
    )


def test_write_export_writes_fx_prices_with_five_decimals(tmp_path: Path) -> None:
    table = _table([(datetime(2024, 3, 10, 21, 0, tzinfo=UTC), 1.08501, 1.0862, 1.08, 1.08555, 812.5)])
    path = write_export(table, tmp_path / "eurusd.txt", price_decimals=5)
    assert path.read_bytes() == b"2024.03.10,21:00,1.08501,1.08620,1.08000,1.08555,812.5000\n"
    with pytest.raises(ValueError, match="below 1e\\+11"):
        write_export(_table([(datetime(2024, 1, 1, tzinfo=UTC), 2e11, 2e11, 2e11, 2e11, 1.0)]), path, 5)


@pytest.fixture(scope="module")
def equity() -> pa.Table:
    return shape_bars(SHAPES["equity-daily"])


def _dates(table: pa.Table) -> np.ndarray:
    return _ts_us(table).astype("datetime64[us]").astype("datetime64[D]")


def test_daily_equity_bars_are_ten_years_of_nyse_sessions_but_three(equity: pa.Table) -> None:
    # The oracle is exchange_calendars itself: every bar is a session, and three sessions are missing.
    import exchange_calendars as xc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pd.errors.Pandas4Warning)
        nyse = xc.get_calendar("XNYS", start="2015-01-02", end="2024-12-31")
    sessions = nyse.sessions.to_numpy().astype("datetime64[D]")
    dates = _dates(equity)
    assert np.isin(dates, sessions).all()
    assert sessions.size - dates.size == 3
    assert np.all(_ts_us(equity) % 86_400_000_000 == 0)  # stamped at 00:00 UTC, as date-only exports are
    # No weekend, no 4 July, no Christmas.
    assert not np.isin(pd.DatetimeIndex(dates).day_of_week, [5, 6]).any()
    assert not np.isin(
        dates, np.array(["2019-07-04", "2020-12-25", "2024-11-28"], dtype="datetime64[D]")
    ).any()
    # An early close trades a shorter session: its bars have less volume.
    early = np.isin(dates, nyse.early_closes.to_numpy().astype("datetime64[D]"))
    assert early.sum() > 10
    volume = _col(equity, "volume")
    assert np.median(volume[early]) < 0.75 * np.median(volume[~early])


def test_daily_equity_bars_move_over_weekends_and_trend_like_an_index(equity: pa.Table) -> None:
    o, c = _col(equity, "open"), _col(equity, "close")
    after_weekend = np.diff(_dates(equity)).astype(int) > 1
    assert np.mean(o[1:][after_weekend] != c[:-1][after_weekend]) > 0.9  # a few equal to the cent
    daily = np.log(c / o)
    assert 0.10 < daily.std() * np.sqrt(252) < 0.30  # an equity index's volatility, not BTC's


def test_hourly_fx_bars_stop_from_friday_to_sunday_17_00_new_york() -> None:
    fx = shape_bars(SHAPES["fx-hourly"], 3_000)
    local = (
        pd.DatetimeIndex(_ts_us(fx).astype("datetime64[us]"))
        .tz_localize("UTC")
        .tz_convert("America/New_York")
    )
    weekday, hour = local.day_of_week, local.hour
    closed = (weekday == 5) | ((weekday == 4) & (hour >= 17)) | ((weekday == 6) & (hour < 17))
    assert not closed.any()
    steps = np.diff(_ts_us(fx)) // 3_600_000_000
    # The weekends: Friday 16:00 to Sunday 17:00 New York, 48 or 50 hours when the clocks change; the
    # three outages of 1 to 5 hours.
    assert (steps == 49).sum() > 10
    assert set(np.unique(steps)) <= {1, 2, 3, 4, 5, 6, 48, 49, 50}
    assert (steps > 1).sum() - np.isin(steps, [48, 49, 50]).sum() == 3
    prices = _col(fx, "close")
    assert np.array_equal(prices, np.round(prices, 5)) and not np.array_equal(prices, np.round(prices, 4))
    years = (_ts_us(fx)[-1] - _ts_us(fx)[0]) / (365.25 * 86_400e6)
    returns = np.diff(np.log(prices))
    assert 0.04 < returns.std() * np.sqrt(returns.size / years) < 0.16  # a major pair's, not BTC's


def test_crypto_minutes_trade_around_the_clock_with_three_outages() -> None:
    crypto = shape_bars(SHAPES["crypto-minute"], 50_000)
    steps = np.diff(_ts_us(crypto))
    assert (steps != MINUTE_US).sum() == 3
    assert (pd.DatetimeIndex(_ts_us(crypto).astype("datetime64[us]")).day_of_week >= 5).any()


def test_write_shape_puts_the_sidecar_beside_the_export(tmp_path: Path) -> None:
    shape = SHAPES["fx-hourly"]
    export = write_shape(shape, tmp_path, shape_bars(shape, 10))
    assert sorted(os.listdir(tmp_path)) == ["eurusd_h1.json", "eurusd_h1.txt"]
    assert json.loads((tmp_path / "eurusd_h1.json").read_text()) == {"calendar": "24/5"}
    assert export.read_text().splitlines()[0].startswith("2023.01.01,22:00,1.08500,")
