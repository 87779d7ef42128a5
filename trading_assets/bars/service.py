"""Bars ingestion: one export file -> validated bars table in the store -> dataset row in the catalog.

The `bars` asset and `trading-assets ingest` both call `ingest_bars`, so the command line and the UI
import a file the same way. Everything is read, validated and compared with the stored history before
anything is written. Then, so that a crash at any point leaves the old dataset or the new one:

1. the store stages the new bars beside the table (`<table>__staging`); the table is untouched;
2. the catalog writes the new dataset row with `publish_pending`: the commit point;
3. the store publishes the staged bars as the table;
4. the catalog clears `publish_pending`.

A crash before 2 leaves the old table and row (a stale staging table is dropped by the next stage); a
crash after 2 leaves a row that says so, and `finish_publication` (run first by every import of the
dataset) completes 3 and 4.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from resources.catalog import Catalog
from resources.landing import LandingFile
from resources.timeseries import StoreError, TableSchema, TimeSeriesStore
from trading_assets import naming
from trading_assets.compute.bar_checks import BarsReport, validate_bars
from trading_assets.compute.bar_format import BarFileError, BarFormat, locate_row, read_bars
from trading_assets.compute.bar_history import HistoryChange, history_change
from trading_assets.compute.dataset_options import DatasetOptions
from trading_assets.compute.files import file_sha256
from trading_assets.records import DatasetRecord

BARS_SCHEMA = TableSchema(
    columns=(
        ("open", "double"),
        ("high", "double"),
        ("low", "double"),
        ("close", "double"),
        ("volume", "double"),
    ),
    partition_by="MONTH",
)


class HistoryRewriteError(BarFileError):
    """A re-import that would drop stored bars or change their values, without `replace`."""


@dataclass(frozen=True)
class IngestResult:
    record: DatasetRecord
    report: BarsReport
    format: BarFormat
    change: HistoryChange


def ingest_bars(
    source: LandingFile,
    store: TimeSeriesStore,
    catalog: Catalog,
    options: DatasetOptions | None = None,
) -> IngestResult:
    """Import `source` as dataset `source.dataset`; raise (storing nothing) when the file is bad or would
    rewrite the stored history without `options.replace`."""
    # First, whatever the file now holds: an import that died after its commit point is completed.
    finish_publication(source.dataset, store, catalog)
    path = source.path
    options = options if options is not None else source.options()
    # The hash is only needed for the catalog row: a thread computes it while the file is read and staged.
    with ThreadPoolExecutor(1, thread_name_prefix="sha256") as hashing:
        sha = hashing.submit(file_sha256, path)
        parsed = read_bars(path, options.read)
        report = validate_bars(parsed, path, options.rules, options.read.calendar)
        table = naming.bars_table(source.dataset)
        stored = store.read(table) if table in store.list_tables() else None
        change = history_change(stored, parsed.table)
        if change.rewrites_history and not options.replace:
            line = None if change.first_row is None else _line(path, parsed.format, change.first_row)
            raise HistoryRewriteError(
                path.name,
                f"would rewrite the stored history of {source.dataset!r}: {change.summary()}; import it "
                f'with --replace (or "replace": true in {path.name.split(".", 1)[0]}.json) to replace the '
                "dataset",
                line,
                row_label="row" if parsed.format.kind == "parquet" else "line",
            )
        store.stage(table, parsed.table, BARS_SCHEMA)
        record = DatasetRecord(
            name=source.dataset,
            source_file=str(path.resolve()),
            source_sha256=sha.result(),
            bar_interval_s=max(report.interval_s, 1),
            row_count=report.rows,
            first_ts=report.first_ts,
            last_ts=report.last_ts,
            table_name=table,
            columns=tuple(BARS_SCHEMA.column_names),
            read_options=options.read.to_json(),
        )
    catalog.upsert_dataset(replace(record, publish_pending=True))
    if not store.publish(table):
        # Another import of the dataset took the staged rows: its row, not this one, must describe them.
        raise StoreError(
            f"{table}: the staged bars were published or dropped by another import; import again"
        )
    return IngestResult(catalog.upsert_dataset(record), report, parsed.format, change)


def finish_publication(dataset: str, store: TimeSeriesStore, catalog: Catalog) -> DatasetRecord | None:
    """The dataset's row once the store holds the bars it describes: an import interrupted after its
    commit point is completed (its staged bars published, the flag cleared). None for an unknown dataset."""
    record = catalog.get_dataset(dataset)
    if record is None or not record.publish_pending:
        return record
    store.publish(record.table_name)  # False when the crash came after the store had published
    return catalog.upsert_dataset(replace(record, publish_pending=False))


def _line(path, fmt: BarFormat, row: int) -> int:
    return row + 1 if fmt.kind == "parquet" else locate_row(path, fmt, row)
