"""The domain's records, statuses and errors: what the catalog stores, as every floor above it sees it.

Every row that describes a time-series table names the table, its columns and its time range, so a user can
find the data from the catalog alone. Imported by `resources/` (which stores them) and by the rooms.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal


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
    # True from an import's commit point until the store has made the new bars the table (migration 0009).
    publish_pending: bool = False
    # Set by the catalog on write; None on records built by callers.
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def version(self) -> str:
        """What the dataset's bars are a function of: the source file's content and how it was read. The
        calendar only shapes the gap report, so changing it re-imports the file (a new report) without
        making the indicator sets, runs and simulations built on the same bars stale."""
        read = json.loads(self.read_options)
        if read.pop("calendar", None) is not None:
            # The same text as the options without a calendar (ReadOptions.to_json: sorted keys).
            return _dataset_version(self.source_sha256, json.dumps(read, sort_keys=True))
        return _dataset_version(self.source_sha256, self.read_options)


def _dataset_version(source_sha256: str, read_options: str) -> str:
    return hashlib.sha256(f"{source_sha256}\n{read_options}".encode()).hexdigest()


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
class NewIndicatorSet:
    """What `register_indicator_set` registers: a spec applied to a dataset and what is derived from it.

    `spec_sha256` identifies the spec within the dataset; `lookbacks` gives each column's warm-up bars, in
    `columns` order.
    """

    dataset: str
    label: str
    spec: str
    spec_sha256: str
    columns: Sequence[str]
    lookbacks: Sequence[int]


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
class NewWalkforwardRun:
    """What `register_walkforward_run` registers: the run's inputs and its folds' windows.

    With `request_id`, the job request (walkforward, queued, not yet taken) gets the run as its target.
    `rolling` marks a run the rolling_walkforward schedule may extend; it needs `history_sha256`, the hash
    of the history its folds cover.
    """

    dataset: str
    indicator_version: int
    # Canonical JSON of the whole walkforward config, its hash, and the parts the run row shows apart.
    config: str
    config_sha256: str
    hyperparameters: str
    target: str
    features: Sequence[str]
    dataset_version: str
    code_version: str
    windows: Sequence[FoldWindow]
    request_id: int | None = None
    rolling: bool = False
    history_sha256: str | None = None


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
    # Extended with the next folds by the rolling_walkforward schedule as the dataset gains bars.
    rolling: bool = False
    # SHA-256 of the bars (timestamps, OHLCV) and feature values of rows 0 up to the end of the last test
    # window, when the folds were computed: an extension refuses bars whose history differs. None for runs
    # registered before migration 0008.
    history_sha256: str | None = None
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
class WalkforwardPredictions:
    """What a run's predictions table holds, as `record_walkforward_predictions` describes it."""

    columns: Sequence[str]
    row_count: int
    first_ts: datetime
    last_ts: datetime


@dataclass(frozen=True)
class WalkforwardExtension:
    """The folds `extend_walkforward_run` adds to a rolling run, and the bars they were computed on: the
    dataset's version now and the hash of the history up to the end of the last new test window."""

    dataset_version: str
    history_sha256: str
    windows: Sequence[FoldWindow]


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
    # The fold's long/short entry thresholds from its own train-period predictions, taken at training,
    # and how many predictions they were taken on; None where they could not be taken.
    long_threshold: float | None = None
    short_threshold: float | None = None
    threshold_rows: int | None = None


@dataclass(frozen=True)
class WalkforwardFoldRecord:
    """One fold of a run: its window, the latest attempt's state, and what it produced."""

    run: str
    window: FoldWindow
    # The dataset's version the window was computed on: the run's at registration, a newer one for folds
    # added when a rolling run was extended.
    dataset_version: str
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


