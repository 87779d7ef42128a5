"""Indicators as declarations: inputs, outputs, typed parameters and warm-up, around a plain function.

Every indicator, built-in or a user's own, is registered with the `indicator` decorator:

    @indicator(inputs=("high", "low"), params={"n": Param(int, 10, min=1)}, lookback=lambda n: n - 1)
    def range_mean(high, low, n):
        ...  # numpy or a numba kernel; returns one float64 array per output, as long as the inputs

The function sees the input arrays positionally (in `inputs` order) and the parameters by keyword.
`lookback` gives the warm-up: the number of leading bars whose value is NaN because the window is not
full yet (an int for every output, or a dict per output). Outside its warm-up an indicator must give a
finite number on every bar; the `warmup_only_nans` check holds it to that.

Indicators with unbounded memory (EMA, Wilder smoothing, OBV) are *stateful*: they also take
`state` (a float64 array they update in place, created by `state(**params)`) and `i0` (the first
position to compute; positions before it are history the kernel may read). Running a stateful kernel on
a prefix and then resuming it on the tail with the saved state gives bit for bit the values of one run
over everything; incremental updates of indicator sets rely on it. An indicator without `state` must
depend only on its last `lookback` bars; the engine recomputes its tail from that much history.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

# What an indicator may read, all float64 arrays of one length (the bars of a dataset).
BAR_INPUTS = ("open", "high", "low", "close", "volume")


class IndicatorError(ValueError):
    """An unknown indicator, a bad parameter or a broken declaration; the message says which."""


@dataclass(frozen=True)
class Param:
    """One typed parameter: `kind` int or float, a default (None: required) and inclusive bounds."""

    kind: type
    default: int | float | None = None
    min: float | None = None
    max: float | None = None
    doc: str = ""

    def coerce(self, indicator: str, name: str, value: object) -> int | float:
        """The value as this parameter's kind, or IndicatorError saying what is wrong with it."""
        where = f"{indicator}: parameter {name!r}"
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise IndicatorError(f"{where} must be a number, got {value!r}")
        if self.kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise IndicatorError(f"{where} must be a whole number, got {value!r}")
            value = int(value)
        else:
            value = float(value)
            if not np.isfinite(value):
                raise IndicatorError(f"{where} must be finite, got {value!r}")
        if self.min is not None and value < self.min:
            raise IndicatorError(f"{where} must be >= {self.min:g}, got {value!r}")
        if self.max is not None and value > self.max:
            raise IndicatorError(f"{where} must be <= {self.max:g}, got {value!r}")
        return value


@dataclass(frozen=True)
class Indicator:
    """A registered indicator. `compute` runs it; `lookbacks` says each output's warm-up."""

    name: str
    func: Callable[..., Any]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: Mapping[str, Param]
    lookback: Callable[..., int | Mapping[str, int]]
    state: Callable[..., np.ndarray] | None = None
    # Cross-parameter rule (e.g. MACD fast < slow): returns an error message or None.
    check: Callable[..., str | None] | None = None
    # Drawn on the price axis in charts (moving averages, bands, VWAP).
    overlay: bool = False
    doc: str = ""
    builtin: bool = False

    @property
    def stateful(self) -> bool:
        return self.state is not None

    def validate(self, params: Mapping[str, object] | None) -> dict[str, int | float]:
        """Parameters with defaults filled in and types checked; IndicatorError names the bad one."""
        given = dict(params or {})
        unknown = sorted(set(given) - set(self.params))
        if unknown:
            known = ", ".join(self.params) or "none"
            raise IndicatorError(f"{self.name}: unknown parameter(s) {unknown}; it takes: {known}")
        out: dict[str, int | float] = {}
        for name, spec in self.params.items():
            if name not in given:
                if spec.default is None:
                    raise IndicatorError(f"{self.name}: parameter {name!r} is required")
                out[name] = spec.default
            else:
                out[name] = spec.coerce(self.name, name, given[name])
        if self.check is not None and (problem := self.check(**out)):
            raise IndicatorError(f"{self.name}: {problem}")
        return out

    def lookbacks(self, params: Mapping[str, int | float]) -> dict[str, int]:
        """Warm-up bars of each output for validated `params`."""
        value = self.lookback(**params)
        found = (
            {out: value[out] for out in self.outputs}
            if isinstance(value, Mapping)
            else dict.fromkeys(self.outputs, value)
        )
        for out, bars in found.items():
            if isinstance(bars, bool) or not isinstance(bars, int | np.integer) or bars < 0:
                raise IndicatorError(
                    f"{self.name}: lookback of {out!r} must be a whole number >= 0, got {bars!r}"
                )
        return {out: int(bars) for out, bars in found.items()}

    def new_state(self, params: Mapping[str, int | float]) -> np.ndarray | None:
        """A fresh state for a stateful indicator (None for a windowed one)."""
        return None if self.state is None else np.asarray(self.state(**params), dtype=np.float64).copy()

    def compute(
        self,
        bars: Mapping[str, np.ndarray],
        params: Mapping[str, int | float],
        state: np.ndarray | None = None,
        i0: int = 0,
    ) -> dict[str, np.ndarray]:
        """Run on `bars` (arrays by input name); one float64 array per output, as long as the bars.

        Stateful indicators start at position `i0` from `state` (a fresh one when None), which they update
        in place; positions before `i0` come back NaN.
        """
        args = [np.ascontiguousarray(bars[name], dtype=np.float64) for name in self.inputs]
        n = args[0].shape[0] if args else 0
        if self.stateful:
            if state is None:
                state = self.new_state(params)
            raw = self.func(*args, **params, state=state, i0=i0)
        else:
            raw = self.func(*args, **params)
        values = raw if isinstance(raw, tuple) else (raw,)
        if len(values) != len(self.outputs):
            raise IndicatorError(
                f"{self.name} returned {len(values)} arrays; it declares outputs {list(self.outputs)}"
            )
        result = {}
        for out, value in zip(self.outputs, values, strict=True):
            array = np.asarray(value, dtype=np.float64)
            if array.shape != (n,):
                raise IndicatorError(
                    f"{self.name}: output {out!r} has shape {array.shape}; expected ({n},) like its inputs"
                )
            result[out] = array
        return result


