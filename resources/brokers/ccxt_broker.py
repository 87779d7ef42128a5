"""`CcxtBroker`: the broker interface on a venue account reached through ccxt's asyncio client (any ccxt
venue; tested on the local venue, which speaks Binance spot).

Orders are sent and asked about by the executor's client order id (ccxt's `clientOrderId` parameter). A
failed request becomes one of the interface's three failures by what the venue can have done with it
(`failure_outcome`, the table in docs/live/brokers.md): a definitive refusal is `OrderRejected` with the
venue's words; a request that may have reached the venue (a timeout, a connection cut after sending, an
answer that does not say) is `OutcomeUnknown`; one that certainly did not (no connection, the venue saying
it did not process it, the credentials refused) is `BrokerUnavailable`. Nothing is ever sent twice: ccxt's
own retries are off and the broker never retries a write.

Events come from polling every `poll_s`: each configured symbol's new trades ("fill", by trade id) and its
orders' changes of status or filled quantity ("order"); a round that fails marks "disconnected", the next
that succeeds "reconnected", and while disconnected `submit` refuses without sending. The first round takes
the account as it is, without events (what happened before is the executor's reconciliation).

Quantities are Decimals of ccxt's numbers, `Decimal(str(x))`: ccxt parses the venue's decimal strings to
floats, and str gives back the shortest decimal that reads as the same float, the venue's text for any
amount of up to 15 significant digits. Credentials stay inside the ccxt client: messages carry the venue's
words with URL queries cut and the key and secret masked.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import aiohttp
import ccxt

from resources.brokers.base import (
    BrokerError,
    BrokerEvent,
    BrokerUnavailable,
    OrderRejected,
    OrderRequest,
    OutcomeUnknown,
    VenueFill,
    VenueOrder,
    VenueStatus,
)
from resources.venues import CcxtVenue
from trading_assets.orders import rounded

log = logging.getLogger(__name__)

Outcome = Literal["rejected", "unknown", "unavailable"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PAGE = 500  # trades per request; Binance's default page of myTrades
_VENUE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
_STATUSES: dict[str, VenueStatus] = {s: s for s in ("open", "closed", "canceled", "expired", "rejected")}
_TERMINAL = {"closed", "canceled", "expired", "rejected"}

# Answers that say the venue did not process the request (Binance's HTTP return codes and error codes):
# 503 "Service Unavailable.", "Internal error; unable to process your request" (-1001 DISCONNECTED), and
# -1008 (server busy / throttled: the request was refused). Every other 5xx is UNKNOWN by Binance's words.
_NOT_PROCESSED = re.compile(
    r"service unavailable|unable to process your request|\"code\":\s*-100[18]\b", re.I
)
# Refusals of the request itself: the venue answered and nothing was placed.
_REFUSALS = (
    ccxt.InsufficientFunds,
    ccxt.InvalidOrder,
    ccxt.BadRequest,
    ccxt.OperationRejected,
    ccxt.PermissionDenied,
    ccxt.ArgumentsRequired,
    ccxt.NotSupported,
    ccxt.InvalidAddress,
)
# The venue (or the client, before sending) turned the request away whole: throttled, under maintenance,
# a clock outside the receive window, the client closed.
_TURNED_AWAY = (
    ccxt.DDoSProtection,
    ccxt.RateLimitExceeded,
    ccxt.OnMaintenance,
    ccxt.InvalidNonce,
    ccxt.ExchangeClosedByUser,
)
# Transport failures that happen before a request leaves: connecting, resolving the name.
_BEFORE_SENDING = (aiohttp.ClientConnectorError, socket.gaierror)

# The body of the last HTTP answer the ccxt client read in this task (None: no answer), so a failure can
# be told apart by what the venue said; per task, as the poller and the executor share the client.
_LAST_ANSWER: ContextVar[str | None] = ContextVar("ccxt_broker_last_answer", default=None)


def failure_outcome(err: BaseException, answer: str | None = None) -> Outcome:
    """What a failed write (an order or a cancel) may have done at the venue, from ccxt's exception and
    the body of the venue's answer when there was one. When in doubt: "unknown"."""
    if isinstance(err, ccxt.DuplicateOrderId) or "duplicate order" in str(err).lower():
        return "unknown"  # an order holding this client order id is at the venue: ask for it
    if isinstance(err, ccxt.AuthenticationError) and not isinstance(err, ccxt.PermissionDenied):
        return "unavailable"
    if isinstance(err, _TURNED_AWAY):
        return "unavailable"
    if isinstance(err, ccxt.OperationFailed):
        if isinstance(err.__cause__, _BEFORE_SENDING):
            return "unavailable"
        said = answer if answer is not None else ("" if err.__cause__ is not None else str(err))
        return "unavailable" if _NOT_PROCESSED.search(said) else "unknown"
    if isinstance(err, _REFUSALS):
        return "rejected"
    return "unknown"


