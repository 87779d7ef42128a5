"""`trading-assets live ...`: the live services (recorder, runner, executor), the operator's commands
(promote, start, stop, halt, resume, status) and `up`, which runs the local venue and the three services
under a supervisor in paper mode.

Each service reads the configured store and catalog (TRADING_TIMESERIES, TRADING_CATALOG, ...), serves
/healthz, /readyz and /metrics on its own port, and stops cleanly on SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from trading_assets.cli.arguments import positive_seconds

DEFAULT_PORTS = {"venue": 8765, "recorder": 9101, "runner": 9102, "executor": 9103}
# Seconds a service is given to act on SIGTERM (finish what it was doing, persist, exit) before SIGKILL:
# the supervisor's, Compose's stop_grace_period and Kubernetes' terminationGracePeriodSeconds.
STOP_GRACE_S = 30.0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    live = sub.add_parser("live", help="live and paper trading: services and operator commands")
    commands = live.add_subparsers(dest="live_command", required=True)

    recorder = commands.add_parser("recorder", help="record closed bars of a venue's symbols into the store")
    _venue_args(recorder)
    recorder.add_argument("--symbol", action="append", required=True, help="a ccxt symbol (repeatable)")
    recorder.add_argument("--timeframe", default="1m", help="bar length, a ccxt timeframe (default 1m)")
    recorder.add_argument("--history-bars", type=int, default=1440, help="bars fetched on a cold start")
    recorder.add_argument("--stall", type=float, default=90.0, help="seconds of stream silence = dropped")
    recorder.add_argument(
        "--spool-dir", help="where bars wait while the store is away (default $TRADING_DATA_DIR/spool)"
    )
    _health_args(recorder, "recorder")
    recorder.set_defaults(run=_recorder)

    runner = commands.add_parser("runner", help="run the strategies whose desired state is running")
    runner.add_argument("--poll", type=float, default=1.0, help="seconds between reads of the strategies")
    _health_args(runner, "runner")
    runner.set_defaults(run=_runner)

    executor = commands.add_parser("executor", help="trade the running strategies of one venue account")
    _venue_args(executor)
    executor.add_argument("--account", default="paper", help="the account's name (default paper)")
    executor.add_argument(
        "--broker",
        choices=("paper", "venue"),
        default="paper",
        help="paper fills on recorded bars, or the venue",
    )
    executor.add_argument(
        "--symbol", action="append", required=True, help="a ccxt symbol traded (repeatable)"
    )
    executor.add_argument("--step", default="0.00001", help="paper: quantity step of every symbol")
    executor.add_argument("--min-quantity", default="0.00001", help="paper: least quantity of an order")
    executor.add_argument(
        "--paper-state", default=None, help="paper: the account's file (default under data)"
    )
    executor.add_argument(
        "--paper-balance", action="append", default=[], metavar="ASSET=AMOUNT", help="paper: starting balance"
    )
    executor.add_argument("--poll", type=float, default=1.0, help="seconds between polls")
    executor.add_argument(
        "--max-signal-lag-bars", type=int, default=1, help="bars a signal may lag the newest recorded bar"
    )
    executor.add_argument(
        "--fills-lookback",
        type=float,
        default=7 * 86_400.0,
        help="seconds of the venue's fills read at each reconciliation (default 7 days)",
    )
    _health_args(executor, "executor")
    executor.set_defaults(run=_executor)

    promote = commands.add_parser("promote", help="promote a completed walkforward run's fold to a strategy")
    promote.add_argument("--name", required=True)
    promote.add_argument("--run", dest="walkforward_run", required=True, help="a completed walkforward run")
    promote.add_argument("--fold", type=int)
    promote.add_argument("--symbol", required=True)
    promote.add_argument("--venue", default="binance")
    promote.add_argument("--account", default="paper")
    promote.add_argument("--sizing", choices=("units", "notional", "fraction"), default="units")
    promote.add_argument("--amount", default="0.01")
    promote.add_argument(
        "--direction", choices=("both", "long", "short"), default="long", help="long only on spot markets"
    )
    promote.add_argument("--dead-zone", choices=("flat", "hold"), default="flat")
    promote.add_argument("--max-position", default="1")
    promote.add_argument("--max-order-notional", default="100000")
    promote.add_argument("--max-orders-per-minute", type=int, default=10)
    promote.set_defaults(run=_promote)

    for verb, state in (("start", "running"), ("stop", "stopped")):
        command = commands.add_parser(verb, help=f"set a strategy's desired state to {state}")
        command.add_argument("name")
        command.set_defaults(run=_desired, state=state)

    for verb, halted in (("halt", True), ("resume", False)):
        command = commands.add_parser(
            verb, help=f"{'switch on' if halted else 'switch off'} an account's kill switch"
        )
        command.add_argument("--venue", default="binance")
        command.add_argument("--account", default="paper")
        command.add_argument("--reason", required=True)
        command.set_defaults(run=_halt, halted=halted)

    status = commands.add_parser("status", help="strategies, positions and services at a glance")
    status.set_defaults(run=_status)

    up = commands.add_parser("up", help="the local venue, recorder, runner and executor (paper), supervised")
    up.add_argument("--bars", required=True, help="a dataset or .parquet file the local venue replays")
    up.add_argument("--symbol", default="BTC/USDT", help="the symbol the bars are (default BTC/USDT)")
    up.add_argument("--speed", type=float, default=60.0, help="venue seconds per wall second (default 60)")
    up.add_argument(
        "--start", help="the venue clock's start, ISO 8601 with zone (default: 2 days into the bars)"
    )
    up.add_argument("--account", default="paper")
    up.add_argument("--broker", choices=("paper", "venue"), default="paper")
    up.set_defaults(run=_up)


def _venue_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--venue", default="binance", help="a ccxt venue id (default binance)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--local-venue", metavar="URL", help="a local venue (trading-assets venue) at URL")
    where.add_argument("--sandbox", action="store_true", help="the venue's testnet, through ccxt")


def _health_args(parser: argparse.ArgumentParser, service: str) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address of the health endpoints")
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORTS[service],
        help=f"their port (default {DEFAULT_PORTS[service]})",
    )
    parser.add_argument(
        "--stale-after",
        type=positive_seconds,
        default=30.0,
        help="seconds the service's loop may go without a beat before /healthz answers 503 and a "
        "supervisor restarts it (default 30; at least 10 polls)",
    )


def _resources():  # type: ignore[no-untyped-def]
    from trading_assets import settings as cfg

    settings = cfg.Settings.from_env()
    # Initialized, so their config is resolved (a password given as dg.EnvVar becomes its value), and held
    # for the life of the process. Never torn down: a service has stored its state before it returns, and a
    # pool closed at exit would wait on its workers, eating into the stop grace the supervisor gives.
    opened = contextlib.ExitStack()
    catalog = opened.enter_context(cfg.catalog(settings).process_config_and_initialize_cm())
    return (
        settings,
        catalog,
        opened.enter_context(cfg.timeseries_store(settings).process_config_and_initialize_cm()),
    )


def _ccxt_venue(args: argparse.Namespace, public_only: bool = False):  # type: ignore[no-untyped-def]
    from resources.venues import CcxtVenue

    return CcxtVenue(
        venue_id=args.venue, local_url=args.local_venue, sandbox=args.sandbox, public_only=public_only
    )


def _recorder(args: argparse.Namespace) -> int:
    from trading_assets.live.process import run_service
    from trading_assets.live.recorder import Recorder, RecorderConfig
    from trading_assets.live.spool import Spool

    settings, catalog, store = _resources()
    config = RecorderConfig(
        venue=args.venue,
        symbols=tuple(args.symbol),
        timeframe=args.timeframe,
        history_bars=args.history_bars,
        stall_s=args.stall,
        stale_after_s=args.stale_after,
    )
    spool = Spool(Path(args.spool_dir) if args.spool_dir else settings.data_dir / "spool")
    exchange = _ccxt_venue(args, public_only=True).exchange("pro")
    recorder = Recorder(config, exchange, store, spool=spool, catalog=catalog)
    asyncio.run(run_service("recorder", recorder.health, args.host, args.port, recorder.run))
    return 0


def _runner(args: argparse.Namespace) -> int:
    from trading_assets.live.process import run_service
    from trading_assets.live.runner import StrategyRunner

    _, catalog, store = _resources()
    runner = StrategyRunner(catalog, store, poll_s=args.poll, stale_after_s=args.stale_after)
    asyncio.run(run_service("runner", runner.health, args.host, args.port, runner.run))
    return 0


def _decimal(flag: str, text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{flag} {text!r} is not a number") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"{flag} {text!r} must be a number >= 0")
    return value


def _executor(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from trading_assets.live.executor import Executor, ExecutorConfig
    from trading_assets.live.process import VenueTime, run_service

    settings, catalog, store = _resources()
    clock_exchange = _ccxt_venue(args).exchange("async")
    clock = VenueTime(clock_exchange)
    broker = _broker(args, settings, store, clock)

    async def connect() -> None:
        await clock.sync()
        instruments = await _instruments(args, clock_exchange)
        executor.config = ExecutorConfig(
            args.venue,
            args.account,
            instruments,
            poll_s=args.poll,
            max_signal_lag_bars=args.max_signal_lag_bars,
            fills_lookback=timedelta(seconds=args.fills_lookback),
            stale_after_s=args.stale_after,
        )
        await broker.start()

    async def main(stop: asyncio.Event) -> None:
        import ccxt

        from resources.brokers.base import BrokerUnavailable

        try:
            # A venue that cannot be reached yet: not ready (and saying why) until it can, never a crash.
            delay = 1.0
            while not stop.is_set():
                try:
                    await connect()
                    break
                except (BrokerUnavailable, ccxt.NetworkError, ccxt.ExchangeNotAvailable) as err:
                    executor.problem = f"the venue cannot be reached: {str(err).splitlines()[0][:200]}"
                    print(f"executor: {executor.problem}; trying again in {delay:.0f} s", flush=True)
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                except TimeoutError:
                    delay = min(delay * 2, 30.0)
            following = asyncio.create_task(clock.follow(stop))
            await executor.run(stop)
            await following
        finally:
            await broker.close()
            await clock_exchange.close()

    # The instruments are read from the venue once running; the health endpoints answer from the start.
    placeholder = ExecutorConfig(
        args.venue, args.account, {}, poll_s=args.poll, stale_after_s=args.stale_after
    )
    executor = Executor(placeholder, catalog, broker, store, clock=clock)
    asyncio.run(run_service("executor", executor.health, args.host, args.port, main))
    return 0


async def _instruments(args: argparse.Namespace, exchange):  # type: ignore[no-untyped-def]
    """Each symbol's quantity step and minimum: the venue's own for `--broker venue`, else the flags'."""
    from trading_assets.live.executor import Instrument

    if args.broker != "venue":
        step, least = _decimal("--step", args.step), _decimal("--min-quantity", args.min_quantity)
        return {symbol: Instrument(step, least) for symbol in args.symbol}
    markets = await exchange.load_markets()
    out = {}
    for symbol in args.symbol:
        if symbol not in markets:
            raise ValueError(f"--symbol {symbol!r} is not a market of {args.venue}")
        market = markets[symbol]
        step = Decimal(str(market["precision"]["amount"]))
        least = Decimal(str((market["limits"]["amount"] or {}).get("min") or step))
        out[symbol] = Instrument(step, max(step, least))
    return out


