"""The executor: turns each running strategy's latest target into orders on one venue account, through a
broker, with every order's life in the orders repository.

Start: reconcile with the venue before anything else (`reconcile`): every order the repository holds as
open is asked about by its client order id and brought to the venue's state (its fills first, then its
status); the account's fills over `fills_lookback` are recorded (a fill seen before counts once); then
each traded symbol's position must equal what the venue holds, less the holdings it had before any order
of ours (the baseline the first reconciliation records). Any difference is a mismatch: the executor is not
ready and sends nothing (it fails closed), and tries again every `reconcile_every_s`.

Each poll, once ready:
- the kill switch (`trading_halts`) halted: cancel the account's open orders, send nothing;
- every open order is asked about and brought to the venue's state (an order the venue never received is
  rejected after `unknown_grace_s`, one it had and lost is cancelled; an UNKNOWN one is never sent again,
  only asked about; a cancel that did not take leaves the order working, to be decided on again);
- for each strategy of the account the runner is running, once its latest signal is of the newest
  recorded bar (within `max_signal_lag_bars`): when its target differs from the last one an order filled
  on (the simulator's rule: a position is held as sized, not rebalanced as the price moves), the target,
  through the strategy's rules (direction, sizing at the last recorded close), gives the position it wants,
  and the difference to its position, rounded down to the instrument's step, is one market order. Orders
  of an older bar still working are cancelled first when the target has changed since; an order
  still working is otherwise waited for; a
  bar refused by the venue or the risk checks waits for the next bar, one the venue never saw (it was
  unavailable) may go again. Pre-trade checks deny an order (with the reason) that would pass the
  strategy's max position, max order notional or max orders per minute. The intent is stored
  (INITIALIZED) and marked SUBMITTED before the request leaves, so a crash in between leaves an order to
  ask about, never one to send again.
- an order the venue has ended is ended here only once its fills are recorded (an ended order takes no
  fill): a venue whose trade list lags its order status is waited for.
The broker's event stream records fills as they come, and a reconnect makes the next poll reconcile again.
Stopping (SIGTERM) finishes the poll in progress and any fill being recorded, then beats "stopped".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal

import pyarrow as pa
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from resources.brokers.base import (
    Broker,
    BrokerError,
    BrokerUnavailable,
    OrderRejected,
    OrderRequest,
    OutcomeUnknown,
    VenueFill,
    VenueOrder,
)
from resources.catalog import Catalog
from resources.timeseries import StoreError, TimeSeriesStore
from trading_assets import naming
from trading_assets.live.config import StrategyRules
from trading_assets.live.health import Health
from trading_assets.live.service import timeframe
from trading_assets.orders import TERMINAL, OrderEvent, OrderStatus
from trading_assets.records import (
    CatalogError,
    CatalogUnavailable,
    NewFill,
    NewOrder,
    OrderRecord,
    OrderUpdate,
    SignalRecord,
    StaleOrder,
    StrategyRecord,
)

log = logging.getLogger(__name__)

S, E = OrderStatus, OrderEvent
# Orders one strategy may place on one bar (a partial fill that expired may need a second; a venue that
# keeps refusing must not get a stream of them).
MAX_ORDERS_PER_BAR = 3
HEARTBEAT_S = 5.0
# One executor per venue account: the account's lease in the catalog, taken (or extended) every heartbeat
# for LEASE_TTL_S by the database's clock. This process trades only while it holds it, counting its own
# margin off the time (a slow call, clocks apart): a predecessor killed without releasing it is waited for
# until its lease lapses, unless it was a process of this same host that no longer exists.
LEASE_TTL_S = 20.0
LEASE_MARGIN_S = 3.0
# The lease's holder is this process (an executor started again in the same process, as tests do, holds
# on where the one before left off); the token tells apart processes that reused a pid.
_PROCESS_TOKEN = secrets.token_hex(3)


@dataclass(frozen=True)
class Instrument:
    """A symbol's order rules at the venue: quantities are multiples of `step`, at least `min_quantity`."""

    step: Decimal
    min_quantity: Decimal


