"""`bars`: one dataset's OHLCV bars, imported from its export in the landing folder."""

import base64

import dagster as dg
import pyarrow as pa
from pydantic import Field

from resources.catalog import Catalog
from resources.landing import LandingFolder
from resources.timeseries import TimeSeriesStore
from trading_assets.bars.service import BARS_SCHEMA, IngestResult, ingest_bars
from trading_assets.compute.bar_checks import BarsReport
from trading_assets.compute.bar_format import BarFormat
from trading_assets.compute.charts import close_price_png
from trading_assets.partitions import datasets


class BarsConfig(dg.Config):
    """Overrides for one import; by default the dataset's `<stem>.json` beside the export decides."""

    timezone: str = Field(default="", description="Source time zone of naive timestamps, e.g. Europe/Berlin")
    datetime_format: str = Field(default="", description="strptime format, e.g. '%d/%m/%Y %H:%M'")
    calendar: str = Field(
        default="",
        description="Trading calendar gaps are counted against: an exchange_calendars code (XNYS, XLON, "
        "...), 24/5 (FX) or 24/7 (crypto); empty: the sidecar's, else every bar interval is due",
    )
    replace: bool = Field(
        default=False,
        description="Replace the stored dataset even where the export drops stored bars or changes their "
        "values (otherwise such a re-import fails; a longer export with the same history appends)",
    )


def human_duration(seconds: int) -> str:
    """60 -> '1m', 5400 -> '1h 30m', 90061 -> '1d 1h 1m 1s'."""
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{v}{unit}" for v, unit in ((days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")) if v]
    return " ".join(parts) or "0s"


def largest_gap(report: BarsReport) -> str:
    """The largest gap for people: its length and the bar before it; with a calendar, the bars it misses
    (a gap over a weekend is longer than the bars it misses)."""
    if report.largest_gap_after is None:
        return "none"
    after = f"after {report.largest_gap_after:%Y-%m-%d %H:%M} UTC"
    if report.calendar is None:
        return f"{human_duration(report.largest_gap_s)} {after}"
    bars = f"{report.largest_gap_bars} bar{'s' if report.largest_gap_bars != 1 else ''}"
    return f"{bars} missing {after} (next bar {human_duration(report.largest_gap_s)} later)"


def gap_metadata(report: BarsReport) -> dict[str, object]:
    """The gap report and the calendar it was counted against."""
    counted = {
        "calendar": report.calendar or "none: every bar interval is due",
        "gap_count": report.gap_count,
        "missing_bars": report.missing_bars,
        "largest_gap": largest_gap(report),
    }
    if report.calendar is not None:
        counted["off_calendar_bars"] = report.off_calendar_bars
    return counted


def bars_metadata(result: IngestResult, chart_png: bytes) -> dict[str, dg.MetadataValue | object]:
    report: BarsReport = result.report
    fmt: BarFormat = result.format
    record = result.record
    return {
        "dagster/row_count": report.rows,
        "dagster/table_name": record.table_name,
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn("ts", "timestamp (UTC, us)")]
            + [dg.TableColumn(n, t) for n, t in BARS_SCHEMA.columns]
        ),
        "first_ts": dg.MetadataValue.timestamp(report.first_ts),
        "last_ts": dg.MetadataValue.timestamp(report.last_ts),
        "bar_interval": human_duration(report.interval_s),
        **gap_metadata(report),
        "source_file": dg.MetadataValue.path(record.source_file),
        "source_sha256": record.source_sha256,
        # new, unchanged, append or rewrite (a re-import with `replace`); the counts say how much.
        "update": result.change.kind,
        "appended_bars": result.change.appended,
        "source_format": dg.MetadataValue.json(
            {
                "delimiter": fmt.delimiter if fmt.delimiter is not None else "whitespace",
                "header": fmt.has_header,
                "timestamp": fmt.datetime_format or fmt.time_kind,
                "timezone": fmt.timezone,
                "ignored_columns": list(fmt.ignored),
            }
        ),
        "close": dg.MetadataValue.md(
            f"![close price](data:image/png;base64,{base64.b64encode(chart_png).decode()})"
        ),
    }


@dg.asset(
    partitions_def=datasets,
    group_name="bars",
    kinds={"python"},
    description="OHLCV bars of one dataset (UTC), imported from its export in the landing folder.",
)
def bars(
    context: dg.AssetExecutionContext,
    config: BarsConfig,
    timeseries: dg.ResourceParam[TimeSeriesStore],
    catalog: dg.ResourceParam[Catalog],
    landing: LandingFolder,
) -> dg.MaterializeResult:
    source = landing.find(context.partition_key)
    options = source.read_options(
        config.timezone or None, config.datetime_format or None, config.calendar or None
    )
    result = ingest_bars(source, timeseries, catalog, source.options().overridden(options, config.replace))
    closes = timeseries.read(result.record.table_name, columns=["ts", "close"])
    png = close_price_png(
        closes.column("ts").cast(pa.int64()).to_numpy(),
        closes.column("close").to_numpy(),
        f"{result.record.name} close",
    )
    context.log.info(
        f"{source.path.name}: {result.report.rows} bars into {result.record.table_name}, "
        f"{result.report.gap_count} gaps"
    )
    return dg.MaterializeResult(
        metadata=bars_metadata(result, png),
        data_version=dg.DataVersion(result.record.source_sha256),
    )
