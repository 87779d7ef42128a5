"""The strategy runner: follows the strategies table, and gives each running strategy a signal per closed bar.

Every `poll_s` it reads the strategies: one whose desired state is "running" is started (its model file's
hash checked, its indicator set computed over the bars recorded so far), one set to "stopped" is stopped,
each within a poll; the actual state and any failure are reported back on the strategy's row. For each
running strategy, the bars recorded since the last one taken (`naming.live_bars_table`) go through
`LiveSignals` one by one, and each bar's prediction and target is recorded (unique per strategy and bar).

Nothing lives only in memory: a runner that restarts computes the set again over the same recorded bars,
up to the strategy's last recorded signal, then signals every bar after it, so no bar is missed and none
is signalled twice. The signals equal `replay_signals` over the recorded bars bit for bit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pyarrow as pa
from prometheus_client import CollectorRegistry, Counter, Gauge

from resources.catalog import Catalog
from resources.timeseries import TIMESTAMP_COLUMN, StoreError, TimeSeriesStore, utc_datetime
from trading_assets.compute.indicators.registry import BAR_INPUTS
from trading_assets.compute.live_signals import LiveSignalError, LiveSignals
from trading_assets.live.health import Health
from trading_assets.live.service import PromotionError, StrategyModel, load_signal_model
from trading_assets.records import CatalogError, CatalogUnavailable, SignalRecord, StrategyRecord

log = logging.getLogger(__name__)

HEARTBEAT_S = 5.0


@dataclass
class _Running:
    loaded: StrategyModel
    signals: LiveSignals
    last_us: int | None


class StrategyRunner:
    """Runs the strategies of `catalog` on the bars in `store`."""

    def __init__(
        self,
        catalog: Catalog,
        store: TimeSeriesStore,
        poll_s: float = 1.0,
        instance: str | None = None,
        registry: CollectorRegistry | None = None,
        stale_after_s: float = 30.0,
    ) -> None:
        self.catalog = catalog
        self.store = store
        self.poll_s = poll_s
        self.instance = instance or f"{socket.gethostname()}-{os.getpid()}"
        self.registry = registry or CollectorRegistry()
        # Stuck: no beat for `stale_after_s`, and never before ten polls (a slow poll is not a stuck one).
        self.health = Health("runner", self.registry, stale_after_s=max(stale_after_s, 10 * poll_s))
        self.health.readiness(self.not_ready)
        self.running: dict[str, _Running] = {}
        # Strategies that failed to start, with the row's update time then: tried again once it changes.
        self.failed: dict[str, object] = {}
        self._ticked = False
        self._last_beat = 0.0
        self._signals = Counter("live_signals", "Signals recorded", ["strategy"], registry=self.registry)
        self._last_bar = Gauge(
            "live_signal_last_bar_seconds",
            "Open time of the last bar signalled",
            ["strategy"],
            registry=self.registry,
        )
        self._count = Gauge("live_strategies_running", "Strategies the runner runs", registry=self.registry)

    def not_ready(self) -> list[str]:
        return [] if self._ticked else ["has not read the strategies yet"]

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop` is set. A failed poll (the catalog or store away) is logged and tried again."""
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.tick)
            except (CatalogError, StoreError, TimeoutError) as err:
                # The catalog or the store away (a lock not granted in time is a TimeoutError): next poll.
                log.warning("runner: %s; trying again", err)
            self.health.beat()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.poll_s)
        # Stopping (SIGTERM): the poll in progress has finished (each signal it took is stored); say so on
        # each strategy's row and in the heartbeat. A catalog away now costs a warning: the restarted runner
        # starts each strategy again from its last stored signal either way.
        try:
            await asyncio.to_thread(self._stop_all)
        except (CatalogError, TimeoutError) as err:
            log.warning("runner: stopped without reporting it: %s", err)

    def _stop_all(self) -> None:
        for name in list(self.running):
            self._stop(name, "the runner stopped")
        self.catalog.heartbeat("runner", self.instance, "stopped", json.dumps({"running": []}))

    def tick(self) -> None:
        """One poll: follow the desired states, then signal the new bars of every running strategy."""
        for strategy in self.catalog.list_strategies():
            wanted = strategy.desired_state == "running"
            if wanted and strategy.name not in self.running:
                if self.failed.get(strategy.name) != strategy.updated_at:
                    self._start(strategy)
            elif not wanted and strategy.name in self.running:
                self._stop(strategy.name, None)
            elif not wanted:
                self.failed.pop(strategy.name, None)
        for name in list(self.running):
            self._take_new_bars(name)
        self._count.set(len(self.running))
        self._ticked = True
        if time.monotonic() - self._last_beat >= HEARTBEAT_S:
            detail = json.dumps({"running": sorted(self.running)})
            self.catalog.heartbeat("runner", self.instance, "ok", detail)
            self._last_beat = time.monotonic()

    def _start(self, strategy: StrategyRecord) -> None:
        name = strategy.name
        try:
            loaded = load_signal_model(self.catalog, strategy)
        except PromotionError as err:
            self._fail(strategy, str(err))
            return
        if loaded.bars_table not in self.store.list_tables():
            message = f"waiting for bars in {loaded.bars_table} (is the recorder running?)"
            if strategy.actual_state != "starting" or strategy.state_message != message:
                self.catalog.report_strategy_state(name, "starting", message)
            return
        bars = self.store.read(loaded.bars_table)
        ts = bars.column(TIMESTAMP_COLUMN).cast(pa.int64()).to_numpy()
        recorded = self.catalog.list_signals(name)
        last = recorded[-1] if recorded else None
        # Start after the last signalled bar (all the bars so far on a first start): bars after it get their
        # signals now, so a restart misses none.
        upto = ts.size if last is None else int(np.searchsorted(ts, _us(last.bar_ts), side="right"))
        history = {k: bars.column(k).to_numpy()[:upto] for k in BAR_INPUTS}
        try:
            signals = LiveSignals(
                loaded.model, loaded.booster, ts[:upto], history, 0.0 if last is None else last.target
            )
        except LiveSignalError as err:
            self._fail(strategy, f"{loaded.bars_table}: {err}")
            return
        self.running[name] = _Running(loaded, signals, int(ts[upto - 1]) if upto else None)
        self.failed.pop(name, None)
        self.catalog.report_strategy_state(name, "running", f"signalling bars of {loaded.bars_table}")
        log.info("runner: started %s on %s (%d bars of history)", name, loaded.bars_table, upto)

    def _take_new_bars(self, name: str) -> None:
        state = self.running[name]
        start = None if state.last_us is None else utc_datetime(state.last_us + 1)
        bars = self.store.read(state.loaded.bars_table, start=start)
        ts = bars.column(TIMESTAMP_COLUMN).cast(pa.int64()).to_numpy()
        columns = {k: bars.column(k).to_numpy() for k in BAR_INPUTS}
        for i in range(ts.size):
            try:
                signal = state.signals.step(int(ts[i]), {k: float(columns[k][i]) for k in BAR_INPUTS})
                record = SignalRecord(
                    strategy=name,
                    bar_ts=utc_datetime(signal.ts_us),
                    prediction=signal.prediction,
                    target=signal.target,
                    model_sha256=state.loaded.strategy.model_sha256,
                )
                self.catalog.record_signal(record)
            except CatalogUnavailable:
                # The catalog is away, the strategy is fine: start it again from what was recorded (its
                # signals object has taken a bar whose signal was not stored) once the catalog is back.
                self.running.pop(name, None)
                raise
            except (LiveSignalError, CatalogError) as err:
                self._stop(name, None)
                self._fail(state.loaded.strategy, f"bar {utc_datetime(int(ts[i]))}: {err}")
                return
            state.last_us = int(ts[i])
            self._signals.labels(name).inc()
            self._last_bar.labels(name).set(ts[i] / 1e6)

    def _stop(self, name: str, message: str | None) -> None:
        self.running.pop(name, None)
        self.catalog.report_strategy_state(name, "stopped", message)
        log.info("runner: stopped %s", name)

    def _fail(self, strategy: StrategyRecord, message: str) -> None:
        log.warning("runner: strategy %s failed: %s", strategy.name, message)
        stored = self.catalog.report_strategy_state(strategy.name, "failed", message)
        self.failed[strategy.name] = stored.updated_at


def _us(moment: object) -> int:
    return int((moment - utc_datetime(0)) // timedelta(microseconds=1))  # type: ignore[operator]
