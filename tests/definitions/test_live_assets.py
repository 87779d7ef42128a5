"""Dagster's side of live trading: the promote_strategy job, live_bars observed with its lag check, and
live_reconciliation of a day recorded by the real runner and executor on a paper account, against the
offline replay and the paper venue's own file."""

from __future__ import annotations

import asyncio
import json
import shutil
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from live_setup import SYMBOL, TABLE, Desk, Research, bars_ending

from resources.duckdb_catalog import DuckDBCatalog
from resources.duckdb_store import DuckDBStore
from trading_assets.bars.service import BARS_SCHEMA
from trading_assets.live.assets import live_bars_sensor, live_reconciliation, observe_live_bars
from trading_assets.live.checks import FAIL_BARS, LIVE_BARS_LAG
from trading_assets.live.jobs import promote_strategy, reconcile_live_day_schedule
from trading_assets.live.reconcile import LiveAccount, LiveAccounts, bars_health

DAY = "2025-01-03"


@pytest.fixture(scope="module")
def desk(research: Research, tmp_path_factory: pytest.TempPathFactory) -> Desk:
    """Strategy demo traded for 60 bars of one day by the runner and the executor on the paper broker."""
    desk = Desk(research, tmp_path_factory.mktemp("desk"))
    asyncio.run(desk.trade(60))
    return desk


def _promote(catalog: DuckDBCatalog, research: Research, **config: object) -> dg.ExecuteInProcessResult:
    settings = {"name": "demo", "run": research.run, "symbol": SYMBOL, "account": "paper", **config}
    return promote_strategy.execute_in_process(
        run_config={"ops": {"promote_strategy_op": {"config": settings}}},
        resources={"catalog": catalog},
        raise_on_error=False,
    )


def _catalog_copy(research: Research, tmp_path) -> DuckDBCatalog:  # type: ignore[no-untyped-def]
    shutil.copy(research.catalog.path, tmp_path / "catalog.duckdb")
    return DuckDBCatalog(path=str(tmp_path / "catalog.duckdb"))


def test_promote_strategy_stores_the_strategy_and_shows_it(research, tmp_path) -> None:  # type: ignore[no-untyped-def]
    catalog = _catalog_copy(research, tmp_path)

    result = _promote(catalog, research, fold=0, amount="0.05")

    assert result.success
    strategy = catalog.get_strategy("demo")
    assert (strategy.walkforward_run, strategy.fold, strategy.account) == (research.run, 0, "paper")
    shown = result.output_for_node("promote_strategy_op")
    assert shown == "demo"
    [event] = [e for e in result.all_node_events if e.is_successful_output]
    metadata = {k: v.value for k, v in event.step_output_data.metadata.items()}
    assert metadata["model"] == f"{research.run} fold 0"
    assert metadata["model_sha256"] == strategy.model_sha256
    assert metadata["instrument"] == "BTC/USDT on binance/paper"
    assert metadata["rules"] == "units 0.05, long only"
    assert metadata["state"] == "desired stopped, now stopped"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"fold": 7}, "fold: btc25_run1 has no succeeded fold 7 with a model"),
        ({"run": "btc25_run9"}, "run: 'btc25_run9' is not in the catalog"),
    ],
)
def test_promote_strategy_fails_with_the_one_line_reason(research, tmp_path, config, message) -> None:  # type: ignore[no-untyped-def]
    catalog = _catalog_copy(research, tmp_path)

    result = _promote(catalog, research, **config)

    assert not result.success
    [failure] = result.get_step_failure_events()
    assert failure.step_failure_data.user_failure_data.description == message
    assert catalog.get_strategy("demo") is None


def _recorded(research: Research, tmp_path, last_open: datetime) -> tuple[DuckDBCatalog, DuckDBStore]:  # type: ignore[no-untyped-def]
    catalog = _catalog_copy(research, tmp_path)
    _promote(catalog, research)
    catalog.set_strategy_desired_state("demo", "running")
    store = DuckDBStore(path=str(tmp_path / "ts.duckdb"))
    store.write(TABLE, bars_ending(research.later, last_open), BARS_SCHEMA)
    return catalog, store


# Half a minute into the bar that opened at 12:00.
NOW = datetime(2025, 3, 1, 12, 0, 30, tzinfo=UTC)
FORMING = NOW.replace(second=0)


