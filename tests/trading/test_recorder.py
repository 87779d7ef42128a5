"""The recorder against the local venue through the real ccxt.pro client: a cold start backfills over
REST, the stream's closed bars follow, a dropped stream or a burst of 5xx is caught up with no restart,
and the store ends holding exactly the venue's closed bars: no gap, no duplicate, no bar still open."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pyarrow as pa
import pytest
from prometheus_client import CollectorRegistry
from venue_setup import MINUTE, T0_MS, client_config, eth_bars, running_venue, until

from resources.duckdb_store import DuckDBStore
from resources.timeseries import TimeSeriesStore
from trading_assets import naming
from trading_assets.live.health import serving
from trading_assets.live.recorder import Recorder, RecorderConfig, StreamReconnected, VenueDataError

BARS = 40
TABLE = naming.live_bars_table("binance", "ETH/USDT", "1m")


def _config(**overrides: object) -> RecorderConfig:
    base: dict = {"venue": "binance", "symbols": ("ETH/USDT",), "history_bars": 100, "stall_s": 5.0}
    return RecorderConfig(**{**base, "backoff_s": (0.05, 0.4), **overrides})


@pytest.fixture(params=["duckdb", "questdb"])
def store(request, tmp_path) -> Iterator[TimeSeriesStore]:  # type: ignore[no-untyped-def]
    if request.param == "duckdb":
        yield DuckDBStore(path=str(tmp_path / "ts.duckdb"))
        return
    if not os.environ.get("QUESTDB_ADDR"):
        pytest.skip("QUESTDB_ADDR not set: no QuestDB server (scripts/services.sh up)")
    from resources.questdb_store import QuestDBStore

    questdb = QuestDBStore(addr=os.environ["QUESTDB_ADDR"])
    questdb.drop(TABLE)
    yield questdb
    questdb.drop(TABLE)


def _closed(source: pa.Table, now_ms: int) -> pa.Table:
    """The venue's bars that have closed by `now_ms`, as the store should hold them."""
    open_ms = source.column("ts").cast(pa.int64()).to_numpy() // 1000
    return source.slice(0, int(((open_ms + MINUTE) <= now_ms).sum()))


async def _stored_equals(store: TimeSeriesStore, expected: pa.Table) -> bool:
    stored = await asyncio.to_thread(store.read, TABLE) if TABLE in store.list_tables() else None
    return stored is not None and stored.equals(expected)


def test_cold_start_backfills_then_follows_the_stream_closed_bars_only(store) -> None:  # type: ignore[no-untyped-def]
    source = eth_bars(BARS)
    with running_venue({"ETH/USDT": source}, start_ms=T0_MS + 10 * MINUTE + 30_000) as venue:

        async def scenario() -> None:
            stop = asyncio.Event()
            recorder = Recorder(_config(), client_config(venue).exchange("pro"), store)
            task = asyncio.create_task(recorder.run(stop))
            try:
                # Ten bars have closed (the eleventh is half-way): the backfill stores exactly them.
                await until(lambda: _stored_equals(store, _closed(source, venue.now_ms())))
                assert store.read(TABLE).num_rows == 10
                await until(lambda: recorder.not_ready() == [])
                # Each minute on the venue's clock closes one more bar, which the stream brings.
                for _ in range(5):
                    venue.advance(timedelta(minutes=1))
                    await until(lambda: _stored_equals(store, _closed(source, venue.now_ms())))
                assert store.read(TABLE).num_rows == 15
            finally:
                stop.set()
                await task

        asyncio.run(scenario())


def test_a_dropped_stream_and_a_burst_of_5xx_are_caught_up_without_a_restart(tmp_path) -> None:  # type: ignore[no-untyped-def]
    source = eth_bars(BARS)
    store = DuckDBStore(path=str(tmp_path / "ts.duckdb"))
    with running_venue({"ETH/USDT": source}, start_ms=T0_MS + 5 * MINUTE) as venue:

        async def scenario() -> None:
            stop = asyncio.Event()
            registry = CollectorRegistry()
            recorder = Recorder(_config(), client_config(venue).exchange("pro"), store, registry)
            task = asyncio.create_task(recorder.run(stop))
            try:
                await until(lambda: recorder.not_ready() == [])
                # The stream drops, and the venue answers 503 to the next requests while three bars close.
                venue.fail_next_requests(3)
                venue.drop_streams()
                venue.advance(timedelta(minutes=3))
                await until(lambda: _stored_equals(store, _closed(source, venue.now_ms())))
                await until(lambda: recorder.not_ready() == [])
                reconnects = registry.get_sample_value(
                    "live_recorder_reconnects_total", {"venue": "binance", "symbol": "ETH/USDT"}
                )
                assert reconnects is not None and reconnects >= 1
                # Bars after the fault come by the stream again.
                venue.advance(timedelta(minutes=2))
                await until(lambda: _stored_equals(store, _closed(source, venue.now_ms())))
                assert store.read(TABLE).num_rows == 10
            finally:
                stop.set()
                await task

        asyncio.run(scenario())


