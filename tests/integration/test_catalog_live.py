"""The live-trading tables in both catalogs (Postgres in a throwaway schema, DuckDB in a tmp file):
strategies, signals, orders and their events, fills, positions, reconciliation runs and heartbeats."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from catalog_setup import complete_run, minute, new_run, race, with_indicators

from resources.catalog import Catalog, live
from resources.postgres_catalog import PostgresCatalog
from trading_assets.orders import OrderEvent, OrderState, OrderStatus, next_state
from trading_assets.records import (
    CatalogError,
    FillLineage,
    NewFill,
    NewOrder,
    OrderUpdate,
    SignalRecord,
    StaleOrder,
    StrategyRecord,
)

BAR = datetime(2024, 1, 2, 0, 0, tzinfo=UTC)
MODEL = "00" * 32  # fold 0's model in catalog_setup.complete_run


def promoted(catalog: Catalog, name: str = "demo_btc", **changes: Any) -> StrategyRecord:
    """Strategy `name` from fold 0 of a completed run on btc, stored; `changes` applied before storing."""
    if catalog.get_dataset("btc") is None:
        with_indicators(catalog, "btc")
        run = catalog.register_walkforward_run(new_run(catalog))
        complete_run(catalog, run.name, range(2))
    run = catalog.list_walkforward_runs("btc")[0]
    record = StrategyRecord(
        name=name,
        walkforward_run=run.name,
        fold=0,
        model_path=f"models/{run.name}/0.json",
        model_sha256=MODEL,
        measurement=run.measurement,
        indicator_version=1,
        dataset="btc",
        bars_sha256="ab" * 32,
        long_threshold=0.5,
        short_threshold=-0.5,
        sizing=json.dumps({"sizing": "units", "units": 1}),
        symbol="BTC/USDT",
        venue="local",
        account="paper",
        max_position=Decimal(5),
        max_order_notional=Decimal(100_000),
        max_orders_per_minute=10,
    )
    return catalog.upsert_strategy(replace(record, **changes))


def order(catalog: Catalog, seq: int = 0, side: str = "buy", quantity: str = "1") -> str:
    """A market order of demo_btc on BAR, created and sent and accepted; its client order id."""
    created, _ = catalog.create_order(NewOrder("demo_btc", BAR, seq, side, "market", Decimal(quantity)))
    catalog.apply_order_event(created.client_order_id, OrderUpdate("SUBMIT"))
    catalog.apply_order_event(created.client_order_id, OrderUpdate("ACCEPT", venue_order_id=f"v{seq}"))
    return created.client_order_id


def fill(cid: str, trade: str, quantity: str, price: str = "100", side: str = "buy") -> NewFill:
    return NewFill(
        venue="local",
        trade_id=trade,
        client_order_id=cid,
        symbol="BTC/USDT",
        side=side,
        quantity=Decimal(quantity),
        price=Decimal(price),
        fee=Decimal("0.01"),
        fee_currency="USDT",
        ts=minute(2000),
    )


def test_a_promoted_strategy_starts_stopped_and_one_update_sets_its_desired_state(catalog: Catalog) -> None:
    stored = promoted(catalog)
    assert (stored.desired_state, stored.actual_state) == ("stopped", "stopped")
    assert stored.max_position == Decimal(5)
    running = catalog.set_strategy_desired_state("demo_btc", "running")
    assert running.desired_state == "running"
    assert [s.name for s in catalog.list_strategies("running")] == ["demo_btc"]
    reported = catalog.report_strategy_state("demo_btc", "failed", "model file missing")
    assert (reported.actual_state, reported.state_message) == ("failed", "model file missing")
    with pytest.raises(CatalogError, match="desired state 'paused'"):
        catalog.set_strategy_desired_state("demo_btc", "paused")


def test_a_strategy_keeps_its_lineage_and_may_change_its_settings(catalog: Catalog) -> None:
    promoted(catalog)
    retuned = promoted(catalog, long_threshold=0.7, max_orders_per_minute=3)
    assert (retuned.long_threshold, retuned.max_orders_per_minute, retuned.model_sha256) == (0.7, 3, MODEL)
    with pytest.raises(CatalogError, match="stored with another fold, model_sha256"):
        promoted(catalog, fold=1, model_sha256="01" * 32)
    assert catalog.get_strategy("demo_btc") == retuned


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model_sha256": "ff" * 32}, "fold 0 of btc_run1 has no succeeded model"),
        ({"bars_sha256": "cd" * 32}, "is not the source file hash of dataset btc"),
        ({"indicator_version": 2}, "is on dataset, indicator version, measurement"),
        ({"name": "demo-btc"}, "strategy name 'demo-btc' is not a valid name"),
        ({"sizing": "[1]"}, "sizing is not a JSON object"),
        ({"max_position": 5.0}, "max_position 5.0 is a float"),
    ],
)
def test_a_strategy_comes_from_a_completed_fold_model_of_its_bars(
    catalog: Catalog, changes: dict[str, Any], message: str
) -> None:
    promoted(catalog, name="other")
    with pytest.raises(CatalogError, match=message):
        promoted(catalog, **changes)
    assert [s.name for s in catalog.list_strategies()] == ["other"]


def test_a_signal_is_recorded_once_per_strategy_and_bar(catalog: Catalog) -> None:
    promoted(catalog)
    warmup = SignalRecord("demo_btc", BAR, math.nan, 0.0, MODEL)
    stored, created = catalog.record_signal(warmup)
    assert created
    again, created = catalog.record_signal(warmup)
    assert not created
    assert math.isnan(again.prediction) and again.created_at == stored.created_at
    with pytest.raises(CatalogError, match=r"is stored as prediction nan, target 0.0; got 0.9, 1.0"):
        catalog.record_signal(replace(warmup, prediction=0.9, target=1.0))
    with pytest.raises(CatalogError, match="is not the strategy's"):
        catalog.record_signal(replace(warmup, bar_ts=minute(3000), model_sha256="01" * 32))
    assert len(catalog.list_signals("demo_btc")) == 1


def test_an_intent_is_stored_once_under_its_client_order_id(catalog: Catalog) -> None:
    promoted(catalog)
    new = NewOrder("demo_btc", BAR, 0, "buy", "limit", Decimal("0.5"), Decimal("42000.1"))
    created, fresh = catalog.create_order(new)
    assert fresh
    assert (created.client_order_id, created.status, created.venue, created.symbol) == (
        "demo_btc-0s6lxc0-000",
        "INITIALIZED",
        "local",
        "BTC/USDT",
    )
    assert catalog.create_order(new) == (created, False)
    with pytest.raises(CatalogError, match=r"demo_btc-0s6lxc0-000 is stored as buy limit 0.5 at 42000.1"):
        catalog.create_order(replace(new, quantity=Decimal("0.6")))
    assert [
        (e.seq, e.event, e.from_status, e.to_status)
        for e in catalog.list_order_events(created.client_order_id)
    ] == [(1, "CREATE", None, "INITIALIZED")]


def test_an_illegal_transition_is_refused_and_nothing_is_written(catalog: Catalog) -> None:
    promoted(catalog)
    created, _ = catalog.create_order(NewOrder("demo_btc", BAR, 0, "buy", "market", Decimal(1)))
    cid = created.client_order_id
    with pytest.raises(CatalogError, match=f"order {cid}: ACCEPT in INITIALIZED is not allowed"):
        catalog.apply_order_event(cid, OrderUpdate("ACCEPT", venue_order_id="v1"))
    with pytest.raises(CatalogError, match="REJECT in INITIALIZED is not allowed"):
        catalog.apply_order_event(cid, OrderUpdate("REJECT", reason="insufficient funds"))
    assert catalog.get_order(cid) == created
    assert len(catalog.list_order_events(cid)) == 1


def test_an_event_sent_for_a_status_the_order_left_is_stale(catalog: Catalog) -> None:
    promoted(catalog)
    cid = order(catalog)
    with pytest.raises(StaleOrder, match="sent for status SUBMITTED"):
        catalog.apply_order_event(cid, OrderUpdate("TIMEOUT", expected_status="SUBMITTED"))
    assert catalog.get_order(cid).status == "ACCEPTED"  # type: ignore[union-attr]


def test_the_events_are_the_full_history_of_an_order(catalog: Catalog) -> None:
    promoted(catalog)
    cid = catalog.create_order(NewOrder("demo_btc", BAR, 0, "buy", "market", Decimal(1)))[0].client_order_id
    catalog.apply_order_event(cid, OrderUpdate("SUBMIT"))
    catalog.apply_order_event(cid, OrderUpdate("TIMEOUT", detail='{"after_s": 10}'))
    catalog.apply_order_event(cid, OrderUpdate("ACCEPT", venue_order_id="v9", expected_status="UNKNOWN"))
    catalog.record_fill(fill(cid, "t1", "0.4"))
    catalog.apply_order_event(cid, OrderUpdate("CANCEL_REQUEST"))
    catalog.record_fill(fill(cid, "t2", "0.1"))
    final = catalog.apply_order_event(cid, OrderUpdate("CANCEL", reason="canceled by the kill switch"))

    events = catalog.list_order_events(cid)
    assert [(e.seq, e.event, e.from_status, e.to_status) for e in events] == [
        (1, "CREATE", None, "INITIALIZED"),
        (2, "SUBMIT", "INITIALIZED", "SUBMITTED"),
        (3, "TIMEOUT", "SUBMITTED", "UNKNOWN"),
        (4, "ACCEPT", "UNKNOWN", "ACCEPTED"),
        (5, "FILL", "ACCEPTED", "PARTIALLY_FILLED"),
        (6, "CANCEL_REQUEST", "PARTIALLY_FILLED", "PENDING_CANCEL"),
        (7, "FILL", "PENDING_CANCEL", "PENDING_CANCEL"),
        (8, "CANCEL", "PENDING_CANCEL", "CANCELED"),
    ]
    assert json.loads(events[2].detail) == {"after_s": 10}
    assert json.loads(events[3].detail) == {"venue_order_id": "v9"}
    assert json.loads(events[6].detail) == {"trade_id": "t2", "quantity": "0.1", "price": "100"}
    # Replaying the history through the machine gives the stored order.
    state = OrderState(cid, final.quantity)
    for event in events[1:]:
        quantity = Decimal(json.loads(event.detail)["quantity"]) if event.event == "FILL" else None
        state = next_state(state, OrderEvent(event.event), quantity)
    assert (state.status, state.filled_quantity) == (OrderStatus(final.status), final.filled_quantity)
    assert (final.event_seq, final.venue_order_id, final.reason) == (8, "v9", "canceled by the kill switch")
    assert catalog.open_orders() == []


def test_a_fill_seen_again_is_not_counted_twice(catalog: Catalog) -> None:
    promoted(catalog)
    cid = order(catalog)
    first, created = catalog.record_fill(fill(cid, "t1", "0.25", "100"))
    assert created
    assert catalog.record_fill(fill(cid, "t1", "0.25", "100")) == (first, False)
    catalog.record_fill(fill(cid, "t2", "0.75", "104"))
    with pytest.raises(CatalogError, match="the trade is recorded with other values"):
        catalog.record_fill(fill(cid, "t2", "0.5", "104"))

    stored = catalog.get_order(cid)
    assert stored is not None
    assert (stored.status, stored.filled_quantity, stored.average_fill_price) == ("FILLED", 1, Decimal(103))
    assert [f.trade_id for f in catalog.list_fills(cid)] == ["t1", "t2"]
    position = catalog.get_position("local", "paper", "BTC/USDT")
    assert position is not None
    assert (position.quantity, position.average_entry_price, position.realised_pnl) == (1, 103, 0)


def test_positions_follow_the_fills_of_every_order_on_the_account(catalog: Catalog) -> None:
    promoted(catalog)
    buy, sell = order(catalog, 0, "buy", "2"), order(catalog, 1, "sell", "3")
    catalog.record_fill(fill(buy, "t1", "2", "100", "buy"))
    catalog.record_fill(fill(sell, "t2", "3", "90", "sell"))
    position = catalog.get_position("local", "paper", "BTC/USDT")
    assert position is not None
    assert (position.quantity, position.average_entry_price, position.realised_pnl) == (-1, 90, -20)
    assert str(position.quantity) == "-1"


def test_a_fee_taken_in_the_base_asset_leaves_that_much_less_held(catalog: Catalog) -> None:
    # Binance spot takes a buy's fee in what was bought, unless paid in BNB.
    promoted(catalog)
    buy = order(catalog, 0, "buy", "2")
    catalog.record_fill(replace(fill(buy, "t1", "2"), fee=Decimal("0.002"), fee_currency="BTC"))
    position = catalog.get_position("local", "paper", "BTC/USDT")
    assert position is not None and position.quantity == Decimal("1.998")


def test_a_fill_and_its_position_change_commit_together(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    promoted(catalog)
    cid = order(catalog)
    before = catalog.get_order(cid)

    def broken(*args: Any) -> Any:
        raise RuntimeError("the position could not be computed")

    monkeypatch.setattr(live, "position_after_fill", broken)
    with pytest.raises(RuntimeError, match="the position could not be computed"):
        catalog.record_fill(fill(cid, "t1", "0.5"))
    assert catalog.list_fills() == []
    assert catalog.get_order(cid) == before
    assert len(catalog.list_order_events(cid)) == 3
    assert catalog.list_positions() == []
    monkeypatch.undo()
    assert catalog.record_fill(fill(cid, "t1", "0.5"))[1]


def test_an_overfill_or_a_fill_of_an_ended_order_writes_nothing(catalog: Catalog) -> None:
    promoted(catalog)
    cid = order(catalog)
    with pytest.raises(CatalogError, match=f"order {cid}: FILL in ACCEPTED: 1.5 more would fill 1.5 of 1"):
        catalog.record_fill(fill(cid, "t1", "1.5"))
    catalog.apply_order_event(cid, OrderUpdate("CANCEL"))
    with pytest.raises(CatalogError, match="FILL in CANCELED is not allowed"):
        catalog.record_fill(fill(cid, "t1", "0.5"))
    with pytest.raises(CatalogError, match="the order is buy BTC/USDT on local"):
        catalog.record_fill(replace(fill(cid, "t1", "0.5"), side="sell"))
    assert catalog.list_fills() == []
    assert catalog.list_positions() == []


def test_one_trade_recorded_by_two_writers_at_once_counts_once(new_catalog: Callable[[], Catalog]) -> None:
    promoted(first := new_catalog())
    cid = order(first)
    results = race([first, new_catalog()], lambda i, catalog: catalog.record_fill(fill(cid, "t1", "0.5")))
    assert sorted(created for _, created in results) == [False, True]
    assert catalog_state(first, cid) == (Decimal("0.5"), 1, Decimal("0.5"))


def test_two_trades_of_one_order_recorded_at_once_both_count(new_catalog: Callable[[], Catalog]) -> None:
    promoted(first := new_catalog())
    cid = order(first)
    race([first, new_catalog()], lambda i, catalog: catalog.record_fill(fill(cid, f"t{i}", "0.5")))
    assert catalog_state(first, cid) == (Decimal(1), 2, Decimal(1))


def catalog_state(catalog: Catalog, cid: str) -> tuple[Decimal, int, Decimal]:
    """The order's filled quantity, its fills and the position's quantity."""
    stored, position = catalog.get_order(cid), catalog.get_position("local", "paper", "BTC/USDT")
    assert stored is not None and position is not None
    return stored.filled_quantity, len(catalog.list_fills(cid)), position.quantity


def test_a_fill_leads_back_to_its_strategy_model_indicators_and_bars(catalog: Catalog) -> None:
    strategy = promoted(catalog)
    cid = order(catalog)
    catalog.record_fill(fill(cid, "t1", "0.5"))
    assert catalog.fill_lineage("local", "t1") == FillLineage(
        venue="local",
        trade_id="t1",
        client_order_id=cid,
        strategy="demo_btc",
        bar_ts=BAR,
        walkforward_run=strategy.walkforward_run,
        fold=0,
        model_path=strategy.model_path,
        model_sha256=MODEL,
        measurement="btc_1",
        indicator_version=1,
        dataset="btc",
        bars_sha256="ab" * 32,
    )
    assert catalog.fill_lineage("local", "t2") is None


def test_a_reconciliation_finishes_once(catalog: Catalog) -> None:
    run = catalog.start_reconciliation("executor", "local", "paper")
    assert (run.status, run.finished_at) == (None, None)
    details = json.dumps({"mismatches": [{"order": "x", "venue": "FILLED", "catalog": "ACCEPTED"}]})
    done = catalog.finish_reconciliation(run.id, "mismatch", details)
    assert (done.status, json.loads(done.details or "")["mismatches"][0]["order"]) == ("mismatch", "x")
    with pytest.raises(CatalogError, match="has finished"):
        catalog.finish_reconciliation(run.id, "ok", "{}")
    assert catalog.list_reconciliations("local") == [done]


def test_a_heartbeat_replaces_the_instance_s_last_one(catalog: Catalog) -> None:
    first = catalog.heartbeat("recorder", "host-1", "starting")
    second = catalog.heartbeat("recorder", "host-1", "ready", json.dumps({"lag_s": 1.5}))
    catalog.heartbeat("executor", "host-1", "ready")
    assert second.last_beat >= first.last_beat
    assert catalog.list_heartbeats("recorder") == [second]
    assert [(b.service, b.status) for b in catalog.list_heartbeats()] == [
        ("executor", "ready"),
        ("recorder", "ready"),
    ]


def test_postgres_refuses_changing_or_deleting_an_order_event(
    pg_settings: dict[str, Any], pg_schema_name: str, pg_admin: psycopg.Connection
) -> None:
    catalog = PostgresCatalog(**pg_settings, schema_name=pg_schema_name, pool_min_size=0, pool_max_size=1)
    try:
        promoted(catalog)
        order(catalog)
    finally:
        catalog.close()
    for statement in ("UPDATE {}.order_events SET detail = '{{}}'", "DELETE FROM {}.order_events"):
        with pytest.raises(psycopg.errors.RaiseException, match="order_events is append-only"):
            pg_admin.execute(statement.format(pg_schema_name))


def test_the_kill_switch_is_one_row_per_account_set_with_a_reason(catalog: Catalog) -> None:
    assert catalog.get_trading_halt("local", "paper") is None
    on = catalog.set_trading_halt("local", "paper", True, "runaway strategy", "operator")
    assert (on.halted, on.reason, on.set_by) == (True, "runaway strategy", "operator")
    off = catalog.set_trading_halt("local", "paper", False, "checked, resumed", "operator")
    assert catalog.get_trading_halt("local", "paper") == off and not off.halted
    assert catalog.get_trading_halt("local", "other") is None
    with pytest.raises(CatalogError, match="give a reason"):
        catalog.set_trading_halt("local", "paper", True, " ", "operator")
    assert catalog.get_trading_halt("local", "paper") == off
