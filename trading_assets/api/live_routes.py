"""The live operator's routes under /api/v1/live: strategies (with start/stop), orders, fills, positions,
the services' and the data's health, the firing alerts, the kill switch of each venue account, the
runbooks, and their changes as server-sent events.

Everything is read from the catalog the live services write (and the store the recorder writes), so the
API holds no state of its own: a start/stop or a halt is one catalog statement that the runner or the
executor follows within its poll.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path as FilePath
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import PlainTextResponse, StreamingResponse

from resources.catalog import Catalog
from resources.timeseries import TimeSeriesStore
from trading_assets import naming
from trading_assets.api.live_models import (
    Alerts,
    DataHealth,
    DesiredState,
    Fill,
    FillPage,
    FiringAlert,
    Halt,
    HaltChange,
    Health,
    Heartbeat,
    Order,
    OrderDetail,
    OrderEvent,
    OrderPage,
    Position,
    Reconciliation,
    Runbook,
    ServiceStatus,
    Strategy,
)
from trading_assets.api.routes import (
    ERRORS,
    WRITE_ERRORS,
    CatalogDep,
    StoreDep,
    _checked,
    _not_found,
    _refused,
    require_read,
    require_write,
)
from trading_assets.live import alerts
from trading_assets.live.alerts import AlertRules, service_states
from trading_assets.orders import OrderStatus, parse_client_order_id
from trading_assets.records import FillRecord, OrderRecord, SignalRecord, StrategyRecord

if TYPE_CHECKING:
    from trading_assets.live.reconcile import RecordedTable

router = APIRouter(prefix="/live", tags=["live"])

READ = [Depends(require_read)]
WRITE = [Depends(require_write)]
# A service beats every 5 s (runner, executor): three missed beats make it stale (down).
STALE_AFTER_S = alerts.DOWN_AFTER_S
# The event stream polls the catalog this often, so a change reaches the page within a second; the
# signals and the store (heavier reads) every SLOW_EVERY polls.
LIVE_POLL_S = 0.25
SLOW_EVERY = 4
# Orders and fills are read from the newest change seen on, less this much: a transaction's now() is its
# start, so a row can commit with a time a little older than one already read.
OVERLAP = timedelta(seconds=10)
PING_S = 15.0
# The stream opens with the newest orders and fills only (the page shows no more); later changes of any.
FIRST_ROWS = 200
MAX_PAGE = 1_000

OrderStatusName = Literal[tuple(status.value for status in OrderStatus)]  # type: ignore[valid-type]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
Cursor = Annotated[str | None, Query(max_length=200, description="`next_cursor` of the page before")]

_VENUE = re.compile(r"[a-z][a-z0-9]{0,19}")
# Venue accounts are the operator's names ("main", "paper-1"): what a URL path carries without escaping.
_ACCOUNT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def venue_name(value: str) -> str:
    if not _VENUE.fullmatch(value):
        raise ValueError(f"venue {value!r} is not a ccxt exchange id (lowercase letters and digits)")
    return value


def account_name(value: str) -> str:
    if not _ACCOUNT.fullmatch(value):
        raise ValueError(f"account {value!r} must be letters, digits, '_', '.' or '-' (at most 64)")
    return value


# --- strategies ------------------------------------------------------------------------------------------


def _latest_signal(catalog: Catalog, name: str) -> SignalRecord | None:
    return catalog.latest_signal(name)


def _strategies(
    catalog: Catalog, strategies: Iterable[StrategyRecord], signals: dict[str, SignalRecord | None]
) -> list[Strategy]:
    positions = {(p.venue, p.account, p.symbol): p for p in catalog.list_positions()}
    return [
        Strategy.of(s, signals.get(s.name), positions.get((s.venue, s.account, s.symbol))) for s in strategies
    ]


@router.get("/strategies", response_model=list[Strategy], responses=ERRORS, dependencies=READ)
def list_strategies(catalog: CatalogDep) -> list[Strategy]:
    """Every strategy: desired and actual state, lineage, instrument, rules, limits, its latest signal and
    the account's position in its symbol."""
    strategies = catalog.list_strategies()
    return _strategies(catalog, strategies, {s.name: _latest_signal(catalog, s.name) for s in strategies})


