"""The recorder rides out a QuestDB crash: with the real QuestDB behind a TCP proxy that is cut (every
connection closed, new ones refused), the recorder keeps following the local venue's stream, spools the
closed bars to disk, says so on /readyz and in its metrics, and once QuestDB is back writes them in order:
the stored bars equal the venue's, with no gap and no duplicate. The venue keeps only a few bars on REST,
fewer than the outage lasts, so catching up over REST afterwards could not have filled the gap.

A recorder *process* killed with SIGKILL while spooling, and started again while QuestDB is still away,
replays its spool once QuestDB is back. Heartbeats reach the catalog, and a catalog that is away costs a
warning, never the recording.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pyarrow as pa
import pytest
from prometheus_client import CollectorRegistry
from proxy_setup import TcpProxy
from venue_setup import MINUTE, T0_MS, client_config, eth_bars, running_venue, until

from resources.postgres_catalog import PostgresCatalog
from resources.questdb_store import QuestDBStore
from trading_assets import naming
from trading_assets.live.recorder import Recorder, RecorderConfig
from trading_assets.live.spool import Spool

HISTORY = 5  # closed bars the venue keeps on REST
# A QuestDB that refuses retries for about 10 s before the store gives up: waits here are longer.
until = functools.partial(until, timeout_s=30.0)
# The venue's clock runs at wall speed besides being stepped a minute at a time: the bar in progress keeps
# changing, so the stream keeps sending (ccxt's watch_ohlcv returns the last update only with a later one).
SPEED = 1.0
OUTAGE = 3 * HISTORY  # bars closed while QuestDB is away


@pytest.fixture
def questdb() -> Iterator[tuple[str, int]]:
    if not os.environ.get("QUESTDB_ADDR"):
        pytest.skip("QUESTDB_ADDR not set: no QuestDB server (scripts/services.sh up)")
    host, _, port = os.environ["QUESTDB_ADDR"].rpartition(":")
    return host, int(port)  # type: ignore[return-value]


@pytest.fixture
def symbol(questdb: tuple[str, int]) -> Iterator[str]:
    """A symbol of this test alone, so its table is too (tests run in parallel on one QuestDB)."""
    name = f"SP{uuid.uuid4().hex[:8].upper()}/USDT"
    direct = QuestDBStore(host=questdb[0], http_port=questdb[1])
    yield name
    direct.drop(naming.live_bars_table("binance", name, "1m"))


def _closed(source: pa.Table, now_ms: int) -> pa.Table:
    open_ms = source.column("ts").cast(pa.int64()).to_numpy() // 1000
    return source.slice(0, int(((open_ms + MINUTE) <= now_ms).sum()))


def _last_closed(now_ms: int) -> int:
    """Open time of the last bar closed at `now_ms`."""
    return now_ms - now_ms % MINUTE - MINUTE


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def _stored(store: QuestDBStore, table: str) -> pa.Table | None:
    return store.read(table) if table in store.list_tables() else None


def test_bars_closed_while_questdb_is_cut_are_spooled_and_stored_in_order_when_it_is_back(  # type: ignore[no-untyped-def]
    questdb, symbol, tmp_path
) -> None:
    source = eth_bars(60)
    table = naming.live_bars_table("binance", symbol, "1m")
    direct = QuestDBStore(host=questdb[0], http_port=questdb[1])
    labels = {"venue": "binance", "symbol": symbol}
    start = T0_MS + 4 * MINUTE + 30_000
    with (
        running_venue({symbol: source}, start_ms=start, history_bars=HISTORY, speed=SPEED) as venue,
        TcpProxy(*questdb) as proxy,
    ):
        store = QuestDBStore(host=proxy.host, http_port=proxy.port, retry_timeout_s=0.2, request_timeout_s=5)
        config = RecorderConfig("binance", (symbol,), history_bars=100, stall_s=30, backoff_s=(0.05, 0.4))
        registry = CollectorRegistry()
        spool = Spool(tmp_path / "spool")
        recorder = Recorder(config, client_config(venue).exchange("pro"), store, registry, spool=spool)
        feed = recorder.feeds[symbol]

        async def scenario() -> None:
            stop = asyncio.Event()
            task = asyncio.create_task(recorder.run(stop))
            try:
                await until(lambda: recorder.not_ready() == [], why="ready")
                assert _stored(direct, table) == _closed(source, venue.now_ms())  # bars 0..3

                proxy.cut()
                for n in range(1, OUTAGE + 1):
                    venue.advance(timedelta(minutes=1))
                    await until(
                        lambda: feed.last_ms == _last_closed(venue.now_ms()), why=f"bar {n} of the outage"
                    )
                # The clock runs too: count by the recorder's own last bar (bar 4 was the first spooled).
                spooled = (feed.last_ms - T0_MS) // MINUTE - 3
                assert spooled >= OUTAGE and spool.count(table) == spooled
                # The stream was followed all along: connected, caught up, never dropped.
                assert feed.connected and registry.get_sample_value(
                    "live_recorder_reconnects_total", labels
                ) in (None, 0.0)
                assert recorder.not_ready() == [f"{symbol}: store unavailable: {spooled} bars spooled"]
                assert registry.get_sample_value("live_recorder_spooled_bars", labels) == spooled
                assert registry.get_sample_value("live_recorder_write_errors_total", labels) >= 2
                assert registry.get_sample_value("live_bar_lag_bars", labels) == spooled
                assert _stored(direct, table).num_rows == 4  # nothing reached QuestDB meanwhile

                proxy.restore()
                await until(lambda: recorder.not_ready() == [], why="the spool written back")
                await until(
                    lambda: _stored(direct, table) == _closed(source, venue.now_ms()),
                    why="stored as the venue's",
                )
                assert _stored(direct, table).num_rows >= 4 + OUTAGE
                assert spool.count(table) == 0 and not spool.path(table).exists()
                assert registry.get_sample_value("live_recorder_spooled_bars", labels) == 0
                # Writing goes straight to QuestDB again.
                venue.advance(timedelta(minutes=2))
                await until(
                    lambda: _stored(direct, table) == _closed(source, venue.now_ms()), why="after the outage"
                )
                assert spool.count(table) == 0
            finally:
                stop.set()
                await task

        asyncio.run(scenario())


def test_the_venue_serves_only_its_recent_history_over_rest(symbol) -> None:  # type: ignore[no-untyped-def]
    """What makes the spool necessary above: bars older than HISTORY are gone from the venue's REST."""
    source = eth_bars(60)
    with running_venue({symbol: source}, start_ms=T0_MS + 30 * MINUTE, history_bars=HISTORY) as venue:

        async def fetch() -> list[list[float]]:
            exchange = client_config(venue).exchange("pro")
            try:
                return await exchange.fetch_ohlcv(symbol, "1m", since=T0_MS, limit=100)
            finally:
                await exchange.close()

        candles = asyncio.run(fetch())
    assert [int(c[0]) for c in candles] == [T0_MS + i * MINUTE for i in range(30 - HISTORY, 31)]


