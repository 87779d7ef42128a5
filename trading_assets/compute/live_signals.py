"""A promoted model's signals bar by bar, and the same signals replayed offline over the same bars.

`LiveSignals` starts from the bars recorded so far and takes each closed bar after them with `step`: the
indicator set is extended by that bar with `extend_set` (the research kernels, which give bit for bit what
`compute_set` gives over all the bars), the fold's model predicts with `training.predict`, and the target
comes from the simulator's own `signal_nb` under the fold's thresholds. `replay_signals` computes the same
over all the bars at once, the way research does: the oracle that the live path must equal bit for bit.

A bar gets no prediction (NaN, so a flat target) inside the features' warm-up or when a feature is not
finite there, as research never predicts such rows. Pure: the model arrives as a booster, bars as arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from trading_assets.compute import training
from trading_assets.compute.indicators.engine import SetState, compute_set, extend_set, history_bars
from trading_assets.compute.indicators.registry import BAR_INPUTS
from trading_assets.compute.indicators.spec import SetSpec
from trading_assets.compute.simulator.kernels import signal_nb
from trading_assets.compute.simulator.signals import signals_from_predictions

if TYPE_CHECKING:
    import xgboost


class LiveSignalError(ValueError):
    """Bars that cannot be taken (out of order, a field missing or not finite); the message names it."""


@dataclass(frozen=True)
class SignalModel:
    """What turns bars into targets: the indicator set, the model's feature columns in training order with
    their warm-up, the prediction kind, and the fold's thresholds under the simulation's dead-zone rule."""

    set_spec: SetSpec
    features: tuple[str, ...]
    warmup: int
    kind: str
    long_threshold: float
    short_threshold: float
    dead_zone: Literal["flat", "hold"] = "flat"

    def __post_init__(self) -> None:
        unknown = [name for name in self.features if name not in self.set_spec.column_names]
        if unknown:
            raise LiveSignalError(
                f"features {unknown} are not columns of indicator set {self.set_spec.name!r}"
            )
        if self.kind not in training.KINDS:
            raise LiveSignalError(f"kind must be one of {training.KINDS}, got {self.kind!r}")
        if self.dead_zone not in ("flat", "hold"):
            raise LiveSignalError(f"dead_zone must be 'flat' or 'hold', got {self.dead_zone!r}")
        if self.short_threshold > self.long_threshold:
            raise LiveSignalError(
                f"short_threshold {self.short_threshold} is above long_threshold {self.long_threshold}"
            )


@dataclass(frozen=True)
class BarSignal:
    """One closed bar's prediction (NaN where the model does not predict) and target (-1, 0 or +1)."""

    ts_us: int
    prediction: float
    target: float


def _signal_values(
    booster: xgboost.Booster, model: SignalModel, features: np.ndarray, nthread: int | None = None
) -> np.ndarray:
    """The value the thresholds apply to, per row (the probability for a classifier, as simulations use)."""
    values, probability = training.predict(booster, features, model.kind, nthread)
    return values if probability is None else probability


def _check_bars(bars: Mapping[str, np.ndarray], ts_us: np.ndarray, after: int | None) -> None:
    missing = [name for name in BAR_INPUTS if name not in bars]
    if missing:
        raise LiveSignalError(f"bars: missing field(s) {missing}")
    for name in BAR_INPUTS:
        column = np.asarray(bars[name], dtype=np.float64)
        if column.shape != ts_us.shape:
            raise LiveSignalError(f"bars: {name} has {column.size} values for {ts_us.size} timestamps")
        bad = np.flatnonzero(~np.isfinite(column))
        if bad.size:
            raise LiveSignalError(f"bars: {name} is {column[bad[0]]} at ts_us {int(ts_us[bad[0]])}")
    if ts_us.size and np.any(np.diff(ts_us) <= 0):
        i = int(np.flatnonzero(np.diff(ts_us) <= 0)[0]) + 1
        raise LiveSignalError(f"bars: ts_us {int(ts_us[i])} does not come after {int(ts_us[i - 1])}")
    if after is not None and ts_us.size and ts_us[0] <= after:
        raise LiveSignalError(f"bars: ts_us {int(ts_us[0])} does not come after the last bar taken ({after})")


