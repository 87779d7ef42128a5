import math

import numpy as np

from trading_assets.compute.column_stats import ColumnStats, column_stats


def test_hand_worked_column():
    # Finite values 1, 2, 3, 6: mean 3; deviations -2, -1, 0, 3; squares 4, 1, 0, 9 sum to 14, over 4 = 3.5.
    values = np.array([np.nan, 1.0, 2.0, np.nan, 3.0, 6.0])
    assert column_stats({"x": values}) == [
        ColumnStats(name="x", count=4, nan_count=2, min=1.0, max=6.0, mean=3.0, std=math.sqrt(3.5))
    ]


def test_infinities_count_as_not_finite():
    # Finite values -1, 1: mean 0, std 1.
    values = np.array([np.inf, -1.0, -np.inf, 1.0, np.nan])
    assert column_stats({"x": values}) == [ColumnStats("x", 2, 3, -1.0, 1.0, 0.0, 1.0)]


def test_order_follows_the_mapping():
    stats = column_stats({"b": np.array([1.0]), "a": np.array([2.0]), "c": np.array([3.0])})
    assert [s.name for s in stats] == ["b", "a", "c"]
    assert stats[0] == ColumnStats("b", 1, 0, 1.0, 1.0, 1.0, 0.0)


def test_all_nan_and_empty_columns_have_no_values():
    assert column_stats({"nan": np.full(3, np.nan), "empty": np.empty(0)}) == [
        ColumnStats("nan", 0, 3, None, None, None, None),
        ColumnStats("empty", 0, 0, None, None, None, None),
    ]
    assert column_stats({}) == []


def test_float32_is_accumulated_in_float64():
    # In float32, 1e8 + 1 rounds back to 1e8 (its neighbours are 8 apart), so a float32 sum would lose the
    # ones and give a mean of 2.5e7; in float64 it is (1e8 + 3) / 4 exactly.
    values = np.array([1e8, 1, 1, 1], dtype=np.float32)
    (stats,) = column_stats({"x": values})
    assert stats.mean == 25_000_000.75
    assert type(stats.mean) is float and type(stats.min) is float


def test_integer_column():
    (stats,) = column_stats({"x": np.array([1, 2, 3, 4], dtype=np.int64)})
    assert stats == ColumnStats("x", 4, 0, 1.0, 4.0, 2.5, math.sqrt(1.25))
