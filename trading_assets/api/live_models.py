"""The live pages' models: strategies, orders, fills, positions, health and the kill switch as JSON.

Quantities, prices and money go out as decimal strings in plain notation ("0.0015", never "1.5E-3" or a
float): a client that adds them up must get the catalog's numbers, not a binary approximation.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from trading_assets.live.alerts import Alert, ServiceState, order_runbook, strategy_runbook
from trading_assets.records import (
    FillLineage,
    FillRecord,
    HeartbeatRecord,
    OrderEventRecord,
    OrderRecord,
    PositionRecord,
    ReconciliationRecord,
    SignalRecord,
    StrategyRecord,
    TradingHalt,
)


def decimal_text(value: Decimal | None) -> str | None:
    """The shortest plain-notation text of `value` (1.50 -> "1.5", 1E+2 -> "100", 1E-7 -> "0.0000001")."""
    if value is None:
        return None
    normal = value.normalize()
    if normal == normal.to_integral_value():
        normal = normal.quantize(Decimal(1))
    return format(normal, "f")


def _json_object(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return {"text": text}
    return value if isinstance(value, dict) else {"value": value}


RUNBOOK_DESCRIPTION = (
    "The slug of the runbook that covers this state (GET /live/runbooks/{slug}); null if none"
)


class Lineage(BaseModel):
    """Where a strategy's model comes from: the fold of a walkforward run, its file hash, the indicator set
    and the dataset's bars file."""

    walkforward_run: str
    fold: int
    model_sha256: str
    measurement: str
    indicator_version: int
    dataset: str
    bars_sha256: str


class Rules(BaseModel):
    """The simulator's rules the strategy sizes by (its `sizing` JSON): units, a notional or a fraction of
    equity, the direction it trades and the signal function's dead zone."""

    sizing: str
    amount: str
    direction: str
    dead_zone: str


class Limits(BaseModel):
    max_position: str = Field(description="Base units, either side (decimal string)")
    max_order_notional: str = Field(description="Quote currency (decimal string)")
    max_orders_per_minute: int


class Signal(BaseModel):
    bar_ts: datetime
    prediction: float | None = Field(description="null inside the indicators' warm-up")
    target: float
    created_at: datetime | None

    @classmethod
    def of(cls, record: SignalRecord) -> Signal:
        finite = math.isfinite(record.prediction)
        return cls(
            bar_ts=record.bar_ts,
            prediction=record.prediction if finite else None,
            target=record.target,
            created_at=record.created_at,
        )


class Position(BaseModel):
    venue: str
    account: str
    symbol: str
    quantity: str = Field(description="Signed base units, > 0 long (decimal string)")
    average_entry_price: str | None = Field(description="null when flat")
    realised_pnl: str = Field(description="Quote currency, before fees")
    updated_at: datetime | None

    @classmethod
    def of(cls, record: PositionRecord) -> Position:
        return cls(
            venue=record.venue,
            account=record.account,
            symbol=record.symbol,
            quantity=decimal_text(record.quantity),  # type: ignore[arg-type]
            average_entry_price=decimal_text(record.average_entry_price),
            realised_pnl=decimal_text(record.realised_pnl),  # type: ignore[arg-type]
            updated_at=record.updated_at,
        )


class Strategy(BaseModel):
    name: str
    desired_state: str
    actual_state: str
    state_message: str | None
    lineage: Lineage
    symbol: str
    venue: str
    account: str
    long_threshold: float
    short_threshold: float
    rules: Rules
    limits: Limits
    latest_signal: Signal | None
    position: Position | None = Field(
        description="The account's position in the symbol (shared by the strategies that trade it), null "
        "before its first fill"
    )
    created_at: datetime | None
    updated_at: datetime | None
    runbook: str | None = Field(description=RUNBOOK_DESCRIPTION)

    @classmethod
    def of(
        cls, record: StrategyRecord, signal: SignalRecord | None, position: PositionRecord | None
    ) -> Strategy:
        from trading_assets.live.config import StrategyRules

        rules = StrategyRules.from_json(record.sizing)
        return cls(
            name=record.name,
            desired_state=record.desired_state,
            actual_state=record.actual_state,
            state_message=record.state_message,
            lineage=Lineage(
                walkforward_run=record.walkforward_run,
                fold=record.fold,
                model_sha256=record.model_sha256,
                measurement=record.measurement,
                indicator_version=record.indicator_version,
                dataset=record.dataset,
                bars_sha256=record.bars_sha256,
            ),
            symbol=record.symbol,
            venue=record.venue,
            account=record.account,
            long_threshold=record.long_threshold,
            short_threshold=record.short_threshold,
            rules=Rules(
                sizing=rules.sizing,
                amount=decimal_text(rules.amount),  # type: ignore[arg-type]
                direction=rules.direction,
                dead_zone=rules.dead_zone,
            ),
            limits=Limits(
                max_position=decimal_text(record.max_position),  # type: ignore[arg-type]
                max_order_notional=decimal_text(record.max_order_notional),  # type: ignore[arg-type]
                max_orders_per_minute=record.max_orders_per_minute,
            ),
            latest_signal=None if signal is None else Signal.of(signal),
            position=None if position is None else Position.of(position),
            created_at=record.created_at,
            updated_at=record.updated_at,
            runbook=strategy_runbook(record.actual_state),
        )