class Registry:
    """Indicators by name. `REGISTRY` holds the built-ins and whatever users register."""

    def __init__(self) -> None:
        self._items: dict[str, Indicator] = {}

    def add(self, item: Indicator, *, replace: bool = False) -> Indicator:
        if item.name in self._items and not replace:
            raise IndicatorError(f"indicator {item.name!r} is already registered")
        self._items[item.name] = item
        return item

    def get(self, name: str) -> Indicator:
        try:
            return self._items[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._items, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(self.names())}"
            raise IndicatorError(f"unknown indicator {name!r}{hint}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    @contextmanager
    def scoped(self) -> Iterator[Registry]:
        """Registrations made inside the block are undone after it (tests, notebooks)."""
        saved = dict(self._items)
        try:
            yield self
        finally:
            self._items = saved


REGISTRY = Registry()

_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_")


def indicator(
    *,
    lookback: Callable[..., int | Mapping[str, int]] | int,
    inputs: tuple[str, ...] = ("close",),
    outputs: tuple[str, ...] = ("value",),
    params: Mapping[str, Param] | None = None,
    state: Callable[..., np.ndarray] | None = None,
    check: Callable[..., str | None] | None = None,
    overlay: bool = False,
    name: str | None = None,
    registry: Registry = REGISTRY,
    replace: bool = False,
    builtin: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated function as an indicator (see the module docstring); returns it unchanged."""

    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        label = name or func.__name__
        if not label or set(label) - _NAME_CHARS or not label[0].isalpha():
            raise IndicatorError(f"indicator name {label!r}: use lowercase letters, digits and '_'")
        bad_inputs = [i for i in inputs if i not in BAR_INPUTS]
        if bad_inputs or not inputs:
            raise IndicatorError(f"{label}: inputs {list(inputs)} must be among {list(BAR_INPUTS)}")
        if not outputs or len(set(outputs)) != len(outputs):
            raise IndicatorError(f"{label}: outputs {list(outputs)} must be distinct and not empty")
        declared = dict(params or {})
        accepted = inspect.signature(func).parameters
        missing = [p for p in (*declared, *(("state", "i0") if state else ())) if p not in accepted]
        if missing:
            raise IndicatorError(f"{label}: the function does not accept {missing}")
        lookback_fn = lookback if callable(lookback) else (lambda **_: lookback)
        registry.add(
            Indicator(
                name=label,
                func=func,
                inputs=tuple(inputs),
                outputs=tuple(outputs),
                params=declared,
                lookback=lookback_fn,
                state=state,
                check=check,
                overlay=overlay,
                doc=inspect.getdoc(func) or "",
                builtin=builtin,
            ),
            replace=replace,
        )
        return func

    return register
