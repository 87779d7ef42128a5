"""The live-trading tables (migrations/*/0010_live.sql): strategies, signals, orders and their events,
fills, positions, reconciliation runs and service heartbeats.

Each function runs inside the caller's transaction. Every status change of an order goes through
trading_assets.orders' state machine and appends its order_events row in the same transaction; no code
path changes or deletes an event. A fill, its order's move and its position's change commit together, and
a fill seen again is a no-op, so replays never count twice. Writers that touch an order or a position
first take its row (a no-op UPDATE: Postgres holds the row until the transaction ends; DuckDB's writers
already hold the file's exclusive lock), so concurrent fills take turns.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import astuple, fields, replace
from decimal import Context, Decimal, localcontext
from typing import Any

from resources.catalog import datasets, walkforward
from resources.catalog.dialect import Session
from resources.catalog.rows import record_from_row, require_time_zone
from trading_assets.naming import InvalidNameError, strategy_name
from trading_assets.orders import (
    NEEDS_REASON,
    OPEN,
    SIDES,
    OrderError,
    OrderEvent,
    OrderState,
    OrderStatus,
    PositionState,
    average_price,
    check_decimal,
    client_order_id,
    next_state,
    position_after_fill,
)
from trading_assets.records import (
    ORDER_TYPES,
    RECONCILIATION_STATUSES,
    STRATEGY_ACTUAL_STATES,
    STRATEGY_DESIRED_STATES,
    CatalogError,
    ExecutorLease,
    FillLineage,
    FillRecord,
    HeartbeatRecord,
    LeaseGrant,
    NewFill,
    NewOrder,
    OrderEventRecord,
    OrderRecord,
    OrderUpdate,
    PositionRecord,
    ReconciliationRecord,
    SignalRecord,
    StaleOrder,
    StrategyRecord,
    TradingHalt,
)


def _columns(cls: type) -> str:
    return ", ".join(field.name for field in fields(cls))


_STRATEGY = _columns(StrategyRecord)
_SIGNAL = _columns(SignalRecord)
_ORDER = _columns(OrderRecord)
_EVENT = _columns(OrderEventRecord)
_FILL = _columns(FillRecord)
_POSITION = _columns(PositionRecord)
_RECONCILIATION = _columns(ReconciliationRecord)
_HEARTBEAT = _columns(HeartbeatRecord)
# What a strategy was promoted from and what it trades: fixed once stored.
_LINEAGE = (
    "walkforward_run",
    "fold",
    "model_path",
    "model_sha256",
    "measurement",
    "indicator_version",
    "dataset",
    "bars_sha256",
    "symbol",
    "venue",
    "account",
)
_SETTINGS = (
    "long_threshold",
    "short_threshold",
    "sizing",
    "max_position",
    "max_order_notional",
    "max_orders_per_minute",
)
# The event of an order's first row.
CREATE = "CREATE"


def upsert_strategy(db: Session, record: StrategyRecord) -> StrategyRecord:
    """Insert the strategy (states stopped), or update the settings of the stored one whose lineage and
    instrument are the same; CatalogError otherwise or if the lineage is not in the catalog as given."""
    owner = f"strategy {record.name!r}"
    try:
        strategy_name(record.name)
    except InvalidNameError as err:
        raise CatalogError(f"{owner}: {err}") from None
    _check_promotion(db, owner, record)
    for name in ("max_position", "max_order_notional"):
        _decimal(owner, name, getattr(record, name))
    _json_object(owner, "sizing", record.sizing)
    stored = get_strategy(db, record.name)
    if stored is not None:
        changed = [name for name in _LINEAGE if getattr(stored, name) != getattr(record, name)]
        if changed:
            raise CatalogError(
                f"{owner} is stored with another {', '.join(changed)}: what a strategy trades and was "
                "promoted from never changes; promote the new model as a new strategy"
            )
        assignments = ", ".join(f"{name} = %s" for name in _SETTINGS)
        with db.refusing(owner):
            row = db.one(
                f"UPDATE strategies SET {assignments}, updated_at = now() WHERE name = %s "
                f"RETURNING {_STRATEGY}",
                [*(getattr(record, name) for name in _SETTINGS), record.name],
            )
        return _strategy(row)
    given = ("name", *_LINEAGE, *_SETTINGS)
    with db.refusing(owner):
        row = db.one(
            f"INSERT INTO strategies ({', '.join(given)}) VALUES ({', '.join(['%s'] * len(given))}) "
            f"RETURNING {_STRATEGY}",
            [getattr(record, name) for name in given],
        )
    return _strategy(row)


def _check_promotion(db: Session, owner: str, record: StrategyRecord) -> None:
    """The strategy's fold succeeded with its model in a completed run on its indicator set, and its bars
    hash is its dataset's source file's."""
    run = walkforward.get(db, record.walkforward_run)
    if run is None or run.status != "completed":
        state = "does not exist" if run is None else f"is {run.status}"
        raise CatalogError(
            f"{owner}: walkforward run {record.walkforward_run!r} {state}; promote a completed run"
        )
    fold = next((f for f in walkforward.list_folds(db, run.name) if f.window.fold == record.fold), None)
    if fold is None or fold.result is None or fold.result.model_sha256 != record.model_sha256:
        raise CatalogError(
            f"{owner}: fold {record.fold} of {run.name} has no succeeded model with sha256 "
            f"{record.model_sha256}"
        )
    found = (run.dataset, run.indicator_version, run.measurement)
    if found != (record.dataset, record.indicator_version, record.measurement):
        raise CatalogError(
            f"{owner}: run {run.name} is on dataset, indicator version, measurement {found}, not "
            f"{(record.dataset, record.indicator_version, record.measurement)}"
        )
    dataset = datasets.get(db, record.dataset)
    if dataset is None or dataset.source_sha256 != record.bars_sha256:
        raise CatalogError(
            f"{owner}: bars_sha256 {record.bars_sha256} is not the source file hash of dataset "
            f"{record.dataset}"
        )


def get_strategy(db: Session, name: str) -> StrategyRecord | None:
    row = db.one(f"SELECT {_STRATEGY} FROM strategies WHERE name = %s", [name])
    return None if row is None else _strategy(row)


def list_strategies(db: Session, desired_state: str | None) -> list[StrategyRecord]:
    where = "" if desired_state is None else " WHERE desired_state = %s"
    params = [] if desired_state is None else [desired_state]
    return [
        _strategy(row) for row in db.all(f"SELECT {_STRATEGY} FROM strategies{where} ORDER BY name", params)
    ]


def set_desired_state(db: Session, name: str, state: str) -> StrategyRecord:
    if state not in STRATEGY_DESIRED_STATES:
        raise CatalogError(
            f"strategy {name!r}: desired state {state!r} is not one of {STRATEGY_DESIRED_STATES}"
        )
    row = db.one(
        f"UPDATE strategies SET desired_state = %s, updated_at = now() WHERE name = %s RETURNING {_STRATEGY}",
        [state, name],
    )
    if row is None:
        raise CatalogError(f"no strategy {name!r}")
    return _strategy(row)


def report_state(db: Session, name: str, state: str, message: str | None) -> StrategyRecord:
    if state not in STRATEGY_ACTUAL_STATES:
        raise CatalogError(f"strategy {name!r}: state {state!r} is not one of {STRATEGY_ACTUAL_STATES}")
    row = db.one(
        "UPDATE strategies SET actual_state = %s, state_message = %s, updated_at = now() WHERE name = %s "
        f"RETURNING {_STRATEGY}",
        [state, message, name],
    )
    if row is None:
        raise CatalogError(f"no strategy {name!r}")
    return _strategy(row)


def record_signal(db: Session, signal: SignalRecord) -> tuple[SignalRecord, bool]:
    """Insert the signal, or return the stored one if it is the same (created False); CatalogError if the
    strategy's bar already has another, or the model is not the strategy's."""
    owner = f"signal of {signal.strategy!r} at {signal.bar_ts}"
    require_time_zone(owner, "bar_ts", signal.bar_ts)
    strategy = get_strategy(db, signal.strategy)
    if strategy is None:
        raise CatalogError(f"{owner}: no such strategy")
    if signal.model_sha256 != strategy.model_sha256:
        raise CatalogError(
            f"{owner}: model {signal.model_sha256} is not the strategy's {strategy.model_sha256}"
        )
    values = [signal.strategy, signal.bar_ts, signal.prediction, signal.target, signal.model_sha256]
    with db.refusing(owner):
        row = db.one(
            "INSERT INTO signals (strategy, bar_ts, prediction, target, model_sha256) "
            "VALUES (%s, %s, %s, %s, %s) "
            f"ON CONFLICT (strategy, bar_ts) DO NOTHING RETURNING {_SIGNAL}",
            values,
        )
    if row is not None:
        return record_from_row(SignalRecord, row), True
    stored = record_from_row(
        SignalRecord,
        db.one(f"SELECT {_SIGNAL} FROM signals WHERE strategy = %s AND bar_ts = %s", values[:2]),
    )
    same = _same_float(stored.prediction, signal.prediction) and _same_float(stored.target, signal.target)
    if not same:
        raise CatalogError(
            f"{owner} is stored as prediction {stored.prediction!r}, target {stored.target!r}; "
            f"got {signal.prediction!r}, {signal.target!r}"
        )
    return stored, False


def list_signals(db: Session, strategy: str) -> list[SignalRecord]:
    rows = db.all(f"SELECT {_SIGNAL} FROM signals WHERE strategy = %s ORDER BY bar_ts", [strategy])
    return [record_from_row(SignalRecord, row) for row in rows]


def latest_signal(db: Session, strategy: str) -> SignalRecord | None:
    row = db.one(
        f"SELECT {_SIGNAL} FROM signals WHERE strategy = %s ORDER BY bar_ts DESC LIMIT 1", [strategy]
    )
    return None if row is None else record_from_row(SignalRecord, row)


def create_order(db: Session, new: NewOrder) -> tuple[OrderRecord, bool]:
    """Store the intent as INITIALIZED with its CREATE event; the stored order if the same intent is there
    already (created False); CatalogError if its id holds a different one."""
    try:
        cid = client_order_id(new.strategy, new.bar_ts, new.seq)
    except (OrderError, InvalidNameError) as err:
        raise CatalogError(f"order of {new.strategy!r}: {err}") from None
    owner = f"order {cid}"
    if new.side not in SIDES:
        raise CatalogError(f"{owner}: side {new.side!r} is not one of {SIDES}")
    if new.order_type not in ORDER_TYPES:
        raise CatalogError(f"{owner}: type {new.order_type!r} is not one of {ORDER_TYPES}")
    _decimal(owner, "quantity", new.quantity)
    if (new.order_type == "limit") != (new.limit_price is not None):
        raise CatalogError(f"{owner}: a limit order has a limit price, a market order none")
    if new.limit_price is not None:
        _decimal(owner, "limit price", new.limit_price)
    strategy = get_strategy(db, new.strategy)
    if strategy is None:
        raise CatalogError(f"{owner}: no strategy {new.strategy!r}")
    intent = [new.side, new.order_type, new.quantity, new.limit_price]
    with db.refusing(owner):
        row = db.one(
            "INSERT INTO orders (client_order_id, strategy, bar_ts, seq, venue, account, symbol, side, "
            "order_type, quantity, limit_price, status, event_seq) "
            f"VALUES ({', '.join(['%s'] * 12)}, 1) ON CONFLICT (client_order_id) DO NOTHING "
            f"RETURNING {_ORDER}",
            [cid, new.strategy, new.bar_ts, new.seq, strategy.venue, strategy.account, strategy.symbol,
             *intent, OrderStatus.INITIALIZED.value],
        )  # fmt: skip
    if row is None:
        stored = get_order(db, cid)
        assert stored is not None  # the conflict was on this id
        if [stored.side, stored.order_type, stored.quantity, stored.limit_price] != intent:
            raise CatalogError(
                f"{owner} is stored as {stored.side} {stored.order_type} {stored.quantity} at "
                f"{stored.limit_price}; a client order id never names a different intent"
            )
        return stored, False
    _append_event(db, cid, 1, CREATE, None, OrderStatus.INITIALIZED, {})
    return _order(row), True


def get_order(db: Session, cid: str) -> OrderRecord | None:
    row = db.one(f"SELECT {_ORDER} FROM orders WHERE client_order_id = %s", [cid])
    return None if row is None else _order(row)


def list_orders(
    db: Session, strategy: str | None, statuses: Sequence[str] | None, updated_since: Any = None
) -> list[OrderRecord]:
    where: list[str] = []
    params: list[Any] = []
    if updated_since is not None:
        where.append("updated_at >= %s")
        params.append(updated_since)
    if strategy is not None:
        where.append("strategy = %s")
        params.append(strategy)
    if statuses is not None:
        if not statuses:
            return []
        where.append(f"status IN ({', '.join(['%s'] * len(statuses))})")
        params.extend(statuses)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    rows = db.all(f"SELECT {_ORDER} FROM orders{clause} ORDER BY strategy, bar_ts, seq", params)
    return [_order(row) for row in rows]


def open_orders(db: Session, venue: str | None, account: str | None) -> list[OrderRecord]:
    statuses = sorted(status.value for status in OPEN)
    where = [f"status IN ({', '.join(['%s'] * len(statuses))})"]
    params: list[Any] = list(statuses)
    for column, value in (("venue", venue), ("account", account)):
        if value is not None:
            where.append(f"{column} = %s")
            params.append(value)
    rows = db.all(
        f"SELECT {_ORDER} FROM orders WHERE {' AND '.join(where)} ORDER BY strategy, bar_ts, seq", params
    )
    return [_order(row) for row in rows]


def list_events(db: Session, cid: str) -> list[OrderEventRecord]:
    rows = db.all(f"SELECT {_EVENT} FROM order_events WHERE client_order_id = %s ORDER BY seq", [cid])
    return [record_from_row(OrderEventRecord, row) for row in rows]


def apply_event(db: Session, cid: str, update: OrderUpdate) -> OrderRecord:
    """Move the order by `update.event` through the state machine and append the event; StaleOrder if it is
    no longer in `update.expected_status`, or if another writer moved it after it was read here."""
    order = get_order(db, cid)
    if order is None:
        raise CatalogError(f"no order {cid}")
    try:
        event = OrderEvent(update.event)
    except ValueError:
        raise CatalogError(f"order {cid}: {update.event!r} is not an order event") from None
    what = f"order {cid}: {event} in {order.status}"
    if update.expected_status is not None and order.status != update.expected_status:
        raise StaleOrder(f"{what}: sent for status {update.expected_status}, refused")
    if event is OrderEvent.FILL:
        raise CatalogError(f"{what}: fills are recorded with record_fill, with their trade")
    if event in NEEDS_REASON and not update.reason:
        raise CatalogError(f"{what}: say why")
    if update.venue_order_id is not None and order.venue_order_id not in (None, update.venue_order_id):
        raise CatalogError(
            f"{what}: venue order id {update.venue_order_id} is not its {order.venue_order_id}"
        )
    after = _next(order, event, None)
    detail = _json_object(f"order {cid}", "detail", update.detail)
    given = {"reason": update.reason, "venue_order_id": update.venue_order_id}
    detail |= {key: value for key, value in given.items() if value is not None}
    row = db.one(
        "UPDATE orders SET status = %s, reason = coalesce(%s, reason), venue_order_id = coalesce(%s, "
        "venue_order_id), event_seq = event_seq + 1, updated_at = now() "
        f"WHERE client_order_id = %s AND event_seq = %s RETURNING {_ORDER}",
        [after.status.value, update.reason, update.venue_order_id, cid, order.event_seq],
    )
    if row is None:
        raise StaleOrder(f"{what}: the order changed after event {order.event_seq}; read it again")
    _append_event(db, cid, order.event_seq + 1, event, OrderStatus(order.status), after.status, detail)
    return _order(row)


def record_fill(db: Session, fill: NewFill) -> tuple[FillRecord, bool]:
    """Record the fill, move its order (filled quantity, average price, status, FILL event) and its position;
    the stored fill if the trade is recorded already (created False, nothing else changes). CatalogError if
    the order does not exist or is not the fill's (venue, symbol, side), the trade is stored with other
    values, or the order cannot take the fill (an overfill, a terminal order): then nothing is written."""
    owner = f"fill {fill.venue}/{fill.trade_id} of {fill.client_order_id}"
    require_time_zone(owner, "ts", fill.ts)
    _decimal(owner, "quantity", fill.quantity)
    _decimal(owner, "price", fill.price)
    _decimal(owner, "fee", abs(fill.fee) if isinstance(fill.fee, Decimal) else fill.fee, positive=False)
    order = _lock_order(db, fill.client_order_id)
    if order is None:
        raise CatalogError(f"{owner}: no such order")
    if (order.venue, order.symbol, order.side) != (fill.venue, fill.symbol, fill.side):
        raise CatalogError(f"{owner}: the order is {order.side} {order.symbol} on {order.venue}")
    values = [getattr(fill, field.name) for field in fields(NewFill)]
    with db.refusing(owner):
        row = db.one(
            f"INSERT INTO fills ({', '.join(field.name for field in fields(NewFill))}) "
            f"VALUES ({', '.join(['%s'] * len(values))}) ON CONFLICT (venue, trade_id) DO NOTHING "
            f"RETURNING {_FILL}",
            values,
        )
    if row is None:
        stored = get_fill(db, fill.venue, fill.trade_id)
        assert stored is not None  # the conflict was on this trade
        if astuple(stored)[: len(values)] != tuple(values):
            raise CatalogError(f"{owner}: the trade is recorded with other values: {stored}")
        return stored, False
    after = _next(order, OrderEvent.FILL, fill.quantity)
    average = average_price(order.filled_quantity, order.average_fill_price, fill.quantity, fill.price)
    moved = db.one(
        "UPDATE orders SET status = %s, filled_quantity = %s, average_fill_price = %s, "
        "event_seq = event_seq + 1, updated_at = now() WHERE client_order_id = %s AND event_seq = %s "
        "RETURNING 1",
        [after.status.value, after.filled_quantity, average, order.client_order_id, order.event_seq],
    )
    assert moved is not None  # the row is held since _lock_order
    detail = {"trade_id": fill.trade_id, "quantity": str(fill.quantity), "price": str(fill.price)}
    _append_event(db, order.client_order_id, order.event_seq + 1, OrderEvent.FILL, OrderStatus(order.status),
                  after.status, detail)  # fmt: skip
    _move_position(db, order, fill)
    return _fill(row), True


def _move_position(db: Session, order: OrderRecord, fill: NewFill) -> None:
    key = [order.venue, order.account, order.symbol]
    db.execute(
        "INSERT INTO positions (venue, account, symbol, quantity, realised_pnl) VALUES (%s, %s, %s, 0, 0) "
        "ON CONFLICT (venue, account, symbol) DO NOTHING",
        key,
    )
    held = _position(
        db.one(
            f"UPDATE positions SET updated_at = updated_at WHERE venue = %s AND account = %s AND symbol = %s "
            f"RETURNING {_POSITION}",
            key,
        )
    )
    try:
        after = position_after_fill(
            PositionState(held.quantity, held.average_entry_price, held.realised_pnl),
            fill.side,
            fill.quantity,
            fill.price,
        )
    except OrderError as err:
        raise CatalogError(f"position {'/'.join(key)}: {err}") from None
    base = order.symbol.split(":")[0].split("/")[0]
    if fill.fee and fill.fee_currency is not None and fill.fee_currency.upper() == base.upper():
        # A fee taken in the base asset (Binance spot's default on buys) leaves that much less held.
        with localcontext(Context(prec=60)):
            after = replace(after, quantity=after.quantity - fill.fee)
    with db.refusing(f"position {'/'.join(key)}"):
        db.execute(
            "UPDATE positions SET quantity = %s, average_entry_price = %s, realised_pnl = %s, "
            "updated_at = now() WHERE venue = %s AND account = %s AND symbol = %s",
            [after.quantity, after.average_entry_price, after.realised_pnl, *key],
        )


def get_fill(db: Session, venue: str, trade_id: str) -> FillRecord | None:
    row = db.one(f"SELECT {_FILL} FROM fills WHERE venue = %s AND trade_id = %s", [venue, trade_id])
    return None if row is None else _fill(row)


def list_fills(
    db: Session, client_order_id: str | None, venue: str | None, created_since: Any = None
) -> list[FillRecord]:
    where: list[str] = []
    params: list[Any] = []
    for column, value in (("client_order_id", client_order_id), ("venue", venue)):
        if value is not None:
            where.append(f"{column} = %s")
            params.append(value)
    if created_since is not None:
        where.append("created_at >= %s")
        params.append(created_since)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    return [
        _fill(row)
        for row in db.all(f"SELECT {_FILL} FROM fills{clause} ORDER BY ts, venue, trade_id", params)
    ]


def get_position(db: Session, venue: str, account: str, symbol: str) -> PositionRecord | None:
    row = db.one(
        f"SELECT {_POSITION} FROM positions WHERE venue = %s AND account = %s AND symbol = %s",
        [venue, account, symbol],
    )
    return None if row is None else _position(row)


def list_positions(db: Session, venue: str | None, account: str | None) -> list[PositionRecord]:
    where, params = [], []
    for column, value in (("venue", venue), ("account", account)):
        if value is not None:
            where.append(f"{column} = %s")
            params.append(value)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    rows = db.all(f"SELECT {_POSITION} FROM positions{clause} ORDER BY venue, account, symbol", params)
    return [_position(row) for row in rows]


def fill_lineage(db: Session, venue: str, trade_id: str) -> FillLineage | None:
    row = db.one(
        "SELECT f.venue, f.trade_id, f.client_order_id, o.strategy, o.bar_ts, s.walkforward_run, s.fold, "
        "s.model_path, s.model_sha256, s.measurement, s.indicator_version, s.dataset, s.bars_sha256 "
        "FROM fills f JOIN orders o ON o.client_order_id = f.client_order_id "
        "JOIN strategies s ON s.name = o.strategy WHERE f.venue = %s AND f.trade_id = %s",
        [venue, trade_id],
    )
    return None if row is None else record_from_row(FillLineage, row)


def start_reconciliation(db: Session, service: str, venue: str, account: str) -> ReconciliationRecord:
    row = db.one(
        "INSERT INTO reconciliation_runs (service, venue, account) VALUES (%s, %s, %s) "
        f"RETURNING {_RECONCILIATION}",
        [service, venue, account],
    )
    return record_from_row(ReconciliationRecord, row)


def finish_reconciliation(db: Session, run_id: int, status: str, details: str) -> ReconciliationRecord:
    if status not in RECONCILIATION_STATUSES:
        raise CatalogError(
            f"reconciliation {run_id}: status {status!r} is not one of {RECONCILIATION_STATUSES}"
        )
    _json_object(f"reconciliation {run_id}", "details", details)
    row = db.one(
        "UPDATE reconciliation_runs SET status = %s, details = %s, finished_at = now() "
        f"WHERE id = %s AND finished_at IS NULL RETURNING {_RECONCILIATION}",
        [status, details, run_id],
    )
    if row is None:
        raise CatalogError(f"reconciliation {run_id} does not exist or has finished")
    return record_from_row(ReconciliationRecord, row)


def list_reconciliations(db: Session, venue: str | None, account: str | None) -> list[ReconciliationRecord]:
    where, params = [], []
    for column, value in (("venue", venue), ("account", account)):
        if value is not None:
            where.append(f"{column} = %s")
            params.append(value)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    rows = db.all(f"SELECT {_RECONCILIATION} FROM reconciliation_runs{clause} ORDER BY id", params)
    return [record_from_row(ReconciliationRecord, row) for row in rows]


def latest_reconciliations(db: Session) -> list[ReconciliationRecord]:
    rows = db.all(
        f"SELECT {_RECONCILIATION} FROM reconciliation_runs WHERE id IN (SELECT max(id) FROM "
        "reconciliation_runs GROUP BY venue, account) ORDER BY venue, account"
    )
    return [record_from_row(ReconciliationRecord, row) for row in rows]


def heartbeat(db: Session, service: str, instance: str, status: str, detail: str) -> HeartbeatRecord:
    _json_object(f"heartbeat of {service}/{instance}", "detail", detail)
    row = db.one(
        "INSERT INTO service_heartbeats (service, instance, status, detail) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (service, instance) DO UPDATE SET status = excluded.status, detail = excluded.detail, "
        f"last_beat = now() RETURNING {_HEARTBEAT}",
        [service, instance, status, detail],
    )
    return record_from_row(HeartbeatRecord, row)


def list_heartbeats(db: Session, service: str | None) -> list[HeartbeatRecord]:
    where = "" if service is None else " WHERE service = %s"
    rows = db.all(
        f"SELECT {_HEARTBEAT} FROM service_heartbeats{where} ORDER BY service, instance",
        [] if service is None else [service],
    )
    return [record_from_row(HeartbeatRecord, row) for row in rows]


def _lock_order(db: Session, cid: str) -> OrderRecord | None:
    row = db.one(
        f"UPDATE orders SET updated_at = updated_at WHERE client_order_id = %s RETURNING {_ORDER}", [cid]
    )
    return None if row is None else _order(row)


def _next(order: OrderRecord, event: OrderEvent, fill_quantity: Decimal | None) -> OrderState:
    state = OrderState(
        order.client_order_id, order.quantity, OrderStatus(order.status), order.filled_quantity
    )
    try:
        return next_state(state, event, fill_quantity)
    except OrderError as err:
        raise CatalogError(str(err)) from err


def _append_event(
    db: Session,
    cid: str,
    seq: int,
    event: str,
    from_status: OrderStatus | None,
    to_status: OrderStatus,
    detail: dict[str, Any],
) -> None:
    # The only write to order_events: an INSERT. The key (client_order_id, seq) refuses a second writer.
    with db.refusing(f"event {seq} of order {cid}"):
        db.execute(
            "INSERT INTO order_events (client_order_id, seq, event, from_status, to_status, detail) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            [cid, seq, str(event), None if from_status is None else from_status.value, to_status.value,
             json.dumps(detail, sort_keys=True)],
        )  # fmt: skip


def _decimal(owner: str, name: str, value: object, *, positive: bool = True) -> None:
    try:
        check_decimal(name, value, positive=positive)
    except OrderError as err:
        raise CatalogError(f"{owner}: {err}") from None


def _json_object(owner: str, name: str, text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (TypeError, ValueError) as err:
        raise CatalogError(f"{owner}: {name} is not JSON ({err})") from None
    if not isinstance(value, dict):
        raise CatalogError(f"{owner}: {name} is not a JSON object: {text[:200]!r}")
    return value


def _same_float(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def _strategy(row: Sequence[Any]) -> StrategyRecord:
    return _normalised(record_from_row(StrategyRecord, row))


def _order(row: Sequence[Any]) -> OrderRecord:
    return _normalised(record_from_row(OrderRecord, row))


def _fill(row: Sequence[Any]) -> FillRecord:
    return _normalised(record_from_row(FillRecord, row))


def _position(row: Sequence[Any]) -> PositionRecord:
    return _normalised(record_from_row(PositionRecord, row))


def _normalised(record: Any) -> Any:
    # DECIMAL(38, 18) comes back with 18 places (1.500000000000000000); the shortest form (1.5) reads as
    # the venue wrote it and prints the same from both databases. Values compare equal either way.
    changes = {
        field.name: _shortest(value)
        for field in fields(record)
        if isinstance(value := getattr(record, field.name), Decimal)
    }
    return type(record)(**{**record.__dict__, **changes})


def _shortest(value: Decimal) -> Decimal:
    normal = value.normalize()
    # normalize() writes whole numbers with an exponent (1E+2): quantize them back to units.
    return normal.quantize(Decimal(1)) if normal == normal.to_integral_value() else normal


_HALT = "venue, account, halted, reason, set_by, updated_at"


def set_halt(db: Session, venue: str, account: str, halted: bool, reason: str, set_by: str) -> TradingHalt:
    if not reason.strip():
        raise CatalogError(f"halt of {venue}/{account}: give a reason")
    row = db.one(
        "INSERT INTO trading_halts (venue, account, halted, reason, set_by) VALUES (%s, %s, %s, %s, %s) "
        "ON CONFLICT (venue, account) DO UPDATE SET halted = excluded.halted, reason = excluded.reason, "
        f"set_by = excluded.set_by, updated_at = now() RETURNING {_HALT}",
        [venue, account, halted, reason, set_by],
    )
    return record_from_row(TradingHalt, row)


def get_halt(db: Session, venue: str, account: str) -> TradingHalt | None:
    row = db.one(f"SELECT {_HALT} FROM trading_halts WHERE venue = %s AND account = %s", [venue, account])
    return None if row is None else record_from_row(TradingHalt, row)


# A lease as read, with whether its time has passed by the database's clock (now(): the transaction's start).
_LEASE = "venue, account, holder, acquired_at, expires_at, expires_at <= now() AS expired"


def acquire_lease(db: Session, venue: str, account: str, holder: str, ttl_s: float) -> LeaseGrant:
    """Take the account's lease for `ttl_s` seconds if nobody holds it, its time has passed, or `holder`
    already holds it (then it is extended): one INSERT ... ON CONFLICT whose update applies only then, so
    of racing holders exactly one is granted. Run in a transaction: a refusal reads the row it collided
    with, which that statement has locked."""
    ms = _lease_ms(venue, account, holder, ttl_s)
    row = db.one(
        "INSERT INTO executor_leases (venue, account, holder, expires_at) "
        "VALUES (%s, %s, %s, now() + %s * INTERVAL '1 millisecond') "
        "ON CONFLICT (venue, account) DO UPDATE SET holder = excluded.holder, "
        "expires_at = excluded.expires_at, acquired_at = CASE WHEN executor_leases.holder = excluded.holder "
        "THEN executor_leases.acquired_at ELSE excluded.acquired_at END "
        "WHERE executor_leases.holder = excluded.holder OR executor_leases.expires_at <= now() "
        f"RETURNING {_LEASE}",
        [venue, account, holder, ms],
    )
    if row is not None:
        return LeaseGrant(True, record_from_row(ExecutorLease, row))
    return LeaseGrant(False, get_lease(db, venue, account))


def renew_lease(db: Session, venue: str, account: str, holder: str, ttl_s: float) -> LeaseGrant:
    """Extend `holder`'s lease to `ttl_s` seconds from now, only if the row is still its own (even past its
    time: nobody else took it meanwhile). Never takes a lease another holds or one released."""
    ms = _lease_ms(venue, account, holder, ttl_s)
    row = db.one(
        "UPDATE executor_leases SET expires_at = now() + %s * INTERVAL '1 millisecond' "
        f"WHERE venue = %s AND account = %s AND holder = %s RETURNING {_LEASE}",
        [ms, venue, account, holder],
    )
    if row is not None:
        return LeaseGrant(True, record_from_row(ExecutorLease, row))
    return LeaseGrant(False, get_lease(db, venue, account))


def release_lease(db: Session, venue: str, account: str, holder: str) -> bool:
    """Give the lease up, if `holder` holds it; whether it did."""
    row = db.one(
        "DELETE FROM executor_leases WHERE venue = %s AND account = %s AND holder = %s RETURNING holder",
        [venue, account, holder],
    )
    return row is not None


def get_lease(db: Session, venue: str, account: str) -> ExecutorLease | None:
    row = db.one(f"SELECT {_LEASE} FROM executor_leases WHERE venue = %s AND account = %s", [venue, account])
    return None if row is None else record_from_row(ExecutorLease, row)


def _lease_ms(venue: str, account: str, holder: str, ttl_s: float) -> int:
    if not holder.strip():
        raise CatalogError(f"lease of {venue}/{account}: the holder must be named")
    if not (isinstance(ttl_s, int | float) and math.isfinite(ttl_s) and ttl_s >= 0.001):
        raise CatalogError(
            f"lease of {venue}/{account}: ttl_s must be a number of seconds >= 0.001, not {ttl_s!r}"
        )
    return round(ttl_s * 1000)