@router.get("/strategies/{name}", response_model=Strategy, responses=ERRORS, dependencies=READ)
def get_strategy(name: Annotated[str, Path(min_length=1, max_length=200)], catalog: CatalogDep) -> Strategy:
    record = catalog.get_strategy(_checked("name", name, naming.strategy_name))
    if record is None:
        raise _not_found(f"strategy {name!r}")
    return _strategies(catalog, [record], {record.name: _latest_signal(catalog, record.name)})[0]


@router.put(
    "/strategies/{name}/desired-state", response_model=Strategy, responses=WRITE_ERRORS, dependencies=WRITE
)
def set_desired_state(
    name: Annotated[str, Path(min_length=1, max_length=200)], body: DesiredState, catalog: CatalogDep
) -> Strategy:
    """Ask for the strategy running or stopped (one UPDATE of its row); the runner starts or stops it
    within its poll and reports its actual state."""
    name = _checked("name", name, naming.strategy_name)
    if catalog.get_strategy(name) is None:
        raise _not_found(f"strategy {name!r}")
    record = catalog.set_strategy_desired_state(name, body.state)
    return _strategies(catalog, [record], {name: _latest_signal(catalog, name)})[0]


# --- orders, fills, positions ----------------------------------------------------------------------------

T = TypeVar("T")


def _page(
    items: Sequence[T], key: Callable[[T], str], cursor: str | None, limit: int
) -> tuple[list[T], str | None]:
    """`limit` items after the one whose key is `cursor` (from the start without one); the next cursor."""
    start = 0
    if cursor is not None:
        keys = [key(item) for item in items]
        if cursor not in keys:
            raise _refused("cursor", f"{cursor!r} is no row of this listing (pass a page's next_cursor)")
        start = keys.index(cursor) + 1
    page = list(items[start : start + limit])
    more = start + limit < len(items)
    return page, key(page[-1]) if more and page else None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _newest_orders(orders: Iterable[OrderRecord]) -> list[OrderRecord]:
    return sorted(orders, key=lambda o: (o.created_at or _EPOCH, o.client_order_id), reverse=True)


def _newest_fills(fills: Iterable[FillRecord]) -> list[FillRecord]:
    return sorted(fills, key=lambda f: (f.ts, f.venue, f.trade_id), reverse=True)


@router.get("/orders", response_model=OrderPage, responses=ERRORS, dependencies=READ)
def list_orders(
    catalog: CatalogDep,
    strategy: Annotated[str | None, Query(max_length=200)] = None,
    status: Annotated[list[OrderStatusName] | None, Query()] = None,  # type: ignore[valid-type]
    limit: Limit = 100,
    cursor: Cursor = None,
) -> OrderPage:
    """Orders (of `strategy`, in any of `status` if given), newest first, `limit` a page; `cursor` is the
    last order's client order id."""
    if strategy is not None:
        strategy = _checked("strategy", strategy, naming.strategy_name)
    if cursor is not None:
        _checked("cursor", cursor, parse_client_order_id)
    orders = _newest_orders(catalog.list_orders(strategy, status))
    page, following = _page(orders, lambda o: o.client_order_id, cursor, limit)
    return OrderPage(orders=[Order.of(o) for o in page], next_cursor=following)


@router.get("/orders/{client_order_id}", response_model=OrderDetail, responses=ERRORS, dependencies=READ)
def get_order(
    client_order_id: Annotated[str, Path(min_length=1, max_length=200)], catalog: CatalogDep
) -> OrderDetail:
    """One order with its whole history (every state-machine event, oldest first)."""
    _checked("client_order_id", client_order_id, parse_client_order_id)
    record = catalog.get_order(client_order_id)
    if record is None:
        raise _not_found(f"order {client_order_id!r}")
    events = [OrderEvent.of(e) for e in catalog.list_order_events(client_order_id)]
    return OrderDetail(**Order.of(record).model_dump(), events=events)


