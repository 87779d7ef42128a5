"""The market-data recorder: closed bars of a venue's symbols into the time-series store, through ccxt.

For each symbol, in a loop of its own:
1. catch up over REST: from the bar after the last one recorded (the newest of what this process holds in
   memory, the spool and `store.last_ts`; on a cold start, `history_bars` before the venue's clock) up to
   the venue's clock, page by page, keeping only the bars that have closed by the venue's own time
   (`fetch_time`, so an accelerated venue clock works too);
2. follow the WebSocket stream (`watch_ohlcv`): a bar is closed once a later bar has begun, and then it is
   written. A stream that goes quiet for `stall_s` counts as dropped;
3. on a dropped stream or a venue error: back off (0.5 s doubling to 30 s), then go back to 1, so every
   gap is filled from the venue over REST, with no process restart.
Only closed bars are written, each one checked first (finite prices, low <= open, close <= high, volume
>= 0, on the timeframe's grid); the store's writes are idempotent (dedup on ts), so bars written again
after a reconnect are harmless. The table of each symbol is `naming.live_bars_table`.

A store that refuses a write (down, restarting, timing out) does not stop the recording: the bars go to a
durable spool on local disk (`spool.Spool`), the stream keeps being followed, and the spool is written to
the store with backoff (0.5 s doubling to 30 s) until the store takes it; then writing goes straight to
the store again. While anything is spooled, new bars are spooled behind it, so the store receives them in
order. A restarted recorder writes what an earlier one spooled before anything else; SIGTERM leaves the
spool as it is. Every `HEARTBEAT_S` the recorder's state goes to the catalog's service heartbeats (a
catalog that is away costs a warning, never the recording).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import logging
import math
import os
import socket
import tempfile
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import ccxt
import pyarrow as pa
from prometheus_client import CollectorRegistry, Counter, Gauge

from resources.catalog import Catalog
from resources.timeseries import TS_TYPE, StoreError, TimeSeriesStore
from trading_assets import naming
from trading_assets.bars.service import BARS_SCHEMA
from trading_assets.live.health import Health
from trading_assets.live.spool import Bar, Spool, SpoolError

log = logging.getLogger(__name__)

OHLCV_FIELDS = ("ts", "open", "high", "low", "close", "volume")
HEARTBEAT_S = 5.0
# What a store that is away raises: its own error, a refused or reset connection, a timeout, a cut answer.
STORE_ERRORS = (StoreError, OSError, http.client.HTTPException)


class StreamReconnected(ccxt.NetworkError):
    """ccxt opened a new stream connection between two updates: what the old one left half-told is
    unknown, so the recorder catches up over REST as after a drop."""


class VenueDataError(ValueError):
    """A bar from the venue that cannot be stored; the message names the symbol, bar and field."""


@dataclass(frozen=True)
class RecorderConfig:
    """What to record: a ccxt venue id (it names the tables), its symbols and one timeframe."""

    venue: str
    symbols: tuple[str, ...]
    timeframe: str = "1m"
    # Bars fetched before the venue's clock when a symbol's table is empty.
    history_bars: int = 1_440
    page_bars: int = 1_000
    # Wall seconds without a stream update after which the stream counts as dropped.
    stall_s: float = 90.0
    backoff_s: tuple[float, float] = (0.5, 30.0)
    # Seconds without a beat (a stream update, a catch-up, a write of the spool) before /healthz says stuck.
    stale_after_s: float = 30.0

    def __post_init__(self) -> None:
        if not self.symbols:
            raise ValueError("symbols: give at least one symbol")
        for symbol in self.symbols:
            naming.live_bars_table(self.venue, symbol, self.timeframe)
        if self.history_bars < 1 or self.page_bars < 2:
            raise ValueError("history_bars must be >= 1 and page_bars >= 2")


@dataclass
class _Feed:
    """Where one symbol stands: the last bar recorded (stored or spooled), the last one the store took,
    and the bars seen on the stream since."""

    symbol: str
    table: str
    last_ms: int | None = None
    stored_ms: int | None = None
    newest_ms: int | None = None
    connected: bool = False
    caught_up: bool = False
    lag_bars: int | None = None
    spooled_bars: int = 0
    pending: dict[int, list[float]] = field(default_factory=dict)
    # The stream connections (ccxt's clients) seen with the updates taken since the last catch-up; weak, so a
    # closed one's place is never mistaken for a new one's.
    connections: weakref.WeakSet | None = None
    # Set when bars are spooled: wakes the task that writes the spool to the store.
    spooled: asyncio.Event = field(default_factory=asyncio.Event)


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["venue", "symbol"]
        self.last_bar = Gauge(
            "live_bar_last_ts_seconds", "Open time of the last bar stored", labels, registry=registry
        )
        self.lag = Gauge(
            "live_bar_lag_bars", "Closed bars at the venue not stored yet", labels, registry=registry
        )
        self.connected = Gauge(
            "live_recorder_connected", "1 while the symbol's stream is followed", labels, registry=registry
        )
        self.written = Counter("live_bars_written", "Bars written to the store", labels, registry=registry)
        self.reconnects = Counter(
            "live_recorder_reconnects", "Streams dropped and caught up again", labels, registry=registry
        )
        self.write_errors = Counter(
            "live_recorder_write_errors", "Writes the store refused or failed", labels, registry=registry
        )
        self.spooled = Gauge(
            "live_recorder_spooled_bars",
            "Bars on the disk spool, waiting for the store to take them",
            labels,
            registry=registry,
        )
        self.bad_bars = Counter(
            "live_recorder_bad_bars", "Bars from the venue refused as malformed", labels, registry=registry
        )


class Recorder:
    """Records `config.symbols` from `exchange` (a ccxt.pro exchange) into `store`.

    `spool` holds the bars the store refuses (the CLI's is `$TRADING_DATA_DIR/spool`; without one, a
    temporary directory lasts as long as the process). `catalog` receives the heartbeats; without one
    (tests that have none) there are none.
    """

    def __init__(
        self,
        config: RecorderConfig,
        exchange: ccxt.Exchange,
        store: TimeSeriesStore,
        registry: CollectorRegistry | None = None,
        health: Health | None = None,
        *,
        spool: Spool | None = None,
        catalog: Catalog | None = None,
        instance: str | None = None,
    ) -> None:
        self.config = config
        self.exchange = exchange
        self.store = store
        self.spool = spool or Spool(Path(tempfile.mkdtemp(prefix="recorder-spool-")))
        self.catalog = catalog
        self.instance = instance or f"{socket.gethostname()}-{os.getpid()}"
        self.registry = registry or CollectorRegistry()
        self.health = health or Health("recorder", self.registry, stale_after_s=config.stale_after_s)
        self.health.readiness(self.not_ready)
        self.metrics = _Metrics(self.registry)
        self.interval_ms = int(exchange.parse_timeframe(config.timeframe) * 1000)
        self.feeds = {
            s: _Feed(s, naming.live_bars_table(config.venue, s, config.timeframe)) for s in config.symbols
        }

    def not_ready(self) -> list[str]:
        """Why the recorder is not ready: a symbol not connected, behind the venue, or its bars spooled."""
        reasons = []
        for feed in self.feeds.values():
            if not feed.connected:
                reasons.append(f"{feed.symbol}: not connected")
            elif not feed.caught_up:
                reasons.append(f"{feed.symbol}: catching up")
            if feed.spooled_bars:
                reasons.append(f"{feed.symbol}: store unavailable: {feed.spooled_bars} bars spooled")
        return reasons

    def detail(self) -> dict:
        """The heartbeat's detail: per symbol the last stored bar, the lag in bars, the bars spooled."""
        symbols = {
            feed.symbol: {
                "table": feed.table,
                "last_stored": None if feed.stored_ms is None else _iso(feed.stored_ms),
                "lag_bars": feed.lag_bars,
                "spooled_bars": feed.spooled_bars,
            }
            for feed in self.feeds.values()
        }
        return {"venue": self.config.venue, "symbols": symbols, "reasons": self.not_ready()}

    async def run(self, stop: asyncio.Event) -> None:
        """Record until `stop` is set; then close the exchange's connections (the spool stays as it is)."""
        try:
            feeds = (self._follow(feed, stop) for feed in self.feeds.values())
            await asyncio.gather(self._heartbeats(stop), *feeds)
        finally:
            await self.exchange.close()

    async def beat(self) -> None:
        """One heartbeat into the catalog; a failure is one warning line, and the recording goes on."""
        if self.catalog is None:
            return
        reasons = self.not_ready()
        status = "ready" if not reasons else "not ready"
        try:
            await asyncio.to_thread(
                self.catalog.heartbeat, "recorder", self.instance, status, json.dumps(self.detail())
            )
        except Exception as err:  # whatever the catalog raises, recording matters more than the beat
            log.warning("recorder: heartbeat not recorded: %s: %s", type(err).__name__, _line(err))

    async def _heartbeats(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.beat()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), HEARTBEAT_S)

    async def _follow(self, feed: _Feed, stop: asyncio.Event) -> None:
        low, high = self.config.backoff_s
        delay = low
        labels = (self.config.venue, feed.symbol)
        # What an earlier process spooled goes to the store before anything else (if the store takes it).
        await self._flush(feed)
        draining = asyncio.create_task(self._drain(feed, stop))
        try:
            while not stop.is_set():
                try:
                    await self._catch_up(feed)
                    feed.connected = True
                    self.metrics.connected.labels(*labels).set(1)
                    while not stop.is_set():
                        candles = await self._watch(feed, stop)
                        if candles is None:
                            return
                        await self._take(feed, candles)
                        delay = low
                except (ccxt.BaseError, VenueDataError, SpoolError, *STORE_ERRORS) as err:
                    feed.connected = feed.caught_up = False
                    feed.pending.clear()
                    feed.connections = None
                    self._forget_stream(feed)
                    self.metrics.connected.labels(*labels).set(0)
                    if isinstance(err, VenueDataError):
                        self.metrics.bad_bars.labels(*labels).inc()
                    elif isinstance(err, ccxt.BaseError | TimeoutError):
                        self.metrics.reconnects.labels(*labels).inc()
                    if isinstance(err, TimeoutError):
                        what = "stream stalled"
                    elif isinstance(err, SpoolError | ccxt.BaseError | VenueDataError):
                        what = f"{type(err).__name__}: {_line(err)}"
                    else:
                        # Only a cold start asks the store where to resume without anything to fall back on.
                        what = f"the store is away and nothing is recorded to resume from: {_line(err)}"
                    log.warning("recorder %s %s: %s; catching up again in %.1f s", *labels, what, delay)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), delay)
                    delay = min(delay * 2, high)
        finally:
            feed.spooled.set()  # the drain sees `stop` and returns
            await draining

    def _forget_stream(self, feed: _Feed) -> None:
        """Drop ccxt's cache of the symbol's candles. ccxt keeps the candles a stream brought across
        reconnects, and hands an update that came just before a drop, not yet taken, back with the first
        update of the next connection: a bar caught mid-way would then count as closed once that update is
        of a later bar, and be stored with its values of that moment (the soak stored such a bar after a
        dropped stream). A new connection's candles are the only ones to trust; what closed meanwhile comes
        over REST."""
        cached = getattr(self.exchange, "ohlcvs", None)
        if isinstance(cached, dict) and isinstance(cached.get(feed.symbol), dict):
            cached[feed.symbol].pop(self.config.timeframe, None)

    async def _drain(self, feed: _Feed, stop: asyncio.Event) -> None:
        """Write the spool to the store whenever bars are spooled, with backoff while the store refuses."""
        low, high = self.config.backoff_s
        delay = low
        while not stop.is_set():
            if not feed.spooled_bars:
                feed.spooled.clear()
                await _first(stop, feed.spooled)
                delay = low
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                return
            delay = low if await self._flush(feed) else min(delay * 2, high)

    async def _flush(self, feed: _Feed) -> bool:
        """Write every spooled bar of the feed to the store and drop them from the spool; False (logged)
        when the store refused them or the spool failed."""
        labels = (self.config.venue, feed.symbol)
        try:
            bars = self.spool.read(feed.table)
        except SpoolError as err:
            log.warning("recorder %s %s: %s", *labels, err)
            return False
        if not bars:
            return True
        self._report(feed)
        try:
            await asyncio.to_thread(self.store.write, feed.table, _arrow(bars), BARS_SCHEMA)
        except STORE_ERRORS as err:
            self.metrics.write_errors.labels(*labels).inc()
            log.warning(
                "recorder %s %s: the store refused the %d spooled bars: %s: %s",
                *labels,
                len(bars),
                type(err).__name__,
                _line(err),
            )
            return False
        newest = bars[-1][0]
        feed.stored_ms = max(newest, feed.stored_ms or newest)
        feed.last_ms = max(newest, feed.last_ms or newest)
        self.metrics.written.labels(*labels).inc(len(bars))
        try:
            self.spool.drop_through(feed.table, newest)
        except SpoolError as err:
            # The store has the bars: the next flush writes them again, which the store's dedup absorbs.
            log.warning("recorder %s %s: %s", *labels, err)
            return False
        finally:
            self._report(feed)
        log.info("recorder %s %s: %d spooled bars written to the store", *labels, len(bars))
        return True

    async def _watch(self, feed: _Feed, stop: asyncio.Event) -> list[list[float]] | None:
        """The stream's next update; None once `stop` is set; TimeoutError after `stall_s` of silence."""
        watch = asyncio.ensure_future(self.exchange.watch_ohlcv(feed.symbol, self.config.timeframe))
        stopped = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait(
            {watch, stopped}, timeout=self.config.stall_s, return_when="FIRST_COMPLETED"
        )
        if watch not in done:
            watch.cancel()
            stopped.cancel()
            await asyncio.gather(watch, stopped, return_exceptions=True)
            if stop.is_set():
                return None
            raise TimeoutError(f"no update for {self.config.stall_s:.0f} s")
        stopped.cancel()
        candles = watch.result()
        # ccxt reconnects by itself when a connection closes between two calls (no call waiting to be told):
        # a bar whose last update came on the old connection may have closed before the new one subscribed,
        # and the new one never sends its close; it would be taken as closed, with its values of the drop.
        clients = list(getattr(self.exchange, "clients", {}).values())
        if feed.connections is None:
            feed.connections = weakref.WeakSet(clients)
        elif any(client not in feed.connections for client in clients):
            raise StreamReconnected("the stream reconnected under ccxt; the bars since come over REST")
        return candles  # type: ignore[no-any-return]

    async def _take(self, feed: _Feed, candles: Sequence[Sequence[float]]) -> None:
        """Keep the stream's bars; write those a later bar has closed, filling any gap over REST first."""
        self.health.beat()
        for candle in candles:
            feed.pending[int(candle[0])] = list(candle)
        newest = max(feed.pending)
        feed.newest_ms = newest if feed.newest_ms is None else max(feed.newest_ms, newest)
        closed = sorted(ts for ts in feed.pending if ts < newest)
        chain = ([] if feed.last_ms is None else [feed.last_ms]) + closed + [newest]
        if any(later - earlier > self.interval_ms for earlier, later in pairwise(chain)):
            # A bar the stream did not bring (it closed while we subscribed, or an update was lost): fill
            # the gap over REST before writing past it, not only once a later bar closes.
            await self._catch_up(feed)
        bars = [feed.pending.pop(ts) for ts in closed]
        await self._write(feed, [b for b in bars if feed.last_ms is None or b[0] > feed.last_ms])
        feed.pending = {ts: c for ts, c in feed.pending.items() if feed.last_ms is None or ts > feed.last_ms}
        self._report(feed)

    async def _catch_up(self, feed: _Feed) -> None:
        """Write every bar closed at the venue after the last one stored, over REST."""
        feed.last_ms = await self._last_recorded(feed)
        now = int(await self.exchange.fetch_time())
        since = (
            now - self.config.history_bars * self.interval_ms if feed.last_ms is None else feed.last_ms + 1
        )
        while True:
            page = await self.exchange.fetch_ohlcv(
                feed.symbol, self.config.timeframe, since=since, limit=self.config.page_bars
            )
            closed = [c for c in page if int(c[0]) + self.interval_ms <= now and int(c[0]) >= since]
            await self._write(feed, closed)
            # Until the last bar closed by the venue's clock (a venue may cap its pages below page_bars).
            if not closed or int(closed[-1][0]) >= now - now % self.interval_ms - self.interval_ms:
                break
            since = int(closed[-1][0]) + 1
        feed.newest_ms = max(feed.newest_ms or 0, now - now % self.interval_ms)
        feed.caught_up = True
        self._report(feed)
        self.health.beat()

    async def _last_recorded(self, feed: _Feed) -> int | None:
        """The newest bar recorded: in memory, in the spool, or in the store (asked only while nothing is
        spooled, as the spool is newer than the store). A store that is away is no obstacle when either of
        the others knows; on a cold start with neither, its error is raised."""
        known = [t for t in (feed.last_ms, self.spool.last_ms(feed.table)) if t is not None]
        if not self.spool.count(feed.table):
            try:
                stored = await asyncio.to_thread(self.store.last_ts, feed.table)
            except STORE_ERRORS:
                if not known:
                    raise
            else:
                if stored is not None:
                    feed.stored_ms = _ms(stored)
                    known.append(feed.stored_ms)
        return max(known) if known else None

    async def _write(self, feed: _Feed, candles: Sequence[Sequence[float]]) -> None:
        """Write checked bars to the store, or spool them: when the store refuses them, and whenever bars are
        spooled already (they must reach the store first)."""
        if not candles:
            return
        rows = [self._checked(feed.symbol, c) for c in candles]
        newest = max(row[0] for row in rows)
        labels = (self.config.venue, feed.symbol)
        if not self.spool.count(feed.table):
            try:
                await asyncio.to_thread(self.store.write, feed.table, _arrow(rows), BARS_SCHEMA)
            except STORE_ERRORS as err:
                self.metrics.write_errors.labels(*labels).inc()
                log.warning(
                    "recorder %s %s: the store refused %d bars (%s: %s); spooling them, following the stream",
                    *labels,
                    len(rows),
                    type(err).__name__,
                    _line(err),
                )
            else:
                feed.stored_ms = feed.last_ms = max(newest, feed.last_ms or newest)
                self.metrics.written.labels(*labels).inc(len(rows))
                return
        self.spool.append(feed.table, rows)
        feed.last_ms = max(newest, feed.last_ms or newest)
        feed.spooled.set()
        self._report(feed)

    def _checked(self, symbol: str, candle: Sequence[float]) -> tuple[int, float, float, float, float, float]:
        """One bar as (ts ms, open, high, low, close, volume), or VenueDataError naming what is wrong."""
        if len(candle) != len(OHLCV_FIELDS):
            raise VenueDataError(f"{symbol}: a bar has {len(candle)} fields, expected {OHLCV_FIELDS}")
        values = []
        for name, value in zip(OHLCV_FIELDS, candle, strict=True):
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise VenueDataError(
                    f"{symbol}: bar {candle[0]!r} has {name} = {value!r}, not a finite number"
                )
            values.append(value)
        ts, o, h, lo, c, v = int(values[0]), *map(float, values[1:])
        if ts % self.interval_ms:
            raise VenueDataError(f"{symbol}: bar ts {ts} is not on the {self.config.timeframe} grid")
        if not (lo <= min(o, c) and max(o, c) <= h) or v < 0 or lo <= 0:
            raise VenueDataError(
                f"{symbol}: bar {ts} has open {o}, high {h}, low {lo}, close {c}, volume {v}: "
                "low <= open, close <= high, prices > 0 and volume >= 0 do not hold"
            )
        return ts, o, h, lo, c, v

    def _report(self, feed: _Feed) -> None:
        labels = (self.config.venue, feed.symbol)
        with contextlib.suppress(SpoolError):  # a damaged spool keeps its last count; the recorder says why
            feed.spooled_bars = self.spool.count(feed.table)
        self.metrics.spooled.labels(*labels).set(feed.spooled_bars)
        if feed.stored_ms is not None:
            self.metrics.last_bar.labels(*labels).set(feed.stored_ms / 1000)
        if feed.newest_ms is None:
            return
        if feed.stored_ms is not None:
            feed.lag_bars = max(0, (feed.newest_ms - feed.stored_ms) // self.interval_ms - 1)
            self.metrics.lag.labels(*labels).set(feed.lag_bars)
        if feed.last_ms is not None:
            # Caught up when every closed bar is recorded, stored or spooled: the stream is being followed.
            feed.caught_up = (feed.newest_ms - feed.last_ms) // self.interval_ms - 1 <= 0


def _arrow(rows: Sequence[Bar]) -> pa.Table:
    columns = list(zip(*rows, strict=True))
    return pa.table(
        {
            "ts": pa.array([datetime.fromtimestamp(t / 1000, UTC) for t in columns[0]], TS_TYPE),
            **{name: pa.array(columns[i], pa.float64()) for i, name in enumerate(OHLCV_FIELDS[1:], 1)},
        }
    )


async def _first(*events: asyncio.Event) -> None:
    """Wait until any of `events` is set."""
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


def _line(err: BaseException) -> str:
    """An error's message on one line (a store's or a catalog's may span several)."""
    return " ".join(str(err).split())


def _iso(ms: int) -> str:
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat()


def _ms(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
