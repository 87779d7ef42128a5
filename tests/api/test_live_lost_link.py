"""The lost link between the services and the operator (docs/runbooks/lost-link.md), on real processes: the
API server (`trading-assets serve`) and a strategy runner (`trading-assets live runner`) on the demo's
catalog, the live page in Debian's headless Chromium. The server is killed (-9); while it is away an
order fills and the runner is killed too, so its heartbeat stops; the server comes back on the same port.
The page, never reloaded, says it is reconnecting while the link is down, then reconnects by itself and
shows the state as it is now: the order filled, its fill, the runner down with its alert."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from api_setup import Demo, _free_port

from trading_assets.live import alerts
from trading_assets.live.config import PromoteConfig
from trading_assets.live.service import promote
from trading_assets.records import NewFill, NewOrder, OrderUpdate

CHROMIUM = "/usr/bin/chromium"
NAME, VENUE, ACCOUNT, SYMBOL = "lostlink", "lostvenue", "lostacct", "ADA/USDT"
BAR = datetime(2025, 3, 4, 11, 0, tzinfo=UTC)


def _until(what: str, done: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        time.sleep(0.1)


class Process:
    """`python -m trading_assets.cli ARGS` on the demo's data, its output in a file."""

    def __init__(self, root: Path, demo: Demo, name: str, *args: str) -> None:
        env = {**os.environ, "TRADING_DATA_DIR": str(demo.data), "PYTHONUNBUFFERED": "1"}
        for configured in ("TRADING_CATALOG", "TRADING_TIMESERIES", "TRADING_API_READ_TOKEN"):
            env.pop(configured, None)
        self.log = root / f"{name}.log"
        with self.log.open("ab") as out:
            command = [sys.executable, "-m", "trading_assets.cli", *args]
            self.process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-2000:]


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for p in started:
        if p.process.poll() is None:
            p.kill()


def _serve(root: Path, demo: Demo, port: int, started: list[Process]) -> Process:
    server = Process(root, demo, "serve", "serve", "--port", str(port))
    started.append(server)

    def answers() -> bool:
        assert server.process.poll() is None, server.output()
        try:
            return httpx.get(f"http://127.0.0.1:{port}/api/v1/live/services", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    _until("the API server answers", answers, 60)
    return server


def test_the_page_reconnects_by_itself_and_catches_up_after_the_server_was_away(
    demo: Demo, tmp_path: Path, processes: list[Process]
) -> None:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run installs it)")
    from playwright.sync_api import sync_playwright

    catalog = demo.catalog
    promote(catalog, PromoteConfig(name=NAME, run="btc25_run1", symbol=SYMBOL, venue=VENUE, account=ACCOUNT))
    order, _ = catalog.create_order(NewOrder(NAME, BAR, 0, "buy", "market", Decimal("40")))
    cid = order.client_order_id
    catalog.apply_order_event(cid, OrderUpdate("SUBMIT"))
    catalog.apply_order_event(cid, OrderUpdate("ACCEPT", venue_order_id="lost-1"))
    runner = Process(tmp_path, demo, "runner", "live", "runner", "--port", str(_free_port()))
    processes.append(runner)

    def runner_beats() -> bool:
        assert runner.process.poll() is None, runner.output()
        return any(b.instance.endswith(f"-{runner.process.pid}") for b in catalog.list_heartbeats("runner"))

    _until("the runner beats", runner_beats, 60)
    port = _free_port()
    server = _serve(tmp_path, demo, port, processes)
    row = "#services-table tr[data-service='runner']"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1600, "height": 1200})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"http://127.0.0.1:{port}/live")
        page.wait_for_selector("body[data-ready='true']", timeout=20_000)
        page.wait_for_selector("#live[data-state='live']", timeout=10_000)
        page.evaluate("window.notReloaded = true")
        page.wait_for_selector(f"{row}[data-state='ok']", timeout=10_000)
        shown = f"#orders-table tr[data-order='{cid}'] [data-status]"
        assert page.locator(shown).inner_text() == "ACCEPTED"
        assert page.locator("#link-lost").is_hidden()

        server.kill()
        page.wait_for_selector("#live[data-state='reconnecting']", timeout=10_000)
        assert page.locator("#link-lost").is_visible()
        # While the link is down: the order fills and the runner's heartbeat stops for good.
        fill = NewFill(
            VENUE, "lost-t1", cid, SYMBOL, "buy", Decimal("40"), Decimal("0.61"), Decimal("0"), "USDT", BAR
        )
        catalog.record_fill(fill)
        runner.kill()
        [last] = [
            b for b in catalog.list_heartbeats("runner") if b.instance.endswith(f"-{runner.process.pid}")
        ]
        down_at = last.last_beat + timedelta(seconds=alerts.DOWN_AFTER_S + 1)
        time.sleep(max(0.0, (down_at - datetime.now(UTC)).total_seconds()))
        # Still down, and still saying so: the page shows what it had.
        assert page.locator("#link-lost").is_visible()
        assert page.locator(shown).inner_text() == "ACCEPTED"
        assert page.locator(f"{row}").get_attribute("data-state") == "ok"

        _serve(tmp_path, demo, port, processes)
        page.wait_for_selector("#live[data-state='live']", timeout=20_000)
        page.wait_for_selector(f"#orders-table tr[data-order='{cid}'] [data-status='FILLED']", timeout=5_000)
        page.wait_for_selector(f"#fills-table tr[data-fill='{VENUE}/lost-t1']", timeout=5_000)
        page.wait_for_selector(f"{row}[data-state='down']", timeout=5_000)
        alert = page.locator("#alerts [data-alert='LiveServiceDown'][data-subject='service:runner']")
        alert.wait_for(timeout=5_000)
        assert f"-{runner.process.pid}" in alert.inner_text()
        assert page.locator("#link-lost").is_hidden()
        assert page.evaluate("window.notReloaded") is True
        assert errors == []
        browser.close()