def test_a_restart_resumes_after_the_last_stored_bar(tmp_path) -> None:  # type: ignore[no-untyped-def]
    source = eth_bars(BARS)
    store = DuckDBStore(path=str(tmp_path / "ts.duckdb"))
    with running_venue({"ETH/USDT": source}, start_ms=T0_MS + 6 * MINUTE) as venue:

        async def record_until_caught_up() -> None:
            stop = asyncio.Event()
            recorder = Recorder(_config(), client_config(venue).exchange("pro"), store)
            task = asyncio.create_task(recorder.run(stop))
            await until(lambda: _stored_equals(store, _closed(source, venue.now_ms())))
            stop.set()
            await task

        asyncio.run(record_until_caught_up())
        assert store.read(TABLE).num_rows == 6
        venue.advance(timedelta(minutes=7))  # the recorder is down while seven bars close
        asyncio.run(record_until_caught_up())
        assert store.read(TABLE).equals(_closed(source, venue.now_ms()))
        assert store.read(TABLE).num_rows == 13


def test_health_endpoints_tell_ready_and_lag(tmp_path) -> None:  # type: ignore[no-untyped-def]
    source = eth_bars(BARS)
    store = DuckDBStore(path=str(tmp_path / "ts.duckdb"))
    with running_venue({"ETH/USDT": source}, start_ms=T0_MS + 4 * MINUTE) as venue:

        async def scenario() -> None:
            stop = asyncio.Event()
            registry = CollectorRegistry()
            recorder = Recorder(_config(), client_config(venue).exchange("pro"), store, registry)
            async with serving(recorder.health, "127.0.0.1", 0) as port, httpx.AsyncClient() as http:
                base = f"http://127.0.0.1:{port}"
                not_yet = await http.get(f"{base}/readyz")
                assert not_yet.status_code == 503 and "ETH/USDT: not connected" in not_yet.json()["reasons"]
                task = asyncio.create_task(recorder.run(stop))
                try:
                    await until(lambda: recorder.not_ready() == [])
                    ready = await http.get(f"{base}/readyz")
                    assert ready.status_code == 200 and ready.json() == {
                        "service": "recorder",
                        "ready": True,
                        "reasons": [],
                    }
                    assert (await http.get(f"{base}/healthz")).status_code == 200
                    metrics = (await http.get(f"{base}/metrics")).text
                    assert 'live_bar_lag_bars{symbol="ETH/USDT",venue="binance"} 0.0' in metrics
                    labels = {"venue": "binance", "symbol": "ETH/USDT"}
                    last_open_s = (T0_MS + 3 * MINUTE) / 1000
                    assert registry.get_sample_value("live_bar_last_ts_seconds", labels) == last_open_s
                    assert registry.get_sample_value("live_bars_written_total", labels) == 4
                finally:
                    stop.set()
                    await task

        asyncio.run(scenario())


def test_a_malformed_bar_from_the_venue_is_refused_naming_the_field() -> None:
    recorder = Recorder.__new__(Recorder)
    recorder.config = _config()
    recorder.interval_ms = MINUTE
    good = [T0_MS, 100.0, 101.0, 99.0, 100.5, 3.0]
    assert recorder._checked("ETH/USDT", good) == (T0_MS, 100.0, 101.0, 99.0, 100.5, 3.0)
    cases = [
        ([T0_MS, float("nan"), 101.0, 99.0, 100.5, 3.0], "open = nan"),
        ([T0_MS, 100.0, 101.0, 99.0, None, 3.0], "close = None"),
        ([T0_MS + 1, 100.0, 101.0, 99.0, 100.5, 3.0], "not on the 1m grid"),
        ([T0_MS, 100.0, 99.5, 99.0, 100.5, 3.0], "high 99.5"),
        ([T0_MS, 100.0, 101.0, 99.0, 100.5, -1.0], "volume -1.0"),
        ([T0_MS, 100.0, 101.0, 99.0, 100.5], "5 fields"),
    ]
    for candle, message in cases:
        with pytest.raises(VenueDataError, match=message.replace(".", r"\.")):
            recorder._checked("ETH/USDT", candle)


