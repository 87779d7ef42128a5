"""A simulation's metadata on awkward spans: years with missing months, a single bar, no trades. Dagster
refuses a table whose rows differ in fields, so every year must carry every month."""

from datetime import UTC, datetime

import dagster as dg
import numpy as np
import pytest

from trading_assets.compute.charts import equity_drawdown_png
from trading_assets.simulation.assets import _TRADE_SCHEMA, _trade_rows, monthly_table
from trading_assets.simulation.service import monthly_returns

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
PNG = b"\x89PNG\r\n\x1a\n"


def us(*date: int) -> int:
    return int(datetime(*date, tzinfo=UTC).timestamp() * 1_000_000)


def rows(table: dg.TableMetadataValue) -> list[dict[str, object]]:
    return [dict(r.data) for r in table.records]


def year(number: int, **returns: float) -> dict[str, object]:
    return {"year": number, **{m: returns.get(m) for m in MONTHS}}


def test_a_span_over_two_years_with_missing_months_has_every_month_in_every_year():
    # Bars in November 2024, January and March 2025: no bar in December or February.
    ts = np.array([us(2024, 11, 15), us(2024, 11, 29), us(2025, 1, 10), us(2025, 3, 5)])
    equity = np.array([10_100.0, 10_200.0, 9_996.0, 10_495.8])
    months = monthly_returns(ts, equity, 10_000.0)
    table = monthly_table(months)
    # Each month from the equity at the last bar before it: November from the initial cash (+2%),
    # January from November's close (9,996 / 10,200: -2%), March from January's (10,495.8 / 9,996: +5%).
    assert rows(table) == [year(2024, Nov=2.0), year(2025, Jan=-2.0, Mar=5.0)]
    assert [c.name for c in table.schema.columns] == ["year", *MONTHS]


def test_a_single_bar_is_one_month_from_the_initial_cash():
    ts, equity = np.array([us(2024, 6, 3)]), np.array([10_050.0])
    assert rows(monthly_table(monthly_returns(ts, equity, 10_000.0))) == [year(2024, Jun=0.5)]
    assert equity_drawdown_png(ts, equity, np.zeros(1), "one bar").startswith(PNG)


def test_no_trades_give_flat_months_an_empty_trade_table_and_a_flat_chart():
    ts = np.array([us(2023, 12, 29), us(2024, 1, 2), us(2024, 2, 1)])
    equity = np.full(3, 10_000.0)
    assert rows(monthly_table(monthly_returns(ts, equity, 10_000.0))) == [
        year(2023, Dec=0.0),
        year(2024, Jan=0.0, Feb=0.0),
    ]
    trades = dg.MetadataValue.table(_trade_rows([]), schema=_TRADE_SCHEMA)
    assert trades.records == []
    assert equity_drawdown_png(ts, equity, np.zeros(3), "no trades").startswith(PNG)


def test_ten_years_of_daily_bars_make_one_row_a_year_whose_months_compound_to_the_whole_return():
    ts = np.arange(np.datetime64("2015-01-02"), np.datetime64("2025-01-01")).astype("datetime64[us]")
    equity = 10_000.0 * np.exp(np.linspace(0.0, 0.5, ts.size))
    months = monthly_returns(ts.astype(np.int64), equity, 10_000.0)
    table = monthly_table(months)
    assert [r["year"] for r in rows(table)] == list(range(2015, 2025))
    assert all(None not in r.values() for r in rows(table))
    growth = np.prod([1 + r for by_month in months.values() for r in by_month.values()])
    assert growth == pytest.approx(np.exp(0.5), rel=1e-12)