def _fill_key(fill: FillRecord) -> str:
    return f"{fill.venue}/{fill.trade_id}"


@router.get("/fills", response_model=FillPage, responses=ERRORS, dependencies=READ)
def list_fills(
    catalog: CatalogDep,
    strategy: Annotated[str | None, Query(max_length=200)] = None,
    client_order_id: Annotated[str | None, Query(max_length=200)] = None,
    venue: Annotated[str | None, Query(max_length=200)] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> FillPage:
    """Fills (of `strategy`, the order `client_order_id`, `venue` if given), newest first, each with its
    lineage (strategy, bar, walkforward run, fold model, indicator set, bars file); `cursor` is the last
    fill's `<venue>/<trade_id>`."""
    if strategy is not None:
        strategy = _checked("strategy", strategy, naming.strategy_name)
    if client_order_id is not None:
        _checked("client_order_id", client_order_id, parse_client_order_id)
    if venue is not None:
        venue = _checked("venue", venue, venue_name)
    fills = catalog.list_fills(client_order_id, venue)
    if strategy is not None:
        fills = [f for f in fills if parse_client_order_id(f.client_order_id)[0] == strategy]
    page, following = _page(_newest_fills(fills), _fill_key, cursor, limit)
    return FillPage(fills=[_fill(catalog, f) for f in page], next_cursor=following)


def _fill(catalog: Catalog, record: FillRecord) -> Fill:
    return Fill.of(record, catalog.fill_lineage(record.venue, record.trade_id))


@router.get("/positions", response_model=list[Position], responses=ERRORS, dependencies=READ)
def list_positions(
    catalog: CatalogDep,
    venue: Annotated[str | None, Query(max_length=200)] = None,
    account: Annotated[str | None, Query(max_length=200)] = None,
) -> list[Position]:
    """Positions of every venue account (of `venue`, `account` if given) as the recorded fills made them."""
    if venue is not None:
        venue = _checked("venue", venue, venue_name)
    if account is not None:
        account = _checked("account", account, account_name)
    return [Position.of(p) for p in catalog.list_positions(venue, account)]


# --- health ----------------------------------------------------------------------------------------------


def _reconciliations(catalog: Catalog) -> list[Reconciliation]:
    return [Reconciliation.of(r) for r in catalog.latest_reconciliations()]


def _recorded(catalog: Catalog, store: TimeSeriesStore, now: datetime) -> list[RecordedTable]:
    """Per recorded symbol: its live bars table's last bar and how many closed bars the recorder has not
    stored yet (`live.reconcile.bars_health`, what Dagster's lag check reads too)."""
    from trading_assets.live.reconcile import bars_health

    return bars_health(catalog, store, now)


def _data_health(tables: Iterable[RecordedTable]) -> list[DataHealth]:
    from trading_assets.live.service import timeframe

    return [
        DataHealth(
            venue=t.venue,
            symbol=t.symbol,
            timeframe=timeframe(t.bar_interval_s),
            bar_interval_s=t.bar_interval_s,
            table=t.table,
            strategies=list(t.strategies),
            last_bar=t.last_bar,
            bars_behind=t.bars_behind,
            error=t.error,
        )
        for t in tables
    ]


def _rules(request: Request) -> AlertRules:
    """The app's alert rules (they remember since when a service has been not ready): one per process."""
    state = request.app.state
    if getattr(state, "live_alert_rules", None) is None:
        state.live_alert_rules = AlertRules()
    return state.live_alert_rules  # type: ignore[no-any-return]


@router.get("/health", response_model=Health, responses=ERRORS, dependencies=READ)
def health(catalog: CatalogDep, store: StoreDep) -> Health:
    """Every live service's latest heartbeat with its age (stale after `stale_after_s`), the latest
    reconciliation of each venue account, and per recorded symbol the last stored bar and how many closed
    bars behind now it is."""
    now = datetime.now(UTC)
    beats = catalog.list_heartbeats()
    return Health(
        now=now,
        stale_after_s=STALE_AFTER_S,
        services=[Heartbeat.of(h, now, STALE_AFTER_S) for h in beats],
        service_states=[ServiceStatus.of(s) for s in service_states(beats, now)],
        reconciliations=_reconciliations(catalog),
        data=_data_health(_recorded(catalog, store, now)),
    )


@router.get("/services", response_model=list[ServiceStatus], responses=ERRORS, dependencies=READ)
def list_services(catalog: CatalogDep) -> list[ServiceStatus]:
    """Each service's current instance (the executor's per venue account) with its state: `ok`, `not
    ready` (with its reasons), `late` (no beat for more than one interval plus a grace) or `down` (none for
    several); older instances of the same service are listed under `replaced`, never as down."""
    return [ServiceStatus.of(s) for s in service_states(catalog.list_heartbeats(), datetime.now(UTC))]


@router.get("/alerts", response_model=Alerts, responses=ERRORS, dependencies=READ)
def list_alerts(request: Request, catalog: CatalogDep, store: StoreDep) -> Alerts:
    """The alerts firing now, most severe first, each naming its subject and its runbook: LiveServiceDown,
    LiveServiceLate, LiveServiceNotReady, LiveStrategyFailed, LiveReconciliationMismatch,
    LiveReconciliationFailed, LiveOrderStuck, LiveBarsLagging, LiveKillSwitchOn."""
    now = datetime.now(UTC)
    firing = _rules(request).evaluate(catalog, now, _recorded(catalog, store, now))
    return Alerts(now=now, alerts=[FiringAlert.of(a) for a in firing])


# --- runbooks --------------------------------------------------------------------------------------------

# The repository's pages; an installed package (an image) has no docs/ beside it, so the image copies them
# and names the folder in TRADING_RUNBOOKS_DIR.
RUNBOOK_DIR = FilePath(__file__).resolve().parents[2] / "docs" / "runbooks"


def _runbook_dir() -> FilePath:
    return FilePath(os.environ.get("TRADING_RUNBOOKS_DIR") or RUNBOOK_DIR)


def _runbook_title(slug: str) -> str | None:
    path = _runbook_dir() / f"{slug}.md"
    if not path.is_file():
        return None
    first = path.read_text(encoding="utf-8").lstrip().splitlines()[:1]
    return first[0].lstrip("# ").strip() if first else slug


@router.get("/runbooks", response_model=list[Runbook], responses=ERRORS)
def list_runbooks() -> list[Runbook]:
    """The runbooks, one per failure mode, with their titles (null: not written yet)."""
    return [
        Runbook(slug=s, title=_runbook_title(s), url=f"/api/v1/live/runbooks/{s}") for s in alerts.RUNBOOKS
    ]


@router.get(
    "/runbooks/{slug}",
    response_class=PlainTextResponse,
    responses={**ERRORS, 200: {"content": {"text/plain": {}}, "description": "the page's Markdown"}},
)
def get_runbook(slug: Annotated[str, Path(max_length=100)]) -> PlainTextResponse:
    """One runbook's Markdown (docs/runbooks/<slug>.md), readable as it is; open without a read token, as
    the repository's docs are. 404 for a slug that is not one of the runbooks, or a page not written yet."""
    if slug not in alerts.RUNBOOKS:
        raise HTTPException(404, f"no runbook {slug!r}: the runbooks are {', '.join(alerts.RUNBOOKS)}")
    path = _runbook_dir() / f"{slug}.md"
    if not path.is_file():
        raise HTTPException(404, f"runbook {slug!r} is not written yet (docs/runbooks/{slug}.md)")
    return PlainTextResponse(path.read_text(encoding="utf-8"), media_type="text/plain; charset=utf-8")


# --- kill switch -----------------------------------------------------------------------------------------

VenuePath = Annotated[str, Path(min_length=1, max_length=200, description="a ccxt exchange id")]
AccountPath = Annotated[str, Path(min_length=1, max_length=200, description="the venue account's name")]


def _accounts(strategies: Iterable[StrategyRecord]) -> list[tuple[str, str]]:
    return sorted({(s.venue, s.account) for s in strategies})


@router.get("/halts", response_model=list[Halt], responses=ERRORS, dependencies=READ)
def list_halts(catalog: CatalogDep) -> list[Halt]:
    """The kill switch of every venue account a strategy trades (halted false where it was never set)."""
    return [Halt.of(v, a, catalog.get_trading_halt(v, a)) for v, a in _accounts(catalog.list_strategies())]


@router.get("/halts/{venue}/{account}", response_model=Halt, responses=ERRORS, dependencies=READ)
def get_halt(venue: VenuePath, account: AccountPath, catalog: CatalogDep) -> Halt:
    venue = _checked("venue", venue, venue_name)
    account = _checked("account", account, account_name)
    return Halt.of(venue, account, catalog.get_trading_halt(venue, account))


@router.put("/halts/{venue}/{account}", response_model=Halt, responses=WRITE_ERRORS, dependencies=WRITE)
def set_halt(venue: VenuePath, account: AccountPath, body: HaltChange, catalog: CatalogDep) -> Halt:
    """The kill switch: `halted` true stops the account's trading (the executor cancels its open orders and
    sends none), false lets it trade again; the reason is stored with who set it ("api")."""
    venue = _checked("venue", venue, venue_name)
    account = _checked("account", account, account_name)
    record = catalog.set_trading_halt(venue, account, body.halted, body.reason, "api")
    return Halt.of(venue, account, record)


# --- events ----------------------------------------------------------------------------------------------


def _advance(cursor: datetime | None, stamps: Iterable[datetime | None]) -> datetime | None:
    """Where to read from next after rows stamped `stamps`: their newest less OVERLAP, never backwards."""
    newest = max((stamp for stamp in stamps if stamp is not None), default=None)
    if newest is None:
        return cursor
    return newest - OVERLAP if cursor is None else max(cursor, newest - OVERLAP)


class _Watcher:
    """What changed in the live tables since the last poll, as (event name, JSON) pairs; the first poll
    gives everything (the newest FIRST_ROWS orders and fills). Orders and fills are read from the newest
    change seen on (less OVERLAP), never the whole table again; the services' states and the alerts are
    worked out each poll, so one that turns late by the clock alone is sent too."""

    def __init__(self, catalog: Catalog, store: TimeSeriesStore, rules: AlertRules) -> None:
        self.catalog = catalog
        self.store = store
        self.rules = rules
        self.seen: dict[tuple[str, Any], Any] = {}
        self.signals: dict[str, SignalRecord | None] = {}
        self.recorded: list[RecordedTable] = []
        self.orders_since: datetime | None = None
        self.fills_since: datetime | None = None
        self.polls = 0

    def _changed(self, kind: str, key: Any, stamp: Any) -> bool:
        if self.seen.get((kind, key)) == stamp:
            return False
        self.seen[(kind, key)] = stamp
        return True

    def _orders(self, first: bool) -> list[tuple[str, str]]:
        orders = _newest_orders(self.catalog.list_orders(updated_since=self.orders_since))
        self.orders_since = _advance(self.orders_since, [o.updated_at for o in orders])
        changed = [o for o in orders if self._changed("order", o.client_order_id, o.event_seq)]
        # Oldest first within a poll, so a page that puts each new row on top keeps them newest first.
        return [
            ("order", Order.of(o).model_dump_json())
            for o in reversed(changed[: FIRST_ROWS if first else None])
        ]

    def _fills(self, first: bool) -> list[tuple[str, str]]:
        fills = _newest_fills(self.catalog.list_fills(created_since=self.fills_since))
        self.fills_since = _advance(self.fills_since, [f.created_at for f in fills])
        new = [f for f in fills if self._changed("fill", _fill_key(f), True)]
        return [
            ("fill", _fill(self.catalog, f).model_dump_json())
            for f in reversed(new[: FIRST_ROWS if first else None])
        ]

    def changes(self) -> list[tuple[str, str]]:
        catalog, first, slow = self.catalog, self.polls == 0, self.polls % SLOW_EVERY == 0
        self.polls += 1
        now = datetime.now(UTC)
        out: list[tuple[str, str]] = []
        strategies = catalog.list_strategies()
        if slow:
            self.signals = {s.name: _latest_signal(catalog, s.name) for s in strategies}
        for strategy in _strategies(catalog, strategies, self.signals):
            data = strategy.model_dump_json()
            if self._changed("strategy", strategy.name, data):
                out.append(("strategy", data))
        for position in catalog.list_positions():
            data = Position.of(position).model_dump_json()
            if self._changed("position", (position.venue, position.account, position.symbol), data):
                out.append(("position", data))
        out += self._orders(first)
        out += self._fills(first)
        beats = catalog.list_heartbeats()
        for beat in (Heartbeat.of(h, now, STALE_AFTER_S) for h in beats):
            if self._changed(
                "heartbeat", (beat.service, beat.instance), (beat.last_beat, beat.status, beat.stale)
            ):
                out.append(("heartbeat", beat.model_dump_json()))
        states = service_states(beats, now)
        for state in states:
            stamp = (state.instance, state.last_beat, state.status, state.reasons, state.state)
            if self._changed("service", state.key, stamp):
                out.append(("service", ServiceStatus.of(state).model_dump_json()))
        for venue, account in _accounts(strategies):
            data = Halt.of(venue, account, catalog.get_trading_halt(venue, account)).model_dump_json()
            if self._changed("halt", (venue, account), data):
                out.append(("halt", data))
        if slow:
            for run in _reconciliations(catalog):
                data = run.model_dump_json()
                if self._changed("reconciliation", (run.venue, run.account), data):
                    out.append(("reconciliation", data))
            self.recorded = _recorded(catalog, self.store, now)
            for symbol in _data_health(self.recorded):
                data = symbol.model_dump_json()
                if self._changed("data", symbol.table, data):
                    out.append(("data", data))
        firing = [FiringAlert.of(a) for a in self.rules.evaluate(catalog, now, self.recorded, states)]
        # The same alerts with a newer summary (an age that grew) are not news: compare what and since.
        if self._changed("alerts", None, [(a.name, a.subject, a.since) for a in firing]):
            out.append(("alerts", Alerts(now=now, alerts=firing).model_dump_json()))
        return out


@router.get(
    "/events",
    responses={**ERRORS, 200: {"content": {"text/event-stream": {}}, "description": "server-sent events"}},
    dependencies=READ,
)
async def live_events(request: Request, catalog: CatalogDep, store: StoreDep) -> StreamingResponse:
    """Server-sent events of the live tables, first everything there is, then each change within a
    second: `strategy`, `order` (a new status or fill), `fill` (new), `position`, `heartbeat` (a beat, or
    one gone stale), `service` (a service's current instance or state: a stuck one turns late within a
    second of the grace), `alerts` (the whole firing list, when it changes), `halt`, `reconciliation` and
    `data` (a symbol's last bar or lag), each with the same JSON as the routes; a `ping` comment every
    15 s of quiet. A client that reconnects gets everything again, so it catches up on what it missed."""
    watcher = _Watcher(catalog, store, _rules(request))

    async def stream() -> Any:
        quiet = 0.0
        while not await request.is_disconnected():
            changes = await asyncio.to_thread(watcher.changes)
            for name, data in changes:
                yield f"event: {name}\ndata: {data}\n\n"
            quiet = 0.0 if changes else quiet + LIVE_POLL_S
            if quiet >= PING_S:
                quiet = 0.0
                yield ": ping\n\n"
            await asyncio.sleep(LIVE_POLL_S)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
