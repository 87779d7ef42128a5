"""Computing an indicator set over bars: in full, incrementally on a longer export, and under audit.

`compute_set` runs every entry of a set over a dataset's bars and returns its columns plus the state
of its stateful indicators after the last bar. `extend_set` computes only the bars appended since: it
needs `history_bars(spec)` bars before the old end (the windows of windowed indicators) and the saved
state (the recursions of EMA-like ones), and gives bit for bit what `compute_set` gives on everything.

`lookahead_violations` recomputes the set on prefixes of the bars: a value that changes when later bars
are removed was computed from the future. `warmup_violations` holds every column to its declared
warm-up: NaN inside it, finite numbers after it.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trading_assets.compute.indicators.fusion import fused_outputs
from trading_assets.compute.indicators.registry import BAR_INPUTS
from trading_assets.compute.indicators.spec import SetSpec

Bars = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class SetResult:
    """Columns of a set (name -> float64 array, NaN in warm-up) and its resume state."""

    values: dict[str, np.ndarray]
    state: SetState


@dataclass(frozen=True)
class SetState:
    """Where a computation stopped: bars seen, and each stateful entry's state after the last one."""

    rows: int
    entries: dict[int, np.ndarray]

    def to_json(self) -> str:
        # float.hex round-trips every double exactly, NaN and inf included; decimal text may not.
        body = {
            "rows": self.rows,
            "entries": {str(i): [float(v).hex() for v in s] for i, s in sorted(self.entries.items())},
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> SetState:
        body = json.loads(text)
        entries = {
            int(i): np.array([float.fromhex(v) for v in s], dtype=np.float64)
            for i, s in body["entries"].items()
        }
        return cls(rows=int(body["rows"]), entries=entries)


def history_bars(spec: SetSpec) -> int:
    """Bars before the old end that an incremental update reads: the longest window, at least one
    (stateful kernels read the previous bar, e.g. the previous close of a true range)."""
    return max(spec.max_lookback, 1)


def compute_set(spec: SetSpec, bars: Bars) -> SetResult:
    """Every column of `spec` over `bars` (arrays by input name, one length)."""
    n = _length(bars)
    return _run(spec, bars, i0=0, state=SetState(rows=0, entries={}), rows=n)


def extend_set(spec: SetSpec, tail: Bars, i0: int, state: SetState) -> SetResult:
    """Columns for the bars appended after `state.rows`, from `tail` = bars[state.rows - i0:].

    `i0` is where the new bars start in `tail`; the bars before it must be at least
    `min(history_bars(spec), state.rows)` bars of history. The values returned are for tail[i0:] only.
    """
    need = min(history_bars(spec), state.rows)
    if i0 < need:
        raise ValueError(f"an incremental update needs {need} bars of history before the new ones, got {i0}")
    n = _length(tail)
    result = _run(spec, tail, i0=i0, state=state, rows=state.rows + n - i0)
    return SetResult({k: v[i0:] for k, v in result.values.items()}, result.state)


def _run(spec: SetSpec, bars: Bars, *, i0: int, state: SetState, rows: int) -> SetResult:
    values: dict[str, np.ndarray] = {}
    new_states: dict[int, np.ndarray] = {}
    for index, entry in enumerate(spec.entries):
        item = spec.indicator(index)
        if item.stateful:
            saved = state.entries.get(index)
            new_states[index] = item.new_state(entry.params) if saved is None or i0 == 0 else saved.copy()
    fused = fused_outputs(spec, bars, new_states, i0)
    for index, entry in enumerate(spec.entries):
        item = spec.indicator(index)
        if index in fused:
            outputs = fused[index]
        elif item.stateful:
            outputs = item.compute(bars, entry.params, state=new_states[index], i0=i0)
        else:
            # Windowed: each value depends on its own window only, so history makes the tail exact.
            outputs = item.compute(bars, entry.params)
        for column in spec.columns:
            if column.entry == index:
                values[column.name] = outputs[column.output]
    return SetResult(values, SetState(rows=rows, entries=new_states))


def _length(bars: Bars) -> int:
    lengths = {name: np.shape(bars[name]) for name in bars if name in BAR_INPUTS}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"bar arrays differ in length: {lengths}")
    return next(iter(lengths.values()))[0] if lengths else 0