def test_a_bar_the_stream_skipped_is_filled_over_rest_before_writing_past_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    source = eth_bars(BARS)
    store = DuckDBStore(path=str(tmp_path / "ts.duckdb"))
    with running_venue({"ETH/USDT": source}, start_ms=T0_MS + 8 * MINUTE) as venue:

        async def scenario() -> None:
            recorder = Recorder(_config(history_bars=3), client_config(venue).exchange("pro"), store)
            feed = recorder.feeds["ETH/USDT"]
            await recorder._catch_up(feed)  # bars 5, 6, 7 (the last three closed)
            venue.advance(timedelta(minutes=4))  # bars 8 .. 11 close
            rows = {int(t.timestamp() * 1000): i for i, t in enumerate(source.column("ts").to_pylist())}

            def candle(minute: int) -> list[float]:
                i = rows[T0_MS + minute * MINUTE]
                return [T0_MS + minute * MINUTE, *(source.column(k)[i].as_py() for k in OHLCV)]

            # The stream brings 8, then 10 and 11 (the update of bar 9 was lost), 12 in progress.
            await recorder._take(feed, [candle(8), candle(10), candle(11), candle(12)])
            await recorder.exchange.close()

        asyncio.run(scenario())
        assert store.read(TABLE).equals(_closed(source, venue.now_ms()).slice(5))


OHLCV = ("open", "high", "low", "close", "volume")


def test_a_stream_ccxt_reconnects_by_itself_never_stores_a_bar_with_its_values_of_the_drop(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The stream drops while nothing waits on it, so ccxt reconnects on the next call without a word; the
    bar in progress at the drop closes before the new connection subscribes, which then never sends its
    close. The update of that bar taken in before the drop must not be stored as the bar (the soak found
    such bars): the recorder notices the new connection and takes the bars since over REST."""
    source = eth_bars(BARS)
    store = DuckDBStore(path=str(tmp_path / "ts.duckdb"))
    with running_venue({"ETH/USDT": source}, start_ms=T0_MS + 5 * MINUTE + 10_000) as venue:

        async def scenario() -> None:
            stop = asyncio.Event()
            exchange = client_config(venue).exchange("pro")
            recorder = Recorder(_config(stall_s=1.0), exchange, store)
            feed = recorder.feeds["ETH/USDT"]
            reconnected = 0

            async def take_next() -> None:
                # One turn of the recorder's loop, its drop path included (what `_follow` does).
                nonlocal reconnected
                try:
                    await recorder._take(feed, await recorder._watch(feed, stop))
                except StreamReconnected:
                    reconnected += 1
                    feed.pending.clear()
                    feed.connections = None
                    recorder._forget_stream(feed)
                    await recorder._catch_up(feed)

            try:
                await recorder._catch_up(feed)
                await take_next()
                # Half-way through bar 5 the stream tells its values; nothing takes them yet.
                venue.advance(timedelta(seconds=30))
                await asyncio.sleep(0.5)
                venue.drop_streams()
                await until(lambda: not exchange.clients)  # ccxt saw the close; no call was waiting
                venue.advance(timedelta(seconds=40))  # bar 5 closes, bar 6 begins
                await take_next()  # the new connection's first update: bar 6
                venue.advance(timedelta(minutes=2))  # bars 6 and 7 close
                for _ in range(20):
                    if await _stored_equals(store, _closed(source, venue.now_ms())):
                        break
                    # ccxt hands what came while nobody waited with the next message: the bar in progress
                    # moves a second so that one comes.
                    venue.advance(timedelta(seconds=1))
                    with contextlib.suppress(TimeoutError):
                        await take_next()
                assert await _stored_equals(store, _closed(source, venue.now_ms()))
                assert reconnected == 1
            finally:
                await exchange.close()

        asyncio.run(scenario())