def _broker(args: argparse.Namespace, settings, store, clock):  # type: ignore[no-untyped-def]
    if args.broker == "venue":
        from resources.brokers.ccxt_broker import CcxtBroker, CcxtBrokerConfig

        config = CcxtBrokerConfig(venue=args.venue, client=_ccxt_venue(args), symbols=tuple(args.symbol))
        return CcxtBroker(config, clock=clock)
    from resources.brokers.paper import PaperBroker, PaperConfig
    from trading_assets.compute.fill_model import Instrument as PaperInstrument

    step, least = _decimal("--step", args.step), _decimal("--min-quantity", args.min_quantity)
    balances = {}
    for item in args.paper_balance or ["USDT=10000"]:
        asset, _, amount = item.partition("=")
        balances[asset.upper()] = _decimal("--paper-balance", amount)
    state = (
        Path(args.paper_state)
        if args.paper_state
        else settings.data_dir / "live" / f"paper-{args.account}.json"
    )
    state.parent.mkdir(parents=True, exist_ok=True)
    config = PaperConfig(
        data_venue=args.venue,
        venue=args.venue,
        symbols=tuple(args.symbol),
        instruments={s: PaperInstrument(step=step, min_quantity=least) for s in args.symbol},
        balances=balances,
        state_file=state,
    )
    return PaperBroker(config, store, clock=clock)


