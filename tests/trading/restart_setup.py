"""The process harness of the restart and failure tests: the recorder, the strategy runner and the executor
as processes (`trading-assets live ...`) on Postgres (a database per test) and QuestDB, against a local
venue whose bars close only when the test steps its clock, so that every bar, order and fill happens when
the test says.

`build_production` builds a research pipeline that test modules share; a `Floor` is one test's world on
it: a copy of its Postgres database, a symbol of its own (so its bars table in QuestDB is its own), a local
venue on a free port (in this process's thread: it can be stopped and served again on the same port with its
state, a venue that went away and came back), and the services, started, killed with SIGKILL, stopped with
SIGTERM and asked /readyz. The offline replay of the strategy's signals over the bars tells a test which bar
to start on (one whose target is long, then held), and is the oracle its signals are checked against.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import psycopg
import pyarrow as pa
import pytest
from psycopg import sql
from research_setup import Research, build_research, open_research

from resources.postgres_catalog import PostgresCatalog
from trading_assets import naming
from trading_assets.compute.indicators.registry import BAR_INPUTS
from trading_assets.compute.live_signals import replay_signals
from trading_assets.live.config import PromoteConfig
from trading_assets.live.service import StrategyModel, load_signal_model, promote
from trading_assets.live.venue import LocalVenue, VenueSettings
from trading_assets.orders import OrderStatus, replay_history

KEY, SECRET = "restart-key-0123456789", "restart-secret-0123456789abcdef"
MINUTE = timedelta(minutes=1)
ENDED = ("FILLED", "CANCELED", "REJECTED", "DENIED", "EXPIRED")
# The recorder's cold start fetches every bar from the first (the replay's oracle starts there too); the
# indicators need this many before a signal means anything.
FIRST_START = 300


class Production:
    """A research pipeline in a Postgres database of its own (the template each test's database is copied
    from: the venue's trade ids count from 1 in every test, and fills are unique per venue and trade id) and
    QuestDB; the env the services share; the offline replay's target of every bar of `research.later`
    (recorded from its first bar on), by the model of strategy "oracle" (`loaded`)."""

    def __init__(
        self, research: Research, env: dict[str, str], conninfo: str, dataset: str, loaded: StrategyModel
    ) -> None:
        self.research = research
        self.env = env
        self.conninfo = conninfo
        self.template = env["PGDATABASE"]
        self.dataset = dataset
        self.loaded = loaded
        bars = research.later
        ts = bars.column("ts").cast(pa.int64()).to_numpy()
        _, self.targets = replay_signals(
            self.loaded.model, self.loaded.booster, ts, {k: bars.column(k).to_numpy() for k in BAR_INPUTS}
        )

    def long_run(self, bars: int, after: int = FIRST_START) -> int:
        """The first bar index from `after` whose target is long (1) for `bars` bars in a row, the bar before
        it not long: a strategy started there buys on its first signal and then holds."""
        long = self.targets == 1.0
        for k in range(after, long.size - bars):
            if long[k : k + bars].all() and not long[k - 1]:
                return k
        raise AssertionError(f"no {bars} long bars in a row after bar {after}")

    def database(self, name: str) -> PostgresCatalog:
        """A copy of the research's database as `name`, and its catalog."""
        return _copy(self.conninfo, self.env, name)

    def drop(self, name: str) -> None:
        _drop_database(self.conninfo, name)


def _copy(conninfo: str, env: dict[str, str], name: str) -> PostgresCatalog:
    """A copy of the template database `env` names, as `name`, and its catalog."""
    with psycopg.connect(conninfo, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(env["PGDATABASE"])
            )
        )
    return PostgresCatalog(
        host=env["PGHOST"],
        port=int(env["PGPORT"]),
        user=env["PGUSER"],
        dbname=name,
        schema_name=env["TRADING_CATALOG_SCHEMA"],
    )


