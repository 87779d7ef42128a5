"""`PaperBroker`: a spot venue simulated on the bars the recorder stores, behind the broker interface.

Orders fill against the closed bars of their symbol (`naming.live_bars_table(data_venue, symbol,
timeframe)`) by the seeded fill model of `trading_assets.compute.fill_model`. A background task polls the
store for new bars (`start`); `advance` takes them at once (tests call it), and `submit` and `cancel` take
them first, so funds are checked against the latest close and a cancel never skips a bar that had closed.

The account (orders, fills, balances, the last bar taken per symbol) is written to `state_file` after every
change (tmp + fsync + rename), and events are sent only once written: a broker made again from the file
(the executor restarted) is the venue as it was, and its first `advance` replays the bars stored meanwhile,
filling orders on them as a venue would have. Bars are taken once each, in time order, so a fill is never
made twice; were the process to die between a fill and its write, the same bars give the same fills with
the same trade ids again.

Spot: a buy spends the quote asset (fee included), a sell the base asset; `positions` is the base asset's
balance per symbol. Funds held by working orders (a buy's quantity at its reference price, fee included;
a sell's quantity) are not free for new orders; a fill the account can no longer pay for expires the
order with "insufficient funds".
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from pathlib import Path
from typing import TypeVar

import pyarrow as pa

from resources.brokers.base import (
    BrokerEvent,
    BrokerUnavailable,
    OrderRejected,
    OrderRequest,
    OrderType,
    Side,
    VenueFill,
    VenueOrder,
    VenueStatus,
)
from resources.timeseries import TimeSeriesStore
from trading_assets import naming
from trading_assets.compute import fill_model as fm
from trading_assets.orders import OrderError, check_decimal

log = logging.getLogger(__name__)

STATE_FORMAT = 1
_ONE_US = timedelta(microseconds=1)


@dataclass(frozen=True)
class PaperConfig:
    """A paper account: the venue whose recorded bars it trades on (`data_venue`, a ccxt id), its spot
    symbols ("BASE/QUOTE") and their quantity rules, the starting balances per asset, the fill model's
    parameters and the file that keeps the account across restarts. `venue` names the paper venue in
    orders and fills, apart from the real one."""

    data_venue: str
    symbols: tuple[str, ...]
    instruments: Mapping[str, fm.Instrument]
    balances: Mapping[str, Decimal]
    state_file: Path
    venue: str = "paper"
    timeframe: str = "1m"
    fills: fm.FillParams = field(default_factory=fm.FillParams)
    poll_s: float = 1.0

    def __post_init__(self) -> None:
        if not self.symbols:
            raise ValueError("symbols: give at least one symbol")
        for symbol in self.symbols:
            naming.live_bars_table(self.data_venue, symbol, self.timeframe)
            if ":" in symbol:
                raise ValueError(f"symbols: {symbol!r} is a derivative; the paper venue is spot (BASE/QUOTE)")
            if symbol not in self.instruments:
                raise ValueError(f"instruments: no step and minimum quantity for {symbol!r}")
        for asset, amount in self.balances.items():
            check_decimal(f"balances[{asset!r}]", amount, positive=False)
        if self.poll_s <= 0:
            raise ValueError(f"poll_s {self.poll_s} must be > 0")


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _timeframe(frame: str) -> timedelta:
    """A ccxt timeframe ("1m", "4h", "1d") as a duration."""
    return timedelta(seconds=int(frame[:-1]) * _UNITS[frame[-1]])


def assets(symbol: str) -> tuple[str, str]:
    """(base, quote) of a spot symbol."""
    base, quote = symbol.split("/")
    return base, quote


@dataclass
class _Order:
    """An order as the paper venue keeps it."""

    client_order_id: str
    venue_order_id: str
    symbol: str
    side: Side
    type: OrderType
    quantity: Decimal
    limit_price: Decimal | None
    arrived_at: datetime
    active_at: datetime
    # A buy's reference price (fill_model.reference_price): what its funds are held at.
    reserve_price: Decimal | None
    status: VenueStatus
    filled: Decimal = Decimal(0)
    notional: Decimal = Decimal(0)
    fills: int = 0
    reason: str | None = None

    @property
    def model(self) -> fm.Order:
        return fm.Order(
            self.client_order_id, self.side, self.type, self.quantity, self.active_at, self.limit_price
        )

    @property
    def remaining(self) -> Decimal:
        return fm.WIDE.subtract(self.quantity, self.filled)

    @property
    def spends(self) -> str:
        """The asset the order pays with: the quote for a buy, the base for a sell."""
        base, quote = assets(self.symbol)
        return quote if self.side == "buy" else base

    def view(self) -> VenueOrder:
        average = fm.stored(fm.WIDE.divide(self.notional, self.filled)) if self.filled else None
        return VenueOrder(
            self.client_order_id,
            self.venue_order_id,
            self.symbol,
            self.side,
            self.type,
            self.status,
            self.quantity,
            self.filled,
            average,
            self.reason,
        )


@dataclass
class _Account:
    """Everything the state file holds."""

    venue: str
    balances: dict[str, Decimal]
    orders: dict[str, _Order] = field(default_factory=dict)
    fills: list[VenueFill] = field(default_factory=list)
    # Per symbol: the time of the last bar taken, and its close.
    cursors: dict[str, datetime] = field(default_factory=dict)
    closes: dict[str, Decimal] = field(default_factory=dict)


class PaperBroker:
    """The Broker interface on a paper account (see the module's docstring). `clock` gives the arrival
    time of orders: the wall clock, or the venue's clock when bars are replayed faster than real time."""

    def __init__(
        self,
        config: PaperConfig,
        store: TimeSeriesStore,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.venue = config.venue
        self.config = config
        self._store = store
        self._clock = clock
        self._account = _load(config) if config.state_file.exists() else _fresh(config)
        self._lock = asyncio.Lock()
        self._subscribers: list[asyncio.Queue[BrokerEvent | None]] = []
        self._poller: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Take the bars stored since the account was last written, then poll for new ones."""
        await self.advance()
        self._poller = asyncio.create_task(self._poll())

    async def advance(self) -> int:
        """Take the bars stored since the last one taken, filling orders on them; the number of bars.
        BrokerUnavailable when the store cannot be read (nothing changes then)."""
        async with self._lock:
            return await self._advance()

    async def submit(self, request: OrderRequest) -> VenueOrder:
        async with self._lock:
            await self._advance()
            order = self._receive(request)
            await self._commit([self._order_event(order)])
        if order.status == "rejected":
            raise OrderRejected(request.client_order_id, order.reason or "")
        return order.view()

    async def cancel(self, client_order_id: str, symbol: str) -> VenueOrder:
        async with self._lock:
            await self._advance()
            order = self._find(client_order_id, symbol)
            if order is None:
                raise OrderRejected(client_order_id, f"unknown order for {symbol}")
            if order.status == "open":
                order.status = "canceled"
                await self._commit([self._order_event(order)])
            return order.view()

    async def order_status(self, client_order_id: str, symbol: str) -> VenueOrder | None:
        order = self._find(client_order_id, symbol)
        return None if order is None else order.view()

    async def open_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        return [o.view() for o in self._working(symbol)]

    async def fills_since(self, symbol: str, since: datetime) -> list[VenueFill]:
        return [f for f in self._account.fills if f.symbol == symbol and f.ts >= since]

    async def balances(self) -> dict[str, Decimal]:
        return dict(self._account.balances)

    async def positions(self) -> dict[str, Decimal]:
        return {symbol: self._account.balances[assets(symbol)[0]] for symbol in self.config.symbols}

    def events(self) -> AsyncIterator[BrokerEvent]:
        # The queue is subscribed now, not at the first `anext`: no event between the two is lost.
        queue: asyncio.Queue[BrokerEvent | None] = asyncio.Queue()
        self._subscribers.append(queue)
        return self._drain(queue)

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None
        for queue in self._subscribers:
            queue.put_nowait(None)

    async def _drain(self, queue: asyncio.Queue[BrokerEvent | None]) -> AsyncIterator[BrokerEvent]:
        try:
            while (event := await queue.get()) is not None:
                yield event
        finally:
            self._subscribers.remove(queue)

    async def _poll(self) -> None:
        down = False
        while True:
            try:
                await self.advance()
            except BrokerUnavailable as err:
                if not down:
                    log.warning("paper venue %s: %s", self.venue, err)
                    self._publish([BrokerEvent("disconnected", self._clock(), detail=str(err))])
                down = True
            else:
                if down:
                    self._publish([BrokerEvent("reconnected", self._clock())])
                down = False
            await asyncio.sleep(self.config.poll_s)

    async def _advance(self) -> int:
        try:
            new = await asyncio.to_thread(self._new_bars)
        except Exception as err:
            raise BrokerUnavailable(f"paper venue {self.venue}: cannot read bars: {err}") from err
        events: list[BrokerEvent] = []
        for symbol, bars in new.items():
            for bar in bars:
                events += self._take(symbol, bar)
        if any(new.values()):
            await self._commit(events)
        return sum(len(bars) for bars in new.values())

    def _new_bars(self) -> dict[str, list[fm.Bar]]:
        """Per symbol, the stored bars after the last one taken (on a first start: from the last bar, or
        from the earliest working order if that is before it)."""
        new: dict[str, list[fm.Bar]] = {}
        for symbol in self.config.symbols:
            table = naming.live_bars_table(self.config.data_venue, symbol, self.config.timeframe)
            cursor = self._account.cursors.get(symbol)
            if cursor is None:
                last = self._store.last_ts(table)
                if last is None:
                    continue
                start = min([last, *(o.active_at for o in self._working(symbol))])
            else:
                start = cursor + _ONE_US
            new[symbol] = _bars(self._store.read(table, start=start))
        return new

    def _take(self, symbol: str, bar: fm.Bar) -> list[BrokerEvent]:
        """Fill the working orders of `symbol` on `bar`, in the order they arrived, sharing its volume."""
        events: list[BrokerEvent] = []
        instrument = self.config.instruments[symbol]
        params = self.config.fills
        taken = Decimal(0)
        for order in self._working(symbol):
            if fm.bar_fill(order.model, bar, order.remaining, instrument, params, taken) is None:
                continue
            price = fm.fill_price(order.model, bar, params)
            assert price is not None  # bar_fill found one
            can = fm.affordable(order.side, self._free(order), price, instrument, params)
            got = fm.bar_fill(order.model, bar, order.remaining, instrument, params, taken, can)
            if got is None:
                order.status, order.reason = "expired", fm.INSUFFICIENT_FUNDS
                events.append(self._order_event(order))
                continue
            fill = self._fill(order, bar, *got)
            taken = fm.WIDE.add(taken, fill.quantity)
            events += [BrokerEvent("fill", self._clock(), fill=fill), self._order_event(order)]
        self._account.cursors[symbol] = bar.ts
        self._account.closes[symbol] = bar.close
        return events

    def _fill(self, order: _Order, bar: fm.Bar, quantity: Decimal, price: Decimal) -> VenueFill:
        base, quote = assets(order.symbol)
        params = self.config.fills
        value, fee = fm.notional(quantity, price), fm.fee(quantity, price, params)
        sign = 1 if order.side == "buy" else -1
        balances = self._account.balances
        with localcontext(fm.WIDE):
            balances[base] += sign * quantity
            balances[quote] -= sign * value + fee
            order.filled += quantity
            order.notional += value
        order.fills += 1
        if order.filled == order.quantity:
            order.status = "closed"
        fill = VenueFill(
            self.venue,
            fm.trade_id(order.client_order_id, order.fills),
            order.client_order_id,
            order.venue_order_id,
            order.symbol,
            order.side,
            quantity,
            price,
            fee,
            quote,
            bar.ts,
        )
        self._account.fills.append(fill)
        return fill

    def _receive(self, request: OrderRequest) -> _Order:
        """The order the venue records for `request`: open, or rejected with its reason."""
        cid = request.client_order_id
        if cid in self._account.orders:
            raise OrderRejected(cid, "duplicate client order id")
        if request.symbol not in self.config.symbols:
            raise OrderRejected(cid, f"unknown symbol {request.symbol!r}")
        try:
            check_decimal("quantity", request.quantity)
            if request.limit_price is not None:
                check_decimal("limit price", request.limit_price)
        except OrderError as err:
            raise OrderRejected(cid, f"{fm.INVALID_QUANTITY}: {err}") from None
        params = self.config.fills
        arrived = self._clock()
        cursor = self._account.cursors.get(request.symbol)
        if cursor is not None:
            # Never before the close of the last bar taken: a clock that lags the venue's (an accelerated
            # replay read from another process) must not let an order fill on a bar it came after.
            arrived = max(arrived, cursor + _timeframe(self.config.timeframe))
        model = fm.Order(
            cid,
            request.side,
            request.type,
            request.quantity,
            arrived + fm.draws(params, cid).latency,
            request.limit_price,
        )
        price = fm.reference_price(model, self._account.closes.get(request.symbol), params)
        order = _Order(
            cid,
            f"paper-{len(self._account.orders) + 1}",
            request.symbol,
            request.side,
            request.type,
            request.quantity,
            request.limit_price,
            arrived,
            model.active_at,
            price if request.side == "buy" else None,
            "open",
        )
        instrument = self.config.instruments[request.symbol]
        reason = fm.rejection(model, instrument, params, self._free(order), price)
        if reason is not None:
            order.status, order.reason = "rejected", reason
        self._account.orders[cid] = order
        return order

    def _free(self, order: _Order) -> Decimal:
        """The balance `order` spends less what the other working orders hold of it."""
        others = (o for o in self._working() if o is not order and o.spends == order.spends)
        with localcontext(fm.WIDE):
            return self._account.balances[order.spends] - sum(map(self._held, others), Decimal(0))

    def _held(self, order: _Order) -> Decimal:
        if order.side == "sell":
            return order.remaining
        assert order.reserve_price is not None  # a working buy was checked at a price
        return fm.cost(order.remaining, order.reserve_price, self.config.fills)

    def _working(self, symbol: str | None = None) -> Iterator[_Order]:
        return (
            o
            for o in list(self._account.orders.values())
            if o.status == "open" and (symbol is None or o.symbol == symbol)
        )

    def _find(self, client_order_id: str, symbol: str) -> _Order | None:
        order = self._account.orders.get(client_order_id)
        return order if order is not None and order.symbol == symbol else None

    def _order_event(self, order: _Order) -> BrokerEvent:
        return BrokerEvent("order", self._clock(), order=order.view())

    async def _commit(self, events: list[BrokerEvent]) -> None:
        """Write the account, then tell the subscribers."""
        text = _dumps(self._account)
        await asyncio.to_thread(_write_atomically, self.config.state_file, text)
        self._publish(events)

    def _publish(self, events: list[BrokerEvent]) -> None:
        for queue in self._subscribers:
            for event in events:
                queue.put_nowait(event)


def _bars(table: pa.Table) -> list[fm.Bar]:
    """Bars from the store's rows; a float becomes the shortest decimal that prints as it."""
    rows = table.select(["ts", "open", "high", "low", "close", "volume"]).to_pylist()
    return [
        fm.Bar(
            row["ts"],
            *(fm.stored(Decimal(repr(row[name]))) for name in ("open", "high", "low", "close", "volume")),
        )
        for row in rows
    ]


def _fresh(config: PaperConfig) -> _Account:
    balances = {asset: Decimal(0) for symbol in config.symbols for asset in assets(symbol)}
    balances.update(config.balances)
    return _Account(config.venue, balances)


# Fields the state file holds as strings.
_DECIMALS = frozenset({"quantity", "limit_price", "reserve_price", "filled", "notional", "price", "fee"})
_TIMES = frozenset({"arrived_at", "active_at", "ts"})


_Record = TypeVar("_Record", _Order, VenueFill)


def _plain(record: _Order | VenueFill) -> dict[str, object]:
    return {
        k: v.isoformat() if isinstance(v, datetime) else str(v) if isinstance(v, Decimal) else v
        for k, v in asdict(record).items()
    }


def _typed(kind: type[_Record], data: dict[str, object]) -> _Record:
    values = {}
    for f in fields(kind):
        value = data[f.name]
        if value is not None and f.name in _DECIMALS:
            value = Decimal(str(value))
        elif value is not None and f.name in _TIMES:
            value = datetime.fromisoformat(str(value))
        values[f.name] = value
    return kind(**values)


def _dumps(account: _Account) -> str:
    return json.dumps(
        {
            "format": STATE_FORMAT,
            "venue": account.venue,
            "balances": {k: str(v) for k, v in account.balances.items()},
            "orders": [_plain(o) for o in account.orders.values()],
            "fills": [_plain(f) for f in account.fills],
            "cursors": {k: v.isoformat() for k, v in account.cursors.items()},
            "closes": {k: str(v) for k, v in account.closes.items()},
        },
        indent=1,
    )


def _load(config: PaperConfig) -> _Account:
    data = json.loads(config.state_file.read_text())
    if data.get("format") != STATE_FORMAT:
        raise ValueError(
            f"state_file {config.state_file}: format {data.get('format')!r}, expected {STATE_FORMAT}"
        )
    if data["venue"] != config.venue:
        raise ValueError(
            f"state_file {config.state_file} belongs to venue {data['venue']!r}, not {config.venue!r}"
        )
    orders = [_typed(_Order, o) for o in data["orders"]]
    return _Account(
        data["venue"],
        {k: Decimal(v) for k, v in data["balances"].items()},
        {o.client_order_id: o for o in orders},
        [_typed(VenueFill, f) for f in data["fills"]],
        {k: datetime.fromisoformat(v) for k, v in data["cursors"].items()},
        {k: Decimal(v) for k, v in data["closes"].items()},
    )


def _write_atomically(path: Path, text: str) -> None:
    """Replace `path` by `text` so that a crash leaves the old file or the new one, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