class DesiredState(BaseModel):
    """What the operator asks of a strategy; the runner follows within its poll."""

    model_config = ConfigDict(extra="forbid")
    state: Literal["running", "stopped"]


class Order(BaseModel):
    client_order_id: str
    strategy: str
    bar_ts: datetime
    seq: int
    venue: str
    account: str
    symbol: str
    side: str
    order_type: str
    quantity: str
    limit_price: str | None
    status: str
    venue_order_id: str | None
    filled_quantity: str
    average_fill_price: str | None
    reason: str | None
    event_seq: int = Field(description="The seq of the order's latest event (1: its creation)")
    created_at: datetime | None
    updated_at: datetime | None
    runbook: str | None = Field(description=RUNBOOK_DESCRIPTION)

    @classmethod
    def of(cls, record: OrderRecord) -> Order:

        return cls(
            client_order_id=record.client_order_id,
            strategy=record.strategy,
            bar_ts=record.bar_ts,
            seq=record.seq,
            venue=record.venue,
            account=record.account,
            symbol=record.symbol,
            side=record.side,
            order_type=record.order_type,
            quantity=decimal_text(record.quantity),  # type: ignore[arg-type]
            limit_price=decimal_text(record.limit_price),
            status=record.status,
            venue_order_id=record.venue_order_id,
            filled_quantity=decimal_text(record.filled_quantity),  # type: ignore[arg-type]
            average_fill_price=decimal_text(record.average_fill_price),
            reason=record.reason,
            event_seq=record.event_seq,
            created_at=record.created_at,
            updated_at=record.updated_at,
            runbook=order_runbook(record.status),
        )


class OrderEvent(BaseModel):
    seq: int
    event: str
    from_status: str | None
    to_status: str
    detail: dict[str, Any]
    recorded_at: datetime | None

    @classmethod
    def of(cls, record: OrderEventRecord) -> OrderEvent:
        return cls(
            seq=record.seq,
            event=record.event,
            from_status=record.from_status,
            to_status=record.to_status,
            detail=_json_object(record.detail) or {},
            recorded_at=record.recorded_at,
        )


class OrderDetail(Order):
    events: list[OrderEvent] = Field(description="The order's whole history, oldest first")


class OrderPage(BaseModel):
    orders: list[Order] = Field(description="Newest first")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last")


class FillSource(BaseModel):
    """A fill's lineage: its strategy and bar, and the strategy's fold model, indicator set and bars file."""

    strategy: str
    bar_ts: datetime
    walkforward_run: str
    fold: int
    model_sha256: str
    measurement: str
    indicator_version: int
    dataset: str
    bars_sha256: str


class Fill(BaseModel):
    venue: str
    trade_id: str
    client_order_id: str
    symbol: str
    side: str
    quantity: str
    price: str
    fee: str
    fee_currency: str | None
    ts: datetime
    created_at: datetime | None
    lineage: FillSource | None

    @classmethod
    def of(cls, record: FillRecord, lineage: FillLineage | None) -> Fill:
        source = None
        if lineage is not None:
            source = FillSource(
                strategy=lineage.strategy,
                bar_ts=lineage.bar_ts,
                walkforward_run=lineage.walkforward_run,
                fold=lineage.fold,
                model_sha256=lineage.model_sha256,
                measurement=lineage.measurement,
                indicator_version=lineage.indicator_version,
                dataset=lineage.dataset,
                bars_sha256=lineage.bars_sha256,
            )
        return cls(
            venue=record.venue,
            trade_id=record.trade_id,
            client_order_id=record.client_order_id,
            symbol=record.symbol,
            side=record.side,
            quantity=decimal_text(record.quantity),  # type: ignore[arg-type]
            price=decimal_text(record.price),  # type: ignore[arg-type]
            fee=decimal_text(record.fee),  # type: ignore[arg-type]
            fee_currency=record.fee_currency,
            ts=record.ts,
            created_at=record.created_at,
            lineage=source,
        )


class FillPage(BaseModel):
    fills: list[Fill] = Field(description="Newest first")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last")


class Heartbeat(BaseModel):
    service: str
    instance: str
    status: str
    detail: dict[str, Any]
    last_beat: datetime
    age_s: float = Field(description="Seconds since the last beat, by the API server's clock")
    stale: bool = Field(description="No beat for longer than the health's `stale_after_s`")

    @classmethod
    def of(cls, record: HeartbeatRecord, now: datetime, stale_after_s: float) -> Heartbeat:
        age = max(0.0, (now - record.last_beat).total_seconds())
        return cls(
            service=record.service,
            instance=record.instance,
            status=record.status,
            detail=_json_object(record.detail) or {},
            last_beat=record.last_beat,
            age_s=round(age, 3),
            stale=age > stale_after_s,
        )


