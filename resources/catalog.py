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
