"""The API's response models: the catalog's records as JSON, with the JSON text columns decoded."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from trading_assets.records import (
    DatasetRecord,
    FoldThresholds,
    IndicatorSetRecord,
    JobRequestRecord,
    JobRunRecord,
    SimulationRecord,
    SimulationTrade,
    WalkforwardFoldRecord,
    WalkforwardRunRecord,
)


def _finite(value: float | int | None) -> float | int | None:
    """JSON has no NaN or infinity: they go out as null (a metric that could not be computed)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class Problem(BaseModel):
    """Why a request was refused: `detail` for people, `problems` for each wrong field (dotted path)."""

    detail: str
    problems: list[FieldProblem] = Field(default_factory=list)


class FieldProblem(BaseModel):
    field: str
    problem: str


class Dataset(BaseModel):
    name: str
    table: str
    columns: list[str]
    rows: int
    first_ts: datetime
    last_ts: datetime
    bar_interval_s: int
    calendar: str | None
    source_file: str
    source_sha256: str
    version: str
    publish_pending: bool
    updated_at: datetime | None

    @classmethod
    def of(cls, record: DatasetRecord) -> Dataset:
        read = json.loads(record.read_options or "{}")
        return cls(
            name=record.name,
            table=record.table_name,
            columns=list(record.columns),
            rows=record.row_count,
            first_ts=record.first_ts,
            last_ts=record.last_ts,
            bar_interval_s=record.bar_interval_s,
            calendar=read.get("calendar"),
            source_file=record.source_file,
            source_sha256=record.source_sha256,
            version=record.version,
            publish_pending=record.publish_pending,
            updated_at=record.updated_at,
        )


class Gaps(BaseModel):
    """Missing bars of a dataset, counted against its trading calendar when it has one (docs/dataflow.md
    section 4): only where its market was open."""

    dataset: str
    calendar: str | None
    rows: int
    gap_count: int
    missing_bars: int
    largest_gap_bars: int
    largest_gap_s: int
    largest_gap_after: datetime | None
    off_calendar_bars: int


class IndicatorColumn(BaseModel):
    name: str
    lookback: int


class IndicatorSet(BaseModel):
    measurement: str
    dataset: str
    version: int
    label: str
    spec: dict[str, Any]
    columns: list[IndicatorColumn]
    status: str
    rows: int | None
    first_ts: datetime | None
    last_ts: datetime | None
    message: str | None
    updated_at: datetime | None

    @classmethod
    def of(cls, record: IndicatorSetRecord) -> IndicatorSet:
        return cls(
            measurement=record.measurement,
            dataset=record.dataset,
            version=record.version,
            label=record.label,
            spec=json.loads(record.spec),
            columns=[
                IndicatorColumn(name=n, lookback=lb)
                for n, lb in zip(record.columns, record.lookbacks, strict=True)
            ],
            status=record.status,
            rows=record.row_count,
            first_ts=record.first_ts,
            last_ts=record.last_ts,
            message=record.message,
            updated_at=record.updated_at,
        )


class Fold(BaseModel):
    fold: int
    status: str
    attempts: int
    train_start: datetime
    train_end: datetime
    test_start: datetime
    test_end: datetime
    train_rows: int | None
    test_rows: int | None
    best_iteration: int | None
    device: str | None
    train_seconds: float | None
    metrics: dict[str, float | None]
    model_sha256: str | None
    feature_importance: dict[str, float] | None = Field(description="Gain per feature, as XGBoost gives it")
    message: str | None

    @classmethod
    def of(cls, record: WalkforwardFoldRecord) -> Fold:
        result, window = record.result, record.window
        metric_names = ("rmse", "mae", "r2", "ic", "rank_ic", "hit_rate", "log_loss", "auc", "accuracy")
        metrics = {
            name: _finite(getattr(result, name))
            for name in metric_names
            if getattr(result, name, None) is not None
        }
        return cls(
            fold=window.fold,
            status=record.status,
            attempts=record.attempts,
            train_start=window.train_start_ts,
            train_end=window.train_end_ts,
            test_start=window.test_start_ts,
            test_end=window.test_end_ts,
            train_rows=result.train_rows if result else None,
            test_rows=result.test_rows if result else None,
            best_iteration=result.best_iteration if result else None,
            device=result.device if result else None,
            train_seconds=result.train_seconds if result else None,
            metrics=metrics,  # type: ignore[arg-type]
            model_sha256=result.model_sha256 if result else None,
            feature_importance=(
                json.loads(result.feature_importance) if result and result.feature_importance else None
            ),
            message=result.message if result else None,
        )


class Threshold(BaseModel):
    fold: int
    long: float
    short: float
    rule: dict[str, Any]
    source_rows: int

    @classmethod
    def of(cls, record: FoldThresholds) -> Threshold:
        return cls(
            fold=record.fold,
            long=record.long_threshold,
            short=record.short_threshold,
            rule=json.loads(record.rule),
            source_rows=record.source_rows,
        )