@dataclass(frozen=True)
class ExecutorConfig:
    venue: str
    account: str
    instruments: dict[str, Instrument]
    poll_s: float = 1.0
    fills_lookback: timedelta = timedelta(days=7)
    reconcile_every_s: float = 30.0
    # How long an order sent (or of unknown outcome) may be missing at the venue before it counts as never
    # received: longer than any request can travel (Binance refuses requests older than its recvWindow, 5 s).
    unknown_grace_s: float = 30.0
    # How many recorded bars the latest signal may lag the newest one and still be traded (the runner
    # signals a bar within a poll of its recording; an accelerated replay records several per poll).
    max_signal_lag_bars: int = 1
    # Seconds without a beat of the loop before /healthz says stuck (never fewer than ten polls).
    stale_after_s: float = 30.0


@dataclass
class _Metrics:
    registry: CollectorRegistry
    orders: Counter = field(init=False)
    outcomes: Counter = field(init=False)
    fills: Counter = field(init=False)
    reconciled: Gauge = field(init=False)
    connected: Gauge = field(init=False)
    round_trip: Histogram = field(init=False)

    def __post_init__(self) -> None:
        r = self.registry
        self.orders = Counter("live_orders", "Orders stored, by strategy", ["strategy"], registry=r)
        self.outcomes = Counter("live_order_outcomes", "Orders by how they ended", ["status"], registry=r)
        self.fills = Counter("live_fills", "Fills recorded", ["symbol"], registry=r)
        self.reconciled = Gauge("live_reconciled", "1 when the last reconciliation matched", registry=r)
        self.connected = Gauge("live_broker_connected", "1 while the broker reaches the venue", registry=r)
        self.connected.set(1)
        self.round_trip = Histogram(
            "live_order_round_trip_seconds",
            "From the request leaving to the venue's answer",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )


