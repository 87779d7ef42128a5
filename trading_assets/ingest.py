"""Bars ingestion: one export file -> validated bars table in the store -> dataset row in the catalog.

The `bars` asset and `trading-assets ingest` both call `ingest_bars`, so the command line and the UI
import a file the same way. Everything is read and validated before the store is touched; the store then
replaces the table in one step (it keeps its old rows if that fails), and only then is the catalog updated.
"""

from __future__ import annotations

from dataclasses import dataclass

from resources.catalog import Catalog, DatasetRecord
from resources.landing import LandingFile
from resources.timeseries import TableSchema, TimeSeriesStore
from trading_assets import naming
from trading_assets.compute.bar_checks import BarsReport, validate_bars
from trading_assets.compute.bar_format import BarFormat, ReadOptions, read_bars
from trading_assets.compute.files import file_sha256

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


@dataclass(frozen=True)
class IngestResult:
    record: DatasetRecord
    report: BarsReport
    format: BarFormat


def ingest_bars(
    source: LandingFile,
    store: TimeSeriesStore,
    catalog: Catalog,
    options: ReadOptions | None = None,
) -> IngestResult:
    """Import `source` as dataset `source.dataset`; raise (storing nothing) when the file is bad."""
    path = source.path
    sha = file_sha256(path)
    options = options if options is not None else source.read_options()
    parsed = read_bars(path, options)
    report = validate_bars(parsed, path, calendar=options.calendar)
    table = naming.bars_table(source.dataset)
    store.replace(table, parsed.table, BARS_SCHEMA)
    record = catalog.upsert_dataset(
        DatasetRecord(
            name=source.dataset,
            source_file=str(path.resolve()),
            source_sha256=sha,
            bar_interval_s=max(report.interval_s, 1),
            row_count=report.rows,
            first_ts=report.first_ts,
            last_ts=report.last_ts,
            table_name=table,
            columns=tuple(BARS_SCHEMA.column_names),
            read_options=options.to_json(),
        )
    )
    return IngestResult(record, report, parsed.format)
