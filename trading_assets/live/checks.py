"""Checks of live trading, against sources independent of the services that wrote what they check:

- `live_bars_lag` (on `live_bars`): every recorded symbol of a running strategy is fewer than `WARN_BARS`
  closed bars behind now (WARN from there, ERROR from `FAIL_BARS` or with no bars at all); the sensor
  that observes `live_bars` reports it every minute, and it can be run by hand;
- `signals_match_replay` and `fills_match_venue` (blocking, on `live_reconciliation`): the day's signals
  equal the offline replay bit for bit, and the day's fills equal the venue's; each fails naming the
  first differences (strategy or account, bar or trade id, field, ours and theirs).
"""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import dagster as dg

from resources.catalog import Catalog
from resources.timeseries import TimeSeriesStore
from trading_assets.live.reconcile import FillComparison, RecordedTable, SignalComparison, bars_health

LIVE_BARS_KEY = dg.AssetKey("live_bars")
LIVE_RECONCILIATION_KEY = dg.AssetKey("live_reconciliation")
LIVE_BARS_LAG = "live_bars_lag"
SIGNALS_MATCH_REPLAY = "signals_match_replay"
FILLS_MATCH_VENUE = "fills_match_venue"
# The limits of live bars, in one place: the lag check counts the closed bars a running strategy's symbol
# has not recorded (WARN_BARS or more warn, FAIL_BARS or more is an error); the freshness policy of
# `live_bars` (assets.py) is the same bars in time without a new one.
BAR = timedelta(minutes=1)
WARN_BARS = 3
FAIL_BARS = 5
# Differences named in a failed check's description (all of them are in the report's metadata).
SHOWN = 5


def bars_lag_evaluation(tables: Sequence[RecordedTable]) -> dg.AssetCheckEvaluation:
    """The `live_bars_lag` outcome of `bars_health`'s rows: the running strategies' tables only."""
    watched = [t for t in tables if t.running]
    errors, warnings = [], []
    for t in watched:
        if t.error is not None or t.last_bar is None:
            errors.append(f"{t.table}: {t.error or 'no bars recorded'}")
        elif t.bars_behind is not None and t.bars_behind >= FAIL_BARS:
            errors.append(f"{t.table}: {t.bars_behind} bars behind")
        elif t.bars_behind is not None and t.bars_behind >= WARN_BARS:
            warnings.append(f"{t.table}: {t.bars_behind} bars behind")
    worst = max((t.bars_behind for t in watched if t.bars_behind is not None), default=0)
    if not watched:
        description = "no running strategy: no recorded symbol to watch"
    elif errors or warnings:
        description = "; ".join(errors + warnings)
    else:
        description = f"{len(watched)} recorded table(s) less than {WARN_BARS} bars behind now"
    return dg.AssetCheckEvaluation(
        asset_key=LIVE_BARS_KEY,
        check_name=LIVE_BARS_LAG,
        passed=not errors and not warnings,
        severity=dg.AssetCheckSeverity.ERROR if errors else dg.AssetCheckSeverity.WARN,
        description=description,
        metadata={
            "tables_watched": len(watched),
            "most_bars_behind": worst,
            "warn_from_bars": WARN_BARS,
            "fail_from_bars": FAIL_BARS,
        },
    )


@dg.asset_check(
    asset=LIVE_BARS_KEY,
    name=LIVE_BARS_LAG,
    description=f"Every recorded symbol of a running strategy is fewer than {WARN_BARS} closed bars behind "
    f"now (WARN from {WARN_BARS}, ERROR from {FAIL_BARS}); a running strategy's table without bars is an "
    "error. The "
    "live_bars sensor reports it every minute.",
)
def live_bars_lag(
    catalog: dg.ResourceParam[Catalog], timeseries: dg.ResourceParam[TimeSeriesStore]
) -> dg.AssetCheckResult:
    evaluation = bars_lag_evaluation(bars_health(catalog, timeseries, datetime.now(UTC)))
    return dg.AssetCheckResult(
        passed=evaluation.passed,
        severity=evaluation.severity,
        description=evaluation.description,
        metadata=evaluation.metadata,
    )


def reconciliation_check_specs() -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            SIGNALS_MATCH_REPLAY,
            asset=LIVE_RECONCILIATION_KEY,
            blocking=True,
            description="The day's recorded signals of each strategy equal replay_signals over the recorded "
            "bars from the table's first row: prediction bits and target.",
        ),
        dg.AssetCheckSpec(
            FILLS_MATCH_VENUE,
            asset=LIVE_RECONCILIATION_KEY,
            blocking=True,
            description="The day's fills in the orders repository equal the venue's, per venue account, "
            "by trade id and field by field; none missing on either side.",
        ),
    ]


def _described(differences: list[str], passed: str) -> str:
    if not differences:
        return passed
    more = f" (and {len(differences) - SHOWN} more)" if len(differences) > SHOWN else ""
    return f"{len(differences)} difference(s): " + "; ".join(differences[:SHOWN]) + more


def signals_match_replay(comparisons: Sequence[SignalComparison]) -> dg.AssetCheckResult:
    differences = [str(d) for c in comparisons for d in c.differences]
    signals = sum(c.signals for c in comparisons)
    return dg.AssetCheckResult(
        check_name=SIGNALS_MATCH_REPLAY,
        passed=not differences,
        description=_described(
            differences, f"{signals} signal(s) of {len(comparisons)} strategy(ies) equal the replay"
        ),
        metadata={"strategies": len(comparisons), "signals": signals, "differences": len(differences)},
    )


def fills_match_venue(comparisons: Sequence[FillComparison]) -> dg.AssetCheckResult:
    differences = [str(d) for c in comparisons for d in c.differences]
    ours = sum(c.ours for c in comparisons)
    return dg.AssetCheckResult(
        check_name=FILLS_MATCH_VENUE,
        passed=not differences,
        description=_described(
            differences, f"{ours} fill(s) of {len(comparisons)} account(s) equal the venue's"
        ),
        metadata={"accounts": len(comparisons), "fills": ours, "differences": len(differences)},
    )
