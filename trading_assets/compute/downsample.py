"""Long series cut to a number of points for a chart: each point a bucket of consecutive bars with its
lowest, highest and last finite value, so a spike survives however far the chart is zoomed out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Downsampled:
    """`step` bars a bucket (the last may hold fewer); per bucket its first bar's timestamp, and per column
    the bucket's lowest, highest and last finite value (NaN where the bucket has none)."""

    step: int
    ts_us: np.ndarray
    low: dict[str, np.ndarray]
    high: dict[str, np.ndarray]
    last: dict[str, np.ndarray]


def downsample(ts_us: np.ndarray, columns: Mapping[str, np.ndarray], points: int) -> Downsampled:
    """At most `points` buckets of equal runs of bars over `ts_us` (sorted) and every column of the same
    length. With no more bars than points, every bar is its own bucket (low = high = last = the value)."""
    if points < 1:
        raise ValueError(f"points must be at least 1, not {points}")
    n = int(np.size(ts_us))
    step = max(1, -(-n // points))
    starts = np.arange(0, n, step)
    low, high, last = {}, {}, {}
    index = np.arange(n)
    for name, values in columns.items():
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (n,):
            raise ValueError(f"column {name!r} has shape {values.shape}, expected ({n},)")
        if n == 0:
            low[name] = high[name] = last[name] = values
            continue
        finite = np.isfinite(values)
        # fmin/fmax skip NaN unless the whole bucket is NaN; infinities are not data points either.
        clean = np.where(finite, values, np.nan)
        low[name] = np.fmin.reduceat(clean, starts)
        high[name] = np.fmax.reduceat(clean, starts)
        # A bucket's last finite index is its maximum of (index where finite, else -1).
        where = np.maximum.reduceat(np.where(finite, index, -1), starts)
        last[name] = np.where(where >= starts, values[np.maximum(where, 0)], np.nan)
    return Downsampled(step, np.asarray(ts_us, dtype=np.int64)[starts], low, high, last)


@dataclass(frozen=True)
class HalvesHistogram:
    """Counts of a column's finite values in the same bins for the first and the second half of its rows:
    how its distribution drifted. The bins span the 0.5% to 99.5% quantiles of all its finite values
    (values outside count in the end bins), so one outlier does not squash the rest into a single bin."""

    edges: np.ndarray
    early: np.ndarray
    late: np.ndarray


def halves_histogram(values: np.ndarray, bins: int) -> HalvesHistogram | None:
    """None when the column has no finite value."""
    if bins < 1:
        raise ValueError(f"bins must be at least 1, not {bins}")
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    low, high = np.quantile(finite, [0.005, 0.995])
    if not high > low:
        low, high = low - 0.5, high + 0.5  # a constant column: one bin around it
    edges = np.linspace(low, high, bins + 1)
    half = values.size // 2

    def counts(part: np.ndarray) -> np.ndarray:
        part = np.clip(part[np.isfinite(part)], low, high)
        return np.histogram(part, bins=edges)[0]

    return HalvesHistogram(edges, counts(values[:half]), counts(values[half:]))
