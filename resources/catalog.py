"""The catalog contract shared by `PostgresCatalog` (production) and `DuckDBCatalog` (embedded default).

The catalog says what exists and where: every row that describes a time-series table names the table,
its columns and its time range, so a user can find the data from the catalog alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class DatasetRecord:
    """One imported bars dataset: where it came from and where its bars are stored."""

    name: str
    source_file: str
    source_sha256: str
    bar_interval_s: int
    row_count: int
    first_ts: datetime
    last_ts: datetime
    table_name: str
    columns: tuple[str, ...]
    # How the file was read (time zone, column mapping, formats) as JSON: re-reading it needs the same.
    read_options: str = "{}"
    # Set by the catalog on write; None on records built by callers.
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def version(self) -> str:
        """What the dataset's bars are a function of: the source file's content and how it was read."""
        return hashlib.sha256(f"{self.source_sha256}\n{self.read_options}".encode()).hexdigest()


@dataclass(frozen=True)
class IndicatorSetRecord:
    """One indicator set: a spec applied to a dataset, its version there and the table of its values.

    The spec and what is derived from it (label, columns, lookbacks) never change; the outputs
    (status through message) describe what the measurement table holds now.
    """

    # The time-series table of the values: naming.indicator_table(dataset, str(version)).
    measurement: str
    dataset: str
    # 1, 2, ... per dataset, in the order the specs were registered.
    version: int
    # The set's name from its spec (e.g. "default").
    label: str
    # Canonical JSON of the spec, and the hash that identifies it within the dataset.
    spec: str
    spec_sha256: str
    columns: tuple[str, ...]
    # Warm-up bars of each column, in `columns` order.
    lookbacks: tuple[int, ...]
    # "registered" (nothing stored yet), "ready" or "failed".
    status: str
    row_count: int | None = None
    first_ts: datetime | None = None
    last_ts: datetime | None = None
    # Hash of the bars the stored rows were computed from.
    bars_sha256: str | None = None
    # The dataset's `version` when the values were computed: when the dataset row says otherwise, the set
    # is behind its bars.
    dataset_version: str | None = None
    # JSON resume state of stateful indicators.
    state: str | None = None
    code_version: str | None = None
    message: str | None = None
    # Set by the catalog.
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class IndicatorOutputs:
    """What computing an indicator set produced, as `record_indicator_output` stores it."""

    status: str
    row_count: int | None = None
    first_ts: datetime | None = None
    last_ts: datetime | None = None
    bars_sha256: str | None = None
    dataset_version: str | None = None
    state: str | None = None
    code_version: str | None = None
    message: str | None = None

    @classmethod
    def of(cls, record: IndicatorSetRecord) -> IndicatorOutputs:
        """The outputs a set row holds now."""
        return cls(**{f.name: getattr(record, f.name) for f in fields(cls)})


@dataclass(frozen=True)
class FoldWindow:
    """Where one fold trains and tests, as row positions in the dataset's bars and as timestamps.

    `train_ranges` are half-open row ranges (several when an embargo cuts the training window); the
    timestamps are those of the first and last row of the training and of the test window (inclusive).
    """

    fold: int
    train_ranges: tuple[tuple[int, int], ...]
    test_start_row: int
    test_end_row: int  # one past the last test row
    train_start_ts: datetime
    train_end_ts: datetime
    test_start_ts: datetime
    test_end_ts: datetime


@dataclass(frozen=True)
class WalkforwardRunRecord:
    """One walkforward run: what it trains on and how, and the predictions table `<dataset>_run<n>`."""

    # naming.run_table(dataset, number): the run's name and its predictions table.
    name: str
    dataset: str
    # 1, 2, ... per dataset, in the order the runs were registered.
    number: int
    indicator_version: int
    # The indicator set's table the features come from: naming.indicator_table(dataset, str(version)).
    measurement: str
    # Canonical JSON of the whole run config (features, target, folds, hyperparameters, seed, thresholds).
    config: str
    config_sha256: str
    # JSON of the hyperparameters and of the target config, also inside `config`, for queries.
    hyperparameters: str
    target: str
    features: tuple[str, ...]
    # The dataset's version and the code's version when the run was registered.
    dataset_version: str
    code_version: str
    fold_count: int
    # registered -> running -> trained -> completed, or failed (a fold's latest attempt failed).
    status: str
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # What the predictions table holds, once written.
    prediction_columns: tuple[str, ...] | None = None
    prediction_rows: int | None = None
    first_ts: datetime | None = None
    last_ts: datetime | None = None
    message: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class FoldResult:
    """What training one fold produced, as `record_walkforward_fold` stores it."""

    # "succeeded" or "failed" (then `message` says why and the outputs may be None).
    status: str
    train_rows: int | None = None
    validation_rows: int | None = None
    test_rows: int | None = None
    # Rows left out and why (warmup, no_target, not_finite), as JSON.
    dropped: str | None = None
    model_path: str | None = None
    model_sha256: str | None = None
    best_iteration: int | None = None
    device: str | None = None
    train_seconds: float | None = None
    # Test-window metrics: regression fills rmse..hit_rate, classification log_loss..accuracy.
    rmse: float | None = None
    mae: float | None = None
    r2: float | None = None
    ic: float | None = None
    rank_ic: float | None = None
    hit_rate: float | None = None
    log_loss: float | None = None
    auc: float | None = None
    accuracy: float | None = None
    # JSON {feature: gain}, every feature of the run.
    feature_importance: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class WalkforwardFoldRecord:
    """One fold of a run: its window, the latest attempt's state, and what it produced."""

    run: str
    window: FoldWindow
    # pending -> running -> succeeded | failed; a retry goes back to running.
    status: str
    attempts: int
    result: FoldResult | None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class FoldThresholds:
    """Long/short entry thresholds of one fold, derived from that fold's train-period predictions only."""

    fold: int
    long_threshold: float
    short_threshold: float
    # How they were derived, as JSON (e.g. {"source": "validation", "long_quantile": 0.8, ...}).
    rule: str
    # How many train-period predictions they come from.
    source_rows: int