@dataclass(frozen=True)
class Violation:
    """A column that breaks a rule, at its first bad row."""

    column: str
    row: int
    detail: str


def lookahead_cuts(rows: int, spec: SetSpec, count: int = 6) -> list[int]:
    """Prefix lengths for the lookahead audit: just past the longest warm-up, spread over the data, and
    the last bar removed."""
    if rows < 2:
        return []
    first = min(spec.max_lookback + 2, rows - 1)
    spread = np.linspace(first, rows - 1, num=count).round().astype(int)
    return sorted({int(c) for c in spread if 1 <= c < rows})


def lookahead_violations(
    spec: SetSpec, bars: Bars, full: Mapping[str, np.ndarray], cuts: Sequence[int]
) -> list[Violation]:
    """Recompute `spec` on bars[:cut] for each cut; every value before the cut must equal `full`.

    Returns one violation per offending column (its earliest bad row over all cuts)."""
    worst: dict[str, Violation] = {}
    for cut in cuts:
        prefix = compute_set(spec, {k: v[:cut] for k, v in bars.items()}).values
        for name, values in prefix.items():
            expected = full[name][:cut]
            same = (values == expected) | (np.isnan(values) & np.isnan(expected))
            if not same.all():
                row = int(np.argmin(same))
                if name not in worst or row < worst[name].row:
                    worst[name] = Violation(
                        name,
                        row,
                        f"with the bars cut after row {cut - 1}, row {row} is {float(values[row])!r}; "
                        f"with all bars it is {float(expected[row])!r}: it uses bars after row {row}",
                    )
    return sorted(worst.values(), key=lambda v: (v.row, v.column))


def warmup_violations(spec: SetSpec, values: Mapping[str, np.ndarray]) -> list[Violation]:
    """Columns with a number inside their declared warm-up, or a NaN/inf after it."""
    found = []
    for column in spec.columns:
        data = values[column.name]
        head, tail = data[: column.lookback], data[column.lookback :]
        if (~np.isnan(head)).any():
            row = int(np.argmax(~np.isnan(head)))
            found.append(
                Violation(
                    column.name,
                    row,
                    f"row {row} holds {float(head[row])!r} inside a {column.lookback}-bar warm-up",
                )
            )
        if (~np.isfinite(tail)).any():
            row = column.lookback + int(np.argmax(~np.isfinite(tail)))
            found.append(
                Violation(
                    column.name,
                    row,
                    f"row {row} is {float(data[row])!r} after the {column.lookback}-bar warm-up",
                )
            )
    return found


def bars_sha256(bars: Bars, rows: int | None = None) -> str:
    """A hash of the first `rows` bars (timestamps and OHLCV): says whether a new export extends the old."""
    digest = hashlib.sha256()
    for name in ("ts", *BAR_INPUTS):
        array = np.ascontiguousarray(bars[name][:rows])
        digest.update(name.encode())
        digest.update(array.view(np.uint8) if array.size else b"")
    return digest.hexdigest()


def code_version(spec: SetSpec) -> str:
    """A hash of the code that computes `spec`: the indicator library's sources and, for indicators
    registered by users, the source file of their module. A new value means stored values may differ."""
    digest = hashlib.sha256()
    library = Path(__file__).parent
    for path in sorted(library.rglob("*.py")):
        digest.update(path.relative_to(library).as_posix().encode())
        digest.update(path.read_bytes())
    for name in sorted({e.indicator for e in spec.entries}):
        item = spec.registry.get(name)
        if not item.builtin:
            # The whole module, not just the function: its helpers (e.g. a numba kernel) are code too.
            try:
                digest.update(Path(inspect.getsourcefile(item.func) or "").read_bytes())
            except (OSError, TypeError):
                digest.update(f"{item.func.__module__}.{item.func.__qualname__}".encode())
    return digest.hexdigest()[:16]