def _predictable(model: SignalModel, features: np.ndarray, first_row: int) -> np.ndarray:
    """Which rows research would predict: past the warm-up, every feature finite."""
    rows = first_row + np.arange(features.shape[0])
    return (rows >= model.warmup) & np.isfinite(features).all(axis=1)


def replay_signals(
    model: SignalModel, booster: xgboost.Booster, ts_us: np.ndarray, bars: Mapping[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Predictions and targets over all of `bars` at once, as research computes them."""
    ts = np.asarray(ts_us, dtype=np.int64)
    _check_bars(bars, ts, None)
    values = compute_set(
        model.set_spec, {k: np.asarray(bars[k], dtype=np.float64) for k in BAR_INPUTS}
    ).values
    features = np.column_stack([values[name] for name in model.features]) if ts.size else np.empty((0, 0))
    prediction = np.full(ts.size, np.nan)
    if ts.size:
        usable = _predictable(model, features, 0)
        prediction[usable] = _signal_values(booster, model, features[usable])
    target = signals_from_predictions(
        prediction, model.long_threshold, model.short_threshold, dead_zone=model.dead_zone
    )
    return prediction, target


class LiveSignals:
    """A strategy's signals, one closed bar at a time, from the bars recorded before it.

    Keeps only the last `history_bars` bars and the set's resume state, so each step costs the same
    whatever the history's length."""

    def __init__(
        self,
        model: SignalModel,
        booster: xgboost.Booster,
        ts_us: np.ndarray,
        bars: Mapping[str, np.ndarray],
        previous_target: float = 0.0,
    ) -> None:
        """Start after the history (`ts_us`, `bars`: every recorded bar since the strategy's first), with
        `previous_target` the target of its last bar (what "hold" keeps)."""
        ts = np.asarray(ts_us, dtype=np.int64)
        _check_bars(bars, ts, None)
        history = {k: np.asarray(bars[k], dtype=np.float64) for k in BAR_INPUTS}
        self._model = model
        # One row a bar: one thread predicts it in a small part of the time a pool of threads takes to start,
        # with the same values; the booster is this
        # strategy's own (`load_signal_model`), so no batch prediction elsewhere is slowed.
        booster.set_param({"nthread": 1})
        self._booster = booster
        self._keep = history_bars(model.set_spec)
        self._state: SetState = compute_set(model.set_spec, history).state
        self._tail = {k: v[-self._keep :].copy() for k, v in history.items()}
        self._last_ts: int | None = int(ts[-1]) if ts.size else None
        self._previous = float(previous_target)

    @property
    def bars_taken(self) -> int:
        return self._state.rows

    def step(self, ts_us: int, bar: Mapping[str, float]) -> BarSignal:
        """The signal of the closed bar at `ts_us` (after every bar taken so far)."""
        ts = np.array([ts_us], dtype=np.int64)
        _check_bars(
            {k: np.array([bar[k]], dtype=np.float64) for k in BAR_INPUTS if k in bar}, ts, self._last_ts
        )
        tail = {k: np.append(self._tail[k], float(bar[k])) for k in BAR_INPUTS}
        i0 = tail["close"].size - 1
        result = extend_set(self._model.set_spec, tail, i0, self._state)
        features = np.array([[result.values[name][0] for name in self._model.features]])
        prediction = np.nan
        if _predictable(self._model, features, self._state.rows)[0]:
            prediction = float(_signal_values(self._booster, self._model, features, nthread=1)[0])
        target = float(
            signal_nb(
                prediction,
                self._model.long_threshold,
                self._model.short_threshold,
                self._previous,
                self._model.dead_zone == "hold",
            )
        )
        self._state = result.state
        self._tail = {k: v[-self._keep :] for k, v in tail.items()}
        self._last_ts = int(ts_us)
        self._previous = target
        return BarSignal(int(ts_us), prediction, target)
