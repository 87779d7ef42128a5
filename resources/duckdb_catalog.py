"""The embedded catalog: one DuckDB file, opened per call under duckdb_file's lock."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

import dagster as dg
import duckdb
from pydantic import Field, PrivateAttr

from resources import catalog_sql, duckdb_file
from resources.catalog import DatasetRecord
from resources.migrations import DUCKDB, apply_migrations

_GET = catalog_sql.get_dataset_sql(DUCKDB.placeholder)
_UPSERT = catalog_sql.upsert_dataset_sql(DUCKDB.placeholder)


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

    def _connect(self, *, write: bool) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        if self.auto_migrate and not self._migrated:
            self.migrate()
        return duckdb_file.connect(Path(self.path), write=write)
