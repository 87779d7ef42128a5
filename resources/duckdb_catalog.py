"""The embedded catalog: one DuckDB file, opened per call under duckdb_file's lock."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from resources.catalog import Catalog
from resources.catalog.dialect import DuckDBDialect


class DuckDBCatalog(Catalog):
    """The catalog in a DuckDB file: the embedded default, with the same tables as PostgresCatalog.

    Every call opens the file for that call only (shared lock to read, exclusive to write), so step
    processes of one run can use it side by side; the exclusive lock also serialises migration runners
    and the numbering of a dataset's sets, runs and sims.
    """

    path: str = Field(description="The catalog file, e.g. data/catalog.duckdb.")

    def _dialect(self) -> DuckDBDialect:
        return DuckDBDialect(Path(self.path))
