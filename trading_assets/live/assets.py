"""Live trading as Dagster sees it. The services (recorder, runner, executor) are not Dagster runs: Dagster
observes what they write and reconciles it, a day at a time.

- `live_bars`: the bars the recorder writes, an external asset. `live_bars_sensor` looks every minute
  (one `last_ts` per recorded table, nothing read) and reports a materialization when new bars were
  recorded, so its freshness policy fails when none came for `checks.FAIL_BARS` bars, and the
  `live_bars_lag` check's outcome for each running strategy's symbol;
- `live_reconciliation` (a UTC day per partition): the day's signals against the offline replay and its
  fills against the venue's, with the two blocking checks of checks.py.
"""

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import dagster as dg

from resources.catalog import Catalog
from resources.timeseries import TimeSeriesStore
from trading_assets.live import checks
from trading_assets.live.reconcile import (
    FillComparison,
    LiveAccounts,
    RecordedTable,
    SignalComparison,
    bars_health,
    compare_fills,
    compare_signals,
    day_window,
)

LIVE_GROUP = "live"
OBSERVE_EVERY_S = 60

# One partition per UTC day of live trading; the first is before any recorded bar of the project.
live_days = dg.DailyPartitionsDefinition(start_date="2024-01-01", timezone="UTC")

live_bars = dg.AssetSpec(
    checks.LIVE_BARS_KEY,
    group_name=LIVE_GROUP,
    kinds={"ccxt"},
    description="Closed bars the live recorder writes, one table per venue, symbol and timeframe "
    "(live_<venue>_<base>_<quote>_<timeframe>). Written by the recorder service, not by Dagster: the "
    "live_bars sensor reports a materialization each minute new bars were recorded, with each table's "
    "last bar and lag.",
    freshness_policy=dg.FreshnessPolicy.time_window(
        fail_window=checks.FAIL_BARS * checks.BAR, warn_window=checks.WARN_BARS * checks.BAR
    ),
)


def _table_rows(tables: Sequence[RecordedTable]) -> dg.MetadataValue:
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn("table", "string"),
            dg.TableColumn("symbol", "string"),
            dg.TableColumn("last_bar", "string", description="open time, UTC"),
            dg.TableColumn("bars_behind", "int", description="closed bars not recorded yet"),
            dg.TableColumn("strategies", "string", description="running ones starred"),
        ]
    )
    rows = [
        dg.TableRecord(
            {
                "table": t.table,
                "symbol": f"{t.venue} {t.symbol}",
                "last_bar": f"{t.last_bar:%Y-%m-%d %H:%M} UTC" if t.last_bar else (t.error or "none"),
                "bars_behind": t.bars_behind,
                "strategies": ", ".join(f"{n}*" if n in t.running else n for n in t.strategies),
            }
        )
        for t in tables
    ]
    return dg.MetadataValue.table(rows, schema=schema)


def observe_live_bars(
    tables: Sequence[RecordedTable], cursor: str | None
) -> tuple[list[dg.AssetMaterialization | dg.AssetCheckEvaluation], str]:
    """What the sensor reports of `bars_health`'s rows: a materialization of `live_bars` when a table has a
    bar it did not have at the last look (`cursor`), and the lag check's outcome; and the next cursor."""
    seen = json.loads(cursor) if cursor else {}
    now = {t.table: t.last_bar.isoformat() for t in tables if t.last_bar is not None}
    events: list[dg.AssetMaterialization | dg.AssetCheckEvaluation] = []
    if any(seen.get(table) != last for table, last in now.items()):
        newest = max(t.last_bar for t in tables if t.last_bar is not None)
        events.append(
            dg.AssetMaterialization(
                asset_key=checks.LIVE_BARS_KEY,
                description="new bars recorded",
                metadata={
                    "tables": _table_rows(tables),
                    "newest_bar": dg.MetadataValue.timestamp(newest),
                    "most_bars_behind": max((t.bars_behind or 0 for t in tables), default=0),
                },
            )
        )
    events.append(checks.bars_lag_evaluation(tables))
    return events, json.dumps(now, sort_keys=True)