def test_heartbeats_reach_the_catalog_and_a_catalog_away_does_not_stop_recording(  # type: ignore[no-untyped-def]
    questdb, symbol, tmp_path, pg_settings, pg_schema_name
) -> None:
    source = eth_bars(30)
    store = QuestDBStore(host=questdb[0], http_port=questdb[1])
    with (
        running_venue({symbol: source}, start_ms=T0_MS + 3 * MINUTE + 30_000, speed=SPEED) as venue,
        TcpProxy(pg_settings["host"], pg_settings["port"]) as postgres,
    ):
        catalog = PostgresCatalog(
            **{**pg_settings, "host": postgres.host, "port": postgres.port},
            schema_name=pg_schema_name,
            pool_min_size=0,
            pool_max_size=1,
            pool_timeout_s=2,
            retry_attempts=1,
        )
        config = RecorderConfig("binance", (symbol,), history_bars=100, stall_s=30, backoff_s=(0.05, 0.4))
        recorder = Recorder(
            config,
            client_config(venue).exchange("pro"),
            store,
            spool=Spool(tmp_path / "spool"),
            catalog=catalog,
            instance="spool-test",
        )
        table = naming.live_bars_table("binance", symbol, "1m")

        async def scenario() -> None:
            stop = asyncio.Event()
            task = asyncio.create_task(recorder.run(stop))
            try:
                await until(lambda: recorder.not_ready() == [], why="ready")
                await recorder.beat()
                (beat,) = catalog.list_heartbeats("recorder")
                detail = json.loads(beat.detail)
                assert (beat.instance, beat.status) == ("spool-test", "ready")
                assert detail["symbols"][symbol] == {
                    "table": table,
                    "last_stored": _iso(_last_closed(venue.now_ms())),
                    "lag_bars": 0,
                    "spooled_bars": 0,
                }
                assert detail["reasons"] == []

                postgres.cut()
                await recorder.beat()  # the catalog is away: a warning, and nothing raised
                venue.advance(timedelta(minutes=2))
                await until(
                    lambda: _stored(store, table) == _closed(source, venue.now_ms()), why="recording goes on"
                )
                assert not task.done()
                postgres.restore()

                async def beats_again() -> bool:
                    # A beat begun while the catalog was cut may land late, with what it saw then.
                    await recorder.beat()
                    (again,) = catalog.list_heartbeats("recorder")
                    last_stored = json.loads(again.detail)["symbols"][symbol]["last_stored"]
                    return bool(last_stored == _iso(_last_closed(venue.now_ms())))

                await until(beats_again, timeout_s=15, why="a beat after the catalog is back")
            finally:
                stop.set()
                await task
                catalog.close()

        asyncio.run(scenario())


# ---- the recorder as a process, killed with SIGKILL while spooling ------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> dict:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as err:
        with err:
            return json.loads(err.read())


