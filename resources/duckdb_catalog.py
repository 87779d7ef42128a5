"""The embedded catalog: one DuckDB file, opened per call under duckdb_file's lock."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path

import dagster as dg
import duckdb
from pydantic import Field, PrivateAttr

from resources import catalog_sql, duckdb_file
from resources.catalog import CatalogError, DatasetRecord, IndicatorOutputs, IndicatorSetRecord
from resources.migrations import DUCKDB, apply_migrations

_GET = catalog_sql.get_dataset_sql(DUCKDB.placeholder)
_UPSERT = catalog_sql.upsert_dataset_sql(DUCKDB.placeholder)
_GET_SET = catalog_sql.get_indicator_set_sql(DUCKDB.placeholder)
_GET_SET_BY_MEASUREMENT = catalog_sql.get_indicator_set_by_measurement_sql(DUCKDB.placeholder)
_LIST_SETS_OF = catalog_sql.list_indicator_sets_of_sql(DUCKDB.placeholder)
_RECORD_OUTPUT = catalog_sql.record_indicator_output_sql(DUCKDB.placeholder)


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

    def _connect(self, *, write: bool) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        if self.auto_migrate and not self._migrated:
            self.migrate()
        return duckdb_file.connect(Path(self.path), write=write)