@dg.sensor(
    name="live_bars_sensor",
    minimum_interval_seconds=OBSERVE_EVERY_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Observes live_bars every minute: each strategy's recorded table's last bar (one last_ts "
    "per table, nothing read); reports a materialization when new bars were recorded and the live_bars_lag "
    "check's outcome. Launches no run.",
)
def live_bars_sensor(
    context: dg.SensorEvaluationContext,
    catalog: dg.ResourceParam[Catalog],
    timeseries: dg.ResourceParam[TimeSeriesStore],
) -> dg.SensorResult | dg.SkipReason:
    tables = bars_health(catalog, timeseries, datetime.now(UTC))
    if not tables:
        return dg.SkipReason("no strategy trades recorded bars yet")
    events, cursor = observe_live_bars(tables, context.cursor)
    return dg.SensorResult(asset_events=events, cursor=cursor)


def _difference_rows(
    signals: Sequence[SignalComparison], fills: Sequence[FillComparison]
) -> dg.MetadataValue:
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn("check", "string"),
            dg.TableColumn("subject", "string", description="strategy, or venue/account"),
            dg.TableColumn("item", "string", description="bar or trade id"),
            dg.TableColumn("field", "string"),
            dg.TableColumn("ours", "string"),
            dg.TableColumn("theirs", "string", description="the replay's, or the venue's"),
        ]
    )
    rows = [
        dg.TableRecord(
            {
                "check": check,
                "subject": d.subject,
                "item": d.item,
                "field": d.field,
                "ours": d.ours,
                "theirs": d.theirs,
            }
        )
        for check, comparisons in (
            (checks.SIGNALS_MATCH_REPLAY, signals),
            (checks.FILLS_MATCH_VENUE, fills),
        )
        for c in comparisons
        for d in c.differences
    ]
    return dg.MetadataValue.table(rows, schema=schema)


@dg.asset(
    partitions_def=live_days,
    deps=[live_bars],
    check_specs=checks.reconciliation_check_specs(),
    group_name=LIVE_GROUP,
    kinds={"python"},
    description="A UTC day of live trading reconciled: each strategy's signals of the day against "
    "replay_signals over its recorded bars (bit for bit), and each venue account's fills of the day "
    "against the venue's (by trade id, field by field). The report lists every difference; both checks "
    "are blocking.",
)
def live_reconciliation(
    context: dg.AssetExecutionContext,
    catalog: dg.ResourceParam[Catalog],
    timeseries: dg.ResourceParam[TimeSeriesStore],
    live_accounts: LiveAccounts,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    start, end = day_window(context.partition_key)
    signals = compare_signals(catalog, timeseries, start, end)
    fills = compare_fills(catalog, timeseries, live_accounts, start, end)
    differences = sum(len(c.differences) for c in [*signals, *fills])
    context.log.info(
        f"{context.partition_key}: {sum(c.signals for c in signals)} signals of {len(signals)} strategies, "
        f"{sum(c.ours for c in fills)} fills of {len(fills)} accounts; {differences} difference(s)"
    )
    yield dg.MaterializeResult(
        metadata={
            "day": context.partition_key,
            "strategies": len(signals),
            "signals": sum(c.signals for c in signals),
            "signal_differences": sum(len(c.differences) for c in signals),
            "accounts": ", ".join(f"{c.venue}/{c.account}" for c in fills) or "none",
            "fills_ours": sum(c.ours for c in fills),
            "fills_venue": sum(c.theirs for c in fills),
            "fill_differences": sum(len(c.differences) for c in fills),
            "differences": _difference_rows(signals, fills),
        }
    )
    yield checks.signals_match_replay(signals)
    yield checks.fills_match_venue(fills)
