"""What a re-import would do to the bars already stored: keep them and append, or rewrite history.

A longer export of the same history keeps every stored bar (same timestamp, same values, bit for bit) and
only adds bars after the last one. Anything else rewrites history: stored bars missing from the file,
stored values that differ, or bars new inside the stored range (which move every later bar's index).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa

from trading_assets.compute.bar_format import BAR_FIELDS


@dataclass(frozen=True)
class HistoryChange:
    """How the file's bars differ from the stored ones."""

    stored_rows: int
    removed: int  # stored bars whose timestamp is not in the file
    changed: int  # stored bars whose values differ in the file
    inserted: int  # file bars inside the stored range that are not stored
    appended: int  # file bars after the last stored bar
    # The earliest difference: the file's row (None for a removed bar) and what differs there.
    first_row: int | None = None
    first_difference: str | None = None

    @property
    def rewrites_history(self) -> bool:
        return bool(self.removed or self.changed or self.inserted)

    @property
    def kind(self) -> str:
        """new (nothing stored), unchanged, append or rewrite."""
        if self.stored_rows == 0:
            return "new"
        if self.rewrites_history:
            return "rewrite"
        return "append" if self.appended else "unchanged"

    def summary(self) -> str:
        """e.g. '12 stored bars removed, 1 changed, 0 inserted; first difference: ...'."""
        return (
            f"{self.removed} of {self.stored_rows} stored bars removed, {self.changed} changed, "
            f"{self.inserted} inserted before the last stored bar; first difference: {self.first_difference}"
        )


def history_change(stored: pa.Table | None, incoming: pa.Table) -> HistoryChange:
    """Compare the stored bars with the file's (both strictly increasing in `ts`, with BAR_FIELDS)."""
    new_ts = incoming.column("ts").cast(pa.int64()).to_numpy()
    if stored is None or stored.num_rows == 0:
        return HistoryChange(0, 0, 0, 0, int(new_ts.size))
    old_ts = stored.column("ts").cast(pa.int64()).to_numpy()
    at = np.searchsorted(new_ts, old_ts)
    found = at < new_ts.size
    found[found] = new_ts[at[found]] == old_ts[found]
    differs = np.zeros(old_ts.size, dtype=bool)
    first_field: dict[int, str] = {}
    for name in BAR_FIELDS:
        old = stored.column(name).to_numpy()
        new = incoming.column(name).to_numpy()
        bad = np.zeros(old_ts.size, dtype=bool)
        bad[found] = old[found] != new[at[found]]
        for i in np.flatnonzero(bad & ~differs)[:1]:
            first_field[int(i)] = f"{name} {float(old[i])!r} stored, {float(new[at[i]])!r} in the file"
        differs |= bad
    stored_span = int(np.searchsorted(new_ts, old_ts[-1], side="right"))
    in_span = np.ones(stored_span, dtype=bool)
    in_span[at[found]] = False  # file rows that match a stored bar
    candidates = []  # (timestamp, file row or None, description)
    if (~found).any():
        i = int(np.flatnonzero(~found)[0])
        candidates.append((int(old_ts[i]), None, f"the stored bar at {_iso(old_ts[i])} is not in the file"))
    if differs.any():
        i = int(np.flatnonzero(differs)[0])
        candidates.append((int(old_ts[i]), int(at[i]), f"bar {_iso(old_ts[i])}: {first_field[i]}"))
    if in_span.any():
        r = int(np.flatnonzero(in_span)[0])
        candidates.append((int(new_ts[r]), r, f"bar {_iso(new_ts[r])} is new before the last stored bar"))
    first = min(candidates, key=lambda c: c[0]) if candidates else (0, None, None)
    return HistoryChange(
        stored_rows=int(old_ts.size),
        removed=int((~found).sum()),
        changed=int(differs.sum()),
        inserted=int(in_span.sum()),
        appended=int(new_ts.size - stored_span),
        first_row=first[1],
        first_difference=first[2],
    )


def _iso(us: int) -> str:
    when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(us))
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")