class CatalogError(RuntimeError):
    """The catalog refused or failed an operation."""


@runtime_checkable
class Catalog(Protocol):
    """What assets need from the catalog. Implemented by PostgresCatalog and DuckDBCatalog."""

    def migrate(self) -> list[str]:
        """Apply pending migrations in order; return the versions applied now. Refuses checksum drift."""

    def upsert_dataset(self, record: DatasetRecord) -> DatasetRecord:
        """Insert or update the dataset row (by name) in one transaction; return it as stored."""

    def get_dataset(self, name: str) -> DatasetRecord | None:
        """The dataset row, or None."""

    def list_datasets(self) -> list[DatasetRecord]:
        """All dataset rows, ordered by name."""

    def register_indicator_set(
        self,
        dataset: str,
        label: str,
        spec: str,
        spec_sha256: str,
        columns: Sequence[str],
        lookbacks: Sequence[int],
    ) -> tuple[IndicatorSetRecord, bool]:
        """Return (record, created) for the spec on `dataset`, in one transaction.

        The set already registered for (dataset, spec_sha256) if any (created False); else a new row with
        the dataset's next version (1 for the first), measurement `<dataset>_<version>` and status
        "registered" (created True). CatalogError if the dataset is not in the catalog, if columns and
        lookbacks differ in length, or if spec_sha256 is registered with a different spec text.
        """

    def get_indicator_set(self, dataset: str, version: int) -> IndicatorSetRecord | None:
        """The indicator set `version` of `dataset`, or None."""

    def get_indicator_set_by_measurement(self, measurement: str) -> IndicatorSetRecord | None:
        """The indicator set whose values are in table `measurement`, or None."""

    def list_indicator_sets(self, dataset: str | None = None) -> list[IndicatorSetRecord]:
        """The indicator sets of `dataset` (of every dataset if None), ordered by dataset, version."""

    def record_indicator_output(
        self, dataset: str, version: int, outputs: IndicatorOutputs
    ) -> IndicatorSetRecord:
        """Replace the outputs of an existing set (never its spec or columns); return the stored row.

        CatalogError if there is no such set, a timestamp is naive, or a value breaks a constraint.
        """

    def register_walkforward_run(
        self,
        dataset: str,
        indicator_version: int,
        config: str,
        config_sha256: str,
        hyperparameters: str,
        target: str,
        features: Sequence[str],
        dataset_version: str,
        code_version: str,
        windows: Sequence[FoldWindow],
    ) -> WalkforwardRunRecord:
        """Register a new run of `dataset` with its folds (status pending), in one transaction.

        The run gets the dataset's next number (1 for the first), name `<dataset>_run<n>` and status
        "registered". CatalogError if the dataset or its indicator set `indicator_version` is not in the
        catalog, a feature is not a column of that set (or is repeated), there are no windows, fold numbers
        are not 0, 1, ... in order, a window's training ranges are not ascending, disjoint row ranges that
        end by its test window, or a window's timestamp is naive.
        """

    def get_walkforward_run(self, name: str) -> WalkforwardRunRecord | None:
        """The run called `name`, or None."""

    def list_walkforward_runs(self, dataset: str | None = None) -> list[WalkforwardRunRecord]:
        """The runs of `dataset` (of every dataset if None), ordered by dataset, number."""

    def list_walkforward_folds(self, run: str) -> list[WalkforwardFoldRecord]:
        """The folds of `run`, ordered by fold number (empty if there is no such run)."""

    def start_walkforward_fold(self, run: str, fold: int) -> WalkforwardFoldRecord:
        """Mark an attempt at `fold` as running (attempts + 1, result cleared) and update the run's status,
        in one transaction. Any change to a fold also deletes that fold's thresholds (they came from its
        previous model) and turns a "completed" run back. CatalogError if there is no such fold."""

    def record_walkforward_fold(self, run: str, fold: int, result: FoldResult) -> WalkforwardFoldRecord:
        """Store the latest attempt's result and update the run's status, in one transaction.

        The run is "failed" while any fold's latest attempt failed, "running" while any is pending or
        running after one started, "trained" when all succeeded. CatalogError if there is no such fold,
        it was never started, or `result.status` is neither "succeeded" nor "failed".
        """

    def record_walkforward_predictions(
        self, run: str, columns: Sequence[str], row_count: int, first_ts: datetime, last_ts: datetime
    ) -> WalkforwardRunRecord:
        """Describe what the run's predictions table holds now; CatalogError if no such run or naive ts."""

    def record_walkforward_thresholds(
        self, run: str, thresholds: Sequence[FoldThresholds]
    ) -> WalkforwardRunRecord:
        """Replace the run's thresholds (one per fold) and mark it "completed", in one transaction.

        CatalogError if a fold has not succeeded, a fold is missing or repeated, a value is not finite,
        or a long threshold is below its short one.
        """

    def list_walkforward_thresholds(self, run: str) -> list[FoldThresholds]:
        """The run's thresholds, ordered by fold."""
