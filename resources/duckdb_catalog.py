"""The embedded catalog: one DuckDB file, opened per call under duckdb_file's lock."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pyarrow as pa
from pydantic import Field, PrivateAttr

from resources import catalog_sql, duckdb_file, job_requests_sql
from resources.migrations import DUCKDB, apply_migrations
from trading_assets.records import (
    CatalogError,
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

_GET = catalog_sql.get_dataset_sql(DUCKDB.placeholder)
_UPSERT = catalog_sql.upsert_dataset_sql(DUCKDB.placeholder)
_GET_SET = catalog_sql.get_indicator_set_sql(DUCKDB.placeholder)
_GET_SET_BY_MEASUREMENT = catalog_sql.get_indicator_set_by_measurement_sql(DUCKDB.placeholder)
_LIST_SETS_OF = catalog_sql.list_indicator_sets_of_sql(DUCKDB.placeholder)
_RECORD_OUTPUT = catalog_sql.record_indicator_output_sql(DUCKDB.placeholder)
_GET_RUN = catalog_sql.get_walkforward_run_sql(DUCKDB.placeholder)
_LIST_RUNS_OF = catalog_sql.list_walkforward_runs_of_sql(DUCKDB.placeholder)
_LIST_FOLDS = catalog_sql.list_walkforward_folds_sql(DUCKDB.placeholder)
_LIST_THRESHOLDS = catalog_sql.list_walkforward_thresholds_sql(DUCKDB.placeholder)
_GET_SIM = catalog_sql.get_simulation_sql(DUCKDB.placeholder)
_LIST_TRADES = catalog_sql.list_simulation_trades_sql(DUCKDB.placeholder)
# simulation_trades' column types, in catalog_sql.TRADE_COLUMNS order, for the Arrow table of a bulk insert.
_TRADE_SCHEMA = pa.schema(
    zip(
        catalog_sql.TRADE_COLUMNS,
        [pa.string(), pa.int32(), pa.int64(), pa.int64()]
        + [pa.timestamp("us", tz="UTC")] * 2
        + [pa.int16()]
        + [pa.float64()] * 6
        + [pa.int64(), pa.string()],
        strict=True,
    )
)
# The name the Arrow table of trades is registered under while it is inserted.
_TRADES_VIEW = "simulation_trades_input"
_REFUSALS = (duckdb.IntegrityError, duckdb.DataError)


class DuckDBCatalog(dg.ConfigurableResource):
    """The catalog in a DuckDB file: the embedded default, with the same tables as PostgresCatalog.

    Every call opens the file for that call only (shared lock to read, exclusive to write), so step
    processes of one run can use it side by side. With `auto_migrate`, the first call applies
    pending migrations.
    """

    path: str = Field(description="The catalog file, e.g. data/catalog.duckdb.")
    auto_migrate: bool = Field(default=True, description="Apply pending migrations on first use.")

    _migrated: bool = PrivateAttr(default=False)

    def migrate(self) -> list[str]:
        """Apply pending migrations; return the versions applied. The exclusive lock serialises runners."""
        with duckdb_file.connect(Path(self.path), write=True) as con:
            applied = apply_migrations(con, DUCKDB)
        self._migrated = True
        return applied

    def upsert_dataset(self, record: DatasetRecord) -> DatasetRecord:
        """Insert or update the dataset row (by name) in one statement; return it as stored."""
        params = catalog_sql.dataset_params(record)
        with self._connect(write=True) as con:
            try:
                row = con.execute(_UPSERT, params).fetchone()
            except (duckdb.IntegrityError, duckdb.DataError) as err:
                raise catalog_sql.refused(record, err) from err
        assert row is not None  # RETURNING always yields the row
        return catalog_sql.dataset_from_row(row)

    def get_dataset(self, name: str) -> DatasetRecord | None:
        """The dataset row, or None."""
        with self._connect(write=False) as con:
            row = con.execute(_GET, [name]).fetchone()
        return None if row is None else catalog_sql.dataset_from_row(row)

    def list_datasets(self) -> list[DatasetRecord]:
        """All dataset rows, ordered by name."""
        with self._connect(write=False) as con:
            rows = con.execute(catalog_sql.LIST_DATASETS).fetchall()
        return [catalog_sql.dataset_from_row(row) for row in rows]

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

        The exclusive file lock makes the steps one transaction: no other writer runs until it is
        released, and the one write (the INSERT) is atomic by itself.
        """
        with self._connect(write=True) as con:
            try:
                return catalog_sql.register_indicator_set(
                    con, DUCKDB.placeholder, dataset, label, spec, spec_sha256, columns, lookbacks
                )
            except (duckdb.IntegrityError, duckdb.DataError) as err:
                what = f"indicator set {label!r} of dataset {dataset!r}"
                raise catalog_sql.indicator_set_refused(what, err) from err

    def get_indicator_set(self, dataset: str, version: int) -> IndicatorSetRecord | None:
        """The indicator set `version` of `dataset`, or None."""
        with self._connect(write=False) as con:
            row = con.execute(_GET_SET, [dataset, version]).fetchone()
        return None if row is None else catalog_sql.indicator_set_from_row(row)

    def get_indicator_set_by_measurement(self, measurement: str) -> IndicatorSetRecord | None:
        """The indicator set whose values are in table `measurement`, or None."""
        with self._connect(write=False) as con:
            row = con.execute(_GET_SET_BY_MEASUREMENT, [measurement]).fetchone()
        return None if row is None else catalog_sql.indicator_set_from_row(row)

    def list_indicator_sets(self, dataset: str | None = None) -> list[IndicatorSetRecord]:
        """The indicator sets of `dataset` (of every dataset if None), ordered by dataset, version."""
        with self._connect(write=False) as con:
            if dataset is None:
                rows = con.execute(catalog_sql.LIST_INDICATOR_SETS).fetchall()
            else:
                rows = con.execute(_LIST_SETS_OF, [dataset]).fetchall()
        return [catalog_sql.indicator_set_from_row(row) for row in rows]

    def record_indicator_output(
        self, dataset: str, version: int, outputs: IndicatorOutputs
    ) -> IndicatorSetRecord:
        """Replace the outputs of an existing set in one statement; return the stored row."""
        params = catalog_sql.indicator_output_params(dataset, version, outputs)
        with self._connect(write=True) as con:
            try:
                row = con.execute(_RECORD_OUTPUT, params).fetchone()
            except (duckdb.IntegrityError, duckdb.DataError) as err:
                what = f"indicator set {dataset!r} version {version}"
                raise catalog_sql.indicator_set_refused(what, err) from err
        if row is None:
            raise CatalogError(f"no indicator set version {version} of dataset {dataset!r} in the catalog")
        return catalog_sql.indicator_set_from_row(row)

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

        One transaction under the exclusive file lock, which also serialises the numbering.
        """
        with self._transaction() as con:
            return catalog_sql.register_walkforward_run(
                con,
                DUCKDB.placeholder,
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

    def get_walkforward_run(self, name: str) -> WalkforwardRunRecord | None:
        """The run called `name`, or None."""
        with self._connect(write=False) as con:
            row = con.execute(_GET_RUN, [name]).fetchone()
        return None if row is None else catalog_sql.walkforward_run_from_row(row)

    def list_walkforward_runs(self, dataset: str | None = None) -> list[WalkforwardRunRecord]:
        """The runs of `dataset` (of every dataset if None), ordered by dataset, number."""
        with self._connect(write=False) as con:
            if dataset is None:
                rows = con.execute(catalog_sql.LIST_WALKFORWARD_RUNS).fetchall()
            else:
                rows = con.execute(_LIST_RUNS_OF, [dataset]).fetchall()
        return [catalog_sql.walkforward_run_from_row(row) for row in rows]

    def list_walkforward_folds(self, run: str) -> list[WalkforwardFoldRecord]:
        """The folds of `run`, ordered by fold number (empty if there is no such run)."""
        with self._connect(write=False) as con:
            rows = con.execute(_LIST_FOLDS, [run]).fetchall()
        return [catalog_sql.walkforward_fold_from_row(row) for row in rows]

    def start_walkforward_fold(self, run: str, fold: int) -> WalkforwardFoldRecord:
        """Start an attempt at `fold` and update the run's status, in one transaction."""
        with self._transaction() as con:
            return catalog_sql.start_walkforward_fold(con, DUCKDB.placeholder, run, fold)

    def record_walkforward_fold(self, run: str, fold: int, result: FoldResult) -> WalkforwardFoldRecord:
        """Store the latest attempt's result and update the run's status, in one transaction."""
        with self._transaction() as con:
            return catalog_sql.record_walkforward_fold(con, DUCKDB.placeholder, _REFUSALS, run, fold, result)

    def record_walkforward_predictions(
        self, run: str, columns: Sequence[str], row_count: int, first_ts: datetime, last_ts: datetime
    ) -> WalkforwardRunRecord:
        """Describe what the run's predictions table holds now, in one statement."""
        with self._connect(write=True) as con:
            return catalog_sql.record_walkforward_predictions(
                con, DUCKDB.placeholder, _REFUSALS, run, columns, row_count, first_ts, last_ts
            )

    def record_walkforward_thresholds(
        self, run: str, thresholds: Sequence[FoldThresholds]
    ) -> WalkforwardRunRecord:
        """Replace the run's thresholds and mark it "completed", in one transaction."""
        with self._transaction() as con:
            return catalog_sql.record_walkforward_thresholds(
                con, DUCKDB.placeholder, _REFUSALS, run, thresholds
            )

    def list_walkforward_thresholds(self, run: str) -> list[FoldThresholds]:
        """The run's thresholds, ordered by fold."""
        with self._connect(write=False) as con:
            rows = con.execute(_LIST_THRESHOLDS, [run]).fetchall()
        return [catalog_sql.fold_thresholds_from_row(row) for row in rows]

    def extend_walkforward_run(
        self, run: str, dataset_version: str, history_sha256: str, windows: Sequence[FoldWindow]
    ) -> WalkforwardRunRecord:
        """Add folds to a completed rolling run, in one transaction; see `Catalog.extend_walkforward_run`."""
        with self._transaction() as con:
            return catalog_sql.extend_walkforward_run(
                con, DUCKDB.placeholder, _REFUSALS, run, dataset_version, history_sha256, windows
            )

    def refresh_simulation(
        self, name: str, thresholds: str, dataset_version: str, models_version: str, code_version: str
    ) -> SimulationRecord:
        """Point the sim at its run as it is now and mark it registered, in one transaction; see
        `Catalog.refresh_simulation`."""
        with self._transaction() as con:
            return catalog_sql.refresh_simulation(
                con,
                DUCKDB.placeholder,
                _REFUSALS,
                name,
                thresholds,
                dataset_version,
                models_version,
                code_version,
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

        One transaction under the exclusive file lock, which also serialises the numbering.
        """
        with self._transaction() as con:
            return catalog_sql.register_simulation(
                con,
                DUCKDB.placeholder,
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

    def get_simulation(self, name: str) -> SimulationRecord | None:
        """The simulation called `name`, or None."""
        with self._connect(write=False) as con:
            row = con.execute(_GET_SIM, [name]).fetchone()
        return None if row is None else catalog_sql.simulation_from_row(row)

    def list_simulations(self, dataset: str | None = None, run: str | None = None) -> list[SimulationRecord]:
        """The sims of `dataset` and of `run` (each filter only if given), ordered by dataset, number."""
        with self._connect(write=False) as con:
            return catalog_sql.list_simulations(con, DUCKDB.placeholder, dataset, run)

    def start_simulation(self, name: str) -> SimulationRecord:
        """Start an attempt at the sim, clearing the previous one's outputs and trades, in one transaction."""
        with self._transaction() as con:
            return catalog_sql.start_simulation(con, DUCKDB.placeholder, name)

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
        `Catalog.record_simulation`. The trades go in with one INSERT from an Arrow table."""
        with self._transaction() as con:

            def insert_trades(rows: Sequence[tuple[Any, ...]]) -> None:
                # Arrow converts aware datetimes to UTC instants and keeps every float's bits.
                columns = zip(*rows, strict=True)
                table = pa.Table.from_arrays(
                    [
                        pa.array(values, field.type)
                        for values, field in zip(columns, _TRADE_SCHEMA, strict=True)
                    ],
                    schema=_TRADE_SCHEMA,
                )
                con.register(_TRADES_VIEW, table)
                try:
                    con.execute(f"INSERT INTO simulation_trades SELECT * FROM {_TRADES_VIEW}")
                finally:
                    con.unregister(_TRADES_VIEW)

            return catalog_sql.record_simulation(
                con,
                DUCKDB.placeholder,
                _REFUSALS,
                insert_trades,
                name,
                metrics,
                trades,
                series_columns,
                row_count,
                first_ts,
                last_ts,
            )

    def record_simulation_failure(self, name: str, message: str) -> SimulationRecord:
        """Mark the sim "failed", deleting its outputs and trades, in one transaction."""
        with self._transaction() as con:
            return catalog_sql.record_simulation_failure(con, DUCKDB.placeholder, name, message)

    def list_simulation_trades(self, name: str) -> list[SimulationTrade]:
        """The sim's trades, ordered by trade number."""
        with self._connect(write=False) as con:
            rows = con.execute(_LIST_TRADES, [name]).fetchall()
        return [catalog_sql.simulation_trade_from_row(row) for row in rows]

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
        with self._transaction() as con:
            return job_requests_sql.submit(
                con, DUCKDB.placeholder, _REFUSALS, kind, config, requested_by, parent_id, target, rejected
            )

    def get_job_request(self, request_id: int) -> JobRequestRecord | None:
        """The request with this id, or None."""
        with self._connect(write=False) as con:
            return job_requests_sql.get(con, DUCKDB.placeholder, request_id)

    def list_job_requests(
        self, statuses: Sequence[str] | None = None, kind: str | None = None
    ) -> list[JobRequestRecord]:
        """Requests in `statuses` and of `kind` (each filter only if given), oldest first."""
        with self._connect(write=False) as con:
            return job_requests_sql.list_requests(con, DUCKDB.placeholder, statuses, kind)

    def list_job_runs(self, request_id: int) -> list[JobRunRecord]:
        """The request's Dagster runs, in the order they started."""
        with self._connect(write=False) as con:
            return job_requests_sql.list_runs(con, DUCKDB.placeholder, request_id)

    def begin_job_intake(self, request_id: int) -> JobRequestRecord | None:
        """Count an intake attempt; see `Catalog.begin_job_intake`."""
        with self._transaction() as con:
            return job_requests_sql.begin_intake(con, DUCKDB.placeholder, request_id)

    def refuse_job_request(self, request_id: int, status: str, message: str) -> JobRequestRecord:
        """End a request not taken as REJECTED or FAILED; see `Catalog.refuse_job_request`."""
        with self._transaction() as con:
            return job_requests_sql.refuse(con, DUCKDB.placeholder, request_id, status, message)

    def record_job_run(self, run: JobRunRecord, target_completed: bool) -> JobRequestRecord:
        """Record a run and settle its request, in one transaction; see `Catalog.record_job_run`."""
        with self._transaction() as con:
            return job_requests_sql.record_run(con, DUCKDB.placeholder, _REFUSALS, run, target_completed)

    def settle_job_request(self, request_id: int, target_completed: bool) -> JobRequestRecord:
        """Settle the request's status; see `Catalog.settle_job_request`."""
        with self._transaction() as con:
            return job_requests_sql.settle(con, DUCKDB.placeholder, request_id, target_completed)

    @contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A write connection inside one transaction: committed if the block ends normally, else
        rolled back, so a multi-statement write is all or nothing."""
        with self._connect(write=True) as con:
            con.begin()
            try:
                yield con
            except BaseException:
                con.rollback()
                raise
            con.commit()

    def _connect(self, *, write: bool) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        if self.auto_migrate and not self._migrated:
            self.migrate()
        return duckdb_file.connect(Path(self.path), write=write)
