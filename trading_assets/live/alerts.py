"""What the operator must look at now: each live service's state from its heartbeats, and the alerts that
are firing, read from the catalog (and the store, for the recorded bars' lag).

A service is `ok`, `not ready` (it beats but says why it cannot do its job), `late` (no beat for more than
one heartbeat interval plus a grace: one beat missed) or `down` (no beat for several intervals). Each
restart beats under a new instance (host-pid) and the old row stays: the newest instance of a service
(of the executor, per venue account) is its current one, and the older ones are `replaced`, never down.

Alert names are the ones the Prometheus rules use, so a page, a rule and a runbook say the same thing;
each alert names the runbook (`docs/runbooks/<slug>.md`) that says what to check.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from resources.catalog import Catalog
from trading_assets.records import HeartbeatRecord, OrderRecord, ReconciliationRecord, StrategyRecord

if TYPE_CHECKING:
    from trading_assets.live.reconcile import RecordedTable

# The recorder, runner and executor beat every HEARTBEAT_S (each its own constant of that name; a test
# keeps them equal). One missed beat plus LATE_GRACE_S is late: a stuck service shows within one interval.
HEARTBEAT_S = 5.0
LATE_GRACE_S = 2.0
LATE_AFTER_S = HEARTBEAT_S + LATE_GRACE_S
DOWN_AFTER_S = 3 * HEARTBEAT_S
# A service may say it is not ready for this long (starting, reconciling) before it is an alert.
NOT_READY_FOR_S = 30.0
# An order whose outcome is unknown, or whose cancel the venue has not answered, for this long.
ORDER_STUCK_S = 180.0
STUCK_STATUSES = ("UNKNOWN", "PENDING_CANCEL")
# Closed bars not recorded: the same count from which Dagster's live_bars_lag check warns (WARN_BARS).
LAG_BARS = 3

RUNBOOKS = (
    "broker-disconnect",
    "questdb-down",
    "pod-eviction",
    "lost-link",
    "postgres-restart",
    "service-stuck",
)
READY_STATUSES = ("ok", "ready")
SERVICE_STATES = ("ok", "not ready", "late", "down")


@dataclass(frozen=True)
class ServiceState:
    """The current instance of one service (of the executor, of one venue account) and where it stands."""

    service: str
    scope: str | None  # "venue/account" of an executor, the venue of a recorder; None for the runner
    instance: str
    status: str
    reasons: tuple[str, ...]
    detail: dict
    last_beat: datetime
    age_s: float
    state: str  # one of SERVICE_STATES
    replaced: tuple[str, ...]  # the older instances of the same service, whose successor is this one

    @property
    def key(self) -> str:
        return self.service if self.scope is None else f"{self.service}/{self.scope}"

    @property
    def runbook(self) -> str | None:
        if self.status == "stopped" and self.state in ("stopped", "down"):
            return "pod-eviction"
        if self.state in ("late", "down"):
            return "service-stuck"
        if self.state == "not ready":
            return not_ready_runbook(self.service, self.reasons)
        return None


@dataclass(frozen=True)
class Alert:
    """One firing alert: `subject` is what it is about, as the page keys its rows (`service:<key>`,
    `strategy:<name>`, `order:<client order id>`, `account:<venue>/<account>`, `data:<table>`)."""

    name: str
    severity: str  # critical | warning | info
    since: datetime
    summary: str
    runbook: str
    subject: str


def not_ready_runbook(service: str, reasons: Iterable[str] = ()) -> str:
    """A service that beats but is not ready: a recorder whose store is away spools (its reason says
    "store unavailable"); otherwise the executor and the recorder wait for the venue (or, for the executor,
    its reconciliation); anything else is stuck at something of its own."""
    if service == "recorder" and any("store unavailable" in reason for reason in reasons):
        return "questdb-down"
    return "broker-disconnect" if service in ("executor", "recorder") else "service-stuck"


def order_runbook(status: str) -> str | None:
    """An order whose outcome waits on the venue is what the broker-disconnect page resolves."""
    return "broker-disconnect" if status in STUCK_STATUSES else None


def strategy_runbook(actual_state: str) -> str | None:
    return "service-stuck" if actual_state == "failed" else None


def _detail(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError:
        return {"text": text}
    return value if isinstance(value, dict) else {"value": value}


def _scope(service: str, detail: dict) -> str | None:
    venue, account = detail.get("venue"), detail.get("account")
    if service == "executor" and venue and account:
        return f"{venue}/{account}"
    return str(venue) if venue else None


def service_states(beats: Iterable[HeartbeatRecord], now: datetime) -> list[ServiceState]:
    """Each service's current instance (the newest beat of its service and scope) with its state, ordered
    by service and scope; the older instances of the same are listed as replaced, not as services."""
    groups: dict[tuple[str, str | None], list[tuple[HeartbeatRecord, dict]]] = {}
    for beat in beats:
        detail = _detail(beat.detail)
        groups.setdefault((beat.service, _scope(beat.service, detail)), []).append((beat, detail))
    states = []
    for (service, scope), members in sorted(groups.items(), key=lambda item: (item[0][0], item[0][1] or "")):
        members.sort(key=lambda member: (member[0].last_beat, member[0].instance), reverse=True)
        (beat, detail), older = members[0], members[1:]
        age = max(0.0, (now - beat.last_beat).total_seconds())
        reasons = detail.get("reasons") or []
        reasons = tuple(str(r) for r in reasons) if isinstance(reasons, list) else (str(reasons),)
        if beat.status == "stopped":
            # Its last beat, said as it exited (SIGTERM): a restart in progress, until no successor has
            # beaten for as long as a silent service would be down.
            state = "down" if age > DOWN_AFTER_S else "stopped"
        elif age > DOWN_AFTER_S:
            state = "down"
        elif age > LATE_AFTER_S:
            state = "late"
        elif beat.status not in READY_STATUSES or reasons:
            state = "not ready"
        else:
            state = "ok"
        replaced = tuple(b.instance for b, _ in older)
        states.append(
            ServiceState(
                service,
                scope,
                beat.instance,
                beat.status,
                reasons,
                detail,
                beat.last_beat,
                round(age, 3),
                state,
                replaced,
            )
        )
    return states


@dataclass
class AlertRules:
    """The alert rules over the catalog and the store. It remembers since when each service has been not
    ready (the heartbeat row holds only its latest beat), like a Prometheus rule's `for`: an API that
    starts counts from its first look. One per process, shared by its requests and event streams."""

    _not_ready_since: dict[tuple[str, str], datetime] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def evaluate(
        self,
        catalog: Catalog,
        now: datetime,
        bars: Sequence[RecordedTable] = (),
        states: Sequence[ServiceState] | None = None,
    ) -> list[Alert]:
        """The alerts firing at `now`, most severe first. `bars` is `live.reconcile.bars_health`'s rows
        (the caller reads the store as often as it can afford); `states` the services' if already read."""
        states = service_states(catalog.list_heartbeats(), now) if states is None else states
        strategies = catalog.list_strategies()
        alerts = self._services(states, now)
        alerts += _strategies(strategies)
        alerts += _reconciliations(catalog.latest_reconciliations())
        alerts += _halts(catalog, strategies)
        alerts += _orders(catalog.list_orders(statuses=STUCK_STATUSES), now)
        alerts += _bars(bars, now)
        order = {"critical": 0, "warning": 1, "info": 2}
        return sorted(alerts, key=lambda a: (order[a.severity], a.since, a.name, a.subject))

    def _services(self, states: Sequence[ServiceState], now: datetime) -> list[Alert]:
        alerts = []
        with self._lock:
            seen = set()
            for s in states:
                who = f"{s.key} ({s.instance})"
                subject = f"service:{s.key}"
                if s.state in ("down", "late"):
                    name, severity = (
                        ("LiveServiceDown", "critical")
                        if s.state == "down"
                        else ("LiveServiceLate", "warning")
                    )
                    if s.status == "stopped":
                        summary = f"{who}: stopped {s.age_s:.0f} s ago and not started again"
                    else:
                        summary = f"{who}: no beat for {s.age_s:.0f} s"
                    alerts.append(Alert(name, severity, s.last_beat, summary, s.runbook or "", subject))
                elif s.state == "not ready":
                    key = (s.key, s.instance)
                    seen.add(key)
                    since = self._not_ready_since.setdefault(key, now)
                    if (now - since).total_seconds() >= NOT_READY_FOR_S:
                        why = "; ".join(s.reasons) or s.status
                        alerts.append(
                            Alert(
                                "LiveServiceNotReady",
                                "warning",
                                since,
                                f"{who}: not ready: {why}",
                                not_ready_runbook(s.service, s.reasons),
                                subject,
                            )
                        )
            for key in set(self._not_ready_since) - seen:
                del self._not_ready_since[key]
        return alerts


