"""A simulated trading day end to end on real components: the local venue, the recorder, the strategy runner
and the executor each as its own process (`trading-assets venue` / `trading-assets live ...`), Postgres as
the catalog and orders repository, QuestDB as the store, the real ccxt client between them.

A strategy promoted from a walkforward run trades one day of one-minute bars replayed at 1440x (a day in
about a minute) through the venue's own matching (`--broker venue`), while the venue rejects one order and
fills another partially. At the end: orders, fills and the position in Postgres equal the venue's; the
stored bars equal the venue's, with no gap; the signals equal the offline replay over the recorded bars,
bit for bit; every order's history is a legal path through the state machine.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from psycopg import sql
from research_setup import Research, build_research

from trading_assets import naming
from trading_assets.compute.indicators.registry import BAR_INPUTS
from trading_assets.compute.live_signals import replay_signals
from trading_assets.live.config import PromoteConfig
from trading_assets.live.service import load_signal_model, promote
from trading_assets.orders import OrderStatus, replay_history

SYMBOL = "SOL/USDT"
DATASET = "e2e_sol"
TABLE = naming.live_bars_table("binance", SYMBOL, "1m")
HISTORY, DAY = 300, 1_440
SPEED = 1_440.0
KEY, SECRET = "e2e-key-0123456789", "e2e-secret-0123456789abcdef"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def production(tmp_path_factory, pg_conninfo: str) -> Iterator[tuple[Research, dict[str, str]]]:  # type: ignore[no-untyped-def]
    """The research pipeline on Postgres (a schema of its own) and QuestDB, and the env the services share."""
    if not os.environ.get("QUESTDB_ADDR"):
        pytest.skip("QUESTDB_ADDR not set: no QuestDB server (scripts/services.sh up)")
    params = psycopg.conninfo.conninfo_to_dict(pg_conninfo)
    schema = f"e2e_{uuid.uuid4().hex[:12]}"
    env = {
        "TRADING_CATALOG": "postgres",
        "TRADING_CATALOG_SCHEMA": schema,
        "TRADING_TIMESERIES": "questdb",
        "PGHOST": str(params.get("host", "127.0.0.1")),
        "PGPORT": str(params.get("port", 5432)),
        "PGUSER": str(params.get("user", "postgres")),
        "PGDATABASE": str(params.get("dbname", "postgres")),
    }
    root = tmp_path_factory.mktemp("e2e")
    research = build_research(root, DATASET, **env)
    for table in (TABLE,):
        research.store.drop(table)
    yield research, env
    for table in (TABLE, DATASET, f"{DATASET}_1", f"{DATASET}_run1"):
        research.store.drop(table)
    with psycopg.connect(pg_conninfo, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


class Services:
    """The venue and the three services as processes, their output in files beside the test's data."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = {**os.environ, **env, "TRADING_DATA_DIR": str(root / "data")}
        self.env.update(TRADING_VENUE_API_KEY=KEY, TRADING_VENUE_SECRET=SECRET, PYTHONUNBUFFERED="1")
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: list = []

    def start(self, name: str, *args: str) -> None:
        log = (self.root / f"{name}.log").open("wb")
        self.logs.append(log)
        command = [sys.executable, "-m", "trading_assets.cli", *args]
        self.processes[name] = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")[-3000:]

    def alive(self) -> None:
        for name, process in self.processes.items():
            assert process.poll() is None, f"{name} exited with {process.returncode}:\n{self.log(name)}"

    def stop(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for name, process in self.processes.items():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                raise AssertionError(f"{name} did not stop on SIGTERM:\n{self.log(name)}") from None
            finally:
                for log in self.logs:
                    log.close()


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _wait(what, timeout_s: float, services: Services, message: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not what():
        services.alive()
        if time.monotonic() > deadline:
            raise AssertionError(f"{message() if callable(message) else message} within {timeout_s:.0f} s")
        time.sleep(0.2)


def _ready(port: int) -> bool:
    try:
        return _get(f"http://127.0.0.1:{port}/readyz")["ready"]
    except OSError:
        return False


def test_a_promoted_strategy_trades_a_simulated_day_and_everything_equals_the_venue(
    production, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    research, env = production
    catalog, store = research.catalog, research.store
    bars = research.later.slice(0, HISTORY + DAY + 5)
    pq.write_table(bars, tmp_path / "bars.parquet")
    promote(
        catalog,
        # A day in a wall minute: the orders-per-minute limit (a wall-clock limit) must allow a day's orders.
        PromoteConfig(
            name="e2e",
            run=research.run,
            symbol=SYMBOL,
            account="venue",
            amount="0.5",
            max_position="1",
            max_orders_per_minute=1000,
        ),
    )
    catalog.set_strategy_desired_state("e2e", "running")
    start = bars.column("ts")[HISTORY].as_py()
    end = start + timedelta(minutes=DAY)

    services = Services(tmp_path, env)
    port = {name: _free_port() for name in ("venue", "recorder", "runner", "executor")}
    venue = f"http://127.0.0.1:{port['venue']}"
    services.start(
        "venue",
        *("venue", "--bars", f"{SYMBOL}={tmp_path / 'bars.parquet'}", "--port", str(port["venue"])),
        *("--speed", "0", "--start", start.isoformat(), "--balance", "USDT=1000000", "--balance", "SOL=0"),
    )
    try:
        _wait(lambda: _ready_venue(venue), 30, services, "the venue did not answer")
        local = ("--local-venue", venue)
        history = ("--history-bars", str(HISTORY), "--stall", "3")
        services.start(
            "recorder",
            "live",
            "recorder",
            *local,
            "--symbol",
            SYMBOL,
            *history,
            "--port",
            str(port["recorder"]),
        )
        services.start("runner", "live", "runner", "--poll", "0.1", "--port", str(port["runner"]))
        # At 1440x the recorder stores several bars per poll: a signal a few bars behind is still current.
        trade = ("--account", "venue", "--broker", "venue", "--poll", "0.1", "--max-signal-lag-bars", "10")
        services.start(
            "executor",
            "live",
            "executor",
            *local,
            "--symbol",
            SYMBOL,
            *trade,
            "--port",
            str(port["executor"]),
        )
        for name in ("recorder", "runner", "executor"):
            _wait(lambda n=name: _ready(port[n]), 60, services, f"{name} was not ready")

        # The day runs at 1440x; half-way, the venue rejects the next order and fills the one after in part.
        _post(f"{venue}/_venue/clock", {"speed": SPEED})
        _wait(
            lambda: _venue_now(venue) >= start + timedelta(hours=12),
            120,
            services,
            "half the day did not pass",
        )
        _post(f"{venue}/_venue/faults", {"fault": "reject_next_order", "reason": "insufficient_funds"})
        _wait(lambda: not _pending(venue, "reject_next_order"), 120, services, "no order came to be rejected")
        _post(f"{venue}/_venue/faults", {"fault": "partial_fill_next_order", "share": 0.4, "rest": "later"})
        _wait(
            lambda: not _pending(venue, "partial_fill_next_order"), 120, services, "no order filled in part"
        )
        _wait(lambda: _venue_now(venue) >= end, 120, services, "the day did not end")
        _post(f"{venue}/_venue/clock", {"speed": 0})
        # Settled: every bar of the day stored and signalled, no order left working.
        _wait(
            lambda: _unsettled(catalog, store, _venue_now(venue)) is None,
            60,
            services,
            lambda: f"the services did not settle: {_unsettled(catalog, store, _venue_now(venue))}",
        )
        services.alive()
        at_venue = _get(f"{venue}/_venue/state")
    finally:
        services.stop()

    # Orders: every one that reached the venue is there with the same status and filled quantity.
    orders = {o.client_order_id: o for o in catalog.list_orders("e2e")}
    venue_orders = {o["clientOrderId"]: o for o in at_venue["orders"]}
    assert venue_orders and set(venue_orders) <= set(orders)
    status = {
        "FILLED": "FILLED",
        "CANCELED": "CANCELED",
        "EXPIRED": "EXPIRED",
        "PARTIALLY_FILLED": "PARTIALLY_FILLED",
    }
    for cid, theirs in venue_orders.items():
        ours = orders[cid]
        assert (ours.status, ours.filled_quantity) == (
            status[theirs["status"]],
            Decimal(theirs["executedQty"]),
        ), cid
    rejected = [o for o in orders.values() if o.status == "REJECTED"]
    assert rejected and all(o.client_order_id not in venue_orders for o in rejected)
    assert any("insufficient" in (o.reason or "").lower() for o in rejected)
    # Fills: the venue's trades, one for one; one order filled in two parts at least.
    fills = catalog.list_fills(venue="binance")
    ours_fills = sorted((f.trade_id, f.quantity, f.price, f.fee) for f in fills)
    theirs_fills = sorted(
        (str(t["id"]), Decimal(t["qty"]), Decimal(t["price"]), Decimal(t["commission"]))
        for t in at_venue["trades"]
    )
    assert ours_fills == theirs_fills and len(fills) > 5
    per_order = {}
    for fill in fills:
        per_order[fill.client_order_id] = per_order.get(fill.client_order_id, 0) + 1
    assert max(per_order.values()) >= 2
    # The position is what the venue holds (it started with no SOL).
    position = catalog.get_position("binance", "venue", SYMBOL)
    held = Decimal(at_venue["balances"]["SOL"]["free"]) + Decimal(at_venue["balances"]["SOL"]["locked"])
    assert position is not None and position.quantity == held
    # Every order's history is a legal path through the state machine.
    for cid, order in orders.items():
        _replays(catalog, cid, order)
    # Bars: the venue's, every closed one of the day and the history before it, no gap, no duplicate.
    stored = store.read(TABLE)
    closed = int(((bars.column("ts").cast(pa.int64()).to_numpy() // 1000) + 60_000 <= at_venue["now"]).sum())
    assert stored.num_rows == closed >= HISTORY + DAY
    assert stored.equals(bars.slice(0, closed).cast(stored.schema))
    # Signals: the offline replay of the same model over the recorded bars, bit for bit.
    loaded = load_signal_model(catalog, catalog.get_strategy("e2e"))
    ts = stored.column("ts").cast(pa.int64()).to_numpy()
    prediction, target = replay_signals(
        loaded.model, loaded.booster, ts, {k: stored.column(k).to_numpy() for k in BAR_INPUTS}
    )
    signals = catalog.list_signals("e2e")
    at = np.searchsorted(ts, [int(s.bar_ts.timestamp() * 1_000_000) for s in signals])
    assert len(signals) >= DAY - 5
    assert (
        np.array([s.prediction for s in signals]).view(np.int64).tolist()
        == prediction[at].view(np.int64).tolist()
    )
    assert np.array_equal([s.target for s in signals], target[at])


def _replays(catalog, cid: str, order) -> None:  # type: ignore[no-untyped-def]
    state = replay_history(cid, order.quantity, catalog.list_order_events(cid))
    assert state.status == OrderStatus(order.status), (cid, state.status, order.status)


def _pending(url: str, fault: str) -> bool:
    return bool(_get(f"{url}/_venue/state")["faults"][fault])


def _ready_venue(url: str) -> bool:
    try:
        return "now" in _get(f"{url}/_venue/state")
    except OSError:
        return False


def _venue_now(url: str):  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime.fromtimestamp(_get(f"{url}/_venue/state")["now"] / 1000, UTC)


def _unsettled(catalog, store, now) -> str | None:  # type: ignore[no-untyped-def]
    """What is not done yet at venue time `now`: a closed bar not stored or not signalled, or an order still
    working; None when all is done."""
    last_closed = now.replace(second=0, microsecond=0) - timedelta(minutes=1)
    last = store.last_ts(TABLE)
    if last is None or last < last_closed:
        return f"bars stored up to {last}, the venue closed {last_closed}"
    signals = catalog.list_signals("e2e")
    if not signals or signals[-1].bar_ts < last_closed:
        return f"signals up to {signals[-1].bar_ts if signals else None}, the venue closed {last_closed}"
    working = [
        f"{o.client_order_id} {o.status}" for o in catalog.list_orders("e2e") if o.status not in _ENDED
    ]
    return f"orders still working: {working}" if working else None


_ENDED = ("FILLED", "CANCELED", "REJECTED", "DENIED", "EXPIRED")
