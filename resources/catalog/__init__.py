"""The catalog: every call written once over a `Dialect`, for `PostgresCatalog` (production) and
`DuckDBCatalog` (the embedded default), which add only their settings and their dialect.

The SQL is grouped per aggregate (datasets, indicator_sets, walkforward, simulations, job_requests, live).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TypeVar

import dagster as dg
from pydantic import Field, PrivateAttr

from resources.catalog import datasets, indicator_sets, job_requests, live, simulations, walkforward
from resources.catalog.dialect import Dialect, Session
from resources.migrations import SchemaStatus
from trading_assets.records import (
    DatasetRecord,
    ExecutorLease,
    FillLineage,
    FillRecord,
    FoldResult,
    FoldThresholds,
    HeartbeatRecord,
    IndicatorOutputs,
    IndicatorSetRecord,
    JobRequestRecord,
    JobRunRecord,
    LeaseGrant,
    NewFill,
    NewIndicatorSet,
    NewJobRequest,
    NewOrder,
    NewSimulation,
    NewWalkforwardRun,
    OrderEventRecord,
    OrderRecord,
    OrderUpdate,
    PositionRecord,
    ReconciliationRecord,
    SignalRecord,
    SimulationOutcome,
    SimulationRecord,
    SimulationRefresh,
    SimulationTrade,
    StrategyRecord,
    TradingHalt,
    WalkforwardExtension,
    WalkforwardFoldRecord,
    WalkforwardPredictions,
    WalkforwardRunRecord,
)

T = TypeVar("T")


class Catalog(dg.ConfigurableResource, ABC):
    """What assets need from the catalog; `PostgresCatalog` and `DuckDBCatalog` give it their dialect.

    With `auto_migrate`, the first call applies pending migrations.
    """

    auto_migrate: bool = Field(default=True, description="Apply pending migrations on first use.")

    _migrated: bool = PrivateAttr(default=False)

    @abstractmethod
    def _dialect(self) -> Dialect:
        """The dialect on this resource's database."""

    def migrate(self) -> list[str]:
        """Apply pending migrations in order; return the versions applied now. Refuses checksum drift."""
        applied = self._dialect().migrate()
        self._migrated = True
        return applied

    def schema_status(self) -> SchemaStatus:
        """The applied and pending migrations, read without applying any (also with `auto_migrate`)."""
        return self._dialect().schema_status()

    def upsert_dataset(self, record: DatasetRecord) -> DatasetRecord:
        """Insert or update the dataset row (by name) in one statement; return it as stored."""
        return self._run(lambda db: datasets.upsert(db, record), write=True)

    def get_dataset(self, name: str) -> DatasetRecord | None:
        """The dataset row, or None."""
        return self._run(lambda db: datasets.get(db, name))

    def list_datasets(self) -> list[DatasetRecord]:
        """All dataset rows, ordered by name."""
        return self._run(datasets.list_all)

    def register_indicator_set(self, new: NewIndicatorSet) -> tuple[IndicatorSetRecord, bool]:
        """Return (record, created) for the spec on `new.dataset`, in one transaction.

        The set already registered for (dataset, spec_sha256) if any (created False); else a new row with
        the dataset's next version (1 for the first), measurement `<dataset>_<version>` and status
        "registered" (created True). CatalogError if the dataset is not in the catalog, if columns and
        lookbacks differ in length, or if spec_sha256 is registered with a different spec text. A retry
        after a lost connection repeats the whole transaction: if the first try had committed, the retry
        finds its row (created False).
        """
        return self._transaction(lambda db: indicator_sets.register(db, new))

    def get_indicator_set(self, dataset: str, version: int) -> IndicatorSetRecord | None:
        """The indicator set `version` of `dataset`, or None."""
        return self._run(lambda db: indicator_sets.get(db, dataset, version))

    def get_indicator_set_by_measurement(self, measurement: str) -> IndicatorSetRecord | None:
        """The indicator set whose values are in table `measurement`, or None."""
        return self._run(lambda db: indicator_sets.get_by_measurement(db, measurement))

    def list_indicator_sets(self, dataset: str | None = None) -> list[IndicatorSetRecord]:
        """The indicator sets of `dataset` (of every dataset if None), ordered by dataset, version."""
        return self._run(lambda db: indicator_sets.list_of(db, dataset))

    def record_indicator_output(
        self, dataset: str, version: int, outputs: IndicatorOutputs
    ) -> IndicatorSetRecord:
        """Replace the outputs of an existing set (never its spec or columns) in one statement; return the
        stored row. CatalogError if there is no such set, a timestamp is naive, or a value breaks a
        constraint."""
        return self._run(lambda db: indicator_sets.record_output(db, dataset, version, outputs), write=True)

    def register_walkforward_run(self, new: NewWalkforwardRun) -> WalkforwardRunRecord:
        """Register a new run of `new.dataset` with its folds (status pending), in one transaction.

        The run gets the dataset's next number (1 for the first), name `<dataset>_run<n>` and status
        "registered". CatalogError if the dataset or its indicator set `indicator_version` is not in the
        catalog, a feature is not a column of that set (or is repeated), there are no windows, fold numbers
        are not 0, 1, ... in order, a window's training ranges are not ascending, disjoint row ranges that
        end by its test window, or a window's timestamp is naive. With `request_id`, the job request
        (walkforward, queued, not yet taken) gets the run as its target in the same transaction.
        `rolling` needs `history_sha256` (64 lowercase hex digits, as any given one must be).
        """
        return self._transaction(lambda db: walkforward.register(db, new))

    def get_walkforward_run(self, name: str) -> WalkforwardRunRecord | None:
        """The run called `name`, or None."""
        return self._run(lambda db: walkforward.get(db, name))

    def list_walkforward_runs(self, dataset: str | None = None) -> list[WalkforwardRunRecord]:
        """The runs of `dataset` (of every dataset if None), ordered by dataset, number."""
        return self._run(lambda db: walkforward.list_runs(db, dataset))

    def list_walkforward_folds(self, run: str) -> list[WalkforwardFoldRecord]:
        """The folds of `run`, ordered by fold number (empty if there is no such run)."""
        return self._run(lambda db: walkforward.list_folds(db, run))

    def start_walkforward_fold(self, run: str, fold: int) -> WalkforwardFoldRecord:
        """Mark an attempt at `fold` as running (attempts + 1, result cleared) and update the run's status,
        in one transaction. Any change to a fold also deletes that fold's thresholds (they came from its
        previous model) and turns a "completed" run back. CatalogError if there is no such fold."""
        return self._transaction(lambda db: walkforward.start_fold(db, run, fold))

    def record_walkforward_fold(self, run: str, fold: int, result: FoldResult) -> WalkforwardFoldRecord:
        """Store the latest attempt's result and update the run's status, in one transaction.

        The run is "failed" while any fold's latest attempt failed, "running" while any is pending or
        running after one started, "trained" when all succeeded. CatalogError if there is no such fold,
        it was never started, or `result.status` is neither "succeeded" nor "failed".
        """
        return self._transaction(lambda db: walkforward.record_fold(db, run, fold, result))

    def record_walkforward_folds(
        self, run: str, results: Mapping[int, FoldResult], start: Sequence[int] = ()
    ) -> tuple[list[WalkforwardFoldRecord], list[WalkforwardFoldRecord]]:
        """Store the latest attempts' `results` (fold -> result), then start an attempt at each fold of
        `start`, all in one transaction: what `record_walkforward_fold` and `start_walkforward_fold` do one
        by one, with one commit. Returns the recorded and the started folds, in the order given. A step that
        trains many short folds calls it once per group of folds instead of twice per fold."""
        return self._transaction(lambda db: walkforward.record_and_start(db, run, results, start))

    def record_walkforward_predictions(
        self, run: str, predictions: WalkforwardPredictions
    ) -> WalkforwardRunRecord:
        """Describe what the run's predictions table holds now, in one statement; CatalogError if there is
        no such run or a timestamp is naive."""
        return self._run(lambda db: walkforward.record_predictions(db, run, predictions), write=True)

    def record_walkforward_thresholds(
        self, run: str, thresholds: Sequence[FoldThresholds]
    ) -> WalkforwardRunRecord:
        """Replace the run's thresholds (one per fold) and mark it "completed", in one transaction.

        CatalogError if a fold has not succeeded, a fold is missing or repeated, a value is not finite,
        or a long threshold is below its short one.
        """
        return self._transaction(lambda db: walkforward.record_thresholds(db, run, thresholds))

    def list_walkforward_thresholds(self, run: str) -> list[FoldThresholds]:
        """The run's thresholds, ordered by fold."""
        return self._run(lambda db: walkforward.list_thresholds(db, run))

    def extend_walkforward_run(self, run: str, extension: WalkforwardExtension) -> WalkforwardRunRecord:
        """Add the folds `extension.windows` to a completed rolling run whose dataset gained bars, in one
        transaction.

        The new folds are pending, computed on `dataset_version`; the run gets its new fold count,
        dataset_version and history_sha256 and goes back to "running" (its other folds keep their models
        and thresholds, and its predictions row describes the table until it is written again), so the
        walkforward sensor trains the new folds and assembles the run again. CatalogError if there is no
        such run, it is not rolling or not "completed", there are no windows, they are not numbered on
        from the run's last fold, the first does not test after the run's last test window, a window is
        malformed (as at registration), dataset_version is not the dataset's version now, or a hash is not
        64 lowercase hex digits.
        """
        return self._transaction(lambda db: walkforward.extend(db, run, extension))

    def refresh_simulation(self, name: str, refresh: SimulationRefresh) -> SimulationRecord:
        """Point the sim at its run as the run is now and mark it "registered" again, in one transaction:
        its thresholds, dataset, models and code versions are replaced (its config is kept), its outputs,
        message, start and end are cleared and its trades deleted, so the simulation sensor runs it again.

        For a rolling run's sims once the extended run has completed. CatalogError if there is no such
        sim, an attempt at it is running, its run is not "completed" or not of the dataset's version now,
        dataset_version is not that version, thresholds is not JSON, or models_version is empty.
        """
        return self._transaction(lambda db: simulations.refresh(db, name, refresh))

    def register_simulation(self, new: NewSimulation) -> SimulationRecord:
        """Register a new simulation of `new.run`'s predictions, in one transaction.

        The sim gets the dataset's next number (1 for the first), name `<dataset>_sim<n>` and status
        "registered". CatalogError if the dataset or the run is not in the catalog, the run belongs to
        another dataset or is not "completed" (its thresholds stored), config or thresholds is not JSON,
        config_sha256 or dataset_version is not 64 lowercase hex digits, dataset_version is not the
        dataset's version now or not the run's, or models_version is empty. With `request_id`, the job
        request (simulation, queued, not yet taken) gets the sim as its target in the same transaction.
        """
        return self._transaction(lambda db: simulations.register(db, new))

    def get_simulation(self, name: str) -> SimulationRecord | None:
        """The simulation called `name`, or None."""
        return self._run(lambda db: simulations.get(db, name))

    def list_simulations(self, dataset: str | None = None, run: str | None = None) -> list[SimulationRecord]:
        """The sims of `dataset` and of `run` (each filter only if given), ordered by dataset, number."""
        return self._run(lambda db: simulations.list_of(db, dataset, run))

    def start_simulation(self, name: str) -> SimulationRecord:
        """Mark an attempt at the sim as running (started_at now) and clear the previous attempt's outputs,
        message and trades, in one transaction. Optional: recording works without it. CatalogError if there
        is no such sim."""
        return self._transaction(lambda db: simulations.start(db, name))

    def record_simulation(self, name: str, outcome: SimulationOutcome) -> SimulationRecord:
        """Store a finished attempt in one transaction: replace every trade of the sim with the outcome's
        (one bulk write), set its metrics (see `metrics_json`), n_trades and what its series table holds,
        and mark it "completed".

        Everything is checked before anything is written: CatalogError, naming the trade and field, if
        there is no such sim, a timestamp is naive, last_ts is before first_ts, row_count < 1, there are
        no series_columns, a metric is not a number, trades are not numbered 0, 1, ... in order, or a
        trade is not within the series (0 <= entry_idx <= exit_idx < row_count, first_ts <= entry_ts <=
        exit_ts <= last_ts), has a side other than +1/-1, a size, price or fee that is not finite
        (size and prices > 0, fees >= 0), a pnl or return that is not finite, bars_held < 0, or an exit
        reason not in EXIT_REASONS. A refused call leaves the sim and its trades as they were.
        """
        return self._transaction(lambda db: simulations.record(db, name, outcome))

    def record_simulation_failure(self, name: str, message: str) -> SimulationRecord:
        """Mark the sim "failed" with `message`, in one transaction. Its outputs and trades are deleted: the
        series table may hold part of the failed attempt, so nothing of a previous one is shown as
        current. CatalogError if there is no such sim."""
        return self._transaction(lambda db: simulations.record_failure(db, name, message))

    def list_simulation_trades(self, name: str) -> list[SimulationTrade]:
        """The sim's trades, ordered by trade number (empty if there is no such sim or it has none)."""
        return self._run(lambda db: simulations.list_trades(db, name))

    def submit_job_request(self, new: NewJobRequest) -> JobRequestRecord:
        """Queue a request (status QUEUED). CatalogError if kind is not in JOB_KINDS, config is not a JSON
        object or requested_by is empty. With `parent_id` (a chained simulation), the parent's existing
        chained request is returned if there is one, so chaining twice adds nothing. With `target`, the
        request is recorded with its run or sim already registered (the sensors do not take it again);
        with `rejected`, it is recorded as REJECTED with that message (the launchpad's door)."""
        return self._transaction(lambda db: job_requests.submit(db, new))

    def get_job_request(self, request_id: int) -> JobRequestRecord | None:
        """The request with this id, or None."""
        return self._run(lambda db: job_requests.get(db, request_id))

    def list_job_requests(
        self, statuses: Sequence[str] | None = None, kind: str | None = None
    ) -> list[JobRequestRecord]:
        """Requests in `statuses` and of `kind` (each filter only if given), oldest first."""
        return self._run(lambda db: job_requests.list_requests(db, statuses, kind))

    def list_job_runs(self, request_id: int) -> list[JobRunRecord]:
        """The request's Dagster runs, in the order they started."""
        return self._run(lambda db: job_requests.list_runs(db, request_id))

    def begin_job_intake(self, request_id: int) -> JobRequestRecord | None:
        """Count an intake attempt of a QUEUED request that has no target yet; None if it is not one."""
        return self._transaction(lambda db: job_requests.begin_intake(db, request_id))

    def refuse_job_request(self, request_id: int, status: str, message: str) -> JobRequestRecord:
        """End a QUEUED request that has no target as REJECTED (its config is invalid) or FAILED (intake gave
        up), with `message`. CatalogError if it is not such a request or message is empty."""
        return self._transaction(lambda db: job_requests.refuse(db, request_id, status, message))

    def record_job_run(self, run: JobRunRecord, target_completed: bool) -> JobRequestRecord:
        """Record the state of one of a request's runs and settle the request's status in one transaction
        (`job_requests.lifecycle`): a run's start recorded after its end keeps the end."""
        return self._transaction(lambda db: job_requests.record_run(db, run, target_completed))

    def settle_job_request(self, request_id: int, target_completed: bool) -> JobRequestRecord:
        """Settle the request's status from its recorded runs and whether its target completed."""
        return self._transaction(lambda db: job_requests.settle(db, request_id, target_completed))

    def upsert_strategy(self, record: StrategyRecord) -> StrategyRecord:
        """Insert a strategy (desired and actual state "stopped"), or update the thresholds, sizing and risk
        limits of the stored one, in one transaction; return it as stored.

        CatalogError if the name is not a valid strategy name, the walkforward run is not "completed", the
        fold has no succeeded model with `model_sha256`, dataset, indicator version or measurement are not
        the run's, bars_sha256 is not the dataset's source file hash, sizing is not a JSON object, a risk
        limit is not a positive Decimal, or the stored strategy has another lineage or instrument
        (walkforward_run through bars_sha256, symbol, venue, account): a new model is a new strategy, so
        the lineage of every order and fill stays what it was.
        """
        return self._transaction(lambda db: live.upsert_strategy(db, record))

    def get_strategy(self, name: str) -> StrategyRecord | None:
        """The strategy called `name`, or None."""
        return self._run(lambda db: live.get_strategy(db, name))

    def list_strategies(self, desired_state: str | None = None) -> list[StrategyRecord]:
        """The strategies (only those with `desired_state` if given), ordered by name."""
        return self._run(lambda db: live.list_strategies(db, desired_state))

    def set_strategy_desired_state(self, name: str, state: str) -> StrategyRecord:
        """Ask for the strategy "running" or "stopped", in one UPDATE (what SQL, the CLI and the API do);
        the runner follows. CatalogError if there is no such strategy or state."""
        return self._run(lambda db: live.set_desired_state(db, name, state), write=True)

    def report_strategy_state(self, name: str, state: str, message: str | None = None) -> StrategyRecord:
        """Record what the runner made of the strategy (one of STRATEGY_ACTUAL_STATES, with a message), in
        one UPDATE. CatalogError if there is no such strategy or state."""
        return self._run(lambda db: live.report_state(db, name, state, message), write=True)

    def record_signal(self, signal: SignalRecord) -> tuple[SignalRecord, bool]:
        """Return (record, created): the signal inserted (created True), or the one stored for the strategy
        and bar if it is the same (prediction and target equal, NaN equal to NaN; created False), in one
        transaction. CatalogError if the bar's stored signal differs, the strategy does not exist, the
        model is not the strategy's, bar_ts is naive, or the target is outside -1 .. 1."""
        return self._transaction(lambda db: live.record_signal(db, signal))

    def list_signals(self, strategy: str) -> list[SignalRecord]:
        """The strategy's signals, ordered by bar."""
        return self._run(lambda db: live.list_signals(db, strategy))

    def latest_signal(self, strategy: str) -> SignalRecord | None:
        """The strategy's signal of its newest bar, or None before its first."""
        return self._run(lambda db: live.latest_signal(db, strategy))

    def create_order(self, new: NewOrder) -> tuple[OrderRecord, bool]:
        """Store an order intent before it is sent: status INITIALIZED, client order id
        orders.client_order_id(strategy, bar_ts, seq), the strategy's venue, account and symbol, and its
        CREATE event, in one transaction. Returns (record, created): the stored order, created False, if
        the same intent is there already (a restart that builds it again). CatalogError if the id holds
        another intent, the strategy does not exist, the id cannot be built, or side, type, quantity or
        limit price are invalid (a limit order has a limit price, a market order none)."""
        return self._transaction(lambda db: live.create_order(db, new))

    def get_order(self, client_order_id: str) -> OrderRecord | None:
        """The order with this client order id, or None."""
        return self._run(lambda db: live.get_order(db, client_order_id))

    def list_orders(
        self,
        strategy: str | None = None,
        statuses: Sequence[str] | None = None,
        updated_since: datetime | None = None,
    ) -> list[OrderRecord]:
        """Orders of `strategy` in `statuses`, changed at or after `updated_since` (each filter only if
        given), ordered by strategy, bar, seq."""
        return self._run(lambda db: live.list_orders(db, strategy, statuses, updated_since))

    def open_orders(self, venue: str | None = None, account: str | None = None) -> list[OrderRecord]:
        """Orders that may be working at the venue (orders.OPEN: sent and not ended, UNKNOWN included), of
        `venue` and `account` if given: what reconciliation asks the venue about."""
        return self._run(lambda db: live.open_orders(db, venue, account))

    def list_order_events(self, client_order_id: str) -> list[OrderEventRecord]:
        """The order's full history, in order: its CREATE and every event since."""
        return self._run(lambda db: live.list_events(db, client_order_id))

    def apply_order_event(self, client_order_id: str, update: OrderUpdate) -> OrderRecord:
        """Move the order by one event through the state machine and append the event, in one
        transaction: its status, reason and venue order id change with the event row or not at all.

        StaleOrder if the order is not in `update.expected_status` (when given) or another writer moved it
        between this call's read and write (a retry after a lost connection whose first try committed
        meets this too). CatalogError if there is no such order, the machine refuses the event (naming the
        order, its status and the event), DENY or REJECT has no reason, the event is FILL (`record_fill`),
        the venue order id differs from a stored one, or detail is not a JSON object.
        """
        return self._transaction(lambda db: live.apply_event(db, client_order_id, update))

    def record_fill(self, fill: NewFill) -> tuple[FillRecord, bool]:
        """Record an execution with everything it changes, in one transaction: the fill row, its order's
        filled quantity, average price, status and FILL event, and its position (quantity, average entry,
        realised PnL). Returns (record, created): a trade already recorded returns the stored fill, created
        False, and changes nothing, so a replay (or two writers at once) never counts it twice.

        CatalogError, with nothing written, if the order does not exist or is not on the fill's venue,
        symbol and side, the trade is recorded with other values, the order cannot take the fill (an
        overfill, a terminal order), or a value is not an exact Decimal or a timestamp is naive.
        """
        return self._transaction(lambda db: live.record_fill(db, fill))

    def list_fills(
        self,
        client_order_id: str | None = None,
        venue: str | None = None,
        created_since: datetime | None = None,
    ) -> list[FillRecord]:
        """Fills of the order and venue, recorded at or after `created_since` (each filter only if given),
        ordered by time, venue, trade id."""
        return self._run(lambda db: live.list_fills(db, client_order_id, venue, created_since))

    def get_position(self, venue: str, account: str, symbol: str) -> PositionRecord | None:
        """The account's position in `symbol` as its recorded fills made it, or None if it never traded."""
        return self._run(lambda db: live.get_position(db, venue, account, symbol))

    def list_positions(self, venue: str | None = None, account: str | None = None) -> list[PositionRecord]:
        """Positions of the venue and account (each filter only if given), ordered by venue, account,
        symbol."""
        return self._run(lambda db: live.list_positions(db, venue, account))

    def fill_lineage(self, venue: str, trade_id: str) -> FillLineage | None:
        """Where the fill comes from: its order, strategy and bar, and the strategy's walkforward run, fold
        model (path and hash), indicator set (measurement, version) and bars file hash; None if there is
        no such fill."""
        return self._run(lambda db: live.fill_lineage(db, venue, trade_id))

    def start_reconciliation(self, service: str, venue: str, account: str) -> ReconciliationRecord:
        """Record the start of a reconciliation of the venue account by `service` (status None)."""
        return self._run(lambda db: live.start_reconciliation(db, service, venue, account), write=True)

    def finish_reconciliation(self, run_id: int, status: str, details: str) -> ReconciliationRecord:
        """Record the outcome ("ok", "mismatch" or "failed") and details (a JSON object listing the
        mismatches) of a running reconciliation, once. CatalogError if it does not exist or has finished."""
        return self._run(lambda db: live.finish_reconciliation(db, run_id, status, details), write=True)

    def list_reconciliations(
        self, venue: str | None = None, account: str | None = None
    ) -> list[ReconciliationRecord]:
        """Reconciliation runs of the venue and account (each filter only if given), oldest first."""
        return self._run(lambda db: live.list_reconciliations(db, venue, account))

    def latest_reconciliations(self) -> list[ReconciliationRecord]:
        """The latest reconciliation run of each venue account, ordered by venue, account."""
        return self._run(live.latest_reconciliations)

    def heartbeat(self, service: str, instance: str, status: str, detail: str = "{}") -> HeartbeatRecord:
        """Upsert the instance's latest beat (now) with its status and detail (a JSON object)."""
        return self._run(lambda db: live.heartbeat(db, service, instance, status, detail), write=True)

    def list_heartbeats(self, service: str | None = None) -> list[HeartbeatRecord]:
        """The latest beat of every instance (of `service` if given), ordered by service, instance."""
        return self._run(lambda db: live.list_heartbeats(db, service))

    def set_trading_halt(
        self, venue: str, account: str, halted: bool, reason: str, set_by: str
    ) -> TradingHalt:
        """Switch the account's kill switch on (`halted`) or off, with the reason and who did it, in one
        statement; the executor follows within a poll."""
        return self._run(lambda db: live.set_halt(db, venue, account, halted, reason, set_by), write=True)

    def get_trading_halt(self, venue: str, account: str) -> TradingHalt | None:
        """The account's kill switch, or None if it was never set (trading allowed)."""
        return self._run(lambda db: live.get_halt(db, venue, account))

    def acquire_executor_lease(self, venue: str, account: str, holder: str, ttl_s: float) -> LeaseGrant:
        """Take the venue account's lease for `ttl_s` seconds (by the database's clock), atomically: granted
        if nobody holds it, its holder let it lapse, or `holder` holds it already (extended); otherwise not
        granted, with who holds it until when. Of executors racing for one account exactly one is granted.
        CatalogError if `holder` is empty or `ttl_s` is not a number of seconds >= 0.001."""
        return self._transaction(lambda db: live.acquire_lease(db, venue, account, holder, ttl_s))

    def renew_executor_lease(self, venue: str, account: str, holder: str, ttl_s: float) -> LeaseGrant:
        """Extend `holder`'s lease to `ttl_s` seconds from now; not granted (with the lease as it stands, or
        None) if another holder has it or it was released: the caller has lost the account and must stop
        sending orders."""
        return self._transaction(lambda db: live.renew_lease(db, venue, account, holder, ttl_s))

    def release_executor_lease(self, venue: str, account: str, holder: str) -> bool:
        """Give the account's lease up if `holder` holds it (an executor stopping); whether it did."""
        return self._run(lambda db: live.release_lease(db, venue, account, holder), write=True)

    def get_executor_lease(self, venue: str, account: str) -> ExecutorLease | None:
        """The account's lease row (`expired` when its holder let it lapse), or None if nobody holds it."""
        return self._run(lambda db: live.get_lease(db, venue, account))

    def _run(self, op: Callable[[Session], T], *, write: bool = False, transaction: bool = False) -> T:
        """`op` as one statement or reads (or as one transaction), after the pending migrations if
        `auto_migrate`."""
        if self.auto_migrate and not self._migrated:
            self.migrate()
        return self._dialect().run(op, write=write, transaction=transaction)

    def _transaction(self, op: Callable[[Session], T]) -> T:
        """`op` inside one transaction: it commits all of its writes or none."""
        return self._run(op, write=True, transaction=True)
