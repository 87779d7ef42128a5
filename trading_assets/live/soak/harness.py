"""The soak: days of one-minute bars replayed through the local venue at an accelerated clock, with the
recorder, the strategy runner and the executor running under the supervisor (as `trading-assets live up`
runs them), on a Postgres and a QuestDB of the soak's own, while a seeded schedule of faults
(`schedule.py`) hits the venue, the services and the servers. Nobody steps in: services are restarted by
the supervisor, servers come back on the schedule, and everything else is up to the services.

At the end it checks, and prints:
- no client order id twice at the venue, and every venue order is one of the repository's;
- the repository's orders have the venue's status and filled quantity, each history a legal path;
- the fills are the venue's executions, one for one;
- the position equals the venue's holding and the sum of the fills;
- the stored bars are the venue's, every closed one, no gap, no duplicate;
- the signals are the offline replay over the stored bars, bit for bit, one per bar, none missed;
- after each fault, the stored bars and the signals were back within `lag_bars` of the venue within
  `recover_bars` of the fault's end;
- the supervisor restarted exactly the services the schedule killed (a service that exits by itself is a
  finding).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import psutil
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq

from resources.local_servers import PrivatePostgres, PrivateQuestDB, free_port
from trading_assets import naming
from trading_assets.compute.indicators.registry import BAR_INPUTS
from trading_assets.compute.live_signals import replay_signals
from trading_assets.live.config import PromoteConfig
from trading_assets.live.service import load_signal_model, promote
from trading_assets.live.soak.research import Research, build_research
from trading_assets.live.soak.schedule import SERVICES, Fault, schedule
from trading_assets.live.venue.faults import REJECTIONS
from trading_assets.orders import TERMINAL, OrderError, OrderStatus, replay_history

SYMBOL = "SOL/USDT"
VENUE = "binance"
ACCOUNT = "soak"
STRATEGY = "soak"
DATASET = "soak_sol"
SCHEMA = "soak"
TABLE = naming.live_bars_table(VENUE, SYMBOL, "1m")
MINUTE_MS = 60_000


@dataclass(frozen=True)
class SoakConfig:
    root: Path
    days: float = 7.0
    seed: int = 7
    # Simulated seconds per wall second: 1440 replays a day in a minute.
    speed: float = 1_440.0
    history_bars: int = 300
    # After a fault has ended, the stored bars and the signals must be back within `lag_s` wall seconds of
    # the venue's last closed bar (`lag_bars` at the replay's speed: the services poll every 0.1 s, and a
    # 2-core machine running the soak beside other work is seconds late now and then) within `recover_s`
    # wall seconds (a restart takes wall time, whatever the clock's speed): `recover_bars`. The heavy
    # faults come `spacing_s` apart or more.
    lag_s: float = 1.0
    recover_s: float = 30.0
    spacing_s: float = 20.0
    # "both": each service killed with SIGKILL and with SIGTERM each round of heavy faults; "one": with one.
    kills: str = "both"

    @property
    def lag_bars(self) -> int:
        return max(2, math.ceil(self.lag_s * self.speed / 60))

    @property
    def recover_bars(self) -> int:
        return math.ceil(self.recover_s * self.speed / 60)

    @property
    def spacing_bars(self) -> int:
        return math.ceil(self.spacing_s * self.speed / 60)

    # Wall seconds the services get to settle after the replay's last bar.
    settle_s: float = 120.0
    keep: bool = False


@dataclass
class FaultRecord:
    fault: Fault
    applied_at: float = 0.0  # wall, monotonic
    # The fault is over: a server back up, a killed service ready again under a new process.
    ended_bar: int | None = None
    ended_at: float = 0.0
    killed_pid: int | None = None
    restarting: threading.Thread | None = None
    max_bars_lag: int = 0
    max_signal_lag: int = 0
    recovered_bar: int | None = None
    note: str = ""

    recovered_at: float = 0.0
    # A heavy fault not yet recovered from when this one came: its recovery is that one's, not its own.
    during: str = ""

    @property
    def recovered_s(self) -> float | None:
        """Wall seconds from the fault's end to the lag's recovery."""
        return None if self.recovered_bar is None else self.recovered_at - self.ended_at

    @property
    def recovered_after(self) -> int | None:
        if self.recovered_bar is None or self.ended_bar is None:
            return None
        return self.recovered_bar - self.ended_bar


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Report:
    config: SoakConfig
    faults: list[FaultRecord]
    checks: list[Check] = field(default_factory=list)
    figures: dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def text(self) -> str:
        c = self.config
        lines = [
            f"soak: {c.days:g} day(s) of 1m bars at {c.speed:g}x, seed {c.seed}, {len(self.faults)} faults, "
            f"{self.wall_s:.0f} s wall; a fault's lag must clear within {c.recover_bars} bars "
            f"({c.recover_s:g} s)",
            "",
            f"{'bar':>6}  {'sim time':<11} {'fault':<44} {'max lag (bars/signals)':>22}  recovered after",
        ]
        for r in self.faults:
            bar = r.fault.bar
            when = f"d{bar // 1440 + 1} {bar % 1440 // 60:02d}:{bar % 60:02d}"
            recovered = (
                "never" if r.recovered_s is None else f"{r.recovered_after} bars ({r.recovered_s:.1f} s)"
            )
            lags = f"{r.max_bars_lag}/{r.max_signal_lag}"
            lines.append(
                f"{bar:>6}  {when:<11} {r.fault.describe()[:44]:<44} {lags:>22}  {recovered}"
                + (f"  ({'; '.join(x for x in (r.note, r.during) if x)})" if r.note or r.during else "")
            )
        lines += ["", "figures:"]
        lines += [f"  {k}: {v}" for k, v in self.figures.items()]
        lines += ["", "invariants:"]
        lines += [f"  {'ok  ' if ch.ok else 'FAIL'} {ch.name}: {ch.detail}" for ch in self.checks]
        lines.append("")
        lines.append("soak: all invariants hold" if self.ok else "soak: FAILED")
        return "\n".join(lines)


class SoakError(RuntimeError):
    """The soak could not run (a server or service did not start); not a failed invariant."""


def _request(url: str, body: dict | None = None, timeout: float = 10.0) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method="GET" if body is None else "POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def _ready(port: int) -> bool:
    try:
        return bool(_request(f"http://127.0.0.1:{port}/readyz", timeout=2)["ready"])
    except (OSError, ValueError, KeyError):
        return False


class Soak:
    def __init__(self, config: SoakConfig, out: Callable[[str], None] = print) -> None:
        self.config = config
        self.out = out
        self.root = config.root
        self.faults = schedule(config.seed, config.days, config.spacing_bars, config.kills)
        self.total = int(config.days * 1440)
        self.pg = PrivatePostgres(self.root / "pg")
        self.qdb = PrivateQuestDB(self.root / "qdb")
        self.ports = {name: free_port() for name in ("venue", *SERVICES)}
        self.venue_url = f"http://127.0.0.1:{self.ports['venue']}"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.start_ms = 0
        self._conn: psycopg.Connection | None = None

    # -- set-up ---------------------------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        return {
            "TRADING_CATALOG": "postgres",
            "TRADING_CATALOG_SCHEMA": SCHEMA,
            "TRADING_TIMESERIES": "questdb",
            **self.pg.env,
            **self.qdb.env,
        }

    def _research(self) -> Research:
        self.out("soak: building the research pipeline (dataset, indicators, walkforward) ...")
        later = self.config.history_bars + self.total + 10
        return build_research(self.root / "research", DATASET, later_bars=later, **self._env())

    def _start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.root / f"{name}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.processes[name] = process
        return process

    def _service_commands(self) -> dict[str, list[str]]:
        exe = [sys.executable, "-m", "trading_assets.cli"]
        local = ["--local-venue", self.venue_url]
        port = {n: ["--port", str(self.ports[n])] for n in SERVICES}
        return {
            "recorder": [
                *exe, "live", "recorder", *local, "--symbol", SYMBOL,
                "--history-bars", str(self.config.history_bars), "--stall", "3", *port["recorder"],
            ],
            "runner": [*exe, "live", "runner", "--poll", "0.1", *port["runner"]],
            "executor": [
                *exe, "live", "executor", *local, "--symbol", SYMBOL, "--account", ACCOUNT,
                "--broker", "venue", "--poll", "0.1", "--max-signal-lag-bars", "10", *port["executor"],
            ],
        }  # fmt: skip

    def _log(self, name: str, lines: int = 20) -> str:
        try:
            return "\n".join((self.root / f"{name}.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _wait(self, what: Callable[[], bool], timeout_s: float, message: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not what():
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise SoakError(f"{name} exited with {process.returncode}:\n{self._log(name)}")
            if time.monotonic() > deadline:
                raise SoakError(f"{message} within {timeout_s:.0f} s")
            time.sleep(0.2)

    # -- the venue's clock and the lags ---------------------------------------------------------------------

    def _now_ms(self) -> int:
        return int(_request(f"{self.venue_url}/_venue/clock", {})["now"])

    def _bar(self, now_ms: int) -> int:
        """Bars of the replay closed by `now_ms` (0 at its start)."""
        return (now_ms - self.start_ms) // MINUTE_MS

    def _catalog_conn(self) -> psycopg.Connection | None:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg.connect(
                    host="127.0.0.1", port=self.pg.port, user="postgres", dbname="postgres",
                    autocommit=True, connect_timeout=1, options="-c statement_timeout=1000",
                )  # fmt: skip
            except psycopg.Error:
                return None
        return self._conn

    def _lags(self, research: Research, closed_bar_ms: int) -> tuple[int | None, int | None]:
        """Bars the stored bars and the signals are behind the venue's last closed bar (None: not known,
        the store or catalog being down). Asked of the servers directly with a short timeout: the soak
        samples four times a second, and a server down must not hold it up."""
        bars_lag = signal_lag = None
        query = urllib.parse.urlencode({"query": f"SELECT max(ts) FROM {TABLE}"})
        try:
            with urllib.request.urlopen(f"http://{self.qdb.addr}/exec?{query}", timeout=1) as response:
                rows = json.loads(response.read()).get("dataset") or [[None]]
            if rows[0][0] is not None:
                last = datetime.fromisoformat(rows[0][0].replace("Z", "+00:00"))
                bars_lag = max(0, (closed_bar_ms - int(last.timestamp() * 1000)) // MINUTE_MS)
        except (OSError, ValueError):  # the store down: not known now
            bars_lag = None
        conn = self._catalog_conn()
        if conn is not None:
            try:
                row = conn.execute(
                    f"SELECT max(bar_ts) FROM {SCHEMA}.signals WHERE strategy = %s", (STRATEGY,)
                ).fetchone()
                if row and row[0] is not None:
                    signal_lag = max(0, (closed_bar_ms - int(row[0].timestamp() * 1000)) // MINUTE_MS)
            except psycopg.Error:
                self._conn = None
        return bars_lag, signal_lag

    # -- faults ---------------------------------------------------------------------------------------------

    def _children(self) -> dict[str, psutil.Process]:
        """The supervisor's live children, by service (read from their command lines)."""
        found: dict[str, psutil.Process] = {}
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.processes["supervisor"].pid).children():
                with contextlib.suppress(psutil.Error):
                    cmdline = child.cmdline()
                    for name in SERVICES:
                        if "live" in cmdline and name in cmdline:
                            found[name] = child
        return found

    def _apply(self, record: FaultRecord) -> None:
        fault = record.fault
        faults_url = f"{self.venue_url}/_venue/faults"
        record.applied_at = time.monotonic()
        kind, p = fault.kind, fault.params
        if kind == "drop_streams":
            record.note = f"{_request(faults_url, {'fault': 'drop_streams'})['dropped']} stream(s) dropped"
        elif kind == "server_errors":
            _request(faults_url, {"fault": "fail_next_requests", "count": p["count"], "status": 503})
        elif kind == "ambiguous_submit":
            _request(faults_url, {"fault": "ambiguous_next_order", "mode": p["mode"]})
        elif kind == "partial_fill":
            _request(faults_url, {"fault": "partial_fill_next_order", "share": p["share"], "rest": p["rest"]})
        elif kind == "reject":
            _request(faults_url, {"fault": "reject_next_order", "reason": p["reason"]})
        elif kind == "kill":
            child = self._children().get(p["service"])
            if child is None:
                record.note = f"{p['service']} was not running"
            else:
                child.send_signal(signal.SIGKILL if p["signal"] == "KILL" else signal.SIGTERM)
                record.killed_pid = child.pid
                record.note = f"pid {child.pid}"
        elif kind == "questdb_down":
            self.qdb.crash()
        elif kind == "postgres_restart":
            self.pg.stop("fast")
        else:
            raise ValueError(f"unknown fault {kind}")

    def _over(self, record: FaultRecord, bar: int) -> bool:
        """Whether `record`'s fault is over at `bar`; brings back a server whose time down is up (QuestDB
        takes seconds to start: in a thread, so the lags are still sampled meanwhile)."""
        fault = record.fault
        if fault.kind == "kill":
            if record.killed_pid is None:
                return True
            child = self._children().get(fault.params["service"])
            return (
                child is not None
                and child.pid != record.killed_pid
                and _ready(self.ports[fault.params["service"]])
            )
        if not fault.lasts:
            return True
        if bar < fault.bar + fault.lasts:
            return False
        if fault.kind == "postgres_restart":
            self.pg.start()
            return True
        if record.restarting is None:
            record.restarting = threading.Thread(target=self.qdb.start, name="questdb-start", daemon=True)
            record.restarting.start()
        return not record.restarting.is_alive()

    # -- the run --------------------------------------------------------------------------------------------

    def run(self) -> Report:
        started = time.monotonic()
        records = [FaultRecord(f) for f in self.faults]
        report = Report(self.config, records)
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self.out(
                f"soak: servers of its own in {self.root} (Postgres :{self.pg.port}, QuestDB {self.qdb.addr})"
            )
            self.pg.start()
            self.qdb.start()
            research = self._research()
            self._replay(research, records)
            at_venue = _request(f"{self.venue_url}/_venue/state", timeout=60)
            self._stop_services()
            report.checks = self._check(research, at_venue, records)
            report.figures = self._figures(research, records)
        finally:
            self._stop_services()
            if self._conn is not None:
                self._conn.close()
            self.qdb.close()
            self.pg.close()
            report.wall_s = time.monotonic() - started
            if not self.config.keep and report.ok:
                shutil.rmtree(self.root, ignore_errors=True)
        return report

    def _replay(self, research: Research, records: list[FaultRecord]) -> None:
        c = self.config
        bars = research.later.slice(0, c.history_bars + self.total + 5)
        pq.write_table(bars, self.root / "bars.parquet")
        start = bars.column("ts")[c.history_bars].as_py()
        self.start_ms = int(start.timestamp() * 1000)
        promote(
            research.catalog,
            PromoteConfig(
                name=STRATEGY, run=research.run, symbol=SYMBOL, account=ACCOUNT, amount="0.5",
                max_position="1", max_orders_per_minute=10_000,
            ),
        )  # fmt: skip
        research.catalog.set_strategy_desired_state(STRATEGY, "running")
        env = {
            **os.environ,
            **self._env(),
            "TRADING_DATA_DIR": str(self.root / "services"),
            "TRADING_VENUE_API_KEY": "soak-key-0123456789",
            "TRADING_VENUE_SECRET": "soak-secret-0123456789abcdef",
            "PYTHONUNBUFFERED": "1",
        }
        venue_args = [
            "trading_assets.cli", "venue", "--bars", f"{SYMBOL}={self.root / 'bars.parquet'}",
            "--port", str(self.ports["venue"]), "--speed", "0", "--start", start.isoformat(),
            "--balance", "USDT=1000000", "--balance", "SOL=0", "--seed", str(c.seed),
        ]  # fmt: skip
        self._start("venue", venue_args, env)
        self._wait(lambda: _alive_url(f"{self.venue_url}/_venue/state"), 60, "the venue did not answer")
        health = {n: f"http://127.0.0.1:{self.ports[n]}/healthz" for n in SERVICES}
        (self.root / "services.json").write_text(
            json.dumps({"commands": self._service_commands(), "health": health})
        )
        self._start(
            "supervisor", ["trading_assets.live.soak.supervise", str(self.root / "services.json")], env
        )
        for name in SERVICES:
            self._wait(lambda n=name: _ready(self.ports[n]), 120, f"{name} was not ready")
        self.out(
            f"soak: services ready; replaying {c.days:g} day(s) from {start:%Y-%m-%d %H:%M} at {c.speed:g}x"
        )
        _request(f"{self.venue_url}/_venue/clock", {"speed": c.speed})

        pending = list(records)
        began = time.monotonic()
        samples = (self.root / "lags.csv").open("w", buffering=1)
        samples.write("wall_s,bar,bars_lag,signals_lag\n")
        lasting: list[FaultRecord] = []
        watching: list[FaultRecord] = []
        last_progress = -1

        def sample(bar: int, now: int) -> tuple[int | None, int | None]:
            """The lags now, written down, and each fault's recovery from them."""
            closed_ms = now - now % MINUTE_MS - MINUTE_MS
            bars_lag, signal_lag = self._lags(research, closed_ms)
            samples.write(f"{time.monotonic() - began:.2f},{bar},{_csv(bars_lag)},{_csv(signal_lag)}\n")
            caught_up = (
                bars_lag is not None and signal_lag is not None
                and bars_lag <= c.lag_bars and signal_lag <= c.lag_bars
            )  # fmt: skip
            for record in watching[:]:
                if bars_lag is not None:
                    record.max_bars_lag = max(record.max_bars_lag, bars_lag)
                if signal_lag is not None:
                    record.max_signal_lag = max(record.max_signal_lag, signal_lag)
                # Recovered: caught up once the fault is over (a server back, a killed service ready).
                if record.ended_bar is not None and caught_up:
                    record.recovered_bar, record.recovered_at = bar, time.monotonic()
                    watching.remove(record)
            return bars_lag, signal_lag

        def tend(bar: int, ending: bool = False) -> None:
            """Faults that are over now; `ending`: the replay is done, servers still down come back."""
            for record in lasting[:]:
                if self._over(record, bar + (10**6 if ending else 0)):
                    record.ended_bar, record.ended_at = bar, time.monotonic()
                    lasting.remove(record)
            if self.processes["supervisor"].poll() is not None:
                raise SoakError(f"the supervisor exited:\n{self._log('supervisor')}")

        while True:
            now = self._now_ms()
            bar = self._bar(now)
            if bar >= self.total:
                break
            while pending and pending[0].fault.bar <= bar:
                record = pending.pop(0)
                earlier = next((r for r in watching if r.fault.heavy), None)
                if earlier is not None:
                    record.during = f"during bar {earlier.fault.bar}'s {earlier.fault.kind}"
                self._apply(record)
                lasting.append(record)
                watching.append(record)
            tend(bar)
            bars_lag, signal_lag = sample(bar, now)
            if bar // 360 != last_progress:
                last_progress = bar // 360
                done = len(records) - len(pending)
                self.out(
                    f"soak: day {bar // 1440 + 1} {bar % 1440 // 60:02d}:00  bars lag {bars_lag}  "
                    f"signals lag {signal_lag}  faults {done}/{len(records)}"
                )
            time.sleep(0.25)
        # The replay is over: the clock stops, the faults still on end, the lags are followed until each fault
        # has recovered; then the kill switch (an operator's own control) stops new orders, so what is
        # compared is final.
        now = int(_request(f"{self.venue_url}/_venue/clock", {"speed": 0})["now"])
        self.out("soak: replay done; waiting for the services to settle")
        deadline = time.monotonic() + c.settle_s
        while (lasting or watching) and time.monotonic() < deadline:
            tend(self._bar(now), ending=True)
            sample(self._bar(now), now)
            time.sleep(0.25)
        samples.close()
        research.catalog.set_trading_halt(VENUE, ACCOUNT, True, "the soak is over: final state", "soak")
        self._wait(
            lambda: self._unsettled(research) is None,
            max(10.0, deadline - time.monotonic()),
            f"the services did not settle ({self._unsettled(research)})",
        )

    def _unsettled(self, research: Research) -> str | None:
        now = self._now_ms()
        closed_ms = now - now % MINUTE_MS - MINUTE_MS
        bars_lag, signal_lag = self._lags(research, closed_ms)
        if bars_lag is None or bars_lag > 0:
            return f"stored bars {bars_lag} behind"
        if signal_lag is None or signal_lag > 0:
            return f"signals {signal_lag} behind"
        try:
            working = [
                o.client_order_id for o in research.catalog.list_orders(STRATEGY) if o.status not in TERMINAL
            ]
        except Exception as err:  # the catalog away: not settled
            return str(err)
        if working:
            return f"orders still working: {working}"
        if not _ready(self.ports["executor"]):
            return "the executor is not ready"
        return None

    def _stop_services(self) -> None:
        for name in ("supervisor", "venue"):
            process = self.processes.pop(name, None)
            if process is None or process.poll() is not None:
                continue
            process.terminate()
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)

    # -- the checks -----------------------------------------------------------------------------------------

    def _check(self, research: Research, at_venue: dict, records: list[FaultRecord]) -> list[Check]:
        catalog, store, c = research.catalog, research.store, self.config
        checks: list[Check] = []
        orders = {o.client_order_id: o for o in catalog.list_orders(STRATEGY)}
        ids = [o["clientOrderId"] for o in at_venue["orders"]]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        strangers = sorted(set(ids) - set(orders))
        checks.append(
            Check(
                "no client order id twice",
                not twice and not strangers,
                f"{len(ids)} venue orders, {len(orders)} in the repository"
                + (f"; twice: {twice}" if twice else "")
                + (f"; not ours: {strangers}" if strangers else ""),
            )
        )
        venue_orders = {o["clientOrderId"]: o for o in at_venue["orders"]}
        differ = [
            f"{cid}: venue {v['status']} {v['executedQty']}, "
            f"ours {orders[cid].status} {orders[cid].filled_quantity}"
            for cid, v in venue_orders.items()
            if cid in orders
            and (orders[cid].status, orders[cid].filled_quantity) != (v["status"], Decimal(v["executedQty"]))
        ]
        illegal = [cid for cid, order in orders.items() if not _legal(catalog, cid, order)]
        checks.append(
            Check(
                "orders equal the venue's",
                not differ and not illegal,
                f"{len(venue_orders)} compared, histories legal"
                if not differ and not illegal
                else "; ".join(differ[:3] + [f"illegal history: {i}" for i in illegal[:3]]),
            )
        )
        fills = catalog.list_fills(venue=VENUE)
        ours = sorted((f.trade_id, f.quantity, f.price, f.fee) for f in fills)
        theirs = sorted(
            (str(t["id"]), Decimal(t["qty"]), Decimal(t["price"]), Decimal(t["commission"]))
            for t in at_venue["trades"]
        )
        checks.append(
            Check(
                "fills equal the venue's executions",
                ours == theirs,
                f"{len(ours)} fills, {len(theirs)} venue trades"
                + ("" if ours == theirs else f"; only ours: {sorted(set(ours) - set(theirs))[:3]}, "
                   f"only the venue's: {sorted(set(theirs) - set(ours))[:3]}"),
            )
        )  # fmt: skip
        checks += _order_fault_checks(orders, fills, at_venue, records)
        position = catalog.get_position(VENUE, ACCOUNT, SYMBOL)
        held = Decimal(at_venue["balances"]["SOL"]["free"]) + Decimal(at_venue["balances"]["SOL"]["locked"])
        summed = sum(
            (
                (f.quantity if f.side == "buy" else -f.quantity) - (f.fee if f.fee_currency == "SOL" else 0)
                for f in fills
            ),
            Decimal(0),
        )
        stored_qty = Decimal(0) if position is None else position.quantity
        checks.append(
            Check(
                "position equals the venue's and the sum of fills",
                stored_qty == held == summed,
                f"repository {stored_qty}, venue {held}, fills {summed}",
            )
        )
        stored = store.read(TABLE)
        replayed = pq.read_table(self.root / "bars.parquet")
        closed = int(
            ((replayed.column("ts").cast(pa.int64()).to_numpy() // 1000) + MINUTE_MS <= at_venue["now"]).sum()
        )
        ts = stored.column("ts").cast(pa.int64()).to_numpy()
        gaps = int((np.diff(ts) != MINUTE_MS * 1000).sum())
        same = stored.num_rows == closed and stored.equals(replayed.slice(0, closed).cast(stored.schema))
        checks.append(
            Check(
                "stored bars equal the venue's, no gap, no duplicate",
                same and gaps == 0,
                f"{stored.num_rows} stored, {closed} closed at the venue, {gaps} gap(s)",
            )
        )
        loaded = load_signal_model(catalog, catalog.get_strategy(STRATEGY))
        prediction, target = replay_signals(
            loaded.model, loaded.booster, ts, {k: stored.column(k).to_numpy() for k in BAR_INPUTS}
        )
        signals = catalog.list_signals(STRATEGY)
        at = np.searchsorted(ts, [int(s.bar_ts.timestamp() * 1_000_000) for s in signals])
        first = int(at[0]) if len(at) else 0
        every_bar = len(signals) == ts.size - first and np.array_equal(at, np.arange(first, ts.size))
        equal = np.array([s.prediction for s in signals]).view(np.int64).tolist() == prediction[at].view(
            np.int64
        ).tolist() and np.array_equal([s.target for s in signals], target[at])
        # A strategy's first start takes the bars recorded so far as its history (no signals for them): a
        # runner killed before that first start had finished starts it later, from later bars. It must
        # still be signalling within two recovery bounds of the replay's start.
        started_in_time = bool(len(at)) and first - c.history_bars <= 2 * c.recover_bars
        checks.append(
            Check(
                "signals equal the offline replay, one per bar",
                bool(every_bar and equal and started_in_time),
                f"{len(signals)} signals from bar {first} of {ts.size}; "
                f"{'bit for bit' if equal else 'they differ'}; "
                f"{'none missed' if every_bar else 'bars missed or doubled'}",
            )
        )
        late = [
            f"bar {r.fault.bar} {r.fault.describe()}: "
            + ("never" if r.recovered_after is None else f"{r.recovered_after} bars")
            for r in records
            if not r.during and (r.recovered_after is None or r.recovered_after > c.recover_bars)
        ]
        checks.append(
            Check(
                f"lag back within {c.lag_bars} bars in {c.recover_bars} bars after each fault",
                not late,
                f"worst {max((r.recovered_after or 0) for r in records if not r.during)} bars; "
                f"{sum(bool(r.during) for r in records)} fault(s) came during a heavy one (its recovery)"
                if not late
                else "; ".join(late[:4]),
            )
        )
        kills = sum(1 for r in records if r.fault.kind == "kill" and r.note.startswith("pid"))
        lines = self._log("supervisor", 1_000_000).splitlines()
        restarts = sum(1 for line in lines if line.startswith("live up: ") and "; again in" in line)
        checks.append(
            Check(
                "no manual step: the supervisor restarted exactly the killed services",
                restarts == kills,
                f"{kills} killed by the schedule, {restarts} restart(s) by the supervisor",
            )
        )
        return checks

    def _figures(self, research: Research, records: list[FaultRecord]) -> dict[str, str]:
        runs = research.catalog.list_reconciliations(VENUE, ACCOUNT)
        took = sorted(
            (r.finished_at - r.started_at).total_seconds()
            for r in runs
            if r.finished_at is not None and r.started_at
        )
        orders = research.catalog.list_orders(STRATEGY)
        by_status: dict[str, int] = {}
        for order in orders:
            by_status[order.status] = by_status.get(order.status, 0) + 1
        worst = max(records, key=lambda r: r.max_bars_lag)
        judged = [r for r in records if not r.during and r.recovered_s is not None]
        slowest = max(judged, key=lambda r: r.recovered_s or 0.0, default=None)
        figures = {
            "orders": ", ".join(f"{k} {v}" for k, v in sorted(by_status.items())),
            "reconciliations": f"{len(runs)} ({sum(r.status == 'ok' for r in runs)} ok), "
            + (f"median {took[len(took) // 2]:.2f} s, max {took[-1]:.2f} s" if took else "none finished"),
            "max stored-bars lag": f"{worst.max_bars_lag} bars (after {worst.fault.describe()})",
            "max signals lag": f"{max(r.max_signal_lag for r in records)} bars",
        }
        if slowest is not None:
            figures["slowest recovery"] = (
                f"{slowest.recovered_after} bars ({slowest.recovered_s:.1f} s) "
                f"after {slowest.fault.describe()}"
            )
        restarts = sorted(
            r.ended_at - r.applied_at for r in records if r.fault.kind == "kill" and r.ended_bar is not None
        )
        if restarts:
            figures["killed service ready again"] = (
                f"median {restarts[len(restarts) // 2]:.1f} s, max {restarts[-1]:.1f} s over {len(restarts)} "
                "(the supervisor's backoff, the process's start, the executor's reconciliation)"
            )
        kinds = sorted({r.fault.kind for r in judged})
        for kind in kinds:
            times = sorted(r.recovered_s or 0.0 for r in judged if r.fault.kind == kind)
            figures[f"recovery after {kind}"] = f"max {times[-1]:.1f} s over {len(times)}"
        return figures


def _csv(value: int | None) -> str:
    return "" if value is None else str(value)


def _alive_url(url: str) -> bool:
    try:
        _request(url, timeout=2)
        return True
    except (OSError, ValueError):
        return False


def _legal(catalog, cid: str, order) -> bool:  # type: ignore[no-untyped-def]
    """Whether the order's stored events are a legal path through the state machine, ending where it is."""
    try:
        state = replay_history(cid, order.quantity, catalog.list_order_events(cid))
    except OrderError:
        return False
    return state.status == OrderStatus(order.status)


def _order_fault_checks(orders: dict, fills: list, at_venue: dict, records: list[FaultRecord]) -> list[Check]:
    """The venue's rejections and partial fills as the repository has them: a rejected order carries the
    venue's reason, and an order the venue filled in parts has its parts (or is still partly filled at the
    venue: the day ended before its rest). A fault still armed at the end (no order came after it) is not
    counted."""
    pending = at_venue["faults"]
    rejects = [r for r in records if r.fault.kind == "reject" and r.applied_at]
    taken = len(rejects) - (1 if pending["reject_next_order"] else 0)
    messages = {REJECTIONS[r.fault.params["reason"]][1] for r in rejects}
    rejected = [o for o in orders.values() if o.status == "REJECTED"]
    with_reason = [o for o in rejected if any(m in (o.reason or "") for m in messages)]
    later = [
        r
        for r in records
        if r.fault.kind == "partial_fill" and r.fault.params["rest"] == "later" and r.applied_at
    ]
    per_order: dict[str, int] = {}
    for fill in fills:
        per_order[fill.client_order_id] = per_order.get(fill.client_order_id, 0) + 1
    in_parts = sum(n >= 2 for n in per_order.values())
    unfinished = sum(0 < Decimal(o["executedQty"]) < Decimal(o["origQty"]) for o in at_venue["orders"])
    partial_taken = bool(later) and not (len(later) == 1 and pending["partial_fill_next_order"])
    return [
        Check(
            "rejections carry the venue's reason",
            (taken <= 0 or bool(with_reason)) and all(o.reason for o in rejected),
            f"{len(rejects)} scheduled, {len(rejected)} rejected, {len(with_reason)} with the venue's reason",
        ),
        Check(
            "orders filled in parts have every part",
            not partial_taken or in_parts + unfinished > 0,
            f"{len(later)} partial fill(s) with the rest later scheduled; {in_parts} order(s) with two fills "
            f"or more, {unfinished} partly filled",
        ),
    ]