def _drop_database(conninfo: str, name: str) -> None:
    with psycopg.connect(conninfo, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def need_questdb() -> None:
    if not os.environ.get("QUESTDB_ADDR"):
        pytest.skip("QUESTDB_ADDR not set: no QuestDB server (scripts/services.sh up)")


def build_production(root: Path, conninfo: str, tag: str) -> Production:
    """The research pipeline in `root`, in a new database of the server at `conninfo` and in QuestDB (names
    made of `tag` and a unique part); what `open_production` needs to open it is written in `root`."""
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    unique = uuid.uuid4().hex[:8]
    template, dataset = f"{tag}_{unique}", f"{tag}{unique}"
    with psycopg.connect(conninfo, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(template)))
    env = {
        "TRADING_CATALOG": "postgres",
        "TRADING_CATALOG_SCHEMA": "live",
        "TRADING_TIMESERIES": "questdb",
        "PGHOST": str(params.get("host", "127.0.0.1")),
        "PGPORT": str(params.get("port", 5432)),
        "PGUSER": str(params.get("user", "postgres")),
        "PGDATABASE": template,
    }
    try:
        research = build_research(root, dataset, **env)
        try:
            oracle = promote(
                research.catalog,
                PromoteConfig(name="oracle", run=research.run, symbol="ORACLE/USDT", account="oracle"),
            )
            loaded = load_signal_model(research.catalog, oracle)
        finally:
            research.catalog.close()  # a template database takes no connection while it is copied
    except BaseException:
        _drop_database(conninfo, template)
        raise
    (root / "production.json").write_text(json.dumps({"dataset": dataset, "env": env}))
    return Production(research, env, conninfo, dataset, loaded)


def open_production(root: Path, conninfo: str) -> Production:
    """What `build_production` made in `root` (in another process), opened. Its oracle is read from a copy
    of the template database: other processes may be copying the template, which takes no connection."""
    made = json.loads((root / "production.json").read_text())
    dataset, env = made["dataset"], made["env"]
    scratch = f"{env['PGDATABASE']}_{uuid.uuid4().hex[:6]}"
    catalog = _copy(conninfo, env, scratch)
    try:
        oracle = catalog.get_strategy("oracle")
        assert oracle is not None, f"no strategy 'oracle' in {env['PGDATABASE']}"
        loaded = load_signal_model(catalog, oracle)
    finally:
        catalog.close()
        _drop_database(conninfo, scratch)
    return Production(open_research(root, dataset, **env), env, conninfo, dataset, loaded)


def drop_production(production: Production) -> None:
    """Drop its tables in QuestDB and its template database."""
    dataset = production.dataset
    for table in (dataset, f"{dataset}_1", f"{dataset}_run1"):
        production.research.store.drop(table)
    _drop_database(production.conninfo, production.template)


