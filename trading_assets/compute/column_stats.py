"""Summary statistics of numeric columns (indicator outputs, features) for asset metadata."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ColumnStats:
    """One column's statistics over its finite values; min, max, mean and std are None when it has none.

    `nan_count` counts every value that is not finite (NaN, and ±inf, which an indicator produces only by
    mistake), so that count + nan_count is the column's length.
    """

    name: str
    count: int
    nan_count: int
    min: float | None
    max: float | None
    mean: float | None
    std: float | None  # population (ddof=0)


def column_stats(columns: Mapping[str, np.ndarray]) -> list[ColumnStats]:
    """Statistics of each column, in the mapping's order; mean and std are accumulated in float64."""
    out = []
    for name, column in columns.items():
        values = np.asarray(column)
        finite = values[np.isfinite(values)]
        count = int(finite.size)
        if count == 0:
            out.append(ColumnStats(name, 0, int(values.size), None, None, None, None))
            continue
        out.append(
            ColumnStats(
                name=name,
                count=count,
                nan_count=int(values.size) - count,
                min=float(finite.min()),
                max=float(finite.max()),
                # dtype=float64 so a float32 or integer column is summed without losing precision.
                mean=float(np.mean(finite, dtype=np.float64)),
                std=float(np.std(finite, dtype=np.float64)),
            )
        )
    return out