@dataclass(frozen=True)
class SimulationRecord:
    """One trading simulation: a walkforward run's predictions replayed with a config, its outcome, and the
    time-series table `<dataset>_sim<n>` of its per-bar series. Its trades are `SimulationTrade` rows.

    The registration (name through code_version) changes only when a rolling run's sim is refreshed
    (`refresh_simulation`: thresholds and versions, never the config); the outputs (metrics through
    series_columns) are set together when the sim completes and cleared when an attempt starts or fails.
    """

    # naming.sim_table(dataset, number): the sim's name and its series table.
    name: str
    dataset: str
    # 1, 2, ... per dataset, in the order the sims were registered.
    number: int
    # The walkforward run (of the same dataset) whose predictions are replayed.
    run: str
    # Canonical JSON of the whole simulation config, so the sim can be repeated from the catalog alone.
    config: str
    config_sha256: str
    # JSON of the per-fold long/short thresholds the simulation used.
    thresholds: str
    # registered -> running -> completed | failed; a re-run goes back to running.
    status: str
    # The dataset's version at registration (the run's too), the caller's identifier of the fold models
    # (prediction attempts) replayed, and the code's version.
    dataset_version: str
    models_version: str
    code_version: str
    # JSON {name: number}, see `metrics_json`; None unless completed (`metric_values` decodes it).
    metrics: str | None = None
    n_trades: int | None = None
    # What the series table holds, once completed.
    row_count: int | None = None
    first_ts: datetime | None = None
    last_ts: datetime | None = None
    series_columns: tuple[str, ...] | None = None
    # Why the latest attempt failed.
    message: str | None = None
    # When the latest attempt started (None if recorded without `start_simulation`) and ended.
    started_at: datetime | None = None
    finished_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def metric_values(self) -> dict[str, float | int] | None:
        """The metrics as numbers (NaN and infinities restored), or None unless completed."""
        return None if self.metrics is None else metrics_from_json(self.metrics)


@dataclass(frozen=True)
class NewSimulation:
    """What `register_simulation` registers: a replay of `run`'s predictions with a config.

    With `request_id`, the job request (simulation, queued, not yet taken) gets the sim as its target.
    """

    dataset: str
    run: str
    config: str
    config_sha256: str
    thresholds: str
    dataset_version: str
    models_version: str
    code_version: str
    request_id: int | None = None


@dataclass(frozen=True)
class SimulationRefresh:
    """What `refresh_simulation` points a sim at: its run's thresholds (JSON) and versions as they are now."""

    thresholds: str
    dataset_version: str
    models_version: str
    code_version: str


# Why a trade was closed: the entry signal flipped or ended, a stop, a target, the holding limit, or the
# end of the data.
EXIT_REASONS = ("signal", "stop_loss", "take_profit", "max_bars", "end")


@dataclass(frozen=True)
class SimulationTrade:
    """One closed trade of a simulation."""

    # 0, 1, ... within the simulation, in the order the trades were closed.
    trade: int
    # Bar indices (0-based row positions) into the sim's series table, and those bars' timestamps.
    entry_idx: int
    exit_idx: int
    entry_ts: datetime
    exit_ts: datetime
    # +1 long, -1 short.
    side: int
    # Units held (> 0), whatever the side.
    size: float
    entry_price: float
    exit_price: float
    # Net of fees, in quote currency; return_pct is the net return on the entry notional as a fraction
    # (0.01 = 1 %), as the simulator gives it.
    pnl: float
    return_pct: float
    fees: float
    bars_held: int
    # One of EXIT_REASONS.
    exit_reason: str


@dataclass(frozen=True)
class SimulationOutcome:
    """A finished attempt, as `record_simulation` stores it: the metrics (see `metrics_json`), the trades,
    and what the sim's series table holds."""

    metrics: Mapping[str, float | int]
    trades: Sequence[SimulationTrade]
    series_columns: Sequence[str]
    row_count: int
    first_ts: datetime
    last_ts: datetime


# How metrics JSON spells the values JSON has no number for.
_INFINITIES = {"Infinity": math.inf, "-Infinity": -math.inf}


def metrics_json(metrics: Mapping[str, float | int]) -> str:
    """Simulation metrics as JSON with sorted keys: ints stay ints, floats keep every bit (repr), NaN
    becomes null and infinities the strings "Infinity" and "-Infinity", so the text is standard JSON
    (Postgres' jsonb takes it) and `metrics_from_json` gives back equal values.

    CatalogError if a name is not a non-empty string or a value is not a real number (bools are refused);
    numpy's scalars are stored as plain ints and floats.
    """
    encoded: dict[str, float | int | str | None] = {}
    for name, value in metrics.items():
        if not isinstance(name, str) or not name:
            raise CatalogError(f"metric name {name!r} is not a non-empty string")
        # numbers.Integral and Real take numpy's scalars too, which json cannot write: plain ones are stored.
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise CatalogError(f"metric {name!r} is {value!r}; give an int or a float")
        if isinstance(value, numbers.Integral):
            encoded[name] = int(value)
        elif math.isfinite(value := float(value)):
            encoded[name] = value
        else:
            encoded[name] = None if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return json.dumps(encoded, sort_keys=True, allow_nan=False)


