"""A walkforward run end to end, over plain arrays: the glue the Dagster assets and the benchmarks share.

    spec = WalkforwardSpec(target=TargetConfig(horizon=5), folds=FoldConfig(train=5000, test=1000, horizon=5))
    prepared = prepare(ts_us, close, indicators, lookbacks, spec)
    outcomes = run_walkforward(prepared, spec)          # or train_fold(prepared, spec, n) one fold at a time

Folds are over the dataset's rows (bars), so purge, embargo and horizon are in bars. Within a fold:
- training rows are the fold's train window rows that are usable (past the selected features' warm-up,
  every feature finite) and have a target; the last of them in time order are held out for early stopping;
- test rows are the test window's usable rows, with or without a target (the last bars of the data get a
  prediction before their outcome is known);
- thresholds come from predictions on training-period rows only (`ThresholdRule.source`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import numpy as np

from trading_assets.compute.fold_metrics import classification_metrics, regression_metrics
from trading_assets.compute.folds import Fold, FoldConfig, FoldError, format_length, make_folds, parse_length
from trading_assets.compute.targets import TargetConfig, TargetError, make_target, select_features
from trading_assets.compute.thresholds import ThresholdError, ThresholdRule
from trading_assets.compute.training import (
    FoldModel,
    Hyperparameters,
    TrainingError,
    feature_importance,
    fit,
    predict,
    split_validation,
)

if TYPE_CHECKING:  # XGBoost (~1 s to import) is loaded by the functions that train or predict
    import xgboost


class WalkforwardError(ValueError):
    """A walkforward spec or dataset that cannot be run; the message starts with the part at fault."""


_LENGTH_FIELDS = ("train", "test", "step")


@dataclass(frozen=True)
class WalkforwardSpec:
    target: TargetConfig
    folds: FoldConfig
    features: tuple[str, ...] = ()
    hyperparameters: Hyperparameters = field(default_factory=Hyperparameters)
    seed: int = 0
    thresholds: ThresholdRule = field(default_factory=ThresholdRule)

    def __post_init__(self) -> None:
        # A list of features (as YAML or JSON config gives it) becomes the tuple that keeps the spec hashable.
        if isinstance(self.features, list):
            object.__setattr__(self, "features", tuple(self.features))

    def validate(self) -> None:
        """WalkforwardError naming the part (target, folds, features, hyperparameters, seed, thresholds)
        and, after it, the part's own reason."""
        for part, check in (
            ("target", self.target.validate),
            ("folds", self.folds.validate),
            ("hyperparameters", self.hyperparameters.validate),
            ("thresholds", self.thresholds.validate),
        ):
            try:
                check()
            except (TargetError, FoldError, TrainingError, ThresholdError) as err:
                raise WalkforwardError(f"{part}: {err}") from err
        if self.folds.horizon != self.target.horizon:
            raise WalkforwardError(
                f"folds: horizon {self.folds.horizon} must equal the target horizon {self.target.horizon}, "
                "so the purge keeps training labels out of the test window"
            )
        if not isinstance(self.features, tuple) or not all(
            isinstance(name, str) and name for name in self.features
        ):
            raise WalkforwardError(f"features: must be a tuple of column names, got {self.features!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise WalkforwardError(f"seed: must be an integer in 0..2**63-1, got {self.seed!r}")
        hp = self.hyperparameters
        if self.thresholds.source == "validation" and (
            hp.early_stopping_rounds is None or hp.validation_fraction == 0
        ):
            raise WalkforwardError(
                "thresholds: source 'validation' needs rows held out for early stopping, but "
                f"early_stopping_rounds={hp.early_stopping_rounds} and "
                f"validation_fraction={hp.validation_fraction}; use source 'train' or hold rows out"
            )

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain JSON values: lengths as `format_length` text, real numbers as floats."""
        folds = dataclasses.asdict(self.folds)
        for name in _LENGTH_FIELDS:
            if folds[name] is not None:
                folds[name] = format_length(folds[name])
        target = dataclasses.asdict(self.target) | {"dead_zone": float(self.target.dead_zone)}
        return {
            "target": target,
            "folds": folds,
            "features": list(self.features),
            "hyperparameters": self.hyperparameters.to_dict(),
            "seed": self.seed,
            "thresholds": self.thresholds.to_dict(),
        }

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, no spaces; equal specs give equal text."""
        self.validate()
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> WalkforwardSpec:
        """The spec that `to_json` wrote (left-out fields take their defaults); WalkforwardError if the text
        is not a valid spec."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise WalkforwardError(f"spec: not JSON: {err}") from err
        _check_fields("spec", cls, data)
        folds = _check_fields("folds", FoldConfig, data["folds"])
        try:
            lengths = {
                name: parse_length(folds[name]) for name in _LENGTH_FIELDS if folds.get(name) is not None
            }
        except FoldError as err:
            raise WalkforwardError(f"folds: {err}") from err
        features = data.get("features", [])
        if not isinstance(features, list):
            raise WalkforwardError(f"features: expected a list of column names, got {features!r}")
        spec = cls(
            target=TargetConfig(**_check_fields("target", TargetConfig, data["target"])),
            folds=FoldConfig(**(folds | lengths)),
            features=tuple(features),
            hyperparameters=Hyperparameters(
                **_check_fields("hyperparameters", Hyperparameters, data.get("hyperparameters", {}))
            ),
            seed=data.get("seed", 0),
            thresholds=ThresholdRule(
                **_check_fields("thresholds", ThresholdRule, data.get("thresholds", {}))
            ),
        )
        spec.validate()
        return spec

    def sha256(self) -> str:
        """SHA-256 (hex) of the canonical JSON: the spec's identity."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()


def _check_fields(part: str, cls: type, data: object) -> dict[str, Any]:
    """`data` as the keyword arguments of dataclass `cls`, or WalkforwardError naming unknown or missing
    fields."""
    if not isinstance(data, dict):
        raise WalkforwardError(f"{part}: expected a JSON object, got {data!r}")
    known = {f.name for f in dataclasses.fields(cls)}
    required = {
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    unknown, missing = sorted(set(data) - known), sorted(required - set(data))
    if unknown:
        raise WalkforwardError(f"{part}: unknown field(s) {unknown}; the fields are {sorted(known)}")
    if missing:
        raise WalkforwardError(f"{part}: missing field(s) {missing}")
    return data


@dataclass(frozen=True, eq=False)
class Prepared:
    """A dataset made ready for every fold of a spec: features, target and which rows can be used."""

    ts_us: np.ndarray
    columns: tuple[str, ...]
    # The feature rows loaded: dataset rows first_row .. first_row + len(matrix) - 1 (read with `features`).
    matrix: np.ndarray
    target: np.ndarray
    usable: np.ndarray
    folds: list[Fold]
    dropped: dict[str, int]
    warmup: int
    first_row: int = 0

    def features(self, rows: np.ndarray) -> np.ndarray:
        """The feature rows at dataset row positions `rows`; WalkforwardError for a row not loaded."""
        local = np.asarray(rows) - self.first_row
        if local.size and (local.min() < 0 or local.max() >= self.matrix.shape[0]):
            last = self.first_row + self.matrix.shape[0] - 1
            raise WalkforwardError(
                f"data: rows {int(np.min(rows))}..{int(np.max(rows))} were not loaded "
                f"(rows {self.first_row}..{last} were)"
            )
        return self.matrix[local]


# Rows copied at a time when feature columns are stacked into one matrix: a block of every column (2,048
# rows x 30 doubles, about 0.5 MB) stays in cache while its rows are written.
_STACK_ROWS = 2048


def _pieces(column: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    """A feature column as its consecutive pieces: an array is one piece, a list (an Arrow column's chunks
    as arrays) is its pieces in order."""
    if isinstance(column, np.ndarray):
        return [column]
    return [np.asarray(piece) for piece in column]


def _shape(pieces: list[np.ndarray]) -> tuple[int, ...]:
    """The shape of the column the pieces make: (rows,) when every piece is 1-D, else the first other."""
    for piece in pieces:
        if piece.ndim != 1:
            return piece.shape
    return (sum(piece.size for piece in pieces),)


def stack_columns(columns: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
    """The (rows x columns) float64 matrix of `columns`, each given as its 1-D pieces in order (pieces may
    be cut at other rows in each column). The same values as `np.column_stack` of the joined columns,
    copied a block of rows at a time, every column's part of it, so the writes stay in cache, with no
    joined copy of each column first (`column_stack` writes one column down the whole matrix at a time:
    3-15x slower on 500,000 rows x 30 columns)."""
    n = sum(piece.size for piece in columns[0]) if columns else 0
    matrix = np.empty((n, len(columns)), dtype=np.float64)
    # Every row where some column's next piece begins: between two of them, each column is one piece.
    cuts = {0, n}
    for pieces in columns:
        cuts.update(np.cumsum([piece.size for piece in pieces]).tolist())
    cuts_sorted = sorted(cuts)
    index = [0] * len(columns)  # each column's current piece
    start = [0] * len(columns)  # the row its current piece begins at
    for lo, hi in pairwise(cuts_sorted):
        parts = []
        for j, pieces in enumerate(columns):
            while start[j] + pieces[index[j]].size <= lo:
                start[j] += pieces[index[j]].size
                index[j] += 1
            parts.append((pieces[index[j]], lo - start[j]))
        for a in range(lo, hi, _STACK_ROWS):
            b = min(a + _STACK_ROWS, hi)
            block = matrix[a:b]
            for j, (piece, offset) in enumerate(parts):
                block[:, j] = piece[a - lo + offset : b - lo + offset]
    return matrix


def prepare(
    ts_us: np.ndarray,
    close: np.ndarray,
    indicators: Mapping[str, np.ndarray | Sequence[np.ndarray]],
    lookbacks: Mapping[str, int],
    spec: WalkforwardSpec,
    first_row: int = 0,
) -> Prepared:
    """The spec's features (rows x columns), target and folds over the dataset's bars.

    A row is usable past the selected columns' longest warm-up when every feature is finite; `dropped`
    counts the rows that cannot train, by the first rule that applies (as `targets.training_rows` does).
    Each indicator is an array, or a list of arrays (its pieces in order: an Arrow column's chunks, which
    are then stacked without being joined first). `indicators` may hold only a window of rows,
    `first_row` onwards (a fold step reads only the rows its fold uses): rows outside it have no
    features, so they are never usable and count as not finite. Targets and folds always come from every
    bar's timestamp and close.
    """
    spec.validate()
    ts = np.asarray(ts_us, dtype=np.int64)
    close = np.asarray(close, dtype=np.float64)
    n = ts.size
    try:
        columns = tuple(select_features(list(indicators), spec.features))
    except TargetError as err:
        raise WalkforwardError(f"features: {err}") from err
    if not columns:
        raise WalkforwardError("features: the indicator set has no columns")
    if close.shape != (n,):
        raise WalkforwardError(f"data: close has shape {close.shape}, expected one value per timestamp ({n})")
    pieces = {name: _pieces(indicators[name]) for name in columns}
    shapes = {name: _shape(parts) for name, parts in pieces.items()}
    window = shapes[columns[0]]
    if len(window) != 1 or not 0 <= first_row <= first_row + window[0] <= n:
        raise WalkforwardError(
            f"data: feature rows {first_row}..{first_row}+{window} do not lie within the {n} timestamps"
        )
    wrong = {name: shape for name, shape in shapes.items() if shape != window}
    if wrong:
        raise WalkforwardError(f"data: feature shapes {wrong} differ from {window}")
    missing = [name for name in columns if name not in lookbacks]
    if missing:
        raise WalkforwardError(f"features: no lookback for {missing}")
    matrix = stack_columns([pieces[name] for name in columns])
    target = make_target(close, spec.target)
    warmup = min(max(lookbacks[name] for name in columns), n)
    usable = np.zeros(n, dtype=bool)
    usable[first_row : first_row + window[0]] = np.isfinite(matrix).all(axis=1)
    usable[:warmup] = False
    try:
        folds = make_folds(ts, spec.folds)
    except FoldError as err:
        raise WalkforwardError(f"folds: {err}") from err
    return Prepared(
        ts_us=ts,
        columns=columns,
        matrix=matrix,
        target=target,
        usable=usable,
        folds=folds,
        dropped=_dropped(np.arange(n), warmup, target, usable),
        warmup=warmup,
        first_row=first_row,
    )


def _dropped(rows: np.ndarray, warmup: int, target: np.ndarray, usable: np.ndarray) -> dict[str, int]:
    """How many of `rows` cannot train, each under the first reason: warmup, no_target, not_finite."""
    warm = rows < warmup
    no_target = ~warm & np.isnan(target[rows])
    not_finite = ~warm & ~no_target & ~usable[rows]
    return {"warmup": int(warm.sum()), "no_target": int(no_target.sum()), "not_finite": int(not_finite.sum())}


def _fold(prepared: Prepared, fold_number: int) -> Fold:
    if not 0 <= fold_number < len(prepared.folds):
        raise WalkforwardError(f"fold: number {fold_number} is not one of the {len(prepared.folds)} folds")
    return prepared.folds[fold_number]


def fold_rows(
    prepared: Prepared, spec: WalkforwardSpec, fold_number: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fit_rows, validation_rows, test_rows) of a fold, as dataset row positions in time order."""
    fold = _fold(prepared, fold_number)
    train = fold.train_index()
    train = train[prepared.usable[train] & ~np.isnan(prepared.target[train])]
    fit_count = train.size - split_validation(train.size, spec.hyperparameters)
    fit, validation = train[:fit_count], train[fit_count:]
    if validation.size:
        # The held-out tail judges early stopping (and gives the thresholds): fitted labels must not look
        # into it, so the same purge separates them as separates training from the test window.
        fit = fit[fit + spec.folds.purge_bars < validation[0]]
    test = np.arange(*fold.test)
    return fit, validation, test[prepared.usable[test]]


@dataclass(frozen=True, eq=False)
class FoldOutcome:
    """What one fold produced: its model, test predictions and scores, and what it left out."""

    fold: Fold
    model: FoldModel
    test_rows: np.ndarray
    y_true: np.ndarray
    y_pred: np.ndarray
    prob: np.ndarray | None
    train_period_pred: np.ndarray
    metrics: dict[str, float]
    importance: dict[str, float]
    dropped: dict[str, int]


def train_fold(
    prepared: Prepared, spec: WalkforwardSpec, fold_number: int, device: str = "cpu", nthread: int = 0
) -> FoldOutcome:
    """Fit one fold's model on its training rows and score it on its test window."""
    fold = _fold(prepared, fold_number)
    fit_rows, validation_rows, test_rows = fold_rows(prepared, spec, fold_number)
    train = np.concatenate([fit_rows, validation_rows])
    kind = spec.target.kind
    try:
        model = fit(
            prepared.features(train),
            prepared.target[train],
            kind,
            spec.hyperparameters,
            spec.seed,
            device=device,
            columns=prepared.columns,
            nthread=nthread,
            held_out=int(validation_rows.size),
        )
    except TrainingError as err:
        raise TrainingError(f"fold {fold_number}: {err}") from err
    y_pred, prob = predict(model.booster, prepared.features(test_rows), kind)
    y_true = prepared.target[test_rows]
    metrics = (
        regression_metrics(y_true, y_pred) if kind == "regression" else classification_metrics(y_true, prob)
    )
    return FoldOutcome(
        fold=fold,
        model=model,
        test_rows=test_rows,
        y_true=y_true,
        y_pred=y_pred,
        prob=prob,
        train_period_pred=train_period_predictions(prepared, spec, fold_number, model.booster),
        metrics=metrics,
        importance=feature_importance(model.booster, prepared.columns),
        dropped=_dropped(fold.train_index(), prepared.warmup, prepared.target, prepared.usable),
    )


def train_period_predictions(
    prepared: Prepared, spec: WalkforwardSpec, fold_number: int, booster: xgboost.Booster
) -> np.ndarray:
    """The fold model's signal on the training-period rows `spec.thresholds.source` names (validation or
    fitted rows): the probability of class 1 for classification, the predicted value for regression."""
    fit_rows, validation_rows, _ = fold_rows(prepared, spec, fold_number)
    rows = validation_rows if spec.thresholds.source == "validation" else fit_rows
    values, prob = predict(booster, prepared.features(rows), spec.target.kind)
    return values if prob is None else prob


def run_walkforward(
    prepared: Prepared, spec: WalkforwardSpec, device: str = "cpu", nthread: int = 0
) -> list[FoldOutcome]:
    """Every fold's outcome, in fold order."""
    return [train_fold(prepared, spec, fold.number, device, nthread) for fold in prepared.folds]