def _promote(args: argparse.Namespace) -> int:
    from trading_assets.live.config import PromoteConfig
    from trading_assets.live.service import PromotionError, promote

    _, catalog, _ = _resources()
    config = PromoteConfig(
        name=args.name,
        run=args.walkforward_run,
        fold=args.fold,
        symbol=args.symbol,
        venue=args.venue,
        account=args.account,
        sizing=args.sizing,
        amount=args.amount,
        direction=args.direction,
        dead_zone=args.dead_zone,
        max_position=args.max_position,
        max_order_notional=args.max_order_notional,
        max_orders_per_minute=args.max_orders_per_minute,
    )
    try:
        strategy = promote(catalog, config)
    except PromotionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(
        f"strategy {strategy.name}: {strategy.walkforward_run} fold {strategy.fold} (model "
        f"{strategy.model_sha256[:12]}) trading {strategy.symbol} on {strategy.venue}/{strategy.account}; "
        f"thresholds {strategy.long_threshold:.6g} / {strategy.short_threshold:.6g}; stopped until "
        f"`trading-assets live start {strategy.name}`"
    )
    return 0


def _desired(args: argparse.Namespace) -> int:
    from trading_assets.records import CatalogError

    _, catalog, _ = _resources()
    try:
        strategy = catalog.set_strategy_desired_state(args.name, args.state)
    except CatalogError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"strategy {strategy.name}: desired {strategy.desired_state} (now {strategy.actual_state})")
    return 0