def metrics_from_json(text: str) -> dict[str, float | int]:
    """The metrics `metrics_json` encoded: null back to NaN, "Infinity"/"-Infinity" to infinities."""
    return {
        name: math.nan if value is None else _INFINITIES.get(value, value)
        for name, value in json.loads(text).items()
    }


JOB_KINDS = ("walkforward", "simulation")
JOB_STATUSES = ("QUEUED", "RUNNING", "COMPLETED", "FAILED", "REJECTED")
JOB_RUN_STATUSES = ("STARTED", "SUCCESS", "FAILURE", "CANCELED")


@dataclass(frozen=True)
class JobRequestRecord:
    """A submitted walkforward run or simulation and where it stands (migrations/*/0007_job_requests.sql)."""

    id: int
    kind: str
    config: str  # JSON text, as submitted
    requested_by: str
    status: str
    message: str | None
    target: str | None  # the run or sim registered for it
    parent_id: int | None  # a chained simulation's walkforward request
    intake_attempts: int
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime | None


@dataclass(frozen=True)
class NewJobRequest:
    """What `submit_job_request` records: a walkforward run or simulation (`kind`) asked for by someone.

    `parent_id` chains a simulation to its walkforward request; `target` records a request whose run or
    sim is already registered, `rejected` one refused with that message (the launchpad's door).
    """

    kind: str
    config: str  # a JSON object
    requested_by: str
    parent_id: int | None = None
    target: str | None = None
    rejected: str | None = None


@dataclass(frozen=True)
class JobRunRecord:
    """One Dagster run of a job request, as the run-status sensors last saw it."""

    request_id: int
    run_id: str
    job_name: str
    partition: str | None
    status: str  # one of JOB_RUN_STATUSES
    message: str | None
    url: str  # the run's page in the Dagster UI
    started_at: datetime | None
    finished_at: datetime | None


# Live trading (migrations/*/0010_live.sql, docs/live/orders.md). Quantities, prices and money are Decimals
# the catalog stores exactly (trading_assets.orders.check_decimal); order statuses and events are the values
# of trading_assets.orders.OrderStatus and OrderEvent.
STRATEGY_DESIRED_STATES = ("running", "stopped")
STRATEGY_ACTUAL_STATES = ("stopped", "starting", "running", "stopping", "failed")
ORDER_TYPES = ("market", "limit")
RECONCILIATION_STATUSES = ("ok", "mismatch", "failed")


@dataclass(frozen=True)
class StrategyRecord:
    """A live strategy: one fold's model of a completed walkforward run trading `symbol` on a venue account.

    Its lineage (walkforward_run through bars_sha256) and instrument (symbol, venue, account) never change
    once stored: a new model is a new strategy. Thresholds, sizing and risk limits may be updated; the
    states are set by `set_strategy_desired_state` (operators) and `report_strategy_state` (the runner).
    """

    name: str  # naming.strategy_name
    walkforward_run: str
    fold: int
    model_path: str
    model_sha256: str
    # The indicator set the features come from (its table and its version of `dataset`).
    measurement: str
    indicator_version: int
    dataset: str
    # The SHA-256 of the dataset's bars file (DatasetRecord.source_sha256) at promotion.
    bars_sha256: str
    long_threshold: float
    short_threshold: float
    sizing: str  # JSON object: the simulator's sizing (fraction, notional or units) and its amount
    symbol: str
    venue: str
    account: str
    max_position: Decimal  # base units, either side
    max_order_notional: Decimal  # quote currency
    max_orders_per_minute: int
    desired_state: str = "stopped"  # STRATEGY_DESIRED_STATES
    actual_state: str = "stopped"  # STRATEGY_ACTUAL_STATES
    state_message: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class SignalRecord:
    """What a strategy's model said on one closed bar: its prediction (NaN inside the warm-up) and the target
    (-1 .. 1) the simulator's signal function gave, by the model with that hash."""

    strategy: str
    bar_ts: datetime
    prediction: float
    target: float
    model_sha256: str
    created_at: datetime | None = None


@dataclass(frozen=True)
class NewOrder:
    """An order intent: the `seq`-th order (0, 1, ...) of `strategy` on the bar closing at `bar_ts`, on the
    strategy's venue, account and symbol. Its client order id is orders.client_order_id(strategy, bar_ts,
    seq); `limit_price` is given exactly for limit orders."""

    strategy: str
    bar_ts: datetime
    seq: int
    side: str  # "buy" or "sell"
    order_type: str  # ORDER_TYPES
    quantity: Decimal
    limit_price: Decimal | None = None


