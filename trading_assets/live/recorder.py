"""The market-data recorder: closed bars of a venue's symbols into the time-series store, through ccxt.

For each symbol, in a loop of its own:
1. catch up over REST: from the bar after the last one stored (`store.last_ts`; on a cold start,
   `history_bars` before the venue's clock) up to the venue's clock, page by page, keeping only the bars
   that have closed by the venue's own time (`fetch_time`, so an accelerated venue clock works too);
2. follow the WebSocket stream (`watch_ohlcv`): a bar is closed once a later bar has begun, and then it is
   written. A stream that goes quiet for `stall_s` counts as dropped;
3. on a dropped stream, a venue error or a failed write: back off (0.5 s doubling to 30 s), then go
   back to 1, so every gap is filled from the venue over REST, with no process restart.
Only closed bars are written, each one checked first (finite prices, low <= open, close <= high, volume
>= 0, on the timeframe's grid); the store's writes are idempotent (dedup on ts), so bars written again
after a reconnect are harmless. The table of each symbol is `naming.live_bars_table`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import ccxt
import pyarrow as pa
from prometheus_client import CollectorRegistry, Counter, Gauge

from resources.timeseries import TS_TYPE, StoreError, TimeSeriesStore
from trading_assets import naming
from trading_assets.bars.service import BARS_SCHEMA
from trading_assets.live.health import Health

log = logging.getLogger(__name__)

OHLCV_FIELDS = ("ts", "open", "high", "low", "close", "volume")


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

    def __post_init__(self) -> None:
        if not self.symbols:
            raise ValueError("symbols: give at least one symbol")
        for symbol in self.symbols:
            naming.live_bars_table(self.venue, symbol, self.timeframe)
        if self.history_bars < 1 or self.page_bars < 2:
            raise ValueError("history_bars must be >= 1 and page_bars >= 2")


@dataclass
class _Feed:
    """Where one symbol stands: the last bar stored and the bars seen on the stream since."""

    symbol: str
    table: str
    last_ms: int | None = None
    newest_ms: int | None = None
    connected: bool = False
    caught_up: bool = False
    pending: dict[int, list[float]] = field(default_factory=dict)


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
        self.bad_bars = Counter(
            "live_recorder_bad_bars", "Bars from the venue refused as malformed", labels, registry=registry
        )


class Recorder:
    """Records `config.symbols` from `exchange` (a ccxt.pro exchange) into `store`."""

    def __init__(
        self,
        config: RecorderConfig,
        exchange: ccxt.Exchange,
        store: TimeSeriesStore,
        registry: CollectorRegistry | None = None,
        health: Health | None = None,
    ) -> None:
        self.config = config
        self.exchange = exchange
        self.store = store
        self.registry = registry or CollectorRegistry()
        self.health = health or Health("recorder", self.registry)
        self.health.readiness(self.not_ready)
        self.metrics = _Metrics(self.registry)
        self.interval_ms = int(exchange.parse_timeframe(config.timeframe) * 1000)
        self.feeds = {
            s: _Feed(s, naming.live_bars_table(config.venue, s, config.timeframe)) for s in config.symbols
        }

    def not_ready(self) -> list[str]:
        """Why the recorder is not ready: a symbol not connected, or behind the venue."""
        reasons = []
        for feed in self.feeds.values():
            if not feed.connected:
                reasons.append(f"{feed.symbol}: not connected")
            elif not feed.caught_up:
                reasons.append(f"{feed.symbol}: catching up")
        return reasons

    async def run(self, stop: asyncio.Event) -> None:
        """Record until `stop` is set; then close the exchange's connections."""
        try:
            await asyncio.gather(*(self._follow(feed, stop) for feed in self.feeds.values()))
        finally:
            await self.exchange.close()

    async def _follow(self, feed: _Feed, stop: asyncio.Event) -> None:
        low, high = self.config.backoff_s
        delay = low
        labels = (self.config.venue, feed.symbol)
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
            except (ccxt.BaseError, VenueDataError, StoreError, TimeoutError) as err:
                feed.connected = feed.caught_up = False
                feed.pending.clear()
                self.metrics.connected.labels(*labels).set(0)
                if isinstance(err, StoreError):
                    self.metrics.write_errors.labels(*labels).inc()
                elif isinstance(err, VenueDataError):
                    self.metrics.bad_bars.labels(*labels).inc()
                else:
                    self.metrics.reconnects.labels(*labels).inc()
                what = "stream stalled" if isinstance(err, TimeoutError) else f"{type(err).__name__}: {err}"
                log.warning("recorder %s %s: %s; catching up again in %.1f s", *labels, what, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, high)

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
        return watch.result()  # type: ignore[no-any-return]

    async def _take(self, feed: _Feed, candles: Sequence[Sequence[float]]) -> None:
        """Keep the stream's bars; write those a later bar has closed, filling any gap over REST first."""
        self.health.beat()
        for candle in candles:
            feed.pending[int(candle[0])] = list(candle)
        newest = max(feed.pending)
        feed.newest_ms = newest if feed.newest_ms is None else max(feed.newest_ms, newest)
        closed = sorted(ts for ts in feed.pending if ts < newest)
        chain = ([] if feed.last_ms is None else [feed.last_ms]) + closed
        if any(later - earlier > self.interval_ms for earlier, later in pairwise(chain)):
            # A bar the stream did not bring (it closed while we connected, or an update was lost): fill the
            # gap over REST before writing past it.
            await self._catch_up(feed)
        bars = [feed.pending.pop(ts) for ts in closed]
        await self._write(feed, [b for b in bars if feed.last_ms is None or b[0] > feed.last_ms])
        feed.pending = {ts: c for ts, c in feed.pending.items() if feed.last_ms is None or ts > feed.last_ms}
        self._report(feed)

    async def _catch_up(self, feed: _Feed) -> None:
        """Write every bar closed at the venue after the last one stored, over REST."""
        stored = await asyncio.to_thread(self.store.last_ts, feed.table)
        feed.last_ms = None if stored is None else _ms(stored)
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

    async def _write(self, feed: _Feed, candles: Sequence[Sequence[float]]) -> None:
        if not candles:
            return
        rows = [self._checked(feed.symbol, c) for c in candles]
        columns = list(zip(*rows, strict=True))
        data = pa.table(
            {
                "ts": pa.array([datetime.fromtimestamp(t / 1000, UTC) for t in columns[0]], TS_TYPE),
                **{name: pa.array(columns[i], pa.float64()) for i, name in enumerate(OHLCV_FIELDS[1:], 1)},
            }
        )
        await asyncio.to_thread(self.store.write, feed.table, data, BARS_SCHEMA)
        feed.last_ms = max(int(columns[0][-1]), feed.last_ms or 0)
        self.metrics.written.labels(self.config.venue, feed.symbol).inc(len(rows))

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
        if feed.last_ms is not None:
            self.metrics.last_bar.labels(*labels).set(feed.last_ms / 1000)
        if feed.last_ms is not None and feed.newest_ms is not None:
            behind = max(0, (feed.newest_ms - feed.last_ms) // self.interval_ms - 1)
            self.metrics.lag.labels(*labels).set(behind)
            feed.caught_up = behind == 0


def _ms(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