class Reconciliation(BaseModel):
    id: int
    service: str
    venue: str
    account: str
    started_at: datetime
    finished_at: datetime | None
    status: str | None = Field(description="ok, mismatch or failed; null while it runs")
    details: dict[str, Any] | None

    @classmethod
    def of(cls, record: ReconciliationRecord) -> Reconciliation:
        return cls(
            id=record.id,
            service=record.service,
            venue=record.venue,
            account=record.account,
            started_at=record.started_at,
            finished_at=record.finished_at,
            status=record.status,
            details=_json_object(record.details),
        )


class DataHealth(BaseModel):
    """The recorded bars of one symbol: the live bars table the strategies read and how far behind it is."""

    venue: str
    symbol: str
    timeframe: str
    bar_interval_s: int
    table: str
    strategies: list[str]
    last_bar: datetime | None = Field(description="The latest stored bar's open time; null before any")
    bars_behind: int | None = Field(
        description="Closed bars at this time not stored yet (0: caught up); null before any bar"
    )
    error: str | None = Field(description="Why the store could not be read, if it could not")


class ServiceStatus(BaseModel):
    """One service's current instance (the executor's, per venue account) and its state."""

    key: str = Field(description="The service, and its venue account (executor) or venue (recorder)")
    service: str
    scope: str | None = Field(description="venue/account of an executor, the venue of a recorder")
    instance: str = Field(description="host-pid of the process that beat last")
    status: str = Field(description="What the service says of itself (ok, ready, not ready, stopped)")
    reasons: list[str] = Field(description="Why it is not ready, in its own words")
    detail: dict[str, Any]
    last_beat: datetime
    age_s: float = Field(description="Seconds since the last beat, by the API server's clock")
    state: Literal["ok", "not ready", "stopped", "late", "down"] = Field(
        description="late: no beat for more than one interval plus a grace; down: for several intervals; "
        "stopped: its last beat said it exited (SIGTERM), down once no successor has beaten for as long"
    )
    replaced: list[str] = Field(description="Older instances of the same service, replaced by this one")
    runbook: str | None = Field(description=RUNBOOK_DESCRIPTION)

    @classmethod
    def of(cls, state: ServiceState) -> ServiceStatus:
        return cls(
            key=state.key,
            service=state.service,
            scope=state.scope,
            instance=state.instance,
            status=state.status,
            reasons=list(state.reasons),
            detail=state.detail,
            last_beat=state.last_beat,
            age_s=state.age_s,
            state=state.state,  # type: ignore[arg-type]
            replaced=list(state.replaced),
            runbook=state.runbook,
        )


class FiringAlert(BaseModel):
    name: str = Field(description="As the Prometheus rule names it, e.g. LiveServiceDown")
    severity: Literal["critical", "warning", "info"]
    since: datetime
    summary: str = Field(description="One line naming the service and instance, strategy, order or table")
    subject: str = Field(
        description="What it is about: service:<key>, strategy:<name>, order:<client order id>, "
        "account:<venue>/<account> or data:<table>"
    )
    runbook: str = Field(description="The slug of its runbook (GET /live/runbooks/{slug})")

    @classmethod
    def of(cls, alert: Alert) -> FiringAlert:
        return cls(
            name=alert.name,
            severity=alert.severity,  # type: ignore[arg-type]
            since=alert.since,
            summary=alert.summary,
            subject=alert.subject,
            runbook=alert.runbook,
        )


class Alerts(BaseModel):
    now: datetime
    alerts: list[FiringAlert] = Field(description="Most severe first, then oldest first")


class Runbook(BaseModel):
    slug: str
    title: str | None = Field(description="The page's first heading; null while it is not written")
    url: str


class Health(BaseModel):
    now: datetime
    stale_after_s: float
    services: list[Heartbeat] = Field(description="The latest beat of every instance, replaced ones too")
    service_states: list[ServiceStatus] = Field(description="Each service's current instance and its state")
    reconciliations: list[Reconciliation] = Field(description="The latest per venue account")
    data: list[DataHealth]


class Halt(BaseModel):
    venue: str
    account: str
    halted: bool
    reason: str | None = Field(description="null if the switch was never set")
    set_by: str | None
    updated_at: datetime | None

    @classmethod
    def of(cls, venue: str, account: str, record: TradingHalt | None) -> Halt:
        if record is None:
            return cls(venue=venue, account=account, halted=False, reason=None, set_by=None, updated_at=None)
        return cls(
            venue=record.venue,
            account=record.account,
            halted=record.halted,
            reason=record.reason,
            set_by=record.set_by,
            updated_at=record.updated_at,
        )


class HaltChange(BaseModel):
    """Switch a venue account's trading off (`halted`: its open orders are cancelled, no order is sent) or
    back on, saying why."""

    model_config = ConfigDict(extra="forbid")
    halted: bool = Field(strict=True)
    reason: str = Field(min_length=1, max_length=500)

    @field_validator("reason")
    @classmethod
    def _said(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("give a reason")
        return value.strip()