def production(tmp_path_factory: pytest.TempPathFactory, pg_conninfo: str, tag: str) -> Iterator[Production]:
    """The body of a module's own `production` fixture (a generator: `yield from`), on its own server."""
    need_questdb()
    made = build_production(tmp_path_factory.mktemp(tag), pg_conninfo, tag)
    try:
        yield made
    finally:
        drop_production(made)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Floor:
    """One test's world: strategy `name` (running) on a symbol of its own, a venue replaying the bars with its
    clock in bar `start` (bars 0 .. start-1 closed) and moved on by `step`, and the services as processes."""

    def __init__(
        self, production: Production, root: Path, name: str, start: int, **promote_args: str
    ) -> None:
        self.production = production
        self.store = production.research.store
        self.root = root
        unique = uuid.uuid4().hex[:6]
        self.database = f"{production.template}_{unique}"
        self.catalog = production.database(self.database)
        self.name, self.account = f"{name}_{unique}", f"acct_{unique}"
        self.symbol = f"R{unique.upper()}/USDT"
        self.base = self.symbol.split("/")[0]
        self.table = naming.live_bars_table("binance", self.symbol, "1m")
        self.bars = production.research.later
        self.start_index = start
        promote(
            self.catalog,
            PromoteConfig(
                name=self.name,
                run=production.research.run,
                symbol=self.symbol,
                account=self.account,
                amount="0.5",
                max_orders_per_minute=1000,
                **promote_args,
            ),
        )
        self.catalog.set_strategy_desired_state(self.name, "running")
        # A second into bar `start`, crawling at a tenth of real time: no bar closes unless stepped (the next
        # one would in ten wall minutes), yet the bar in progress changes, so the stream keeps sending it. A
        # stream client learns that a bar closed from the next message after it (ccxt keeps no message that
        # arrives between two calls of watch_ohlcv), which a stopped clock would never send.
        start_ms = int(self.bars.column("ts")[start].as_py().timestamp() * 1000) + 1_000
        settings = VenueSettings(
            api_key=KEY,
            api_secret=SECRET,
            start_ms=start_ms,
            speed=0.1,
            balances={"USDT": "1000000", self.base: "0"},
        )
        self.venue = LocalVenue({self.symbol: self.bars}, settings).start()
        self.url = self.venue.url
        self.env = {**os.environ, **production.env, "TRADING_DATA_DIR": str(root / "data")}
        self.env["PGDATABASE"] = self.database
        self.env.update(TRADING_VENUE_API_KEY=KEY, TRADING_VENUE_SECRET=SECRET, PYTHONUNBUFFERED="1")
        self.ports = {s: free_port() for s in ("recorder", "runner", "executor")}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.starts: dict[str, int] = {}

    # -- services -------------------------------------------------------------------------------------------

    def command(self, service: str, *extra: str) -> list[str]:
        port = ("--port", str(self.ports[service]))
        local = ("--local-venue", self.url, "--symbol", self.symbol)
        args = {
            # Every bar from the first: the stored bars, and so the replay, always start at bar 0.
            "recorder": [*local, "--history-bars", str(self.bars.num_rows), "--stall", "60"],
            "runner": ["--poll", "0.1"],
            "executor": [
                *local,
                *("--account", self.account, "--broker", "venue", "--poll", "0.1"),
                *("--max-signal-lag-bars", "3"),
            ],
        }[service]
        return [sys.executable, "-m", "trading_assets.cli", "live", service, *args, *port, *extra]

    def start(self, service: str, *extra: str) -> None:
        assert service not in self.processes, f"{service} is already running"
        self.starts[service] = self.starts.get(service, 0) + 1
        log = (self.root / f"{service}.{self.starts[service]}.log").open("wb")
        self.processes[service] = subprocess.Popen(
            self.command(service, *extra), env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()

    def kill(self, service: str) -> None:
        """SIGKILL: the process ends where it is, nothing of it runs after."""
        process = self.processes.pop(service)
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def terminate(self, service: str, within_s: float = 20.0) -> int:
        """SIGTERM, as Kubernetes evicts a pod; the exit status, which must come within `within_s`."""
        process = self.processes.pop(service)
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(within_s)
        except subprocess.TimeoutExpired:
            process.kill()
            raise AssertionError(
                f"{service} did not exit within {within_s:.0f} s of SIGTERM:\n{self.log(service)}"
            ) from None

    def log(self, service: str) -> str:
        return (self.root / f"{service}.{self.starts[service]}.log").read_text(errors="replace")[-4000:]

    def alive(self) -> None:
        for service, process in self.processes.items():
            assert process.poll() is None, f"{service} exited with {process.returncode}:\n{self.log(service)}"

    def readyz(self, service: str) -> dict | None:
        """The service's /readyz answer (ready or not), None while nothing answers."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ports[service]}/readyz", timeout=5) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as err:
            return json.loads(err.read())
        except OSError:
            return None

    def metric(self, service: str, name: str) -> float | None:
        """The value of an unlabelled metric on the service's /metrics, None if it has none."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports[service]}/metrics", timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(f"{name} "):
                    return float(line.split()[1])
        return None

    def ready(self, service: str) -> bool:
        answer = self.readyz(service)
        return answer is not None and answer["ready"]

    def wait(
        self, what: Callable[[], object], message: str | Callable[[], str], timeout_s: float = 60
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while not what():
            self.alive()
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{message() if callable(message) else message} within {timeout_s:.0f} s"
                )
            time.sleep(0.05)

    def wait_ready(self, *services: str, timeout_s: float = 60) -> None:
        for service in services:
            self.wait(
                lambda s=service: self.ready(s),
                lambda s=service: f"{s} was not ready ({self.readyz(s)}):\n{self.log(s)}",
                timeout_s,
            )

    def up(self, *services: str) -> None:
        streams = self.state()["streams"]
        for service in services:
            self.start(service)
        self.wait_ready(*services)
        if "recorder" in services:
            # The recorder is ready once caught up, a moment before its stream subscribes; a bar that closes
            # in between comes over REST only when the next one arrives.
            self.wait(lambda: self.state()["streams"] > streams, "the recorder did not open its stream")
            time.sleep(0.3)

    def close(self) -> None:
        for process in self.processes.values():
            process.kill()
            process.wait(10)
        self.processes.clear()
        self.venue.stop()
        self.catalog.close()
        self.production.drop(self.database)
        self.store.drop(self.table)

    # -- the venue ------------------------------------------------------------------------------------------

    def control(self, method: str, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def state(self) -> dict:
        return self.control("GET", "/_venue/state")

    def fault(self, fault: str, **arguments: object) -> None:
        self.control("POST", "/_venue/faults", {"fault": fault, **arguments})

    def clear_faults(self) -> None:
        self.control("DELETE", "/_venue/faults")

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.state()["now"] / 1000, UTC)

    def last_closed(self) -> datetime:
        """The open of the venue's last closed bar."""
        return self.now().replace(second=0, microsecond=0) - MINUTE

    def step(self, bars: int = 1) -> None:
        """Move the venue's clock `bars` minutes on: that many more bars close (and orders match on them)."""
        self.control("POST", "/_venue/clock", {"advance_ms": bars * 60_000})

    def venue_orders(self) -> dict[str, dict]:
        return {o["clientOrderId"]: o for o in self.state()["orders"]}

    def held(self) -> Decimal:
        balance = self.state()["balances"][self.base]
        return Decimal(balance["free"]) + Decimal(balance["locked"])

    # -- the repository -------------------------------------------------------------------------------------

    def orders(self) -> list:
        return self.catalog.list_orders(self.name)

    def position(self) -> Decimal:
        stored = self.catalog.get_position("binance", self.account, self.symbol)
        return Decimal(0) if stored is None else stored.quantity

    def reconciliations(self) -> list:
        return self.catalog.list_reconciliations("binance", self.account)

    def unsettled(self, signalled: bool = True) -> str | None:
        """What is not done yet: a closed bar not stored (or, with `signalled`, not signalled), or an order
        still working; None when all is done."""
        last_closed = self.last_closed()
        last = self.store.last_ts(self.table) if self.table in self.store.list_tables() else None
        if last is None or last < last_closed:
            return f"bars stored up to {last}, the venue closed {last_closed}"
        signals = self.catalog.list_signals(self.name)
        if signalled and (not signals or signals[-1].bar_ts < last_closed):
            return f"signals up to {signals[-1].bar_ts if signals else None}, the venue closed {last_closed}"
        working = [f"{o.client_order_id} {o.status}" for o in self.orders() if o.status not in ENDED]
        return f"orders still working: {working}" if working else None

    def settle(self, signalled: bool = True, timeout_s: float = 60) -> None:
        self.wait(
            lambda: self.unsettled(signalled) is None,
            lambda: f"the services did not settle: {self.unsettled(signalled)}",
            timeout_s,
        )

    # -- what must hold -------------------------------------------------------------------------------------

    def assert_bars_equal_the_venue(self) -> None:
        """The stored bars are the venue's closed bars from the first, none missing, none twice."""
        stored = self.store.read(self.table)
        closed = self.state()["symbols"][self.symbol.replace("/", "")]["closed"]
        assert stored.num_rows == closed, (stored.num_rows, closed)
        assert stored.equals(self.bars.slice(0, closed).cast(stored.schema))

    def assert_signals_equal_the_replay(self) -> None:
        """One signal per bar from the strategy's first to the last stored, each the offline replay's."""
        stored = self.store.read(self.table)
        ts = stored.column("ts").cast(pa.int64()).to_numpy()
        loaded = self.production.loaded
        prediction, target = replay_signals(
            loaded.model, loaded.booster, ts, {k: stored.column(k).to_numpy() for k in BAR_INPUTS}
        )
        signals = self.catalog.list_signals(self.name)
        at = np.searchsorted(ts, [int(s.bar_ts.timestamp() * 1_000_000) for s in signals])
        # No bar missed: the signalled bars are every stored bar from the first signalled one.
        assert at.tolist() == list(range(self.start_index, ts.size)), (at.tolist(), ts.size)
        assert (
            np.array([s.prediction for s in signals]).view(np.int64).tolist()
            == prediction[at].view(np.int64).tolist()
        )
        assert np.array_equal([s.target for s in signals], target[at])

    def assert_orders_equal_the_venue(self) -> None:
        """Every order that reached the venue is there as stored, its fills are the venue's trades one for
        one, the position is what the venue holds, and each order's history is a legal path."""
        state = self.state()
        orders = {o.client_order_id: o for o in self.orders()}
        theirs = {o["clientOrderId"]: o for o in state["orders"]}
        assert set(theirs) <= set(orders)
        for cid, order in theirs.items():
            ours = orders[cid]
            assert (ours.status, ours.filled_quantity) == (order["status"], Decimal(order["executedQty"])), (
                cid
            )
        fills = sorted(
            (f.trade_id, f.quantity, f.price, f.fee)
            for f in self.catalog.list_fills(venue="binance")
            if f.symbol == self.symbol
        )
        trades = sorted(
            (str(t["id"]), Decimal(t["qty"]), Decimal(t["price"]), Decimal(t["commission"]))
            for t in state["trades"]
        )
        assert fills == trades
        balance = state["balances"][self.base]
        assert self.position() == Decimal(balance["free"]) + Decimal(balance["locked"])
        for cid, order in orders.items():
            replays(self.catalog, cid, order)


def replays(catalog, cid: str, order) -> None:  # type: ignore[no-untyped-def]
    """The order's events are a legal path through the state machine, ending where the order is."""
    state = replay_history(cid, order.quantity, catalog.list_order_events(cid))
    assert state.status == OrderStatus(order.status), (cid, state.status, order.status)
