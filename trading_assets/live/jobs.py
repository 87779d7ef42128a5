"""The live room's jobs: promote a completed walkforward run's fold model to a strategy (`promote_strategy`,
the launchpad's form of `trading-assets live promote`), and reconcile a day of live trading."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from resources.catalog import Catalog
from trading_assets.live.config import PromoteConfig, StrategyRules
from trading_assets.live.service import PromotionError, promote
from trading_assets.metadata import job_tags
from trading_assets.records import StrategyRecord

PROMOTE_JOB = "promote_strategy"
RECONCILE_JOB = "reconcile_live_day"
# What the launchpad opens with: the demo's strategy (`trading-assets demo`, then `live up`), edited there.
PROMOTE_DEFAULTS = PromoteConfig(name="demo", run="btc25_run1", symbol="BTC/USDT", account="paper")


def strategy_metadata(strategy: StrategyRecord) -> dict[str, object]:
    """The stored strategy as a person reads it."""
    rules = StrategyRules.from_json(strategy.sizing)
    return {
        "strategy": strategy.name,
        "model": f"{strategy.walkforward_run} fold {strategy.fold}",
        "model_sha256": strategy.model_sha256,
        "model_path": dg.MetadataValue.path(strategy.model_path),
        "indicator_set": f"{strategy.dataset} v{strategy.indicator_version}",
        "bars_sha256": strategy.bars_sha256,
        "thresholds": f"long >= {strategy.long_threshold:.6g}, short <= {strategy.short_threshold:.6g}",
        "instrument": f"{strategy.symbol} on {strategy.venue}/{strategy.account}",
        "rules": f"{rules.sizing} {rules.amount}, {rules.direction} only"
        if rules.direction != "both"
        else f"{rules.sizing} {rules.amount}, long and short",
        "dead_zone": rules.dead_zone,
        "limits": f"position <= {strategy.max_position}, order <= {strategy.max_order_notional} quote, "
        f"<= {strategy.max_orders_per_minute} orders/min",
        "state": f"desired {strategy.desired_state}, now {strategy.actual_state}",
    }


@dg.op(
    name="promote_strategy_op",
    description="Checks the fold's model file against its recorded SHA-256, then stores the strategy (or "
    "updates its thresholds, sizing and limits), stopped until its desired state is set to running.",
)
def promote_strategy_op(
    context: dg.OpExecutionContext, config: PromoteConfig, catalog: dg.ResourceParam[Catalog]
) -> dg.Output[str]:
    try:
        strategy = promote(catalog, config)
    except PromotionError as err:
        raise dg.Failure(description=str(err), allow_retries=False) from None
    context.log.info(
        f"strategy {strategy.name}: {strategy.walkforward_run} fold {strategy.fold} trading "
        f"{strategy.symbol} on {strategy.venue}/{strategy.account}; stopped until started"
    )
    return dg.Output(strategy.name, metadata=strategy_metadata(strategy))


@dg.job(
    name=PROMOTE_JOB,
    description="Promote one fold's model of a completed walkforward run to a live strategy (model hash "
    "checked; the fold's thresholds unless given; sizing, instrument, account and risk limits). It starts "
    "stopped: `trading-assets live start <name>` (or the dashboard) runs it.",
    tags=job_tags("live"),
    config=dg.RunConfig(ops={"promote_strategy_op": PROMOTE_DEFAULTS}),
)
def promote_strategy() -> None:
    promote_strategy_op()


reconcile_live_day_job = dg.define_asset_job(
    RECONCILE_JOB,
    selection=dg.AssetSelection.assets("live_reconciliation"),
    description="Reconcile a UTC day of live trading (partition: the day): signals against the offline "
    "replay, fills against the venue's.",
    tags=job_tags("live"),
)


@dg.schedule(
    cron_schedule="15 0 * * *",
    execution_timezone="UTC",
    job=reconcile_live_day_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Reconciles each UTC day a quarter of an hour after it ended (its last bars and fills have "
    "arrived by then).",
)
def reconcile_live_day_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    # None only when evaluated by hand (the UI's test, a test): the daemon always gives its tick's time.
    tick = context.scheduled_execution_time or datetime.now(UTC)
    day = f"{tick - timedelta(days=1):%Y-%m-%d}"
    return dg.RunRequest(run_key=day, partition_key=day)