class WalkforwardRun(BaseModel):
    name: str
    dataset: str
    number: int
    indicator_version: int
    measurement: str
    status: str
    config: dict[str, Any]
    hyperparameters: dict[str, Any]
    target: dict[str, Any]
    features: list[str]
    fold_count: int
    rolling: bool
    predictions_table: str | None = Field(description="The run's predictions table, once written")
    prediction_rows: int | None
    first_ts: datetime | None
    last_ts: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    message: str | None
    dataset_version: str
    code_version: str

    @classmethod
    def of(cls, record: WalkforwardRunRecord) -> WalkforwardRun:
        return cls(
            name=record.name,
            dataset=record.dataset,
            number=record.number,
            indicator_version=record.indicator_version,
            measurement=record.measurement,
            status=record.status,
            config=json.loads(record.config),
            hyperparameters=json.loads(record.hyperparameters),
            target=json.loads(record.target),
            features=list(record.features),
            fold_count=record.fold_count,
            rolling=record.rolling,
            predictions_table=record.name if record.prediction_rows is not None else None,
            prediction_rows=record.prediction_rows,
            first_ts=record.first_ts,
            last_ts=record.last_ts,
            started_at=record.started_at,
            finished_at=record.finished_at,
            message=record.message,
            dataset_version=record.dataset_version,
            code_version=record.code_version,
        )


class WalkforwardRunDetail(WalkforwardRun):
    folds: list[Fold]
    thresholds: list[Threshold]


class Simulation(BaseModel):
    name: str
    dataset: str
    number: int
    run: str
    status: str
    config: dict[str, Any]
    thresholds: Any
    metrics: dict[str, float | int | None] | None
    n_trades: int | None
    series_table: str | None = Field(description="The sim's per-bar series table, once completed")
    series_columns: list[str] | None
    rows: int | None
    first_ts: datetime | None
    last_ts: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    message: str | None

    @classmethod
    def of(cls, record: SimulationRecord) -> Simulation:
        metrics = record.metric_values()
        return cls(
            name=record.name,
            dataset=record.dataset,
            number=record.number,
            run=record.run,
            status=record.status,
            config=json.loads(record.config),
            thresholds=json.loads(record.thresholds),
            metrics=None if metrics is None else {k: _finite(v) for k, v in metrics.items()},
            n_trades=record.n_trades,
            series_table=record.name if record.row_count is not None else None,
            series_columns=list(record.series_columns) if record.series_columns is not None else None,
            rows=record.row_count,
            first_ts=record.first_ts,
            last_ts=record.last_ts,
            started_at=record.started_at,
            finished_at=record.finished_at,
            message=record.message,
        )


class MonthlyReturn(BaseModel):
    year: int
    month: int
    value: float | None = Field(alias="return", description="As a fraction; null after a ruin")

    model_config = {"populate_by_name": True}


class TradePage(BaseModel):
    simulation: str
    total: int
    sort: str
    order: str
    # The catalog's records as they are: FastAPI serialises dataclasses field by field.
    trades: list[SimulationTrade]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last")


class JobRequest(BaseModel):
    id: int
    kind: str
    config: dict[str, Any]
    requested_by: str
    status: str
    message: str | None
    target: str | None
    parent_id: int | None
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime | None

    @classmethod
    def of(cls, record: JobRequestRecord) -> JobRequest:
        try:
            config = json.loads(record.config)
        except ValueError:
            config = {}
        return cls(
            id=record.id,
            kind=record.kind,
            config=config if isinstance(config, dict) else {},
            requested_by=record.requested_by,
            status=record.status,
            message=record.message,
            target=record.target,
            parent_id=record.parent_id,
            created_at=record.created_at,
            started_at=record.started_at,
            finished_at=record.finished_at,
            updated_at=record.updated_at,
        )


class JobRequestDetail(JobRequest):
    runs: list[JobRunRecord]


class RowsPage(BaseModel):
    table: str
    columns: list[str]
    rows: list[dict[str, Any]] = Field(description="Timestamps as ISO 8601 UTC; NaN as null")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last")


class SeriesColumn(BaseModel):
    low: list[float | None]
    high: list[float | None]
    last: list[float | None]


class SeriesPage(BaseModel):
    table: str
    rows: int = Field(description="Rows of the window")
    step: int = Field(description="Rows per point (the last point may hold fewer)")
    ts: list[datetime] = Field(description="Each point's first row's timestamp")
    columns: dict[str, SeriesColumn] = Field(
        description="Per column: each point's lowest, highest, last value"
    )


class Histogram(BaseModel):
    edges: list[float]
    early: list[int] = Field(description="Counts in the first half of the rows")
    late: list[int] = Field(description="Counts in the second half of the rows")


class HistogramPage(BaseModel):
    table: str
    rows: int
    columns: dict[str, Histogram | None] = Field(description="null for a column with no finite value")


Problem.model_rebuild()
