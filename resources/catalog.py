"""The catalog contract shared by `PostgresCatalog` (production) and `DuckDBCatalog` (embedded default).

The catalog says what exists and where: every row that describes a time-series table names the table,
its columns and its time range, so a user can find the data from the catalog alone.
"""

from __future__ import annotations

from dataclasses import dataclass
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