class _RecorderProcess:
    def __init__(self, command: list[str], env: dict[str, str], log: Path, port: int) -> None:
        self.log = log
        self.port = port
        with log.open("ab") as out:
            self.process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)

    def readyz(self) -> dict | None:
        try:
            return _get(f"http://127.0.0.1:{self.port}/readyz")
        except OSError:
            return None

    def wait_for(self, what: Callable[[dict], bool], timeout_s: float, why: str) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            assert self.process.poll() is None, f"the recorder exited:\n{self.log.read_text()[-3000:]}"
            body = self.readyz()
            if body is not None and what(body):
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"{why} not within {timeout_s} s; /readyz {body}:\n{self.tail()}")
            time.sleep(0.1)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def test_a_recorder_killed_while_spooling_replays_its_spool_after_a_restart(  # type: ignore[no-untyped-def]
    questdb, symbol, tmp_path, pg_settings, pg_schema_name
) -> None:
    source = eth_bars(60)
    table = naming.live_bars_table("binance", symbol, "1m")
    direct = QuestDBStore(host=questdb[0], http_port=questdb[1])
    spool_dir = tmp_path / "spool"
    port = _free_port()
    with (
        running_venue(
            {symbol: source}, start_ms=T0_MS + 4 * MINUTE + 30_000, history_bars=HISTORY, speed=SPEED
        ) as venue,
        TcpProxy(*questdb) as proxy,
    ):
        env = {
            **os.environ,
            "TRADING_DATA_DIR": str(tmp_path / "data"),
            "TRADING_TIMESERIES": "questdb",
            "QUESTDB_ADDR": proxy.addr,
            "TRADING_CATALOG": "postgres",
            "TRADING_CATALOG_SCHEMA": pg_schema_name,
            "PGHOST": pg_settings["host"],
            "PGPORT": str(pg_settings["port"]),
            "PGUSER": pg_settings["user"],
            "PGDATABASE": pg_settings["dbname"],
            "PYTHONUNBUFFERED": "1",
        }
        command = [
            *(sys.executable, "-m", "trading_assets.cli", "live", "recorder", "--local-venue", venue.url),
            *("--symbol", symbol, "--history-bars", "100", "--stall", "30", "--port", str(port)),
            *("--spool-dir", str(spool_dir)),
        ]
        log = tmp_path / "recorder.log"

        def all_spooled(body: dict) -> bool:
            """Every bar closed since QuestDB was cut (bar 4 the first) is spooled, says /readyz."""
            n = (_last_closed(venue.now_ms()) - T0_MS) // MINUTE - 3
            return body["reasons"] == [f"{symbol}: store unavailable: {n} bars spooled"]

        first = _RecorderProcess(command, env, log, port)
        try:
            first.wait_for(lambda body: body["ready"], 60, "ready")
            assert _stored(direct, table) == _closed(source, venue.now_ms())
            proxy.cut()
            for n in range(1, 9):
                venue.advance(timedelta(minutes=1))
                first.wait_for(all_spooled, 60, f"bar {n} of the outage spooled")
            first.process.send_signal(signal.SIGKILL)
            first.process.wait(10)
        finally:
            if first.process.poll() is None:
                first.process.kill()
        assert Spool(spool_dir).count(table) >= 8
        # Down for fewer bars than the venue keeps on REST: the restart catches them up into the spool.
        venue.advance(timedelta(minutes=3))

        second = _RecorderProcess(command, env, log, port)
        instance = f"{socket.gethostname()}-{second.process.pid}"
        try:
            second.wait_for(all_spooled, 90, "the spool found and the bars since caught up behind it")
            _until_beat(pg_settings, pg_schema_name, instance, "not ready", lambda n: n >= 11, symbol)
            proxy.restore()
            second.wait_for(lambda body: body["ready"], 90, "the spool written back")
            deadline = time.monotonic() + 30
            while _stored(direct, table) != _closed(source, venue.now_ms()):
                assert time.monotonic() < deadline, "the stored bars are not the venue's"
                time.sleep(0.2)
            assert _stored(direct, table).num_rows >= 4 + 11
            assert not Spool(spool_dir).path(table).exists()
            _until_beat(pg_settings, pg_schema_name, instance, "ready", lambda n: n == 0, symbol)
            second.process.send_signal(signal.SIGTERM)
            assert second.process.wait(30) == 0, second.tail()
        finally:
            if second.process.poll() is None:
                second.process.kill()


def _until_beat(
    pg_settings: dict, schema: str, instance: str, status: str, spooled: Callable[[int], bool], symbol: str
) -> None:
    """Wait (a heartbeat interval and some) for the instance's beat to say `status` with `spooled` bars."""
    params = {k: v for k, v in pg_settings.items() if v is not None}
    deadline = time.monotonic() + 15
    row = None
    while time.monotonic() < deadline:
        with psycopg.connect(**params, options=f"-c search_path={schema}") as conn:
            row = conn.execute(
                "SELECT status, detail FROM service_heartbeats WHERE service = 'recorder' AND instance = %s",
                [instance],
            ).fetchone()
        if row is not None:
            detail = row[1] if isinstance(row[1], dict) else json.loads(row[1])
            if row[0] == status and spooled(detail["symbols"][symbol]["spooled_bars"]):
                return
        time.sleep(0.5)
    raise AssertionError(f"heartbeat of {instance}: {row}, expected {status}")