def test_fresh_bars_are_reported_with_their_table_and_pass_the_lag_check(research, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # The bar that opened at 11:59 closed at 12:00: at 12:00:30 the table is not behind at all.
    catalog, store = _recorded(research, tmp_path, FORMING - timedelta(minutes=1))

    events, cursor = observe_live_bars(bars_health(catalog, store, NOW), None)

    materialization, check = events
    assert isinstance(materialization, dg.AssetMaterialization)
    [row] = materialization.metadata["tables"].value.records
    assert row.data == {
        "table": TABLE,
        "symbol": "binance BTC/USDT",
        "last_bar": "2025-03-01 11:59 UTC",
        "bars_behind": 0,
        "strategies": "demo*",
    }
    assert check.check_name == LIVE_BARS_LAG and check.passed
    # Nothing new at the next look: no materialization, only the check.
    again, _ = observe_live_bars(bars_health(catalog, store, NOW), cursor)
    assert [type(e) for e in again] == [dg.AssetCheckEvaluation]


def test_a_symbol_bars_behind_fails_the_lag_check_naming_table_and_lag(research, tmp_path) -> None:  # type: ignore[no-untyped-def]
    catalog, store = _recorded(research, tmp_path, FORMING - timedelta(minutes=12))

    [_, check] = observe_live_bars(bars_health(catalog, store, NOW), None)[0]

    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.description == f"{TABLE}: 11 bars behind"
    # Seven minutes earlier the same table was 4 bars behind: a warning.
    earlier = bars_health(catalog, store, NOW - timedelta(minutes=12 - FAIL_BARS))
    [_, warned] = observe_live_bars(earlier, None)[0]
    assert not warned.passed and warned.severity == dg.AssetCheckSeverity.WARN
    assert warned.description == f"{TABLE}: {FAIL_BARS - 1} bars behind"


def test_the_sensor_reports_the_observation_and_the_check_at_the_real_clock(research, tmp_path) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    catalog, store = _recorded(research, tmp_path, now - timedelta(minutes=30))
    context = dg.build_sensor_context(resources={"catalog": catalog, "timeseries": store})

    result = live_bars_sensor(context)

    kinds = [type(e) for e in result.asset_events]
    assert kinds == [dg.AssetMaterialization, dg.AssetCheckEvaluation]
    assert not result.asset_events[1].passed and "bars behind" in result.asset_events[1].description
    assert json.loads(result.cursor) == {TABLE: (now - timedelta(minutes=30)).isoformat()}


def _reconcile(desk: Desk, instance: dg.DagsterInstance) -> dict[str, dg.AssetCheckEvaluation]:
    accounts = LiveAccounts(
        accounts=[
            LiveAccount(venue="binance", account="paper", broker="paper", state_file=str(desk.state_file))
        ]
    )
    result = dg.materialize(
        [live_reconciliation],
        partition_key=DAY,
        resources={"catalog": desk.catalog, "timeseries": desk.store, "live_accounts": accounts},
        instance=instance,
        raise_on_error=False,
    )
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_a_day_traded_by_the_runner_and_executor_reconciles(desk, instance) -> None:  # type: ignore[no-untyped-def]
    checks = _reconcile(desk, instance)

    assert checks["signals_match_replay"].passed, checks["signals_match_replay"].description
    assert checks["signals_match_replay"].description == "60 signal(s) of 1 strategy(ies) equal the replay"
    assert checks["fills_match_venue"].passed, checks["fills_match_venue"].description
    assert desk.catalog.list_fills(venue="binance")  # the day traded
    [materialization] = instance.fetch_materializations(dg.AssetKey("live_reconciliation"), limit=1).records
    metadata = materialization.asset_materialization.metadata
    assert metadata["accounts"].value == "binance/paper"
    assert metadata["fills_ours"].value == metadata["fills_venue"].value == len(desk.catalog.list_fills())


def test_a_signal_altered_in_the_catalog_fails_the_replay_check_naming_the_bar(desk, instance) -> None:  # type: ignore[no-untyped-def]
    signal = desk.catalog.list_signals("demo")[20]
    flipped = 0.0 if signal.target else 1.0
    update = "UPDATE signals SET target = %s WHERE strategy = %s AND bar_ts = %s"
    desk.catalog._run(lambda db: db.execute(update, [flipped, "demo", signal.bar_ts]), write=True)
    try:
        check = _reconcile(desk, instance)["signals_match_replay"]
    finally:
        desk.catalog._run(lambda db: db.execute(update, [signal.target, "demo", signal.bar_ts]), write=True)

    assert not check.passed
    assert check.description == (
        f"1 difference(s): demo bar {signal.bar_ts:%Y-%m-%d %H:%M:%S}: target ours {flipped:g}, "
        f"theirs {signal.target:g}"
    )


def test_a_fill_missing_at_the_venue_fails_the_fills_check_naming_the_trade(desk, instance) -> None:  # type: ignore[no-untyped-def]
    kept = desk.state_file.read_text()
    state = json.loads(kept)
    dropped = state["fills"].pop(0)
    state["fills"][0]["price"] = "1"
    altered = state["fills"][0]
    desk.state_file.write_text(json.dumps(state))
    try:
        check = _reconcile(desk, instance)["fills_match_venue"]
    finally:
        desk.state_file.write_text(kept)

    assert not check.passed
    ours = next(f for f in desk.catalog.list_fills() if f.trade_id == altered["trade_id"])
    assert check.description == (
        f"2 difference(s): binance/paper trade {dropped['trade_id']}: trade ours recorded, theirs not at the "
        f"venue; binance/paper trade {altered['trade_id']}: price ours {ours.price}, theirs 1"
    )


def test_each_day_is_reconciled_after_it_ended() -> None:
    tick = datetime(2025, 1, 4, 0, 15, tzinfo=UTC)

    request = reconcile_live_day_schedule(dg.build_schedule_context(scheduled_execution_time=tick))

    assert (request.partition_key, request.run_key) == (DAY, DAY)
