"""The venue's HTTP and WebSocket face: Binance spot's REST paths under /api/v3 (signed ones checked like
Binance: X-MBX-APIKEY, HMAC-SHA256 of the query string followed by the body), the kline streams under
/stream/ws, and the control endpoint under /_venue. Faults that concern the transport (latency, 5xx,
lost answers) sit in `FaultGate`, in front of the routes."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from trading_assets.live.venue import wire
from trading_assets.live.venue.engine import OrderRequest
from trading_assets.live.venue.markets import BinanceError

if TYPE_CHECKING:
    from trading_assets.live.venue.venue import LocalVenue

RATE_LIMITS = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
]


def _binance_error(err: BinanceError) -> JSONResponse:
    return JSONResponse({"code": err.code, "msg": err.msg}, status_code=err.status)


def _mandatory(name: str) -> BinanceError:
    return BinanceError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def _decimal(params: dict[str, str], name: str) -> Decimal | None:
    text = params.get(name)
    if text is None or text == "":
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or value <= 0:
        raise BinanceError(
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is "
            "'^([0-9]{1,20})(\\.[0-9]{1,20})?$'.",
        )
    return value


def _int(params: dict[str, str], name: str) -> int | None:
    text = params.get(name)
    if text is None or text == "":
        return None
    if not text.lstrip("-").isdigit():
        raise BinanceError(
            -1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'."
        )
    return int(text)


def _without_signature(text: str) -> tuple[str, str | None]:
    parts = text.split("&") if text else []
    signatures = [p[len("signature=") :] for p in parts if p.startswith("signature=")]
    return "&".join(p for p in parts if not p.startswith("signature=")), (
        signatures[0] if signatures else None
    )


class Api:
    """The Binance routes, each answering from the venue's clock, tape and engine."""

    def __init__(self, venue: LocalVenue) -> None:
        self.venue = venue

    async def _signed(self, request: Request) -> dict[str, str]:
        key = request.headers.get("x-mbx-apikey")
        if not key:
            raise BinanceError(-2014, "API-key format invalid.", 401)
        if not hmac.compare_digest(key.encode(), self.venue.settings.api_key.encode()):
            raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        query, body = request.url.query, (await request.body()).decode()
        query_rest, query_sig = _without_signature(query)
        body_rest, body_sig = _without_signature(body)
        signature = query_sig or body_sig
        if not signature:
            raise _mandatory("signature")
        expected = hmac.new(
            self.venue.settings.api_secret.encode(), (query_rest + body_rest).encode(), hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(signature.lower(), expected):
            raise BinanceError(-1022, "Signature for this request is not valid.")
        params = dict(parse_qsl(query_rest)) | dict(parse_qsl(body_rest))
        if _int(params, "timestamp") is None:
            raise _mandatory("timestamp")
        return params

    def _symbol(self, params: dict[str, str], required: bool = True) -> str | None:
        symbol = params.get("symbol")
        if not symbol:
            if required:
                raise _mandatory("symbol")
            return None
        if symbol not in self.venue.markets:
            raise BinanceError(-1121, "Invalid symbol.")
        return symbol

    async def ping(self, request: Request) -> dict:
        return {}

    async def time(self, request: Request) -> dict:
        return {"serverTime": self.venue.now_ms()}

    async def exchange_info(self, request: Request) -> dict:
        return {
            "timezone": "UTC",
            "serverTime": self.venue.now_ms(),
            "rateLimits": RATE_LIMITS,
            "exchangeFilters": [],
            "symbols": [spec.exchange_info() for spec in self.venue.markets.values()],
        }

    async def klines(self, request: Request) -> list:
        params = dict(request.query_params)
        symbol = self._symbol(params)
        assert symbol is not None
        interval = params.get("interval")
        if not interval:
            raise _mandatory("interval")
        if interval != self.venue.tape.interval:
            raise BinanceError(-1120, "Invalid interval.")
        limit = min(_int(params, "limit") or 500, 1000)
        now, start = self.venue.now_ms(), _int(params, "startTime")
        history = self.venue.settings.history_bars
        earliest = None
        if history is not None:
            step = self.venue.tape.interval_ms
            earliest = now - now % step - history * step
            start = None if start is None else max(start, earliest)
        bars = self.venue.tape.klines(symbol, now, start, _int(params, "endTime"), limit)
        return [wire.kline_row(b) for b in bars if earliest is None or b.open_ms >= earliest]

    async def new_order(self, request: Request) -> dict:
        params = await self._signed(request)
        symbol = self._symbol(params)
        assert symbol is not None
        for name in ("side", "type"):
            if not params.get(name):
                raise _mandatory(name)
        req = OrderRequest(
            symbol=symbol,
            side=params["side"],
            type=params["type"],
            quantity=_decimal(params, "quantity"),
            quote_quantity=_decimal(params, "quoteOrderQty"),
            price=_decimal(params, "price"),
            time_in_force=params.get("timeInForce"),
            client_order_id=params.get("newClientOrderId") or None,
        )
        order, fills = self.venue.engine.place(self.venue.now_ms(), req)
        default = "FULL" if req.type == "MARKET" else "ACK"  # Binance's default for the order type
        return wire.order_created(order, fills, params.get("newOrderRespType") or default)

    async def query_order(self, request: Request) -> dict:
        params = await self._signed(request)
        symbol = self._symbol(params)
        assert symbol is not None
        order = self.venue.engine.order(
            self.venue.now_ms(), symbol, _int(params, "orderId"), params.get("origClientOrderId")
        )
        return wire.order_status(order)

    async def cancel_order(self, request: Request) -> dict:
        params = await self._signed(request)
        symbol = self._symbol(params)
        assert symbol is not None
        now = self.venue.now_ms()
        order = self.venue.engine.cancel(
            now, symbol, _int(params, "orderId"), params.get("origClientOrderId")
        )
        cancel_id = params.get("newClientOrderId") or f"cancel-{order.order_id}"
        return wire.order_canceled(order, cancel_id, now)

    async def open_orders(self, request: Request) -> list:
        params = await self._signed(request)
        orders = self.venue.engine.open_orders(self.venue.now_ms(), self._symbol(params, required=False))
        return [wire.order_status(o) for o in orders]

    async def cancel_open_orders(self, request: Request) -> list:
        params = await self._signed(request)
        symbol = self._symbol(params)
        assert symbol is not None
        now = self.venue.now_ms()
        orders = self.venue.engine.cancel_all(now, symbol)
        return [wire.order_canceled(o, f"cancel-{o.order_id}", now) for o in orders]

    async def my_trades(self, request: Request) -> list:
        params = await self._signed(request)
        symbol = self._symbol(params)
        assert symbol is not None
        trades = self.venue.engine.my_trades(
            self.venue.now_ms(),
            symbol,
            order_id=_int(params, "orderId"),
            start_ms=_int(params, "startTime"),
            end_ms=_int(params, "endTime"),
            from_id=_int(params, "fromId"),
            limit=min(_int(params, "limit") or 500, 1000),
        )
        return [wire.account_trade(t) for t in trades]

    async def account(self, request: Request) -> dict:
        await self._signed(request)
        now = self.venue.now_ms()
        return wire.account(self.venue.engine.account(now), self.venue.engine.rules.fee_rate, now)


def _route(path: str, handler: Callable[[Request], Awaitable[Any]], method: str) -> Route:
    async def endpoint(request: Request) -> Response:
        try:
            return JSONResponse(await handler(request))
        except BinanceError as err:
            return _binance_error(err)

    return Route(path, endpoint, methods=[method])


@dataclass
class _Subscription:
    symbol: str
    closed: int  # bars already closed when the stream was subscribed or last sent a final kline
    partial: tuple | None = None


@dataclass(eq=False)  # a connection is itself, hashed by identity
class _Connection:
    ws: WebSocket
    subscriptions: dict[str, _Subscription] = field(default_factory=dict)
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pusher: asyncio.Task | None = None

    async def send(self, message: Any) -> None:
        async with self.send_lock:
            await self.ws.send_text(json.dumps(message))


class StreamHub:
    """Kline streams: a connection subscribes (SUBSCRIBE, or a stream name in its path) and receives each
    change of the bar in progress (`x` false) and each bar as it closes (`x` true), every `stream_tick_s`
    of wall time."""

    def __init__(self, venue: LocalVenue) -> None:
        self.venue = venue
        self.connections: set[_Connection] = set()

    def _stream_symbol(self, name: str) -> str | None:
        symbol, sep, channel = name.partition("@")
        upper = symbol.upper()
        if sep and channel == f"kline_{self.venue.tape.interval}" and upper in self.venue.markets:
            return upper
        return None

    def _subscribe(self, conn: _Connection, name: str) -> None:
        symbol = self._stream_symbol(name)
        if symbol is None:
            raise ValueError(f"Invalid request: unknown stream {name!r}")
        if name not in conn.subscriptions:
            conn.subscriptions[name] = _Subscription(
                symbol, self.venue.tape.n_closed(symbol, self.venue.now_ms())
            )

    def _command(self, conn: _Connection, text: str) -> dict:
        try:
            message = json.loads(text)
            method, request_id = message["method"], message.get("id")
        except (ValueError, KeyError, TypeError):
            return {"error": {"code": 3, "msg": "Invalid JSON: expected an object with 'method'"}, "id": None}
        try:
            if method == "SUBSCRIBE":
                for name in message.get("params", []):
                    self._subscribe(conn, name)
                return {"result": None, "id": request_id}
            if method == "UNSUBSCRIBE":
                for name in message.get("params", []):
                    conn.subscriptions.pop(name, None)
                return {"result": None, "id": request_id}
            if method == "LIST_SUBSCRIPTIONS":
                return {"result": sorted(conn.subscriptions), "id": request_id}
            return {
                "error": {"code": 2, "msg": f"Invalid request: unknown method {method!r}"},
                "id": request_id,
            }
        except ValueError as err:
            return {"error": {"code": 2, "msg": str(err)}, "id": request_id}

    async def endpoint(self, ws: WebSocket) -> None:
        await ws.accept()
        conn = _Connection(ws)
        name = ws.path_params.get("name")
        if name and self._stream_symbol(name):
            self._subscribe(conn, name)
        self.connections.add(conn)
        conn.pusher = asyncio.create_task(self._push(conn))
        try:
            while True:
                await conn.send(self._command(conn, await ws.receive_text()))
        except (WebSocketDisconnect, RuntimeError):
            pass  # the client left, or `drop_all` closed the socket under the reader
        finally:
            conn.pusher.cancel()
            self.connections.discard(conn)

    async def _push(self, conn: _Connection) -> None:
        tape, interval = self.venue.tape, self.venue.tape.interval
        while True:
            now = self.venue.now_ms()
            self.venue.engine.catch_up(now)  # a running clock matches orders even when nobody asks
            for sub in list(conn.subscriptions.values()):
                closed = tape.n_closed(sub.symbol, now)
                for i in range(sub.closed, closed):
                    await conn.send(wire.kline_event(sub.symbol, interval, tape.bar(sub.symbol, i), now))
                sub.closed = closed
                live = tape.in_progress(sub.symbol, now)
                key = None if live is None else (live.open_ms, live.close, live.volume)
                if live is not None and key != sub.partial:
                    await conn.send(wire.kline_event(sub.symbol, interval, live, now))
                sub.partial = key
            await asyncio.sleep(self.venue.settings.stream_tick_s)

    async def drop_all(self) -> int:
        """Close every stream connection now (code 1001, going away); clients must reconnect."""
        dropped = list(self.connections)
        for conn in dropped:
            if conn.pusher is not None:
                conn.pusher.cancel()
            async with conn.send_lock:
                await conn.ws.close(code=1001)
            self.connections.discard(conn)
        return len(dropped)


class FaultGate:
    """In front of the Binance paths: added latency, 5xx answers for the next N requests (answered before
    the venue sees the request: nothing happens), and the ambiguous order: the venue accepts it, the client
    never gets the answer (`drop`: the connection is cut; `timeout`: held until the client gives up)."""

    def __init__(self, app: Starlette, venue: LocalVenue) -> None:
        self.app, self.venue = app, venue

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            self.venue.loop = asyncio.get_running_loop()  # where other threads send `drop_streams`
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        faults = self.venue.faults
        delay = faults.delay_s()
        if delay:
            await asyncio.sleep(delay)
        status = faults.take_error_status()
        if status is not None:
            # A gateway's answer, not Binance's JSON: ccxt maps the bare status (5xx: ExchangeNotAvailable).
            await Response(f"{status} {HTTPStatus(status).phrase}", status_code=status)(scope, receive, send)
            return
        if scope["method"] == "POST" and scope["path"] == "/api/v3/order" and faults.ambiguous_armed():
            await self._ambiguous(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _ambiguous(self, scope: dict, receive: Callable, send: Callable) -> None:
        held: list[dict] = []

        async def hold(message: dict) -> None:
            held.append(message)

        await self.app(scope, receive, hold)
        accepted = held and held[0].get("status") == 200
        mode = self.venue.faults.take_ambiguous() if accepted else None
        if mode is None:  # a refused order passes, the fault waits for the next accepted one
            for message in held:
                await send(message)
            return
        if mode == "drop":
            # uvicorn's h11 cycle owns the connection; aborting it is a cut with no answer at all.
            transport = getattr(getattr(send, "__self__", None), "transport", None)
            if transport is None:
                raise RuntimeError(
                    "the ambiguous 'drop' fault needs uvicorn's h11 server (no transport found)"
                )
            transport.abort()
        await asyncio.wait_for(receive(), timeout=600)  # returns http.disconnect once the client has gone


class Control:
    """/_venue: the venue's state, its clock and its fault controls, as JSON."""

    FAULTS = (
        "drop_streams",
        "reject_next_order",
        "partial_fill_next_order",
        "ambiguous_next_order",
        "fail_next_requests",
        "set_latency",
    )

    def __init__(self, venue: LocalVenue) -> None:
        self.venue = venue

    async def state(self, request: Request) -> Response:
        return JSONResponse(self.venue.state())

    async def faults(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.venue.faults.clear()
            return JSONResponse(self.venue.faults.pending())
        try:
            body = await request.json()
            name = body.pop("fault")
        except (ValueError, KeyError, AttributeError):
            return JSONResponse({"error": "body must be a JSON object with 'fault'"}, status_code=400)
        if name not in self.FAULTS:
            return JSONResponse({"error": f"fault must be one of {', '.join(self.FAULTS)}"}, status_code=400)
        try:
            if name == "drop_streams":
                result = {"dropped": await self.venue.hub.drop_all()}
            else:
                getattr(self.venue.faults, name)(**body)
                result = {}
        except (TypeError, ValueError) as err:
            return JSONResponse({"error": f"{name}: {err}"}, status_code=400)
        return JSONResponse({**result, "faults": self.venue.faults.pending()})

    async def clock(self, request: Request) -> Response:
        try:
            body = await request.json()
            if "speed" in body:
                self.venue.set_speed(float(body["speed"]))
            if "to" in body:
                self.venue.advance_to(int(body["to"]))
            elif "advance_ms" in body:
                self.venue.advance_to(self.venue.now_ms() + int(body["advance_ms"]))
        except (ValueError, TypeError, AttributeError) as err:
            return JSONResponse({"error": f"clock: {err}"}, status_code=400)
        return JSONResponse({"now": self.venue.now_ms(), "speed": self.venue.clock.speed})


def create_app(venue: LocalVenue) -> FaultGate:
    api, control = Api(venue), Control(venue)
    routes = [
        _route("/api/v3/ping", api.ping, "GET"),
        _route("/api/v3/time", api.time, "GET"),
        _route("/api/v3/exchangeInfo", api.exchange_info, "GET"),
        _route("/api/v3/klines", api.klines, "GET"),
        _route("/api/v3/order", api.new_order, "POST"),
        _route("/api/v3/order", api.query_order, "GET"),
        _route("/api/v3/order", api.cancel_order, "DELETE"),
        _route("/api/v3/openOrders", api.open_orders, "GET"),
        _route("/api/v3/openOrders", api.cancel_open_orders, "DELETE"),
        _route("/api/v3/myTrades", api.my_trades, "GET"),
        _route("/api/v3/account", api.account, "GET"),
        WebSocketRoute("/stream/ws", venue.hub.endpoint),
        WebSocketRoute("/stream/ws/{name}", venue.hub.endpoint),
        Route("/_venue/state", control.state, methods=["GET"]),
        Route("/_venue/faults", control.faults, methods=["POST", "DELETE"]),
        Route("/_venue/clock", control.clock, methods=["POST"]),
    ]
    return FaultGate(Starlette(routes=routes), venue)
