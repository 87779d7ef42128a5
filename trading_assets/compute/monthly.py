"""Calendar-month returns of an equity curve, for a simulation's heatmap."""

from __future__ import annotations

import numpy as np


def monthly_returns(ts_us: np.ndarray, equity: np.ndarray, initial: float) -> list[tuple[int, int, float]]:
    """(year, month, return) of every calendar month (UTC) the bars touch, in order: the month's last
    equity over the previous month's last (over `initial` for the first month), minus one. NaN where the
    base is not positive (a ruined account)."""
    ts = np.asarray(ts_us, dtype=np.int64)
    values = np.asarray(equity, dtype=np.float64)
    if ts.shape != values.shape:
        raise ValueError(f"ts has shape {ts.shape}, equity {values.shape}")
    if ts.size == 0:
        return []
    months = ts.astype("datetime64[us]").astype("datetime64[M]")
    # The last bar of each month: where the next bar is in another month, and the very last bar.
    ends = np.flatnonzero(np.append(months[1:] != months[:-1], True))
    closes = values[ends]
    bases = np.concatenate(([initial], closes[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = np.where(bases > 0, closes / bases - 1.0, np.nan)
    out = []
    for month, value in zip(months[ends], returns, strict=True):
        year, number = divmod(int(month.astype(np.int64)), 12)
        out.append((1970 + year, number + 1, float(value)))
    return out