def _strategies(strategies: Iterable[StrategyRecord]) -> list[Alert]:
    return [
        Alert(
            "LiveStrategyFailed",
            "critical",
            s.updated_at or s.created_at,  # type: ignore[arg-type]
            f"strategy {s.name}: failed: {s.state_message or 'no message'}",
            "service-stuck",
            f"strategy:{s.name}",
        )
        for s in strategies
        if s.actual_state == "failed"
    ]


def _reconciliations(runs: Iterable[ReconciliationRecord]) -> list[Alert]:
    alerts = []
    for run in runs:
        if run.status not in ("mismatch", "failed"):
            continue
        name = "LiveReconciliationMismatch" if run.status == "mismatch" else "LiveReconciliationFailed"
        details = _detail(run.details or "{}")
        mismatches = details.get("mismatches") or []
        first = f"{len(mismatches)} mismatches, first {mismatches[0]}" if mismatches else "see its details"
        what = details.get("error") or first
        summary = f"{run.venue}/{run.account}: reconciliation {run.id} {run.status}: {what}"
        alerts.append(
            Alert(
                name,
                "critical",
                run.finished_at or run.started_at,
                summary[:300],
                "broker-disconnect",
                f"account:{run.venue}/{run.account}",
            )
        )
    return alerts


def _halts(catalog: Catalog, strategies: Iterable[StrategyRecord]) -> list[Alert]:
    alerts = []
    for venue, account in sorted({(s.venue, s.account) for s in strategies}):
        halt = catalog.get_trading_halt(venue, account)
        if halt is not None and halt.halted:
            summary = f"{venue}/{account}: kill switch on ({halt.reason}, by {halt.set_by})"
            alerts.append(
                Alert(
                    "LiveKillSwitchOn",
                    "info",
                    halt.updated_at,
                    summary,
                    "broker-disconnect",  # type: ignore[arg-type]
                    f"account:{venue}/{account}",
                )
            )
    return alerts


