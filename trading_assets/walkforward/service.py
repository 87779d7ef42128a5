"""Walkforward runs between compute and storage: register a run, train its folds, assemble predictions.

A run is registered once (`register_run`): its spec, its fold windows computed on the bars as they were
then, and the name `<dataset>_run<n>`. Every later step loads the run back (`load_run`): the spec from
the catalog, the bars and indicator columns from the store, and the folds from the catalog's windows, not
from the spec again, so a longer export does not move or add folds under a running run. A window whose
timestamps no longer match the bars (the dataset was re-imported with other bars) stops the step.

Each fold then trains (`train_one`) and saves its model in the artifact folder, its path and hash
in the catalog. Predictions and thresholds are derived from the stored models (`predict_run`,
`derive_thresholds`), so what is in the tables is what the saved models give.

The assets, `trading-assets demo`, the benchmark and tests call these, so every path behaves the same.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import json
import math
from collections.abc import Collection
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import numpy as np
import pyarrow as pa

from resources.catalog import Catalog
from resources.timeseries import TIMESTAMP_COLUMN, TS_TYPE, TableSchema, TimeSeriesStore, utc_datetime
from trading_assets.compute import fold_metrics, folds, targets, thresholds, training, walkforward
from trading_assets.compute.folds import Fold
from trading_assets.compute.indicators import bars_sha256
from trading_assets.compute.walkforward import FoldOutcome, Prepared, WalkforwardSpec
from trading_assets.indicators.service import read_bars
from trading_assets.partitions import fold_numbers, walkforward_runs
from trading_assets.records import (
    FoldResult,
    FoldThresholds,
    FoldWindow,
    NewWalkforwardRun,
    WalkforwardFoldRecord,
    WalkforwardPredictions,
    WalkforwardRunRecord,
)

_METRIC_FIELDS = ("rmse", "mae", "r2", "ic", "rank_ic", "hit_rate", "log_loss", "auc", "accuracy")

if TYPE_CHECKING:  # XGBoost (~1 s to import) is loaded by the functions that train or predict
    import xgboost


class RunError(RuntimeError):
    """A run that cannot be registered or loaded as asked; the message says which and why."""


class RunNotReady(RunError):
    """What the run needs is not ready yet (its indicator set is being computed, the bars are being
    re-imported): asking again later may pass."""


def code_version() -> str:
    """A hash of the code that turns a run's inputs into models and predictions, and XGBoost's version."""
    digest = hashlib.sha256(importlib.metadata.version("xgboost").encode())
    for module in (folds, targets, training, walkforward, thresholds, fold_metrics):
        digest.update(inspect.getsource(module).encode())
    return digest.hexdigest()[:16]


def prediction_schema(kind: str) -> TableSchema:
    """The predictions table: the fold that predicted each bar, the realised target (null where it is not
    known yet) and the prediction; classifiers add the probability of an up move."""
    columns: list[tuple[str, str]] = [("fold", "long"), ("y_true", "double"), ("y_pred", "double")]
    if kind == "classification":
        columns.append(("prob", "double"))
    return TableSchema(columns=tuple(columns), partition_by="MONTH")  # type: ignore[arg-type]


def _read_inputs(
    store: TimeSeriesStore,
    catalog: Catalog,
    dataset: str,
    version: int,
    spec: WalkforwardSpec,
    window: tuple[int, int] | None = None,
) -> tuple[Prepared, str, str]:
    """Bars and indicator columns of `dataset` set `version` prepared for `spec`; also the set's table
    name and the dataset's version.

    `window` names the rows [first, end) whose features are read (all by default); every bar's timestamp
    and close are read regardless (folds and targets need them)."""
    record = catalog.get_dataset(dataset)
    if record is None:
        raise RunError(f"dataset {dataset!r} is not in the catalog; import its bars first")
    if record.publish_pending:
        raise RunNotReady(
            f"dataset {dataset!r}: its latest import has not finished publishing its bars "
            "(the landing sensor completes it); try again"
        )
    indicator_set = catalog.get_indicator_set(dataset, version)
    if indicator_set is None:
        known = [s.version for s in catalog.list_indicator_sets(dataset)]
        raise RunError(f"dataset {dataset!r} has no indicator set version {version} (it has {known})")
    if indicator_set.status != "ready":
        # A failed set stays failed until a person acts; a registered one is on its way.
        error = RunError if indicator_set.status == "failed" else RunNotReady
        raise error(
            f"indicator set {indicator_set.measurement} is {indicator_set.status}, not ready: materialise "
            f"indicators partition {dataset}|{version} first"
        )
    try:
        columns = targets.select_features(indicator_set.columns, spec.features)
    except targets.TargetError as err:
        raise RunError(f"{indicator_set.measurement}: {err}") from None
    bars = store.read(record.table_name, columns=[TIMESTAMP_COLUMN, "close"])
    ts = bars.column(TIMESTAMP_COLUMN).cast(pa.int64()).to_numpy()
    close = bars.column("close").to_numpy().astype(np.float64, copy=False)
    first, end = (0, ts.size) if window is None else window
    first, end = max(0, first), min(ts.size, end)
    behind = RunError(
        f"{indicator_set.measurement} does not hold the bars of {dataset!r} (other rows or timestamps): "
        f"materialise indicators partition {dataset}|{version} so the set covers the bars"
    )
    if indicator_set.row_count != ts.size or first >= end:
        raise behind
    values = store.read(
        indicator_set.measurement,
        start=utc_datetime(ts[first]),
        end=utc_datetime(ts[end - 1] + 1),
        columns=[TIMESTAMP_COLUMN, *columns],
    )
    if not np.array_equal(values.column(TIMESTAMP_COLUMN).cast(pa.int64()).to_numpy(), ts[first:end]):
        raise behind
    # Each column as its chunks (no copy where a chunk has no nulls; nulls read as NaN): `prepare` stacks
    # them into the feature matrix without joining each column first.
    indicators = {
        name: [chunk.to_numpy(zero_copy_only=False) for chunk in values.column(name).chunks]
        for name in columns
    }
    lookbacks = dict(zip(indicator_set.columns, indicator_set.lookbacks, strict=True))
    prepared = walkforward.prepare(ts, close, indicators, lookbacks, spec, first_row=first)
    return prepared, indicator_set.measurement, record.version


def fold_windows(prepared: Prepared, folds: list[Fold]) -> list[FoldWindow]:
    """The catalog windows of `folds`: their row ranges and the timestamps of their first and last rows."""
    ts = prepared.ts_us
    return [
        FoldWindow(
            fold=fold.number,
            train_ranges=fold.train,
            test_start_row=fold.test[0],
            test_end_row=fold.test[1],
            train_start_ts=utc_datetime(ts[fold.train[0][0]]),
            train_end_ts=utc_datetime(ts[fold.train_end - 1]),
            test_start_ts=utc_datetime(ts[fold.test[0]]),
            test_end_ts=utc_datetime(ts[fold.test[1] - 1]),
        )
        for fold in folds
    ]


def history_sha256(
    store: TimeSeriesStore, catalog: Catalog, dataset: str, prepared: Prepared, rows: int
) -> str:
    """SHA-256 of what folds ending by row `rows` are a function of: the first `rows` bars (timestamps and
    OHLCV, as the indicators read them) and the run's feature values on them. Bars or features that
    differ there (another export's history, indicators recomputed by other code) give another hash.

    `prepared` must hold every row's features (read without a window); RunError if the bars are not the
    ones it was prepared from."""
    record = catalog.get_dataset(dataset)
    if record is None or record.publish_pending:
        raise RunNotReady(f"the bars of {dataset!r} are being imported again; try again")
    bars = read_bars(store, record.table_name)
    if not np.array_equal(bars[TIMESTAMP_COLUMN], prepared.ts_us):
        raise RunNotReady(f"the bars of {dataset!r} changed while they were read; try again")
    if prepared.first_row != 0 or prepared.matrix.shape[0] < rows:
        raise RunError(f"the features of rows 0..{rows - 1} were not all loaded")
    digest = hashlib.sha256(bars_sha256(bars, rows).encode())
    digest.update(json.dumps(prepared.columns).encode())
    digest.update(np.ascontiguousarray(prepared.matrix[:rows]).view(np.uint8))
    return digest.hexdigest()


def register_run(
    store: TimeSeriesStore,
    catalog: Catalog,
    dataset: str,
    indicator_version: int,
    spec: WalkforwardSpec,
    *,
    request_id: int | None = None,
    rolling: bool = False,
) -> WalkforwardRunRecord:
    """Validate `spec` on the data, compute its folds and register the run with them in the catalog
    (with `request_id`, as that job request's target, in the same transaction). A `rolling` run is
    extended as the dataset gains bars (`trading_assets.rolling.service`); that is not part of the spec (it
    changes neither the config's hash nor the models).

    RunError (or the compute library's ValueError subclasses) says what is wrong; nothing is registered.
    """
    spec.validate()
    prepared, _, dataset_version = _read_inputs(store, catalog, dataset, indicator_version, spec)
    windows = fold_windows(prepared, prepared.folds)
    history = history_sha256(store, catalog, dataset, prepared, windows[-1].test_end_row)
    new = NewWalkforwardRun(
        dataset=dataset,
        indicator_version=indicator_version,
        config=spec.to_json(),
        config_sha256=spec.sha256(),
        hyperparameters=json.dumps(spec.hyperparameters.to_dict(), sort_keys=True),
        target=json.dumps(
            {"kind": spec.target.kind, "horizon": spec.target.horizon, "dead_zone": spec.target.dead_zone},
            sort_keys=True,
        ),
        features=prepared.columns,
        dataset_version=dataset_version,
        code_version=code_version(),
        windows=windows,
        request_id=request_id,
        rolling=rolling,
        history_sha256=history,
    )
    return catalog.register_walkforward_run(new)


def add_run_partitions(instance: dg.DagsterInstance, run: str, fold_count: int) -> None:
    """Register the run's partition and its fold numbers, where missing."""
    if not instance.has_dynamic_partition(walkforward_runs.name, run):
        instance.add_dynamic_partitions(walkforward_runs.name, [run])
    known = set(instance.get_dynamic_partitions(fold_numbers.name))
    missing = [str(k) for k in range(fold_count) if str(k) not in known]
    if missing:
        instance.add_dynamic_partitions(fold_numbers.name, missing)


def prepare_again(
    store: TimeSeriesStore, catalog: Catalog, record: WalkforwardRunRecord
) -> tuple[Prepared, str]:
    """The registered run's spec applied to its dataset and indicator set as they are now: every row's
    features, and the folds the spec gives on the bars now (not the run's); and the dataset's version.
    RunError or ValueError if the spec no longer fits the data."""
    spec = WalkforwardSpec.from_json(record.config)
    prepared, _, version = _read_inputs(store, catalog, record.dataset, record.indicator_version, spec)
    return prepared, version


@dataclass(frozen=True)
class LoadedRun:
    """A registered run with what its steps need: spec, folds as registered, and the prepared data."""

    record: WalkforwardRunRecord
    spec: WalkforwardSpec
    folds: list[WalkforwardFoldRecord]
    prepared: Prepared
    # The dataset was imported again since the run was registered (its version differs).
    dataset_changed: bool

    @property
    def notes(self) -> tuple[str, ...]:
        """What the steps say in their logs about the data they load."""
        if not self.dataset_changed:
            return ()
        return (
            f"the dataset {self.record.dataset!r} was imported again since the run was registered; its folds "
            "keep their registered windows",
        )

    def fold(self, number: int) -> WalkforwardFoldRecord:
        for fold in self.folds:
            if fold.window.fold == number:
                return fold
        raise RunError(
            f"run {self.record.name} has folds 0..{len(self.folds) - 1}; fold {number} belongs to another run"
        )


def load_run(
    store: TimeSeriesStore, catalog: Catalog, name: str, folds: Collection[int] | None = None
) -> LoadedRun:
    """The run `name` as registered, with its data prepared and its folds at their registered windows.

    With `folds`, only the features of the rows from the first of those folds' training rows to the last
    of their test rows are read (a step that trains them needs no more, and on a long dataset that is a
    fraction); every other row is then unusable."""
    record = catalog.get_walkforward_run(name)
    if record is None:
        raise RunError(f"no walkforward run {name!r} in the catalog")
    spec = WalkforwardSpec.from_json(record.config)
    fold_records = catalog.list_walkforward_folds(name)
    # Folds the run does not have read every row, and the step reports them (LoadedRun.fold).
    chosen = [f.window for f in fold_records if folds is not None and f.window.fold in folds]
    window = (
        (min(w.train_ranges[0][0] for w in chosen), max(w.test_end_row for w in chosen)) if chosen else None
    )
    prepared, _, dataset_version = _read_inputs(
        store, catalog, record.dataset, record.indicator_version, spec, window
    )
    ts = prepared.ts_us
    for fold in fold_records:
        window = fold.window
        if window.test_end_row > ts.size:
            raise RunError(
                f"run {name} fold {window.fold} tests rows up to {window.test_end_row} but the bars of "
                f"{record.dataset!r} now hold {ts.size}: they were re-imported shorter; register a new run"
            )
        registered = (window.train_start_ts, window.test_start_ts, window.test_end_ts)
        now = (
            utc_datetime(ts[window.train_ranges[0][0]]),
            utc_datetime(ts[window.test_start_row]),
            utc_datetime(ts[window.test_end_row - 1]),
        )
        if registered != now:
            raise RunError(
                f"run {name} fold {window.fold}: the bars of {record.dataset!r} changed since the run was "
                f"registered (window starts {registered[0]}, tests {registered[1]}..{registered[2]}; those "
                f"rows are now at {now[0]}, {now[1]}..{now[2]}); register a new run"
            )
    run_folds = [
        Fold(
            number=f.window.fold,
            train=f.window.train_ranges,
            test=(f.window.test_start_row, f.window.test_end_row),
        )
        for f in fold_records
    ]
    changed = dataset_version != record.dataset_version
    return LoadedRun(record, spec, fold_records, replace(prepared, folds=run_folds), changed)


def fold_result(
    outcome: FoldOutcome, model_path: Path, model_sha256: str, rule: thresholds.ThresholdRule
) -> FoldResult:
    """The catalog row of a trained fold: sizes, model, metrics (NaN stored as NULL), importance, and its
    thresholds under `rule` from its own train-period predictions (None where they cannot be taken: the
    `thresholds` asset then says why)."""
    try:
        long, short = thresholds.quantile_thresholds(outcome.train_period_pred, rule)
        taken = {
            "long_threshold": long,
            "short_threshold": short,
            "threshold_rows": int(np.isfinite(outcome.train_period_pred).sum()),
        }
    except thresholds.ThresholdError:
        taken = {}
    metrics = {
        name: (None if math.isnan(value) else float(value))
        for name, value in outcome.metrics.items()
        if name in _METRIC_FIELDS
    }
    return FoldResult(
        status="succeeded",
        train_rows=outcome.model.fit_rows,
        validation_rows=outcome.model.validation_rows,
        test_rows=int(outcome.test_rows.size),
        dropped=json.dumps(outcome.dropped, sort_keys=True),
        model_path=str(model_path),
        model_sha256=model_sha256,
        best_iteration=outcome.model.best_iteration,
        device=outcome.model.device,
        train_seconds=outcome.model.seconds,
        feature_importance=json.dumps(outcome.importance),
        **metrics,
        **taken,
    )


def train_one(
    run: LoadedRun, number: int, device: str, nthread: int, model_path: Path
) -> tuple[FoldOutcome, FoldResult]:
    """Train fold `number`, save its model at `model_path`, and return the outcome with the catalog row to
    record (the caller records it, alone or with other folds' rows in one transaction)."""
    outcome = walkforward.train_fold(run.prepared, run.spec, number, device=device, nthread=nthread)
    sha256 = training.save_model(outcome.model.booster, model_path)
    return outcome, fold_result(outcome, model_path, sha256, run.spec.thresholds)


def models_version(folds: list[WalkforwardFoldRecord]) -> str:
    """A short hash of every fold's model hash and attempt: what a run's predictions are a function of."""
    parts = [f"{f.window.fold}:{f.attempts}:{f.result.model_sha256 if f.result else ''}" for f in folds]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _succeeded(run: LoadedRun) -> list[WalkforwardFoldRecord]:
    """Every fold of the run, each with a stored model; RunError naming the folds that are not ready."""
    waiting = [
        f"{f.window.fold} ({f.status})" for f in run.folds if f.status != "succeeded" or f.result is None
    ]
    if waiting:
        raise RunError(
            f"run {run.record.name}: not every fold has a trained model yet: folds {', '.join(waiting)}"
        )
    return run.folds


def stored_model(fold: WalkforwardFoldRecord) -> xgboost.Booster:
    """The fold's saved model, refused when its bytes are not the ones the catalog recorded."""
    assert fold.result is not None and fold.result.model_path is not None
    try:
        return training.load_model(Path(fold.result.model_path), fold.result.model_sha256)
    except (OSError, training.TrainingError) as err:
        raise RunError(f"fold {fold.window.fold}: {err}") from None


@dataclass(frozen=True)
class FoldPredictions:
    """One fold's predictions on its test rows, from its stored model."""

    fold: int
    rows: np.ndarray
    y_true: np.ndarray
    y_pred: np.ndarray
    prob: np.ndarray | None


def fold_predictions(
    run: LoadedRun, fold: WalkforwardFoldRecord, rows: np.ndarray | None = None
) -> FoldPredictions:
    """Predictions of the fold's stored model on its test rows (or on `rows`, a subset of them)."""
    if rows is None:
        rows = walkforward.fold_rows(run.prepared, run.spec, fold.window.fold)[2]
    features = run.prepared.features(rows)
    y_pred, prob = training.predict(stored_model(fold), features, run.spec.target.kind)
    return FoldPredictions(fold.window.fold, rows, run.prepared.target[rows], y_pred, prob)


def predictions_table(run: LoadedRun, predictions: list[FoldPredictions]) -> pa.Table:
    """The rows of `<dataset>_run<n>`: ts, fold, y_true (null where unknown), y_pred[, prob]."""
    rows = np.concatenate([p.rows for p in predictions])
    y_true = np.concatenate([p.y_true for p in predictions])
    columns = {
        TIMESTAMP_COLUMN: pa.array(run.prepared.ts_us[rows], type=pa.int64()).cast(TS_TYPE),
        "fold": pa.array(
            np.concatenate([np.full(p.rows.size, p.fold) for p in predictions]), type=pa.int64()
        ),
        "y_true": pa.array(y_true, type=pa.float64(), mask=np.isnan(y_true)),
        "y_pred": pa.array(np.concatenate([p.y_pred for p in predictions]), type=pa.float64()),
    }
    if run.spec.target.kind == "classification":
        columns["prob"] = pa.array(np.concatenate([p.prob for p in predictions]), type=pa.float64())
    return pa.table(columns)


def predict_run(run: LoadedRun) -> list[FoldPredictions]:
    """Every fold's test predictions from its stored model, in fold order; RunError if a fold is not
    trained."""
    return [fold_predictions(run, fold) for fold in _succeeded(run)]


def write_predictions(
    store: TimeSeriesStore, catalog: Catalog, run: LoadedRun, predictions: list[FoldPredictions]
) -> tuple[pa.Table, WalkforwardRunRecord]:
    """Replace the run's predictions table with `predictions` and describe it in the catalog."""
    table = predictions_table(run, predictions)
    schema = prediction_schema(run.spec.target.kind)
    store.replace(run.record.name, table, schema)
    ts = run.prepared.ts_us[np.concatenate([p.rows for p in predictions])]
    record = catalog.record_walkforward_predictions(
        run.record.name,
        WalkforwardPredictions(
            schema.column_names, table.num_rows, utc_datetime(ts.min()), utc_datetime(ts.max())
        ),
    )
    return table, record


def kept_thresholds(
    record: WalkforwardRunRecord, folds: list[WalkforwardFoldRecord]
) -> list[FoldThresholds] | None:
    """Each fold's thresholds as its step kept them, from the catalog alone; None if a fold has none (it
    was trained before folds kept them, or they could not be taken): `derive_thresholds` then."""
    rule = WalkforwardSpec.from_json(record.config).thresholds
    out = []
    for fold in folds:
        result = fold.result
        if fold.status != "succeeded" or result is None or result.long_threshold is None:
            return None
        out.append(
            FoldThresholds(
                fold=fold.window.fold,
                long_threshold=result.long_threshold,
                short_threshold=result.short_threshold,  # type: ignore[arg-type]
                rule=json.dumps(rule.to_dict(), sort_keys=True),
                source_rows=result.threshold_rows,  # type: ignore[arg-type]
            )
        )
    return out


def derive_thresholds(run: LoadedRun) -> list[FoldThresholds]:
    """Each fold's long/short thresholds from its stored model's predictions on its own train period."""
    rule = run.spec.thresholds
    out = []
    for fold in _succeeded(run):
        signal = walkforward.train_period_predictions(
            run.prepared, run.spec, fold.window.fold, stored_model(fold)
        )
        long, short = thresholds.quantile_thresholds(signal, rule)
        out.append(
            FoldThresholds(
                fold=fold.window.fold,
                long_threshold=long,
                short_threshold=short,
                rule=json.dumps(rule.to_dict(), sort_keys=True),
                source_rows=int(np.isfinite(signal).sum()),
            )
        )
    return out