def _halt(args: argparse.Namespace) -> int:
    from trading_assets.records import CatalogError

    _, catalog, _ = _resources()
    try:
        halt = catalog.set_trading_halt(args.venue, args.account, args.halted, args.reason, "cli")
    except CatalogError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    what = "halted: open orders are cancelled, none sent" if halt.halted else "trading"
    print(f"{halt.venue}/{halt.account}: {what} ({halt.reason})")
    return 0


def _status(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    _, catalog, _ = _resources()
    strategies = catalog.list_strategies()
    print(f"{'strategy':<24} {'desired':<8} {'state':<9} {'symbol':<12} {'position':>14}  message")
    for s in strategies:
        position = catalog.get_position(s.venue, s.account, s.symbol)
        quantity = "0" if position is None else f"{position.quantity.normalize():f}"
        state = f"{s.name:<24} {s.desired_state:<8} {s.actual_state:<9} {s.symbol:<12} {quantity:>14}"
        print(f"{state}  {s.state_message or ''}")
    now = datetime.now(UTC)
    for beat in catalog.list_heartbeats():
        age = (now - beat.last_beat).total_seconds()
        print(f"service {beat.service}/{beat.instance}: {beat.status}, last beat {age:.0f} s ago")
    return 0


def _up(args: argparse.Namespace) -> int:
    """The local venue and the three services as child processes under `Supervisor`: each restarted with
    backoff when it exits or its health fails (the venue's /api/v3/ping, the services' /healthz, on the
    ports given here); Ctrl-C (or SIGTERM) stops them all."""
    env = dict(os.environ)
    # The local venue signs with whatever credentials it is given; make some for this run if none are set.
    env.setdefault("TRADING_VENUE_API_KEY", secrets.token_hex(16))
    env.setdefault("TRADING_VENUE_SECRET", secrets.token_hex(32))
    exe = [sys.executable, "-m", "trading_assets.cli"]
    port = {name: str(number) for name, number in DEFAULT_PORTS.items()}
    url = f"http://127.0.0.1:{port['venue']}"
    start = ["--start", args.start] if args.start else []
    balance = ["--balance", "USDT=100000", "--balance", f"{args.symbol.split('/')[0]}=0"]
    venue = ["venue", "--bars", f"{args.symbol}={args.bars}", "--speed", str(args.speed), *start, *balance]
    recorder = ["live", "recorder", "--local-venue", url, "--symbol", args.symbol, "--history-bars", "2880"]
    executor = ["live", "executor", "--local-venue", url, "--symbol", args.symbol, "--account", args.account]
    children = {
        "venue": [*exe, *venue, "--port", port["venue"]],
        "recorder": [*exe, *recorder, "--port", port["recorder"]],
        "runner": [*exe, "live", "runner", "--port", port["runner"]],
        "executor": [*exe, *executor, "--broker", args.broker, "--port", port["executor"]],
    }
    if not args.start:
        children["venue"] += ["--start", _two_days_in(args.bars)]
    health = {name: f"http://127.0.0.1:{port[name]}/healthz" for name in ("recorder", "runner", "executor")}
    health["venue"] = f"{url}/api/v3/ping"
    return Supervisor(children, env, health).run()


def _two_days_in(source: str) -> str:
    """Two days after the first bar of `source`: history enough for the recorder's backfill."""
    from datetime import timedelta

    import pyarrow.parquet as pq

    if source.endswith(".parquet"):
        first = pq.read_table(source, columns=["ts"]).column("ts")[0].as_py()
    else:
        from resources.timeseries import StoreError
        from trading_assets import naming

        _, _, store = _resources()
        try:
            bars = store.read(naming.table_name(source), columns=["ts"])
        except (StoreError, naming.InvalidNameError) as err:
            raise ValueError(
                f"--bars {source}: {err} (a dataset of the configured store or a .parquet file)"
            ) from None
        if bars.num_rows == 0:
            raise ValueError(f"--bars {source}: the table holds no bars")
        first = bars.column("ts")[0].as_py()
    return (first + timedelta(days=2)).isoformat()


@dataclass(frozen=True)
class Supervision:
    """How `Supervisor` judges its children. A child that has answered its health URL is restarted after
    `failures` failed probes in a row (an error status, such as /healthz's 503 when the service's loop has
    stopped beating, or no answer within `probe_timeout_s`): at most failures x (probe_every_s +
    probe_timeout_s) after it went wrong. One that has not answered `start_grace_s` after its start is
    restarted too. A restart is SIGTERM (with SIGCONT, so a stopped process can act on it), then SIGKILL
    after `stop_grace_s`; the child starts again after its backoff, 1, 2, 4 ... `backoff_max_s` seconds,
    back to 1 once it has run healthy for `healthy_reset_s`."""

    probe_every_s: float = 5.0
    probe_timeout_s: float = 2.0
    failures: int = 3
    start_grace_s: float = 60.0
    stop_grace_s: float = STOP_GRACE_S
    backoff_max_s: float = 30.0
    healthy_reset_s: float = 60.0


@dataclass
class _Child:
    """One supervised child's state: the process (None while waiting for its backoff) and its probes."""

    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    due: float = 0.0
    backoff: float = 1.0
    answered: bool = False
    failed: int = 0
    next_probe: float = 0.0
    stopping_since: float | None = None
    why: str = ""


class Supervisor:
    """Keeps each child running without a person: one that exits, or whose health URL fails (see
    `Supervision`), is started again after its backoff; each restart is one line naming the reason.
    SIGINT/SIGTERM stop them all with SIGTERM, then SIGKILL after the stop grace."""

    def __init__(
        self,
        commands: dict[str, list[str]],
        env: dict[str, str],
        health: dict[str, str] | None = None,
        supervision: Supervision | None = None,
    ) -> None:
        self.commands = commands
        self.env = env
        self.health = health or {}
        self.rules = supervision or Supervision()
        self.state = {name: _Child() for name in commands}
        self.stopping = False

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        print(f"live up: {', '.join(self.commands)} (Ctrl-C stops them)", flush=True)
        while not self.stopping:
            for name in self.commands:
                self._tend(name)
            time.sleep(min(0.5, self.rules.probe_every_s))
        for child in self.state.values():
            if child.process is not None and child.stopping_since is None:
                self._signal_stop(child)
        deadline = time.monotonic() + self.rules.stop_grace_s
        for child in self.state.values():
            if child.process is None:
                continue
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
        print("live up: stopped", flush=True)
        return 0

    def _tend(self, name: str) -> None:
        """One look at a child: start it when due, notice its exit, finish a stop, or probe its health."""
        child, now = self.state[name], time.monotonic()
        if child.process is None:
            if now >= child.due:
                self._start(name)
            return
        code = child.process.poll()
        if code is not None:
            why = f"{child.why} (exit {code})" if child.why else f"exited ({code})"
            print(f"live up: {name} {why}; again in {child.backoff:.0f} s", flush=True)
            child.process, child.stopping_since, child.why = None, None, ""
            child.due = now + child.backoff
            child.backoff = min(child.backoff * 2, self.rules.backoff_max_s)
            return
        if child.stopping_since is not None:
            if now - child.stopping_since > self.rules.stop_grace_s:
                child.process.kill()
            return
        if name not in self.health or now < child.next_probe:
            return
        child.next_probe = now + self.rules.probe_every_s
        failure = self._probe(self.health[name])
        if failure is None:
            if not child.answered:
                print(f"live up: {name} healthy ({now - child.started:.1f} s after its start)", flush=True)
            child.answered, child.failed = True, 0
            if now - child.started > self.rules.healthy_reset_s:
                child.backoff = 1.0
        elif child.answered:
            child.failed += 1
            if child.failed >= self.rules.failures:
                self._restart(name, f"restarted: {child.failed} health probes failed in a row ({failure})")
        elif now - child.started > self.rules.start_grace_s:
            grace = self.rules.start_grace_s
            self._restart(name, f"restarted: no healthy answer within {grace:.0f} s of its start ({failure})")

    def _start(self, name: str) -> None:
        # A session of its own: Ctrl-C reaches the supervisor alone, which stops each child once.
        process = subprocess.Popen(self.commands[name], env=self.env, start_new_session=True)
        now = time.monotonic()
        self.state[name] = _Child(
            process=process, started=now, backoff=self.state[name].backoff, next_probe=now
        )
        print(f"live up: {name} started (pid {process.pid})", flush=True)
        # The venue first: the others connect to it.
        if name == "venue":
            time.sleep(2.0)

    def _restart(self, name: str, why: str) -> None:
        """Stop the child; once it has exited, `_tend` logs `why` and starts it again after its backoff."""
        child = self.state[name]
        child.why = why
        self._signal_stop(child)

    def _signal_stop(self, child: _Child) -> None:
        assert child.process is not None
        child.stopping_since = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            child.process.send_signal(signal.SIGTERM)
            child.process.send_signal(signal.SIGCONT)

    def _probe(self, url: str) -> str | None:
        """None if `url` answers 2xx within the probe timeout, else what went wrong, in a few words."""
        try:
            with urllib.request.urlopen(url, timeout=self.rules.probe_timeout_s) as response:
                response.read()
            return None
        except urllib.error.HTTPError as err:
            return f"HTTP {err.code} from {url}"
        except TimeoutError:
            return f"no answer from {url} within {self.rules.probe_timeout_s:g} s"
        except OSError as err:  # URLError included
            reason = getattr(err, "reason", err)
            if isinstance(reason, TimeoutError):
                return f"no answer from {url} within {self.rules.probe_timeout_s:g} s"
            return f"{url}: {reason}"

    def _stop(self, *_: object) -> None:
        self.stopping = True
