"""The production catalog: Postgres through a psycopg connection pool, in one schema."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import dagster as dg
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg_pool import ConnectionPool, PoolTimeout
from pydantic import Field, PrivateAttr

from resources import catalog_sql, job_requests_sql
from resources.migrations import POSTGRES, apply_migrations
from trading_assets.records import (
    CatalogError,
    CatalogUnavailable,
    DatasetRecord,
    FoldResult,
    FoldThresholds,
    FoldWindow,
    IndicatorOutputs,
    IndicatorSetRecord,
    JobRequestRecord,
    JobRunRecord,
    SimulationRecord,
    SimulationTrade,
    WalkforwardFoldRecord,
    WalkforwardRunRecord,
)

T = TypeVar("T")

# Unquoted Postgres identifiers: anything else would need quoting inside `-c search_path=...`.
_SCHEMA_RE = re.compile(r"[a-z_][a-z0-9_]{0,62}")

_GET = catalog_sql.get_dataset_sql(POSTGRES.placeholder)
_UPSERT = catalog_sql.upsert_dataset_sql(POSTGRES.placeholder)
_GET_SET = catalog_sql.get_indicator_set_sql(POSTGRES.placeholder)
_GET_SET_BY_MEASUREMENT = catalog_sql.get_indicator_set_by_measurement_sql(POSTGRES.placeholder)
_LIST_SETS_OF = catalog_sql.list_indicator_sets_of_sql(POSTGRES.placeholder)
_RECORD_OUTPUT = catalog_sql.record_indicator_output_sql(POSTGRES.placeholder)
_GET_RUN = catalog_sql.get_walkforward_run_sql(POSTGRES.placeholder)
_LIST_RUNS_OF = catalog_sql.list_walkforward_runs_of_sql(POSTGRES.placeholder)
_LIST_FOLDS = catalog_sql.list_walkforward_folds_sql(POSTGRES.placeholder)
_LIST_THRESHOLDS = catalog_sql.list_walkforward_thresholds_sql(POSTGRES.placeholder)
_GET_SIM = catalog_sql.get_simulation_sql(POSTGRES.placeholder)
_LIST_TRADES = catalog_sql.list_simulation_trades_sql(POSTGRES.placeholder)
# Binary COPY: the fastest bulk path, and floats travel as their 8 bytes, so they round-trip exactly.
_COPY_TRADES = f"COPY simulation_trades ({', '.join(catalog_sql.TRADE_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
# The Postgres types of catalog_sql.TRADE_COLUMNS, in order.
_TRADE_TYPES = [
    "text",  # simulation
    "int4",  # trade
    "int8",  # entry_idx
    "int8",  # exit_idx
    "timestamptz",  # entry_ts
    "timestamptz",  # exit_ts
    "int2",  # side
    *["float8"] * 6,  # size, entry_price, exit_price, pnl, return_pct, fees
    "int8",  # bars_held
    "text",  # exit_reason
]
_REFUSALS = (psycopg.IntegrityError, psycopg.DataError)
# Held until the registering transaction ends, so concurrent registrations for one dataset take turns
# and each reads the versions the others committed. Per schema and dataset: other datasets (and other
# catalogs on the server) do not wait.
_LOCK_DATASET_SETS = (
    "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.indicator_sets.' || %s::text))"
)
# The same for numbering a dataset's walkforward runs, under a key of its own.
_LOCK_DATASET_RUNS = (
    "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.walkforward_runs.' || %s::text))"
)
# The same for numbering a dataset's simulations.
_LOCK_DATASET_SIMS = "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.simulations.' || %s::text))"


class PostgresCatalog(dg.ConfigurableResource):
    """The catalog in Postgres: datasets and, later, runs, simulations and job requests.

    Connections come from a `psycopg_pool.ConnectionPool` opened on first use and closed after the
    run (or by `close()`). Every connection works in `schema_name`, created by `migrate()` if missing,
    with TimeZone UTC. Calls that lose their connection are retried with exponential backoff; every
    call is one statement, one transaction or a migration run, so a retry repeats it whole. (Only
    when the connection drops after a COMMIT was sent does a retry repeat work that was done: a run
    registered twice, an attempt counted twice.)
    With `auto_migrate`, the first call applies pending migrations.
    """

    host: str = Field(default="localhost", description="Postgres host.")
    port: int = Field(default=5432, description="Postgres port.")
    user: str = Field(default="postgres", description="Postgres user.")
    password: str | None = Field(default=None, description='Password; pass dg.EnvVar("PGPASSWORD").')
    dbname: str = Field(default="trading_assets", description="Database name.")
    schema_name: str = Field(
        default="public", description="Schema holding the catalog tables (lowercase identifier)."
    )
    pool_min_size: int = Field(default=1, ge=0, description="Connections the pool keeps open.")
    pool_max_size: int = Field(default=4, ge=1, description="Most connections the pool opens.")
    pool_timeout_s: float = Field(default=30.0, gt=0, description="Longest wait for a pooled connection.")
    retry_attempts: int = Field(default=5, ge=1, description="Tries per call on connection errors.")
    retry_delay_s: float = Field(default=0.1, ge=0, description="First backoff delay; doubles per retry.")
    auto_migrate: bool = Field(default=True, description="Apply pending migrations on first use.")

    _pool: ConnectionPool | None = PrivateAttr(default=None)
    _migrated: bool = PrivateAttr(default=False)

    def migrate(self) -> list[str]:
        """Create the schema if missing and apply pending migrations; return the versions applied."""

        def run(conn: psycopg.Connection) -> list[str]:
            with conn.transaction():
                # The runners' lock: two catalogs creating the same schema at once would collide.
                conn.execute(POSTGRES.lock_sql)
                exists = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [self.schema_name])
                if exists.fetchone() is None:
                    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.schema_name)))
            return apply_migrations(conn, POSTGRES)

        applied = self._retrying(run)
        self._migrated = True
        return applied

    def upsert_dataset(self, record: DatasetRecord) -> DatasetRecord:
        """Insert or update the dataset row (by name) in one statement; return it as stored."""
        params = catalog_sql.dataset_params(record)

        def run(conn: psycopg.Connection) -> DatasetRecord:
            try:
                row = conn.execute(_UPSERT, params).fetchone()
            except (psycopg.IntegrityError, psycopg.DataError) as err:
                raise catalog_sql.refused(record, err) from err
            assert row is not None  # RETURNING always yields the row
            return catalog_sql.dataset_from_row(row)

        return self._migrated_call(run)

    def get_dataset(self, name: str) -> DatasetRecord | None:
        """The dataset row, or None."""

        def run(conn: psycopg.Connection) -> DatasetRecord | None:
            row = conn.execute(_GET, [name]).fetchone()
            return None if row is None else catalog_sql.dataset_from_row(row)

        return self._migrated_call(run)

    def list_datasets(self) -> list[DatasetRecord]:
        """All dataset rows, ordered by name."""

        def run(conn: psycopg.Connection) -> list[DatasetRecord]:
            return [catalog_sql.dataset_from_row(row) for row in conn.execute(catalog_sql.LIST_DATASETS)]

        return self._migrated_call(run)

    def register_indicator_set(
        self,
        dataset: str,
        label: str,
        spec: str,
        spec_sha256: str,
        columns: Sequence[str],
        lookbacks: Sequence[int],
    ) -> tuple[IndicatorSetRecord, bool]:
        """Return (record, created) for the spec on `dataset`; see `Catalog.register_indicator_set`.

        One transaction under a per-dataset advisory lock. A retry after a lost connection repeats the
        whole transaction: if the first try had committed, the retry finds its row (created False).
        """

        def run(conn: psycopg.Connection) -> tuple[IndicatorSetRecord, bool]:
            try:
                with conn.transaction():
                    conn.execute(_LOCK_DATASET_SETS, [dataset])
                    return catalog_sql.register_indicator_set(
                        conn, POSTGRES.placeholder, dataset, label, spec, spec_sha256, columns, lookbacks
                    )
            except (psycopg.IntegrityError, psycopg.DataError) as err:
                what = f"indicator set {label!r} of dataset {dataset!r}"
                raise catalog_sql.indicator_set_refused(what, err) from err

        return self._migrated_call(run)

    def get_indicator_set(self, dataset: str, version: int) -> IndicatorSetRecord | None:
        """The indicator set `version` of `dataset`, or None."""

        def run(conn: psycopg.Connection) -> IndicatorSetRecord | None:
            row = conn.execute(_GET_SET, [dataset, version]).fetchone()
            return None if row is None else catalog_sql.indicator_set_from_row(row)

        return self._migrated_call(run)

    def get_indicator_set_by_measurement(self, measurement: str) -> IndicatorSetRecord | None:
        """The indicator set whose values are in table `measurement`, or None."""

        def run(conn: psycopg.Connection) -> IndicatorSetRecord | None:
            row = conn.execute(_GET_SET_BY_MEASUREMENT, [measurement]).fetchone()
            return None if row is None else catalog_sql.indicator_set_from_row(row)

        return self._migrated_call(run)

    def list_indicator_sets(self, dataset: str | None = None) -> list[IndicatorSetRecord]:
        """The indicator sets of `dataset` (of every dataset if None), ordered by dataset, version."""

        def run(conn: psycopg.Connection) -> list[IndicatorSetRecord]:
            if dataset is None:
                rows = conn.execute(catalog_sql.LIST_INDICATOR_SETS).fetchall()
            else:
                rows = conn.execute(_LIST_SETS_OF, [dataset]).fetchall()
            return [catalog_sql.indicator_set_from_row(row) for row in rows]

        return self._migrated_call(run)

    def record_indicator_output(
        self, dataset: str, version: int, outputs: IndicatorOutputs
    ) -> IndicatorSetRecord:
        """Replace the outputs of an existing set in one statement; return the stored row."""
        params = catalog_sql.indicator_output_params(dataset, version, outputs)

        def run(conn: psycopg.Connection) -> IndicatorSetRecord:
            try:
                row = conn.execute(_RECORD_OUTPUT, params).fetchone()
            except (psycopg.IntegrityError, psycopg.DataError) as err:
                what = f"indicator set {dataset!r} version {version}"
                raise catalog_sql.indicator_set_refused(what, err) from err
            if row is None:
                raise CatalogError(
                    f"no indicator set version {version} of dataset {dataset!r} in the catalog"
                )
            return catalog_sql.indicator_set_from_row(row)

        return self._migrated_call(run)

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
        request_id: int | None = None,
        rolling: bool = False,
        history_sha256: str | None = None,
    ) -> WalkforwardRunRecord:
        """Register a new run with its folds; see `Catalog.register_walkforward_run`.

        One transaction under a per-dataset advisory lock, so concurrent registrations get 1, 2, ...
        """

        def register(conn: psycopg.Connection) -> WalkforwardRunRecord:
            conn.execute(_LOCK_DATASET_RUNS, [dataset])
            return catalog_sql.register_walkforward_run(
                conn,
                POSTGRES.placeholder,
                _REFUSALS,
                dataset,
                indicator_version,
                config,
                config_sha256,
                hyperparameters,
                target,
                features,
                dataset_version,
                code_version,
                windows,
                request_id,
                rolling,
                history_sha256,
            )

        return self._transaction(register)

    def get_walkforward_run(self, name: str) -> WalkforwardRunRecord | None:
        """The run called `name`, or None."""

        def get(conn: psycopg.Connection) -> WalkforwardRunRecord | None:
            row = conn.execute(_GET_RUN, [name]).fetchone()
            return None if row is None else catalog_sql.walkforward_run_from_row(row)

        return self._migrated_call(get)

    def list_walkforward_runs(self, dataset: str | None = None) -> list[WalkforwardRunRecord]:
        """The runs of `dataset` (of every dataset if None), ordered by dataset, number."""

        def list_runs(conn: psycopg.Connection) -> list[WalkforwardRunRecord]:
            if dataset is None:
                rows = conn.execute(catalog_sql.LIST_WALKFORWARD_RUNS).fetchall()
            else:
                rows = conn.execute(_LIST_RUNS_OF, [dataset]).fetchall()
            return [catalog_sql.walkforward_run_from_row(row) for row in rows]

        return self._migrated_call(list_runs)

    def list_walkforward_folds(self, run: str) -> list[WalkforwardFoldRecord]:
        """The folds of `run`, ordered by fold number (empty if there is no such run)."""

        def list_folds(conn: psycopg.Connection) -> list[WalkforwardFoldRecord]:
            return [catalog_sql.walkforward_fold_from_row(row) for row in conn.execute(_LIST_FOLDS, [run])]

        return self._migrated_call(list_folds)

    def start_walkforward_fold(self, run: str, fold: int) -> WalkforwardFoldRecord:
        """Start an attempt at `fold` and update the run's status, in one transaction."""
        return self._transaction(
            lambda conn: catalog_sql.start_walkforward_fold(conn, POSTGRES.placeholder, run, fold)
        )

    def record_walkforward_fold(self, run: str, fold: int, result: FoldResult) -> WalkforwardFoldRecord:
        """Store the latest attempt's result and update the run's status, in one transaction."""
        return self._transaction(
            lambda conn: catalog_sql.record_walkforward_fold(
                conn, POSTGRES.placeholder, _REFUSALS, run, fold, result
            )
        )

    def record_walkforward_predictions(
        self, run: str, columns: Sequence[str], row_count: int, first_ts: datetime, last_ts: datetime
    ) -> WalkforwardRunRecord:
        """Describe what the run's predictions table holds now, in one statement."""
        return self._migrated_call(
            lambda conn: catalog_sql.record_walkforward_predictions(
                conn, POSTGRES.placeholder, _REFUSALS, run, columns, row_count, first_ts, last_ts
            )
        )

    def record_walkforward_thresholds(
        self, run: str, thresholds: Sequence[FoldThresholds]
    ) -> WalkforwardRunRecord:
        """Replace the run's thresholds and mark it "completed", in one transaction."""
        return self._transaction(
            lambda conn: catalog_sql.record_walkforward_thresholds(
                conn, POSTGRES.placeholder, _REFUSALS, run, thresholds
            )
        )

    def list_walkforward_thresholds(self, run: str) -> list[FoldThresholds]:
        """The run's thresholds, ordered by fold."""

        def list_thresholds(conn: psycopg.Connection) -> list[FoldThresholds]:
            rows = conn.execute(_LIST_THRESHOLDS, [run])
            return [catalog_sql.fold_thresholds_from_row(row) for row in rows]

        return self._migrated_call(list_thresholds)

    def extend_walkforward_run(
        self, run: str, dataset_version: str, history_sha256: str, windows: Sequence[FoldWindow]
    ) -> WalkforwardRunRecord:
        """Add folds to a completed rolling run, in one transaction; see `Catalog.extend_walkforward_run`."""
        return self._transaction(
            lambda conn: catalog_sql.extend_walkforward_run(
                conn, POSTGRES.placeholder, _REFUSALS, run, dataset_version, history_sha256, windows
            )
        )

    def refresh_simulation(
        self, name: str, thresholds: str, dataset_version: str, models_version: str, code_version: str
    ) -> SimulationRecord:
        """Point the sim at its run as it is now and mark it registered, in one transaction; see
        `Catalog.refresh_simulation`."""
        return self._transaction(
            lambda conn: catalog_sql.refresh_simulation(
                conn,
                POSTGRES.placeholder,
                _REFUSALS,
                name,
                thresholds,
                dataset_version,
                models_version,
                code_version,
            )
        )

    def register_simulation(
        self,
        dataset: str,
        run: str,
        config: str,
        config_sha256: str,
        thresholds: str,
        dataset_version: str,
        models_version: str,
        code_version: str,
        request_id: int | None = None,
    ) -> SimulationRecord:
        """Register a new simulation of `run`; see `Catalog.register_simulation`.

        One transaction under a per-dataset advisory lock, so concurrent registrations get 1, 2, ...
        """

        def register(conn: psycopg.Connection) -> SimulationRecord:
            conn.execute(_LOCK_DATASET_SIMS, [dataset])
            return catalog_sql.register_simulation(
                conn,
                POSTGRES.placeholder,
                _REFUSALS,
                dataset,
                run,
                config,
                config_sha256,
                thresholds,
                dataset_version,
                models_version,
                code_version,
                request_id,
            )

        return self._transaction(register)

    def get_simulation(self, name: str) -> SimulationRecord | None:
        """The simulation called `name`, or None."""

        def get(conn: psycopg.Connection) -> SimulationRecord | None:
            row = conn.execute(_GET_SIM, [name]).fetchone()
            return None if row is None else catalog_sql.simulation_from_row(row)

        return self._migrated_call(get)

    def list_simulations(self, dataset: str | None = None, run: str | None = None) -> list[SimulationRecord]:
        """The sims of `dataset` and of `run` (each filter only if given), ordered by dataset, number."""
        return self._migrated_call(
            lambda conn: catalog_sql.list_simulations(conn, POSTGRES.placeholder, dataset, run)
        )

    def start_simulation(self, name: str) -> SimulationRecord:
        """Start an attempt at the sim, clearing the previous one's outputs and trades, in one transaction."""
        return self._transaction(lambda conn: catalog_sql.start_simulation(conn, POSTGRES.placeholder, name))

    def record_simulation(
        self,
        name: str,
        metrics: Mapping[str, float | int],
        trades: Sequence[SimulationTrade],
        series_columns: Sequence[str],
        row_count: int,
        first_ts: datetime,
        last_ts: datetime,
    ) -> SimulationRecord:
        """Store a finished attempt, its trades replacing the previous ones, in one transaction; see
        `Catalog.record_simulation`. The trades go in with one binary COPY."""

        def record(conn: psycopg.Connection) -> SimulationRecord:
            def copy_trades(rows: Sequence[tuple[Any, ...]]) -> None:
                with conn.cursor() as cursor, cursor.copy(_COPY_TRADES) as copy:
                    copy.set_types(_TRADE_TYPES)
                    for row in rows:
                        copy.write_row(row)

            return catalog_sql.record_simulation(
                conn,
                POSTGRES.placeholder,
                _REFUSALS,
                copy_trades,
                name,
                metrics,
                trades,
                series_columns,
                row_count,
                first_ts,
                last_ts,
            )

        return self._transaction(record)

    def record_simulation_failure(self, name: str, message: str) -> SimulationRecord:
        """Mark the sim "failed", deleting its outputs and trades, in one transaction."""
        return self._transaction(
            lambda conn: catalog_sql.record_simulation_failure(conn, POSTGRES.placeholder, name, message)
        )

    def list_simulation_trades(self, name: str) -> list[SimulationTrade]:
        """The sim's trades, ordered by trade number."""

        def list_trades(conn: psycopg.Connection) -> list[SimulationTrade]:
            rows = conn.execute(_LIST_TRADES, [name]).fetchall()
            return [catalog_sql.simulation_trade_from_row(row) for row in rows]

        return self._migrated_call(list_trades)

    def submit_job_request(
        self,
        kind: str,
        config: str,
        requested_by: str,
        parent_id: int | None = None,
        *,
        target: str | None = None,
        rejected: str | None = None,
    ) -> JobRequestRecord:
        """Queue a request; see `Catalog.submit_job_request`."""
        return self._transaction(
            lambda conn: job_requests_sql.submit(
                conn, POSTGRES.placeholder, _REFUSALS, kind, config, requested_by, parent_id, target, rejected
            )
        )

    def get_job_request(self, request_id: int) -> JobRequestRecord | None:
        """The request with this id, or None."""
        return self._migrated_call(lambda conn: job_requests_sql.get(conn, POSTGRES.placeholder, request_id))

    def list_job_requests(
        self, statuses: Sequence[str] | None = None, kind: str | None = None
    ) -> list[JobRequestRecord]:
        """Requests in `statuses` and of `kind` (each filter only if given), oldest first."""
        return self._migrated_call(
            lambda conn: job_requests_sql.list_requests(conn, POSTGRES.placeholder, statuses, kind)
        )

    def list_job_runs(self, request_id: int) -> list[JobRunRecord]:
        """The request's Dagster runs, in the order they started."""
        return self._migrated_call(
            lambda conn: job_requests_sql.list_runs(conn, POSTGRES.placeholder, request_id)
        )

    def begin_job_intake(self, request_id: int) -> JobRequestRecord | None:
        """Count an intake attempt; see `Catalog.begin_job_intake`."""
        return self._transaction(
            lambda conn: job_requests_sql.begin_intake(conn, POSTGRES.placeholder, request_id)
        )

    def refuse_job_request(self, request_id: int, status: str, message: str) -> JobRequestRecord:
        """End a request not taken as REJECTED or FAILED; see `Catalog.refuse_job_request`."""
        return self._transaction(
            lambda conn: job_requests_sql.refuse(conn, POSTGRES.placeholder, request_id, status, message)
        )

    def record_job_run(self, run: JobRunRecord, target_completed: bool) -> JobRequestRecord:
        """Record a run and settle its request, in one transaction; see `Catalog.record_job_run`."""
        return self._transaction(
            lambda conn: job_requests_sql.record_run(
                conn, POSTGRES.placeholder, _REFUSALS, run, target_completed
            )
        )

    def settle_job_request(self, request_id: int, target_completed: bool) -> JobRequestRecord:
        """Settle the request's status; see `Catalog.settle_job_request`."""
        return self._transaction(
            lambda conn: job_requests_sql.settle(conn, POSTGRES.placeholder, request_id, target_completed)
        )

    def close(self) -> None:
        """Close the pool; the next call opens a new one."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Release the pool's connections when the run (or step process) is done with the resource."""
        self.close()

    def _migrated_call(self, op: Callable[[psycopg.Connection], T]) -> T:
        if self.auto_migrate and not self._migrated:
            self.migrate()
        return self._retrying(op)

    def _transaction(self, op: Callable[[psycopg.Connection], T]) -> T:
        """`_migrated_call` with `op` inside one transaction: it commits all of its writes or none."""

        def transaction(conn: psycopg.Connection) -> T:
            with conn.transaction():
                return op(conn)

        return self._migrated_call(transaction)

    def _retrying(self, op: Callable[[psycopg.Connection], T]) -> T:
        """Run `op` on a pooled connection, retrying on connection errors with exponential backoff."""
        pool = self._connection_pool()
        last_error: psycopg.OperationalError | None = None
        for attempt in range(self.retry_attempts):
            if attempt:
                time.sleep(self.retry_delay_s * 2 ** (attempt - 1))
            try:
                with pool.connection() as conn:
                    return op(conn)
            except PoolTimeout as err:
                # The pool has already been reconnecting for pool_timeout_s; waiting more will not help.
                raise CatalogUnavailable(
                    f"no Postgres connection within {self.pool_timeout_s}s: {err}"
                ) from err
            except psycopg.OperationalError as err:
                last_error = err
        raise CatalogUnavailable(
            f"Postgres catalog failed after {self.retry_attempts} attempts: {last_error}"
        ) from last_error

    def _connection_pool(self) -> ConnectionPool:
        if self._pool is None:
            # Checked here, not by a validator: an EnvVar's value is only known at run time.
            if not _SCHEMA_RE.fullmatch(self.schema_name):
                raise CatalogError(
                    f"schema_name {self.schema_name!r} is not a lowercase identifier ([a-z_][a-z0-9_]*)"
                )
            conninfo = make_conninfo(
                host=self.host, port=self.port, user=self.user, password=self.password, dbname=self.dbname
            )
            pool = ConnectionPool(
                conninfo,
                kwargs={
                    "autocommit": True,
                    "options": f"-c search_path={self.schema_name} -c TimeZone=UTC",
                    # Shown in pg_stat_activity, so a DBA can tell which catalog holds a session.
                    "application_name": f"trading_assets catalog {self.schema_name}",
                },
                min_size=self.pool_min_size,
                max_size=self.pool_max_size,
                timeout=self.pool_timeout_s,
                name=f"catalog-{self.schema_name}",
                open=False,
            )
            pool.open()
            self._pool = pool
        return self._pool
