"""`LocalVenue`: the venue as one object: its clock, tape, engine, faults and server, run in a thread (tests)
or in the foreground (the `trading-assets venue` command)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa
import uvicorn

from trading_assets.live.venue import wire
from trading_assets.live.venue.clock import VenueClock
from trading_assets.live.venue.engine import Balance, Engine, MatchingRules
from trading_assets.live.venue.faults import AmbiguousMode, Faults, PartialRest
from trading_assets.live.venue.markets import MarketSpec
from trading_assets.live.venue.server import StreamHub, create_app
from trading_assets.live.venue.tape import SymbolBars, Tape


@dataclass(frozen=True)
class VenueSettings:
    """How the venue runs. `speed` is simulated seconds per wall second (0: the clock moves only when
    stepped); `start_ms` defaults to the first bar's open, when no bar has closed yet. Amounts are decimal
    strings; `volume_share` caps what one bar fills, as a share of its volume (None: no cap)."""

    api_key: str
    api_secret: str
    speed: float = 0.0
    start_ms: int | None = None
    interval: str | None = None
    fee_rate: str = "0.001"
    slippage_bps: str = "0"
    volume_share: str | None = None
    balances: Mapping[str, str] = field(default_factory=lambda: {"USDT": "10000"})
    seed: int = 0
    stream_tick_s: float = 0.05
    # Klines reach back at most this many bars before the clock (None: the whole tape), as real venues
    # keep a limited history: what closed earlier is gone from REST.
    history_bars: int | None = None

    def __post_init__(self) -> None:
        if not self.api_key or not self.api_secret:
            raise ValueError("api_key and api_secret must not be empty")
        if self.history_bars is not None and self.history_bars < 1:
            raise ValueError(f"history_bars must be >= 1 or None, not {self.history_bars}")
        if self.volume_share is not None and not 0 < Decimal(self.volume_share) <= 1:
            raise ValueError(f"volume_share must be in (0, 1], not {self.volume_share}")
        for asset, amount in self.balances.items():
            if Decimal(amount) < 0:
                raise ValueError(f"balance of {asset} must not be negative, not {amount}")


class LocalVenue:
    """A Binance-spot-speaking venue replaying `bars` (symbol as ccxt writes it -> table of ts + OHLCV)."""

    def __init__(
        self, bars: Mapping[str, pa.Table], settings: VenueSettings, markets: Sequence[MarketSpec] = ()
    ) -> None:
        specs = {m.symbol: m for m in markets} or {symbol: MarketSpec(symbol) for symbol in bars}
        for symbol in set(bars) ^ set(specs):
            raise ValueError(f"market {symbol} has bars but no spec, or a spec but no bars")
        self.settings = settings
        self.markets = {spec.venue_id: spec for spec in specs.values()}
        self.tape = Tape(
            {specs[s].venue_id: SymbolBars.from_table(s, table) for s, table in bars.items()},
            settings.interval,
        )
        start = settings.start_ms if settings.start_ms is not None else self.tape.first_open_ms()
        self.clock = VenueClock(start, settings.speed)
        self.faults = Faults(settings.seed)
        balances = {asset.upper(): Balance(free=Decimal(a)) for asset, a in settings.balances.items()}
        for spec in self.markets.values():
            balances.setdefault(spec.base, Balance())
            balances.setdefault(spec.quote, Balance())
        rules = MatchingRules(
            fee_rate=Decimal(settings.fee_rate),
            slippage_bps=Decimal(settings.slippage_bps),
            volume_share=None if settings.volume_share is None else Decimal(settings.volume_share),
        )
        self.engine = Engine(self.tape, self.markets, rules, self.faults, balances, matched_until_ms=start)
        self.hub = StreamHub(self)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.host, self.port = "127.0.0.1", 0

    # -- clock ----------------------------------------------------------------------------------------------

    def now_ms(self) -> int:
        return self.clock.now_ms()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.now_ms() / 1000, UTC)

    def advance_to(self, when: int | datetime) -> int:
        """Move the clock to `when` (UTC ms or an aware datetime) and match orders against the bars that
        closed on the way; returns the new time in ms."""
        ms = when if isinstance(when, int) else int(when.timestamp() * 1000)
        now = self.clock.advance_to(ms)
        self.engine.catch_up(now)
        return now

    def advance(self, by: timedelta) -> int:
        return self.advance_to(self.now_ms() + int(by / timedelta(milliseconds=1)))

    def set_speed(self, speed: float) -> None:
        self.clock.set_speed(speed)

    # -- faults ---------------------------------------------------------------------------------------------

    def drop_streams(self) -> int:
        """Close every stream connection now; returns how many were open."""
        if self.loop is None:
            return 0
        return asyncio.run_coroutine_threadsafe(self.hub.drop_all(), self.loop).result(timeout=10)

    def reject_next_order(self, reason: str = "insufficient_funds") -> None:
        self.faults.reject_next_order(reason)

    def partial_fill_next_order(self, share: float = 0.5, rest: PartialRest = "later") -> None:
        self.faults.partial_fill_next_order(share, rest)

    def ambiguous_next_order(self, mode: AmbiguousMode = "drop") -> None:
        self.faults.ambiguous_next_order(mode)

    def fail_next_requests(self, count: int, status: int = 503) -> None:
        self.faults.fail_next_requests(count, status)

    def set_latency(self, ms: float, jitter_ms: float = 0.0) -> None:
        self.faults.set_latency(ms, jitter_ms)

    def clear_faults(self) -> None:
        self.faults.clear()

    # -- state ----------------------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything the venue holds, in Binance's shapes: what GET /_venue/state answers."""
        now = self.now_ms()
        engine = self.engine
        with engine.lock:
            engine.catch_up(now)
            return {
                "now": now,
                "now_iso": self.now().isoformat(),
                "speed": self.clock.speed,
                "interval": self.tape.interval,
                "symbols": {
                    sid: {
                        "symbol": spec.symbol,
                        "bars": len(self.tape.bars[sid].open_ms),
                        "closed": self.tape.n_closed(sid, now),
                    }
                    for sid, spec in self.markets.items()
                },
                "balances": {
                    a: {"free": wire.f8(b.free), "locked": wire.f8(b.locked)}
                    for a, b in sorted(engine.balances.items())
                },
                "orders": [wire.order_status(o) for o in engine.orders.values()],
                "trades": [wire.account_trade(t) for t in engine.trades],
                "faults": self.faults.pending(),
                "streams": len(self.hub.connections),
            }

    # -- serving --------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self._url_host()}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self._url_host()}:{self.port}/stream/ws"

    def _url_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    def _uvicorn(self, log_config: dict | None) -> uvicorn.Server:
        config = uvicorn.Config(
            create_app(self),
            http="h11",  # the ambiguous fault cuts connections through h11's transport
            ws="websockets-sansio",
            lifespan="on",
            proxy_headers=False,
            access_log=False,
            log_level="warning",
            log_config=log_config,
            timeout_graceful_shutdown=1,
        )
        return uvicorn.Server(config)

    def _bind(self, host: str, port: int) -> socket.socket:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)  # connections wait in the backlog until uvicorn serves: the URL works once printed
        self.host, self.port = host, sock.getsockname()[1]
        return sock

    def start(self, host: str = "127.0.0.1", port: int = 0, timeout_s: float = 10) -> LocalVenue:
        """Serve in a background thread (port 0: a free one); returns once the server answers."""
        if self._thread is not None:
            raise RuntimeError("the venue is already running")
        sock = self._bind(host, port)
        self._server = self._uvicorn(log_config=None)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="local-venue", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the local venue did not start on {host}:{self.port}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def serve(self, host: str, port: int, on_start: Callable[[LocalVenue], None] = lambda v: None) -> None:
        """Serve in the foreground until interrupted (SIGINT/SIGTERM), with uvicorn's usual logging."""
        sock = self._bind(host, port)
        on_start(self)
        self._uvicorn(log_config=uvicorn.config.LOGGING_CONFIG).run(sockets=[sock])

    def __enter__(self) -> LocalVenue:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
