"""Walkforward folds: time-ordered train/test windows over a dataset's rows, without leakage.

A fold tests on `test` bars (or a duration) and trains on the bars before it, minus a purge gap:

    |---------- train ----------|-- purge --|---- test ----|-- embargo --|
                                ^ train end              ^ test end

- `sliding`: every fold trains on the last `train` bars (or duration) before its purge gap;
  `expanding`: every fold trains on everything from the first row up to its purge gap.
- `purge` (bars) must be at least the target `horizon`: a training label at row i looks `horizon` bars
  ahead, so the last one (row train_end - 1) then ends before the test window starts.
- `embargo` (bars): the rows right after each test window are left out of every later fold's training
  (López de Prado's embargo; the window keeps its span, so it holds fewer rows). Causality does not
  depend on it, the purge guards each test window; it keeps rows that are near-duplicates of a tested
  window (features on long windows) from being learned by later models.
- `step` (default: the test length, and never less, so test windows never overlap) moves the next test
  window forward.

Lengths are all bars (ints) or all durations (`timedelta`, measured on the timestamps, so gaps in the
data count as time); purge and embargo are always bars. Only whole test windows become folds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import numpy as np

Length = int | timedelta


class FoldError(ValueError):
    """A fold configuration that cannot work on the data; the message says why and with which numbers."""


@dataclass(frozen=True)
class FoldConfig:
    train: Length
    test: Length
    step: Length | None = None
    mode: Literal["sliding", "expanding"] = "sliding"
    horizon: int = 1
    purge: int | None = None
    embargo: int = 0
    max_folds: int | None = None

    @property
    def purge_bars(self) -> int:
        return self.horizon if self.purge is None else self.purge

    def validate(self) -> None:
        """FoldError naming the first field that makes the scheme impossible."""
        lengths = {"train": self.train, "test": self.test, "step": self.step}
        kinds = {type(v) for v in lengths.values() if v is not None}
        if kinds - {int, timedelta} or any(isinstance(v, bool) for v in lengths.values()):
            raise FoldError(
                f"train, test and step must be bar counts (int) or durations (timedelta): {lengths}"
            )
        if len(kinds) > 1:
            raise FoldError(f"train, test and step must all be bars or all durations, not a mix: {lengths}")
        for name, value in lengths.items():
            if value is not None and value <= (timedelta(0) if isinstance(value, timedelta) else 0):
                raise FoldError(f"{name} must be positive, got {value}")
        if self.step is not None and self.step < self.test:
            raise FoldError(f"step {self.step} is shorter than test {self.test}: test windows would overlap")
        if self.mode not in ("sliding", "expanding"):
            raise FoldError(f"mode must be 'sliding' or 'expanding', got {self.mode!r}")
        for name in ("horizon", "embargo"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or value < (1 if name == "horizon" else 0)
            ):
                raise FoldError(
                    f"{name} must be an integer >= {1 if name == 'horizon' else 0}, got {value!r}"
                )
        if (
            isinstance(self.purge, bool)
            or not isinstance(self.purge_bars, int)
            or self.purge_bars < self.horizon
        ):
            raise FoldError(
                f"purge {self.purge_bars!r} bars is shorter than the target horizon {self.horizon}: the last "
                "training labels would look into the test window"
            )
        if self.max_folds is not None and self.max_folds < 1:
            raise FoldError(f"max_folds must be at least 1, got {self.max_folds}")


@dataclass(frozen=True)
class Fold:
    """One fold: training rows as half-open ranges (several when an embargo cuts them) and the test range."""

    number: int
    train: tuple[tuple[int, int], ...]
    test: tuple[int, int]

    @property
    def train_end(self) -> int:
        """One past the last training row."""
        return self.train[-1][1]

    @property
    def train_rows(self) -> int:
        return sum(end - start for start, end in self.train)

    @property
    def test_rows(self) -> int:
        return self.test[1] - self.test[0]

    def train_index(self) -> np.ndarray:
        return np.concatenate([np.arange(start, end) for start, end in self.train])


def make_folds(ts_us: np.ndarray, config: FoldConfig) -> list[Fold]:
    """The folds of `config` over rows with timestamps `ts_us` (int64 µs, increasing), in time order."""
    config.validate()
    n = int(ts_us.size)
    step = config.step if config.step is not None else config.test
    purge = config.purge_bars

    def forward(row: int, length: Length) -> int:
        """The first row at or after `length` past `row` (n if the data ends first)."""
        if isinstance(length, int):
            return min(row + length, n)
        target = ts_us[row] + length // timedelta(microseconds=1)
        return int(np.searchsorted(ts_us, target, side="left"))

    def backward(row: int, length: Length) -> int:
        """The first row of the `length` that ends just before `row`."""
        if isinstance(length, int):
            return max(row - length, 0)
        target = ts_us[row - 1] - length // timedelta(microseconds=1)
        return int(np.searchsorted(ts_us, target, side="right"))

    def whole_window(start: int, length: Length) -> bool:
        if isinstance(length, int):
            return start + length <= n
        return forward(start, length) < n  # a later row exists, so the data covers the whole duration

    first_train_end = forward(0, config.train) if n else 0
    test_start = first_train_end + purge
    folds: list[Fold] = []
    embargoed: list[tuple[int, int]] = []
    while test_start < n and whole_window(test_start, config.test):
        if config.max_folds is not None and len(folds) == config.max_folds:
            break
        test_end = forward(test_start, config.test)
        train_end = test_start - purge
        train_start = 0 if config.mode == "expanding" else backward(train_end, config.train)
        train = _minus((train_start, train_end), embargoed)
        if train:
            folds.append(Fold(number=len(folds), train=train, test=(test_start, test_end)))
        if config.embargo:
            embargoed.append((test_end, test_end + config.embargo))
        test_start = forward(test_start, step)
    if not folds:
        need = f"train {config.train} + purge {purge} bars + test {config.test}"
        raise FoldError(f"not enough data for one fold: {n} rows, and the first fold needs {need}")
    return folds


def _minus(window: tuple[int, int], holes: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """`window` without the rows of `holes` (sorted, disjoint), as ranges."""
    pieces = []
    start, end = window
    for hole_start, hole_end in holes:
        if hole_end <= start or hole_start >= end:
            continue
        if hole_start > start:
            pieces.append((start, hole_start))
        start = max(start, hole_end)
    if start < end:
        pieces.append((start, end))
    return tuple(pieces)


def causality_problems(folds: list[Fold], horizon: int, purge: int) -> list[str]:
    """Folds whose training could see their test window: the last training row plus the purge must come
    before the test start, and no training label (looking `horizon` bars ahead) may reach into it."""
    problems = []
    for fold in folds:
        last_train = fold.train_end - 1
        test_start = fold.test[0]
        if last_train + purge >= test_start:
            gap = f"last training row {last_train} + purge {purge}"
            problems.append(f"fold {fold.number}: {gap} >= test start {test_start}")
        if last_train + horizon >= test_start:
            reach = last_train + horizon
            problems.append(
                f"fold {fold.number}: the label of training row {last_train} reaches row {reach}, "
                f"inside the test window starting at {test_start}"
            )
        if any(end > test_start for _, end in fold.train):
            problems.append(
                f"fold {fold.number}: training rows overlap the test window starting at {test_start}"
            )
    return problems


# Largest first, so `format_length` picks the largest unit that divides a duration exactly.
_UNITS = {
    "w": timedelta(weeks=1),
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
    "s": timedelta(seconds=1),
}
_LENGTH = re.compile(r"([0-9]+)([wdhms]?)")


def parse_length(text: str | int) -> Length:
    """A length from its text: bars for a bare count ("500" or 500), else a duration ("30d", "12h", "90m",
    "45s", "2w")."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    match = _LENGTH.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise FoldError(
            f"length {text!r} is neither a bar count (e.g. 500) nor a duration (e.g. 30d, 12h, 90m, 45s, 2w)"
        )
    count, unit = int(match[1]), match[2]
    return count * _UNITS[unit] if unit else count


def format_length(value: Length) -> str:
    """The text `parse_length` reads back as `value`: the bar count, or the duration in its largest whole
    unit."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, timedelta):
        for unit, size in _UNITS.items():
            if value % size == timedelta(0):
                return f"{value // size}{unit}"
    raise FoldError(f"length {value!r} must be a bar count or a duration in whole seconds")