def _orders(orders: Iterable[OrderRecord], now: datetime) -> list[Alert]:
    stuck = timedelta(seconds=ORDER_STUCK_S)
    return [
        Alert(
            "LiveOrderStuck",
            "critical",
            o.updated_at,  # type: ignore[arg-type]
            f"order {o.client_order_id} ({o.strategy}, {o.side} {o.quantity.normalize():f} {o.symbol}): "
            f"{o.status} for {(now - o.updated_at).total_seconds() / 60:.0f} min",  # type: ignore[operator]
            "broker-disconnect",
            f"order:{o.client_order_id}",
        )
        for o in orders
        if o.updated_at is not None and now - o.updated_at > stuck
    ]


def _bars(tables: Iterable[RecordedTable], now: datetime) -> list[Alert]:
    alerts = []
    for t in tables:
        table, behind, error, last = t.table, t.bars_behind, t.error, t.last_bar
        interval = timedelta(seconds=t.bar_interval_s)
        if error is not None:
            summary, since = f"{table}: the store cannot be read: {error}"[:300], now
        elif behind is not None and last is not None and behind >= LAG_BARS:
            summary = f"{table}: {behind} closed bars not recorded (last bar {last:%Y-%m-%d %H:%M} UTC)"
            # The first bar missing closed two intervals after the last one recorded opened.
            since = last + 2 * interval
        else:
            continue
        alerts.append(Alert("LiveBarsLagging", "warning", since, summary, "questdb-down", f"data:{table}"))
    return alerts