@dataclass(frozen=True)
class CcxtBrokerConfig:
    """A venue account through ccxt: `venue` names it in fills and in the orders repository ("binance",
    "local"); `client` builds the ccxt client (venue id, sandbox or local URL, credentials' env vars);
    `symbols` are the spot symbols ("BASE/QUOTE") it trades, follows and reports positions of; `poll_s`
    the event stream's polling period."""

    venue: str
    client: CcxtVenue
    symbols: tuple[str, ...]
    poll_s: float = 1.0

    def __post_init__(self) -> None:
        if not _VENUE_NAME.match(self.venue):
            raise ValueError(
                f"venue {self.venue!r}: use lowercase letters, digits, '-' or '_' (e.g. binance)"
            )
        if not self.symbols:
            raise ValueError("symbols: give at least one symbol")
        for symbol in self.symbols:
            base, sep, quote = symbol.partition("/")
            if not sep or not base or not quote or ":" in quote:
                raise ValueError(f"symbols: {symbol!r} is not a spot symbol BASE/QUOTE (e.g. BTC/USDT)")
        if self.poll_s <= 0:
            raise ValueError(f"poll_s {self.poll_s} must be > 0")


class CcxtBroker:
    """The Broker interface on a ccxt venue (see the module's docstring). `start` takes the account as it
    is and polls in the background; `poll` runs one round (tests step it by hand); `close` releases the
    client. `clock` stamps the events."""

    def __init__(
        self, config: CcxtBrokerConfig, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.venue = config.venue
        self.config = config
        self._clock = clock
        # ccxt retries nothing by default; said here so that no option inherited from elsewhere can resend.
        self._exchange = config.client.exchange("async", options={"maxRetriesOnFailure": 0})
        self._exchange.on_rest_response = _recording(self._exchange.on_rest_response)
        self._subscribers: list[asyncio.Queue[BrokerEvent | None]] = []
        self._poller: asyncio.Task[None] | None = None
        self._round = asyncio.Lock()
        self._down: str | None = None  # why the last round failed; None while connected
        self._primed: set[str] = set()  # symbols whose trades were taken as they were
        self._orders: dict[str, VenueOrder] = {}  # working orders by client order id, as last reported
        self._client_ids: dict[tuple[str, str], str] = {}  # (symbol, venue order id) -> client order id
        self._seen_trades: dict[str, set[str]] = {s: set() for s in config.symbols}
        self._cursors: dict[str, int] = {}  # per symbol: the time (ms) of its latest trade seen

    # -- lifecycle ------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Take the account as it is (BrokerUnavailable if the venue cannot be read), then poll every
        `poll_s` in the background."""
        await self.poll()
        if self._down is not None:
            raise BrokerUnavailable(self._down)
        self._poller = asyncio.create_task(self._run())

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None
        await self._exchange.close()
        for queue in self._subscribers:
            queue.put_nowait(None)

    async def __aenter__(self) -> CcxtBroker:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- orders ---------------------------------------------------------------------------------------------

    async def submit(self, request: OrderRequest) -> VenueOrder:
        cid = request.client_order_id
        if self._down is not None:
            raise BrokerUnavailable(f"{self.venue} is disconnected ({self._down}); order {cid} not sent")
        if request.symbol not in self.config.symbols:
            raise OrderRejected(
                cid,
                f"{request.symbol} is not one of this broker's symbols ({', '.join(self.config.symbols)})",
            )
        await self._read("markets", self._exchange.load_markets)
        amount = self._on_grid(request, "quantity", request.quantity, self._exchange.amount_to_precision)
        price = None
        if request.limit_price is not None:
            price = self._on_grid(
                request, "limit price", request.limit_price, self._exchange.price_to_precision
            )
        _LAST_ANSWER.set(None)
        try:
            raw = await self._exchange.create_order(
                request.symbol, request.type, request.side, amount, price, {"clientOrderId": cid}
            )
        except Exception as err:
            raise self._write_failure(cid, "order", err) from None
        order = self._order(raw, cid)
        self._note(order)
        return order

    async def cancel(self, client_order_id: str, symbol: str) -> VenueOrder:
        _LAST_ANSWER.set(None)
        try:
            raw = await self._exchange.cancel_order(None, symbol, {"clientOrderId": client_order_id})
        except ccxt.OrderNotFound:
            # Not working at the venue: it ended meanwhile (its state is the answer), or never arrived.
            order = await self.order_status(client_order_id, symbol)
            if order is None:
                raise OrderRejected(
                    client_order_id, f"the venue knows no order of {symbol} by this id"
                ) from None
        except Exception as err:
            raise self._write_failure(client_order_id, "cancel", err) from None
        else:
            order = self._order(raw, client_order_id)
        self._note(order)
        return order

    async def order_status(self, client_order_id: str, symbol: str) -> VenueOrder | None:
        try:
            raw = await self._exchange.fetch_order(None, symbol, {"clientOrderId": client_order_id})
        except ccxt.OrderNotFound:
            return None
        except ccxt.BaseError as err:
            raise self._read_failure(f"order {client_order_id}", err) from None
        return self._order(raw, client_order_id)

    async def open_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        symbols = self.config.symbols if symbol is None else (symbol,)
        orders = []
        for s in symbols:
            orders += [self._order(raw) for raw in await self._read(f"open orders of {s}", self._open, s)]
        return orders

    # -- account --------------------------------------------------------------------------------------------

    async def fills_since(self, symbol: str, since: datetime) -> list[VenueFill]:
        start = (since - _EPOCH) // timedelta(milliseconds=1)
        fills = [await self._fill(raw) for raw in await self._trades(symbol, start)]
        return [f for f in fills if f.ts >= since]

    async def balances(self) -> dict[str, Decimal]:
        raw = await self._read("balances", self._exchange.fetch_balance)
        return {asset: _decimal(amount or 0) for asset, amount in raw["total"].items()}

    async def positions(self) -> dict[str, Decimal]:
        held = await self.balances()
        return {s: held.get(s.split("/")[0], Decimal(0)) for s in self.config.symbols}

    # -- events ---------------------------------------------------------------------------------------------

    def events(self) -> AsyncIterator[BrokerEvent]:
        # The queue is subscribed now, not at the first `anext`: no event between the two is lost.
        queue: asyncio.Queue[BrokerEvent | None] = asyncio.Queue()
        self._subscribers.append(queue)
        return self._drain(queue)

    async def poll(self) -> None:
        """One round: each symbol's new trades, then its orders' changes; "disconnected" if the venue cannot
        be read, "reconnected" on the first round that succeeds after."""
        async with self._round:
            try:
                for symbol in self.config.symbols:
                    await self._poll_symbol(symbol)
            except BrokerError as err:
                if self._down is None:
                    log.warning("%s", err)
                    self._publish(BrokerEvent("disconnected", self._clock(), detail=str(err)))
                self._down = str(err)
                return
            if self._down is not None:
                self._down = None
                self._publish(BrokerEvent("reconnected", self._clock()))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.config.poll_s)
            await self.poll()

    async def _drain(self, queue: asyncio.Queue[BrokerEvent | None]) -> AsyncIterator[BrokerEvent]:
        try:
            while (event := await queue.get()) is not None:
                yield event
        finally:
            self._subscribers.remove(queue)

    def _publish(self, event: BrokerEvent) -> None:
        for queue in self._subscribers:
            queue.put_nowait(event)

    async def _poll_symbol(self, symbol: str) -> None:
        quiet = symbol not in self._primed
        seen = self._seen_trades[symbol]
        cursor = self._cursors.get(symbol)
        for raw in await (self._latest_trades(symbol) if quiet else self._trades(symbol, cursor)):
            trade_id = str(raw["id"])
            if trade_id in seen:
                continue
            fill = None if quiet else await self._fill(raw)
            seen.add(trade_id)
            self._cursors[symbol] = max(self._cursors.get(symbol, raw["timestamp"]), raw["timestamp"])
            if fill is not None:
                self._publish(BrokerEvent("fill", self._clock(), fill=fill))
        self._primed.add(symbol)
        working = [
            self._order(raw) for raw in await self._read(f"open orders of {symbol}", self._open, symbol)
        ]
        for order in working:
            self._note(order, quiet)
        gone = {o.client_order_id for o in working}
        for cid in [c for c, o in self._orders.items() if o.symbol == symbol and c not in gone]:
            order = await self.order_status(cid, symbol)
            if order is None:
                self._orders.pop(cid, None)
            else:
                self._note(order, quiet)

    def _note(self, order: VenueOrder, quiet: bool = False) -> None:
        """Keep a working order's latest state; publish it when its status or filled quantity moved."""
        known = self._orders.get(order.client_order_id)
        if not quiet and (known is None or (known.status, known.filled) != (order.status, order.filled)):
            self._publish(BrokerEvent("order", self._clock(), order=order))
        if order.status in _TERMINAL:
            self._orders.pop(order.client_order_id, None)
        else:
            self._orders[order.client_order_id] = order

    # -- ccxt -----------------------------------------------------------------------------------------------

    async def _open(self, symbol: str) -> list[dict]:
        return await self._exchange.fetch_open_orders(symbol)

    async def _latest_trades(self, symbol: str) -> list[dict]:
        return await self._read(f"trades of {symbol}", self._exchange.fetch_my_trades, symbol)

    async def _trades(self, symbol: str, since_ms: int | None) -> list[dict]:
        """The account's trades of `symbol` from `since_ms` on, page after page, oldest first."""
        if since_ms is None:
            return await self._latest_trades(symbol)
        found: dict[str, dict] = {}
        while True:
            batch = await self._read(
                f"trades of {symbol}", self._exchange.fetch_my_trades, symbol, since_ms, _PAGE
            )
            found.update((str(t["id"]), t) for t in batch)
            if len(batch) < _PAGE:
                return sorted(found.values(), key=lambda t: t["timestamp"])
            last = max(t["timestamp"] for t in batch)
            if last == since_ms:
                raise BrokerError(f"{self.venue}: over {_PAGE} trades of {symbol} at one millisecond")
            since_ms = last

    async def _read(self, what: str, call: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        try:
            return await call(*args)
        except ccxt.BaseError as err:
            raise self._read_failure(what, err) from None

    async def _client_order_id(self, symbol: str, venue_order_id: str | None, info: Any) -> str | None:
        """The client order id of a trade's order: in the trade (some venues), known, or asked for."""
        if isinstance(info, dict) and info.get("clientOrderId"):
            return str(info["clientOrderId"])
        if venue_order_id is None:
            return None
        key = (symbol, venue_order_id)
        if key not in self._client_ids:
            try:
                raw = await self._exchange.fetch_order(venue_order_id, symbol)
            except ccxt.OrderNotFound:
                return None
            except ccxt.BaseError as err:
                raise self._read_failure(f"order {venue_order_id}", err) from None
            self._order(raw)
        return self._client_ids.get(key)

    async def _fill(self, raw: dict) -> VenueFill:
        venue_order_id = None if raw.get("order") is None else str(raw["order"])
        fee = raw.get("fee") or {}
        return VenueFill(
            venue=self.venue,
            trade_id=str(raw["id"]),
            client_order_id=await self._client_order_id(raw["symbol"], venue_order_id, raw.get("info")),
            venue_order_id=venue_order_id,
            symbol=raw["symbol"],
            side=raw["side"],
            quantity=_decimal(raw["amount"]),
            price=_decimal(raw["price"]),
            fee=_decimal(fee.get("cost") or 0),
            fee_currency=fee.get("currency"),
            ts=_EPOCH + timedelta(milliseconds=raw["timestamp"]),
        )

    def _order(self, raw: dict, client_order_id: str | None = None) -> VenueOrder:
        """A ccxt order as a VenueOrder, remembering its ids. `client_order_id` when the caller knows it
        (Binance answers a cancel with the cancel request's own id)."""
        cid = client_order_id or raw.get("clientOrderId")
        venue_order_id = None if raw.get("id") is None else str(raw["id"])
        if cid and venue_order_id:
            self._client_ids[(raw["symbol"], venue_order_id)] = cid
        filled = _decimal(raw.get("filled") or 0)
        average = raw.get("average")
        return VenueOrder(
            client_order_id=cid or "",
            venue_order_id=venue_order_id,
            symbol=raw["symbol"],
            side=raw["side"],
            type="market" if raw.get("type") == "market" else "limit",
            # None (an order just acknowledged) and "canceling" are still working
            status=_STATUSES.get(raw.get("status") or "", "open"),
            quantity=_decimal(raw["amount"]),
            filled=filled,
            average_price=rounded(_decimal(average)) if filled and average else None,
        )

    def _on_grid(
        self, request: OrderRequest, what: str, value: Decimal, to_precision: Callable[[str, Any], str]
    ) -> float:
        """`value` for ccxt, refused if ccxt would send another number (off the market's step or tick)."""
        try:
            sent = Decimal(to_precision(request.symbol, float(value)))
        except ccxt.BaseError as err:
            raise OrderRejected(request.client_order_id, self._words(err)) from None
        if sent != value:
            raise OrderRejected(
                request.client_order_id,
                f"{what} {value} is off the market's precision (it would go as {sent})",
            )
        return float(value)

    # -- failures -------------------------------------------------------------------------------------------

    def _write_failure(self, cid: str, what: str, err: Exception) -> BrokerError:
        outcome = failure_outcome(err, _LAST_ANSWER.get())
        words = self._words(err)
        if outcome == "rejected":
            return OrderRejected(cid, words)
        if isinstance(err, ccxt.AuthenticationError):
            return BrokerUnavailable(self._credentials_refused(words) + f"; {what} {cid} not placed")
        kind = type(err).__name__
        if outcome == "unavailable":
            return BrokerUnavailable(f"{self.venue}: {what} {cid} not taken ({kind}: {words})")
        return OutcomeUnknown(
            f"{self.venue}: {what} {cid} may have reached the venue ({kind}: {words}); "
            "ask for its status by this id, never send it again"
        )

    def _read_failure(self, what: str, err: ccxt.BaseError) -> BrokerError:
        words = self._words(err)
        if isinstance(err, ccxt.AuthenticationError) and not isinstance(err, ccxt.PermissionDenied):
            return BrokerUnavailable(self._credentials_refused(words))
        if isinstance(err, ccxt.OperationFailed | ccxt.ExchangeClosedByUser):
            return BrokerUnavailable(f"{self.venue}: cannot read {what} ({type(err).__name__}: {words})")
        return BrokerError(f"{self.venue}: reading {what} failed ({type(err).__name__}: {words})")

    def _credentials_refused(self, words: str) -> str:
        client = self.config.client
        return (
            f"{self.venue}: the venue refused the API credentials (from ${client.api_key_env} and "
            f"${client.secret_env}): {words}"
        )

    def _words(self, err: BaseException) -> str:
        """The venue's message in a ccxt exception (the "msg" of its JSON body when there is one), on one
        line, with URL queries cut and the credentials masked."""
        text = str(err)
        start, end = text.find("{"), text.rfind("}")
        if 0 <= start < end:
            try:
                body = json.loads(text[start : end + 1])
            except ValueError:
                body = None
            if isinstance(body, dict):
                said = next(
                    (body[k] for k in ("msg", "message", "error") if isinstance(body.get(k), str)), ""
                )
                text = said or text
        text = text.removeprefix(f"{self._exchange.id} ")
        text = re.sub(r"\?\S*", "", " ".join(text.split())) or type(err).__name__
        for secret in (self._exchange.apiKey, self._exchange.secret):
            if secret:
                text = text.replace(secret, "***")
        return text


def _decimal(x: Any) -> Decimal:
    return Decimal(str(x))


def _recording(on_rest_response: Callable[..., Any]) -> Callable[..., Any]:
    """ccxt's hook on every HTTP answer, wrapped to keep the answer's body for this task's failure."""

    def hook(code: Any, reason: Any, url: Any, method: Any, headers: Any, body: Any, *rest: Any) -> Any:
        _LAST_ANSWER.set(f"{code} {body}")
        return on_rest_response(code, reason, url, method, headers, body, *rest)

    return hook
