"""Checks on the `bars` asset."""

import json
import warnings
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa

from resources.catalog import Catalog
from resources.timeseries import TimeSeriesStore
from trading_assets.bars.assets import bars
from trading_assets.compute.bar_format import BAR_FIELDS, ReadOptions, detect_format, reference_rows
from trading_assets.compute.files import file_sha256
from trading_assets.partitions import datasets

BARS_MATCH_SOURCE = "bars_match_source"
SAMPLE_ROWS = 500


def sample_rows(row_count: int, seed_hex: str, size: int = SAMPLE_ROWS) -> np.ndarray:
    """Sorted distinct row indices: the first, the last and a random sample seeded by the file's hash."""
    rng = np.random.default_rng(int(seed_hex[:16], 16))
    picked = rng.choice(row_count, size=min(size, row_count), replace=False)
    return np.unique(np.concatenate(([0, row_count - 1], picked)))


def compare_with_source(
    path: Path, options: ReadOptions, store: TimeSeriesStore, table: str, rows: np.ndarray, row_count: int
) -> list[str]:
    """Mismatches between stored rows and the same rows re-read from the export by the reference reader,
    and between the stored row count and the source's."""
    expected = reference_rows(path, detect_format(path, options), set(rows.tolist()))
    stored: dict[int, tuple[int, tuple[float, ...]]] = {}
    offset = 0
    for batch in store.iter_batches(table, columns=["ts", *BAR_FIELDS]):
        ts = batch.column("ts").cast(pa.int64()).to_numpy()
        values = [batch.column(f).to_numpy() for f in BAR_FIELDS]
        for r in rows[(rows >= offset) & (rows < offset + batch.num_rows)].tolist():
            stored[r] = (int(ts[r - offset]), tuple(float(v[r - offset]) for v in values))
        offset += batch.num_rows
    problems = []
    for r in rows.tolist():
        if r not in stored or r not in expected:
            problems.append(f"row {r}: missing in {'the store' if r not in stored else 'the source'}")
        elif stored[r] != expected[r]:
            problems.append(f"row {r}: stored {stored[r]} but the source says {expected[r]}")
    if offset != row_count:
        problems.append(f"the store holds {offset} rows; the source has {row_count}")
    return problems


def _bars_match_source(
    context: dg.AssetCheckExecutionContext,
    timeseries: dg.ResourceParam[TimeSeriesStore],
    catalog: dg.ResourceParam[Catalog],
) -> dg.AssetCheckResult:
    record = catalog.get_dataset(context.partition_key)
    if record is None:
        return dg.AssetCheckResult(passed=False, description="dataset is not in the catalog")
    path = Path(record.source_file)
    if not path.exists():
        return dg.AssetCheckResult(passed=False, description=f"source file {path} is gone")
    if file_sha256(path) != record.source_sha256:
        return dg.AssetCheckResult(
            passed=False, description=f"{path.name} changed since it was imported; materialize bars again"
        )
    rows = sample_rows(record.row_count, record.source_sha256)
    problems = compare_with_source(
        path,
        ReadOptions.from_dict(json.loads(record.read_options)),
        timeseries,
        record.table_name,
        rows,
        record.row_count,
    )
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={
            "rows_compared": len(rows),
            "mismatches": len(problems),
            "first_mismatches": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems[:10]) or "none"),
        },
    )


# partitions_def on a check is a preview feature in dagster 1.13 (pinned in requirements.lock). It gives one
# result per dataset partition in the UI, which is what a person checking a dataset looks for; the preview
# warning is silenced here, for this definition only.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec")
    bars_match_source = dg.asset_check(
        asset=bars,
        name=BARS_MATCH_SOURCE,
        partitions_def=datasets,
        description=(
            "Re-reads a random sample of rows (plus the first and last) from the store and compares them "
            "exactly with the export file, parsed line by line by an independent reference reader."
        ),
    )(_bars_match_source)