class Executor:
    """Trades the running strategies of `config.account` on `config.venue` through `broker`."""

    def __init__(
        self,
        config: ExecutorConfig,
        catalog: Catalog,
        broker: Broker,
        store: TimeSeriesStore,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        registry: CollectorRegistry | None = None,
        instance: str | None = None,
    ) -> None:
        self.config = config
        self.catalog = catalog
        self.broker = broker
        self.store = store
        self.clock = clock
        self.instance = instance or f"{socket.gethostname()}-{os.getpid()}"
        self.registry = registry or CollectorRegistry()
        self.metrics = _Metrics(self.registry)
        self.health = Health(
            "executor", self.registry, stale_after_s=max(config.stale_after_s, 10 * config.poll_s)
        )
        self.health.readiness(self.not_ready)
        self.reconciled = False
        self.connected = True
        self.problem: str | None = "not reconciled yet"
        self._last_reconcile = -1e9
        self._last_beat = -1e9
        self._lock = asyncio.Lock()
        # Bumped whenever something makes the state doubtful: a reconciliation that began before counts not.
        self._generation = 0
        # When this process sent each order (monotonic): how long one missing at the venue has been out.
        self._sent: dict[str, float] = {}
        # The account's lease: who this process is to it, until when (monotonic) it holds it, and why not.
        self.holder = f"{socket.gethostname()}-{os.getpid()}-{_PROCESS_TOKEN}"
        self._lease_until = -1e9
        self._lease_checked = -1e9
        self.lease_problem: str | None = None

    def not_ready(self) -> list[str]:
        reasons = [self.lease_problem] if self.lease_problem else []
        reasons += [] if self.reconciled else [self.problem or "not reconciled"]
        return reasons + ([] if self.connected else ["the broker is disconnected"])

    # -- running ----------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Reconcile, then poll until `stop` is set; the broker's fills are recorded as they come."""
        events = asyncio.create_task(self._follow_events())
        try:
            while not stop.is_set():
                if events.done():
                    # The broker's stream ended or failed: what it missed is only known by asking.
                    failure = None if events.cancelled() else events.exception()
                    log.warning("executor: the broker's event stream stopped (%s); reconciling", failure)
                    self._unreconcile("the broker's event stream stopped")
                    events = asyncio.create_task(self._follow_events())
                try:
                    await self.tick()
                except (CatalogError, BrokerError, StoreError, TimeoutError) as err:
                    # The store away (it reads the last bar there) is a poll with nothing to do, not a crash.
                    log.warning("executor: %s; trying again", err)
                self.health.beat()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.config.poll_s)
        finally:
            # Stopping (SIGTERM): the poll in progress has finished; a fill being recorded from the broker's
            # stream finishes too (it holds the lock), then the stream is let go.
            async with self._lock:
                events.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await events
            await self._beat(stopped=True)
            await self._release_lease()

    async def tick(self) -> None:
        """One poll: reconcile if needed, then follow the kill switch, the open orders and the strategies."""
        async with self._lock:
            if not await self._hold_lease():
                pass  # another executor trades this account: nothing here but the heartbeat
            elif not self.reconciled:
                if time.monotonic() - self._last_reconcile >= self.config.reconcile_every_s:
                    await self.reconcile()
            elif self.connected:
                halt = await asyncio.to_thread(
                    self.catalog.get_trading_halt, self.config.venue, self.config.account
                )
                await self._sync_open_orders()
                if halt is not None and halt.halted:
                    await self._cancel_all(f"kill switch: {halt.reason}")
                else:
                    for strategy in await self._strategies():
                        await self._act(strategy)
            await self._beat()

    async def _beat(self, stopped: bool = False) -> None:
        """The service's heartbeat row, every HEARTBEAT_S; `stopped`: the last one, said as it exits (a
        catalog away then costs a warning: the beat's age says the rest)."""
        if not stopped and time.monotonic() - self._last_beat < HEARTBEAT_S:
            return
        reasons = ["stopped"] if stopped else self.not_ready()
        status = "stopped" if stopped else "ready" if not reasons else "not ready"
        detail = json.dumps({"reasons": reasons, "venue": self.config.venue, "account": self.config.account})
        try:
            await asyncio.to_thread(self.catalog.heartbeat, "executor", self.instance, status, detail)
        except CatalogError as err:
            if not stopped:
                raise
            log.warning("executor: the last heartbeat was not stored: %s", err)
        self._last_beat = time.monotonic()

    async def _hold_lease(self) -> bool:
        """Whether this process holds the account's lease now; taken or extended every HEARTBEAT_S. Taken
        anew (not held without a break), it reconciles first: another executor may have traded meanwhile."""
        venue, account = self.config.venue, self.config.account
        now = time.monotonic()
        if now - self._lease_checked < HEARTBEAT_S and now < self._lease_until:
            return True
        grant = await asyncio.to_thread(
            self.catalog.acquire_executor_lease, venue, account, self.holder, LEASE_TTL_S
        )
        if not grant.granted and grant.lease is not None and _gone_from_this_host(grant.lease.holder):
            # A predecessor on this host killed before it could let go: its process is gone, take over.
            log.warning(
                "executor: %s held %s/%s and no longer runs; taking over", grant.lease.holder, venue, account
            )
            await asyncio.to_thread(self.catalog.release_executor_lease, venue, account, grant.lease.holder)
            grant = await asyncio.to_thread(
                self.catalog.acquire_executor_lease, venue, account, self.holder, LEASE_TTL_S
            )
        self._lease_checked = now
        if not grant.granted:
            held = grant.lease
            who = "another executor" if held is None else f"{held.holder} until {held.expires_at:%H:%M:%S}"
            problem = f"another executor holds {venue}/{account} ({who})"
            if problem != self.lease_problem:
                log.warning("executor: %s; waiting for it", problem)
            self.lease_problem, self._lease_until = problem, -1e9
            return False
        if now >= self._lease_until:
            self._unreconcile("the account's lease taken: reconciling before trading")
            log.info("executor: holds %s/%s as %s", venue, account, self.holder)
        self.lease_problem = None
        self._lease_until = now + LEASE_TTL_S - LEASE_MARGIN_S
        return True

    async def _release_lease(self) -> None:
        """Let the account go as this process stops, so a successor need not wait for it to lapse."""
        try:
            await asyncio.to_thread(
                self.catalog.release_executor_lease, self.config.venue, self.config.account, self.holder
            )
        except CatalogError as err:
            log.warning("executor: the lease was not released (it lapses in %.0f s): %s", LEASE_TTL_S, err)

    def _unreconcile(self, why: str) -> None:
        """Trade nothing until a reconciliation has run again; one in flight no longer counts."""
        self._generation += 1
        self.reconciled, self.problem, self._last_reconcile = False, why, -1e9

    async def _follow_events(self) -> None:
        async for event in self.broker.events():
            if event.kind == "disconnected":
                self.connected = False
                self.metrics.connected.set(0)
                log.warning("executor: broker disconnected: %s", event.detail)
            elif event.kind == "reconnected":
                self.connected = True
                self.metrics.connected.set(1)
                # What happened while the link was down is only known by asking: reconcile before trading.
                self._unreconcile("reconciling after a reconnect")
                log.info("executor: broker reconnected; reconciling")
            elif event.kind == "fill" and event.fill is not None:
                async with self._lock:
                    try:
                        recorded = await self._record_fill(event.fill)
                    except (CatalogError, TimeoutError) as err:
                        recorded, why = False, str(err)
                    else:
                        why = "it belongs to no order of ours"
                    if not recorded:
                        log.warning(
                            "executor: fill %s not recorded (%s); reconciling", event.fill.trade_id, why
                        )
                        self._unreconcile(f"fill {event.fill.trade_id} not recorded: {why}")

    # -- reconciliation -----------------------------------------------------------------------------------

    async def reconcile(self) -> bool:
        """Bring the repository to the venue's state and compare positions; True when they match."""
        self._last_reconcile = time.monotonic()
        generation = self._generation
        venue, account = self.config.venue, self.config.account
        run = await asyncio.to_thread(self.catalog.start_reconciliation, "executor", venue, account)
        mismatches: list[str] = []
        details: dict[str, object] = {}
        try:
            for order in await asyncio.to_thread(self.catalog.open_orders, venue, account):
                await self._sync(order, await self.broker.order_status(order.client_order_id, order.symbol))
            await self._deny_unsent()
            symbols = sorted({s.symbol for s in await self._strategies(running_only=False)})
            since = self.clock() - self.config.fills_lookback
            for symbol in symbols:
                for fill in await self.broker.fills_since(symbol, since):
                    if not await self._record_fill(fill):
                        mismatches.append(f"{symbol}: the venue's trade {fill.trade_id} is no order of ours")
            baseline, first = await self._baseline(symbols)
            held = await self.broker.positions()
            for symbol in symbols:
                stored = await asyncio.to_thread(self.catalog.get_position, venue, account, symbol)
                ours = Decimal(0) if stored is None else stored.quantity
                venue_qty = held.get(symbol, Decimal(0))
                if venue_qty != baseline.get(symbol, Decimal(0)) + ours:
                    mismatches.append(
                        f"{symbol}: the venue holds {venue_qty}, the repository's fills make {ours} on top "
                        f"of {baseline.get(symbol, Decimal(0))} held before"
                    )
            if first:
                details["baseline"] = {k: str(v) for k, v in baseline.items()}
            known = {o.client_order_id for o in await asyncio.to_thread(self.catalog.list_orders)}
            for order in await self.broker.open_orders():
                if order.client_order_id not in known and order.symbol in symbols:
                    mismatches.append(
                        f"{order.symbol}: open order {order.client_order_id} at the venue is not ours"
                    )
        except (BrokerError, CatalogError) as err:
            details["error"] = str(err)
            await asyncio.to_thread(self.catalog.finish_reconciliation, run.id, "failed", json.dumps(details))
            self.reconciled, self.problem = False, f"reconciliation failed: {err}"
            self.metrics.reconciled.set(0)
            log.warning("executor: %s", self.problem)
            return False
        details["mismatches"] = mismatches
        status = "mismatch" if mismatches else "ok"
        await asyncio.to_thread(self.catalog.finish_reconciliation, run.id, status, json.dumps(details))
        self.reconciled = not mismatches and generation == self._generation
        self.problem = (
            None
            if self.reconciled
            else f"reconciliation found {len(mismatches)} mismatch(es): {mismatches[0]}"
        )
        self.metrics.reconciled.set(1 if self.reconciled else 0)
        log.info(
            "executor: reconciled %s/%s: %s", venue, account, status if self.reconciled else self.problem
        )
        return self.reconciled

    async def _baseline(self, symbols: list[str]) -> tuple[dict[str, Decimal], bool]:
        """What the account held before any order of ours (the first reconciliation's record of it), and
        whether this is the first reconciliation (which then records it)."""
        for past in await asyncio.to_thread(
            self.catalog.list_reconciliations, self.config.venue, self.config.account
        ):
            if past.status == "ok" and past.details and "baseline" in json.loads(past.details):
                return {k: Decimal(v) for k, v in json.loads(past.details)["baseline"].items()}, False
        orders = [
            o
            for o in await asyncio.to_thread(self.catalog.list_orders)
            if (o.venue, o.account) == (self.config.venue, self.config.account)
        ]
        if orders:
            # Orders of ours but no baseline recorded: what the venue holds cannot be split into "before us"
            # and "ours" after the fact; every holding must then be explained by the fills.
            return {}, False
        held = await self.broker.positions()
        return {symbol: held.get(symbol, Decimal(0)) for symbol in symbols}, True

    async def _deny_unsent(self) -> None:
        """Intents stored but never marked sent (a crash between the two) are denied: they never left."""
        for order in await asyncio.to_thread(self.catalog.list_orders, None, [S.INITIALIZED.value]):
            if (order.venue, order.account) == (self.config.venue, self.config.account):
                await self._apply(order, E.DENY, reason="not sent before the executor stopped")

    # -- orders -----------------------------------------------------------------------------------------

    async def _sync_open_orders(self) -> None:
        for order in await asyncio.to_thread(
            self.catalog.open_orders, self.config.venue, self.config.account
        ):
            try:
                venue_order = await self.broker.order_status(order.client_order_id, order.symbol)
            except BrokerUnavailable:
                return
            await self._sync(order, venue_order)

    async def _sync(self, order: OrderRecord, venue_order: VenueOrder | None) -> None:
        """Bring one stored order to what the venue says of it: fills first (a canceled order takes none
        after), then its status."""
        if venue_order is None:
            # Sent by this process: how long ago by its own clock. Sent before a restart: longer ago than any
            # request can travel (a restart takes longer than the venue's receive window).
            sent = self._sent.get(order.client_order_id)
            age = float("inf") if sent is None else time.monotonic() - sent
            if age < self.config.unknown_grace_s:
                return
            missing = f"the venue has no order {order.client_order_id}"
            if order.status in (S.SUBMITTED, S.UNKNOWN):
                await self._apply(order, E.REJECT, reason=missing)  # it never arrived
            else:
                # The venue had it and has lost it (or purged it): it works no more, whatever was asked.
                await self._apply(order, E.CANCEL, detail={"reason": missing})
            return
        if venue_order.filled > order.filled_quantity:
            # On the venue's clock the order came after its signal's bar (created_at is the catalog's clock).
            since = order.bar_ts
            for fill in await self.broker.fills_since(order.symbol, since):
                if fill.client_order_id == order.client_order_id or (
                    fill.venue_order_id is not None and fill.venue_order_id == venue_order.venue_order_id
                ):
                    await self._record_fill(fill, order.client_order_id)
        stored = await asyncio.to_thread(self.catalog.get_order, order.client_order_id)
        if stored is None or stored.status in TERMINAL:
            return
        if stored.filled_quantity < venue_order.filled and venue_order.status != "open":
            # The venue ended it with fills its trade list has not shown yet: an ended order takes no fill,
            # so it stays as it is until they arrive (the next poll asks again).
            log.warning(
                "executor: %s is %s at the venue with %s filled, %s recorded; waiting for its fills",
                stored.client_order_id,
                venue_order.status,
                venue_order.filled,
                stored.filled_quantity,
            )
            return
        status = S(stored.status)
        working = {
            # Sent or of unknown outcome, and working at the venue (with the fills it has, if any).
            S.SUBMITTED: E.ACCEPT,
            S.UNKNOWN: E.ACCEPT,
            # A cancel that did not take (refused, lost, or never sent before a crash): working again, so the
            # next poll decides afresh whether to cancel it.
            S.PENDING_CANCEL: E.CANCEL_REJECT,
        }
        event = {
            "open": working.get(status),
            "canceled": E.CANCEL,
            "expired": E.EXPIRE,
            "rejected": E.REJECT,
            "closed": None,
        }[venue_order.status]
        if event is not None:
            reason = {
                E.REJECT: venue_order.reason or "rejected by the venue",
                E.CANCEL_REJECT: "the cancel did not take: the venue has the order working",
            }.get(event)
            await self._apply(stored, event, reason=reason, venue_order_id=venue_order.venue_order_id)

    async def _record_fill(self, fill: VenueFill, client_order_id: str | None = None) -> bool:
        """Record a venue fill against its order; False if it belongs to no order of ours."""
        cid = client_order_id or fill.client_order_id
        if cid is None and fill.venue_order_id is not None:
            orders = await asyncio.to_thread(self.catalog.list_orders)
            cid = next((o.client_order_id for o in orders if o.venue_order_id == fill.venue_order_id), None)
        if cid is None or await asyncio.to_thread(self.catalog.get_order, cid) is None:
            return False
        new = NewFill(
            venue=self.config.venue,
            trade_id=fill.trade_id,
            client_order_id=cid,
            symbol=fill.symbol,
            side=fill.side,
            quantity=fill.quantity,
            price=fill.price,
            fee=fill.fee,
            fee_currency=fill.fee_currency,
            ts=fill.ts,
        )
        _, created = await asyncio.to_thread(self.catalog.record_fill, new)
        if created:
            self.metrics.fills.labels(fill.symbol).inc()
            log.info(
                "executor: fill %s of %s: %s %s at %s",
                fill.trade_id,
                cid,
                fill.side,
                fill.quantity,
                fill.price,
            )
        return True

    async def _apply(
        self,
        order: OrderRecord,
        event: OrderEvent,
        *,
        reason: str | None = None,
        venue_order_id: str | None = None,
        detail: dict | None = None,
    ) -> OrderRecord | None:
        """Apply `event` if the order is still as read; None if it moved meanwhile (the next poll sees it)."""
        update = OrderUpdate(
            event=event.value,
            reason=reason,
            venue_order_id=venue_order_id,
            detail=json.dumps(detail or {}),
            expected_status=order.status,
        )
        try:
            stored = await asyncio.to_thread(self.catalog.apply_order_event, order.client_order_id, update)
        except StaleOrder:
            return None
        except CatalogUnavailable:
            raise
        except CatalogError as err:
            # The machine refused: the venue said something the order cannot become. Kept, loudly.
            log.error("executor: %s", err)
            return None
        if stored.status in TERMINAL:
            self.metrics.outcomes.labels(stored.status).inc()
        return stored

    async def _cancel_all(self, reason: str) -> None:
        for order in await asyncio.to_thread(
            self.catalog.open_orders, self.config.venue, self.config.account
        ):
            await self._cancel(order, reason)

    async def _cancel(self, order: OrderRecord, reason: str) -> None:
        if order.status not in (S.ACCEPTED, S.PARTIALLY_FILLED):
            return  # SUBMITTED/UNKNOWN are asked about first; PENDING_CANCEL is on its way
        pending = await self._apply(order, E.CANCEL_REQUEST, detail={"reason": reason})
        if pending is None:
            return
        try:
            venue_order = await self.broker.cancel(order.client_order_id, order.symbol)
        except OutcomeUnknown:
            await self._apply(pending, E.TIMEOUT, detail={"reason": "the cancel's answer was lost"})
            return
        except BrokerUnavailable as err:
            # Nothing reached the venue: the order works on as it was; a later poll may cancel it again.
            await self._apply(pending, E.CANCEL_REJECT, reason=f"{NOT_SENT}{err}")
            return
        except OrderRejected as err:
            venue_order = await self.broker.order_status(order.client_order_id, order.symbol)
            if venue_order is not None and venue_order.status == "open":
                await self._apply(pending, E.CANCEL_REJECT, reason=err.reason)
                return
        await self._sync(pending, venue_order)

    # -- strategies -------------------------------------------------------------------------------------

    async def _strategies(self, running_only: bool = True) -> list[StrategyRecord]:
        strategies = await asyncio.to_thread(self.catalog.list_strategies)
        return [
            s
            for s in strategies
            if (s.venue, s.account) == (self.config.venue, self.config.account)
            and (not running_only or s.desired_state == "running")
        ]

    async def _act(self, strategy: StrategyRecord) -> None:
        if strategy.actual_state != "running":
            return  # the runner has not started it, or it failed: its signals are not current
        signals = await asyncio.to_thread(self.catalog.list_signals, strategy.name)
        if not signals:
            return
        latest = signals[-1]
        newest = await self._last_bar(strategy)
        if newest is None or latest.bar_ts < newest[0] - self.config.max_signal_lag_bars * newest[1]:
            return  # the runner is behind the recorded bars: no trading on an old target (or an old price)
        orders = await asyncio.to_thread(self.catalog.list_orders, strategy.name)
        await self._deny_stale_intents(orders)
        working = [o for o in orders if o.status not in TERMINAL]
        targets = {s.bar_ts: s.target for s in signals}
        for order in working:
            # A working order is cancelled only when the target it went for has changed since: an order
            # still on its way to the venue's next bar is left to fill.
            if order.bar_ts < latest.bar_ts and targets.get(order.bar_ts) != latest.target:
                await self._cancel(order, f"replaced by the signal of {latest.bar_ts:%Y-%m-%d %H:%M}")
        if working:
            return
        this_bar = [o for o in orders if o.bar_ts == latest.bar_ts]
        refused = [o for o in this_bar if o.status in (S.DENIED, S.REJECTED) and not _not_sent(o)]
        if len(this_bar) >= MAX_ORDERS_PER_BAR or refused:
            return  # refused on this bar: the next bar's signal decides again
        # As the simulator: an order only when the target differs from the last one acted on; a position is
        # then held as sized (no rebalancing as the price moves).
        acted = _last_acted_target(orders, signals)
        if acted is not None and acted == latest.target:
            return
        await self._order_towards(strategy, latest, len(this_bar), orders)

    async def _deny_stale_intents(self, orders: list[OrderRecord]) -> None:
        """An intent stored but not marked sent never left: this process marks its intents sent at once,
        under the same lock as this poll, so one still INITIALIZED here is left over (a failed step, a
        crash); deny it rather than hold the strategy up until a restart."""
        for order in orders:
            if order.status == S.INITIALIZED:
                await self._apply(order, E.DENY, reason="stored but never sent")

    async def _order_towards(
        self, strategy: StrategyRecord, signal: SignalRecord, seq: int, orders: list[OrderRecord]
    ) -> None:
        instrument = self.config.instruments.get(strategy.symbol)
        if instrument is None:
            log.warning(
                "executor: no instrument rules for %s; %s sends nothing", strategy.symbol, strategy.name
            )
            return
        rules = StrategyRules.from_json(strategy.sizing)
        price = await self._last_close(strategy)
        if price is None:
            return
        stored = await asyncio.to_thread(
            self.catalog.get_position, self.config.venue, self.config.account, strategy.symbol
        )
        position = Decimal(0) if stored is None else stored.quantity
        wanted = Decimal(str(rules.side_allowed(signal.target))) * await self._size(rules, strategy, price)
        delta = _to_step(wanted - position, instrument.step)
        if abs(delta) < instrument.min_quantity:
            return
        reason = self._risk(strategy, position, delta, price, orders)
        new = NewOrder(
            strategy=strategy.name,
            bar_ts=signal.bar_ts,
            seq=seq,
            side="buy" if delta > 0 else "sell",
            order_type="market",
            quantity=abs(delta),
        )
        order, created = await asyncio.to_thread(self.catalog.create_order, new)
        if not created:
            return
        self.metrics.orders.labels(strategy.name).inc()
        if reason is not None:
            await self._apply(order, E.DENY, reason=reason)
            log.info("executor: %s denied: %s", order.client_order_id, reason)
            return
        await self._send(order)

    async def _send(self, order: OrderRecord) -> None:
        sent = await self._apply(order, E.SUBMIT)
        if sent is None:
            return
        request = OrderRequest(order.client_order_id, order.symbol, order.side, "market", order.quantity)  # type: ignore[arg-type]
        self._sent[order.client_order_id] = time.monotonic()
        started = time.perf_counter()
        try:
            venue_order = await self.broker.submit(request)
        except OrderRejected as err:
            await self._apply(sent, E.REJECT, reason=err.reason)
            log.info("executor: %s rejected: %s", order.client_order_id, err.reason)
            return
        except OutcomeUnknown as err:
            # It may be at the venue: ask about it by this id from now on, never send it again.
            await self._apply(sent, E.TIMEOUT, detail={"error": str(err)})
            log.warning("executor: %s outcome unknown (%s); asking the venue", order.client_order_id, err)
            return
        except BrokerUnavailable as err:
            # Nothing reached the venue: the bar may try again (`_not_sent`) once the venue is back.
            await self._apply(sent, E.REJECT, reason=f"{NOT_SENT}{err}")
            return
        self.metrics.round_trip.observe(time.perf_counter() - started)
        await self._sync(sent, venue_order)

    async def _size(self, rules: StrategyRules, strategy: StrategyRecord, price: Decimal) -> Decimal:
        """Base units of a full-size position at `price`."""
        if rules.sizing == "units":
            return rules.amount
        if rules.sizing == "notional":
            return rules.amount / price
        balances = await self.broker.balances()
        base, quote = strategy.symbol.split(":")[0].split("/")
        equity = balances.get(quote, Decimal(0)) + balances.get(base, Decimal(0)) * price
        return rules.amount * equity / price

    def _risk(
        self,
        strategy: StrategyRecord,
        position: Decimal,
        delta: Decimal,
        price: Decimal,
        orders: list[OrderRecord],
    ) -> str | None:
        """Why the order must not go (None: it may): the strategy's pre-trade limits."""
        after = position + delta
        if abs(after) > strategy.max_position and abs(after) > abs(position):  # reducing is always allowed
            return f"max position: {after} would pass {strategy.max_position}"
        notional = abs(delta) * price
        if notional > strategy.max_order_notional:
            return f"max order notional: {notional:.2f} would pass {strategy.max_order_notional}"
        # Orders sent to the venue in the last wall minute (created_at is the catalog's clock); denied ones
        # never left, and counting them would keep a strategy denied for as long as it keeps asking.
        minute_ago = datetime.now(UTC) - timedelta(minutes=1)
        recent = sum(
            1
            for o in orders
            if o.created_at is not None
            and o.created_at >= minute_ago
            and o.status not in (S.DENIED, S.INITIALIZED)
        )
        if recent >= strategy.max_orders_per_minute:
            return f"max orders per minute: {recent} in the last minute"
        return None

    async def _last_bar(self, strategy: StrategyRecord) -> tuple[datetime, timedelta] | None:
        """The newest recorded bar of the strategy's symbol, and the bars' interval."""
        dataset = await asyncio.to_thread(self.catalog.get_dataset, strategy.dataset)
        if dataset is None:
            return None
        table = naming.live_bars_table(strategy.venue, strategy.symbol, timeframe(dataset.bar_interval_s))
        last = await asyncio.to_thread(self.store.last_ts, table)
        return None if last is None else (last, timedelta(seconds=dataset.bar_interval_s))

    async def _last_close(self, strategy: StrategyRecord) -> Decimal | None:
        dataset = await asyncio.to_thread(self.catalog.get_dataset, strategy.dataset)
        if dataset is None:
            return None
        table = naming.live_bars_table(strategy.venue, strategy.symbol, timeframe(dataset.bar_interval_s))
        last = await asyncio.to_thread(self.store.last_ts, table)
        if last is None:
            return None
        bars = await asyncio.to_thread(self.store.read, table, last, None, ["ts", "close"])
        closes = bars.column("close").cast(pa.float64()).to_pylist()
        return Decimal(str(closes[-1])) if closes else None


NOT_SENT = "not sent: "


def _not_sent(order: OrderRecord) -> bool:
    """A rejection the venue never saw (it was unavailable): the bar may send again."""
    return order.status == S.REJECTED and (order.reason or "").startswith(NOT_SENT)


def _last_acted_target(orders: list[OrderRecord], signals: list[SignalRecord]) -> float | None:
    """The target of the signal whose order last filled (in whole or in part); None before any fill."""
    filled = [o for o in orders if o.filled_quantity > 0]
    if not filled:
        return None
    bar = max(o.bar_ts for o in filled)
    return next((s.target for s in reversed(signals) if s.bar_ts == bar), None)


def _gone_from_this_host(holder: str) -> bool:
    """Whether a lease holder (`<host>-<pid>-<token>`) was a process of this host that no longer runs."""
    parts = holder.rsplit("-", 2)
    if len(parts) != 3 or not parts[1].isdigit() or parts[0] != socket.gethostname():
        return False
    pid = int(parts[1])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # it runs, as another user
    return False


def _to_step(quantity: Decimal, step: Decimal) -> Decimal:
    """`quantity` rounded toward zero to a multiple of `step`."""
    return (quantity / step).to_integral_value(rounding=ROUND_DOWN) * step