@dataclass(frozen=True)
class OrderRecord:
    """An order as stored: its intent, where the state machine has it, and what has filled."""

    client_order_id: str
    strategy: str
    bar_ts: datetime
    seq: int
    venue: str
    account: str
    symbol: str
    side: str
    order_type: str
    quantity: Decimal
    limit_price: Decimal | None
    status: str  # orders.OrderStatus
    venue_order_id: str | None
    filled_quantity: Decimal
    # Quantity-weighted mean of the fills' prices (rounded to 18 places); None until a fill.
    average_fill_price: Decimal | None
    reason: str | None
    # The seq of the order's latest event (1: its creation).
    event_seq: int
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class OrderUpdate:
    """One state-machine event for `apply_order_event` (any but FILL, which `record_fill` applies).

    `reason` is required by DENY and REJECT; `venue_order_id` is the venue's id once known; `detail` is a JSON
    object stored with the event. With `expected_status`, the event applies only if the order is still in
    it (the status its sender decided on)."""

    event: str  # orders.OrderEvent
    reason: str | None = None
    venue_order_id: str | None = None
    detail: str = "{}"
    expected_status: str | None = None


@dataclass(frozen=True)
class OrderEventRecord:
    """One row of an order's history: seq 1 is its creation (CREATE, from None to INITIALIZED)."""

    client_order_id: str
    seq: int
    event: str
    from_status: str | None
    to_status: str
    detail: str  # JSON object
    recorded_at: datetime | None = None


@dataclass(frozen=True)
class NewFill:
    """One execution as the venue reports it: unique on (venue, trade_id). `side` and `symbol` must be the
    order's; `fee` may be negative (a rebate), in `fee_currency`."""

    venue: str
    trade_id: str
    client_order_id: str
    symbol: str
    side: str
    quantity: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str | None
    ts: datetime


@dataclass(frozen=True)
class FillRecord:
    """A recorded execution."""

    venue: str
    trade_id: str
    client_order_id: str
    symbol: str
    side: str
    quantity: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str | None
    ts: datetime
    created_at: datetime | None = None


@dataclass(frozen=True)
class PositionRecord:
    """A venue account's position in a symbol, as its recorded fills made it: signed quantity (> 0 long),
    average entry of what is held (None when flat), PnL realised in the quote currency, before fees."""

    venue: str
    account: str
    symbol: str
    quantity: Decimal
    average_entry_price: Decimal | None
    realised_pnl: Decimal
    updated_at: datetime | None = None


@dataclass(frozen=True)
class FillLineage:
    """Where a live fill comes from: its order and strategy, and the strategy's fold model, indicator set and
    bars file."""

    venue: str
    trade_id: str
    client_order_id: str
    strategy: str
    bar_ts: datetime
    walkforward_run: str
    fold: int
    model_path: str
    model_sha256: str
    measurement: str
    indicator_version: int
    dataset: str
    bars_sha256: str


@dataclass(frozen=True)
class ReconciliationRecord:
    """One comparison of the catalog's orders, fills and positions with a venue account's; status (one of
    RECONCILIATION_STATUSES) and details (JSON, mismatches listed) are None while it runs."""

    id: int
    service: str
    venue: str
    account: str
    started_at: datetime
    finished_at: datetime | None
    status: str | None
    details: str | None


@dataclass(frozen=True)
class HeartbeatRecord:
    """The latest beat of one instance of a long-running service."""

    service: str
    instance: str
    status: str
    detail: str  # JSON object
    last_beat: datetime


@dataclass(frozen=True)
class TradingHalt:
    """A venue account's kill switch: while `halted`, its open orders are cancelled and no order is sent."""

    venue: str
    account: str
    halted: bool
    reason: str
    set_by: str
    updated_at: datetime | None = None


@dataclass(frozen=True)
class ExecutorLease:
    """Who may trade a venue account: `holder` until `expires_at` (the catalog database's clock), unless it
    renews; `expired` says whether that time had passed when the row was read."""

    venue: str
    account: str
    holder: str
    acquired_at: datetime
    expires_at: datetime
    expired: bool


@dataclass(frozen=True)
class LeaseGrant:
    """The answer to acquiring or renewing an account's lease: `granted`, and the lease as it stands (the
    caller's when granted, the other holder's when not; None when nobody holds it)."""

    granted: bool
    lease: ExecutorLease | None


class CatalogError(RuntimeError):
    """The catalog refused or failed an operation."""


class CatalogUnavailable(CatalogError):
    """The catalog could not be reached (no connection, a lock not granted): the call may pass later."""


class StaleOrder(CatalogError):
    """An order event refused because the order changed since its sender read it: read it again."""
