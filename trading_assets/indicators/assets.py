"""`indicators`: one indicator set of one dataset, computed from its bars into `<dataset>_<version>`."""

import json
from collections.abc import Iterator

import dagster as dg
import numpy as np

from resources.catalog import Catalog
from resources.timeseries import TimeSeriesStore
from trading_assets.bars.assets import bars
from trading_assets.compute.charts import histogram_grid_png, indicator_overlay_png
from trading_assets.compute.column_stats import column_stats
from trading_assets.indicators import checks
from trading_assets.indicators.service import Computed, compute_into_store, record_outcome
from trading_assets.metadata import png_md
from trading_assets.partitions import indicator_sets, one_dimension

INDICATORS_KEY = dg.AssetKey("indicators")

# Each set partition dataset|version reads exactly the bars partition of its dataset.
BARS_OF_THE_DATASET = one_dimension("dataset")


def _overlay_columns(computed: Computed) -> dict[str, np.ndarray]:
    """Two columns to draw over the price: price-scale outputs (moving averages, bands, VWAP) first."""
    spec = computed.spec
    on_price = [
        c.name
        for c in spec.columns
        if spec.indicator(c.entry).overlay and c.output not in ("pctb", "bandwidth")
    ]
    return {name: computed.values[name] for name in on_price[:2]}


def _stats_table(computed: Computed) -> dg.MetadataValue:
    lookback = {c.name: c.lookback for c in computed.spec.columns}
    rows = [
        dg.TableRecord(
            {
                "column": s.name,
                "lookback": lookback[s.name],
                "min": s.min,
                "max": s.max,
                "mean": s.mean,
                "std": s.std,
                "nan_count": s.nan_count,
            }
        )
        for s in column_stats(computed.values)
    ]
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn("column", "string"),
            dg.TableColumn("lookback", "int"),
            dg.TableColumn("min", "float"),
            dg.TableColumn("max", "float"),
            dg.TableColumn("mean", "float"),
            dg.TableColumn("std", "float"),
            dg.TableColumn("nan_count", "int"),
        ]
    )
    return dg.MetadataValue.table(rows, schema=schema)


def indicators_metadata(computed: Computed) -> dict[str, object]:
    record, ts = computed.record, computed.bars["ts"]
    n = ts.size
    title = f"{record.measurement}: close and {', '.join(_overlay_columns(computed)) or 'no overlay'}"
    meta: dict[str, object] = {
        "dagster/row_count": n,
        "dagster/table_name": record.measurement,
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn("ts", "timestamp (UTC, us)")]
            + [
                dg.TableColumn(
                    c.name, "double", description=f"{c.output} of entry {c.entry + 1}, warm-up {c.lookback}"
                )
                for c in computed.spec.columns
            ]
        ),
        "dataset": record.dataset,
        "version": record.version,
        "set_name": record.label,
        "spec_sha256": record.spec_sha256,
        "spec": dg.MetadataValue.json(json.loads(record.spec)),
        "code_version": computed.code_version,
        "bars_sha256": computed.bars_sha256,
        "update": computed.mode,
        "note": computed.note or "",
        "rows_written": computed.rows_written,
        "compute_seconds": dg.MetadataValue.float(round(computed.seconds, 3)),
        "dataset_version": computed.dataset_version,
        "column_stats": _stats_table(computed),
    }
    if n:
        meta["first_ts"] = dg.MetadataValue.timestamp(float(ts[0]) / 1e6)
        meta["last_ts"] = dg.MetadataValue.timestamp(float(ts[-1]) / 1e6)
        meta["price_with_overlays"] = png_md(
            "price with overlays",
            indicator_overlay_png(ts, computed.bars["close"], _overlay_columns(computed), title),
        )
        meta["histograms"] = png_md(
            "histograms, first half vs second half",
            histogram_grid_png(computed.values, split=n // 2),
        )
    return meta


@dg.asset(
    partitions_def=indicator_sets,
    deps=[dg.AssetDep(bars, partition_mapping=BARS_OF_THE_DATASET)],
    check_specs=checks.check_specs(INDICATORS_KEY),
    group_name="indicators",
    kinds={"python", "numba"},
    description="One indicator set of one dataset (partition dataset|version), computed from that dataset's "
    "bars into the table <dataset>_<version>. The spec is fixed at registration; a longer export of the "
    "same bars recomputes only the tail.",
)
def indicators(
    context: dg.AssetExecutionContext,
    timeseries: dg.ResourceParam[TimeSeriesStore],
    catalog: dg.ResourceParam[Catalog],
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    keys = context.partition_key.keys_by_dimension
    dataset, version = keys["dataset"], int(keys["version"])
    computed = compute_into_store(timeseries, catalog, dataset, version)
    context.log.info(
        f"{computed.record.measurement}: {computed.mode} update, {computed.rows_written} rows written "
        f"of {computed.bars['close'].size} ({computed.seconds:.2f}s)"
    )
    if computed.note:
        context.log.warning(f"{computed.record.measurement}: {computed.note}")
    results = [
        checks.no_lookahead(computed),
        checks.warmup_only_nans(computed),
        checks.matches_store(computed, timeseries),
    ]
    errors = [r for r in results if not r.passed and r.severity == dg.AssetCheckSeverity.ERROR]
    record_outcome(catalog, computed, [f"{r.check_name}: {r.description}" for r in errors])
    yield dg.MaterializeResult(
        metadata=indicators_metadata(computed),
        data_version=dg.DataVersion(
            f"{computed.record.spec_sha256[:16]}-{computed.bars_sha256[:16]}-{computed.code_version}"
        ),
    )
    yield from results
