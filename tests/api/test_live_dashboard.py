"""The live page in Debian's headless Chromium (Playwright) on a strategy promoted from the demo's run, with
orders, fills and heartbeats written through the catalog as the live services write them: its numbers are
the catalog's, Start and Stop change the desired state, a new order shows without a reload within a
second, the kill switch refuses without the write token, a service that stops beating shows late within
one heartbeat interval with its alert and runbook, and every runbook is a link away."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pyarrow as pa
import pytest
from api_setup import WRITE_TOKEN, Demo

from trading_assets.bars.service import BARS_SCHEMA
from trading_assets.live import alerts
from trading_assets.live.config import PromoteConfig
from trading_assets.live.service import promote
from trading_assets.naming import live_bars_table
from trading_assets.records import NewFill, NewOrder, OrderUpdate, StrategyRecord

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = os.environ.get("DASHBOARD_SCREENSHOTS")
# Names of this module's own: other modules of the worker add theirs to the same catalog.
NAME = "dashlive"
VENUE, ACCOUNT, SYMBOL = "dashvenue", "dashacct", "ETH/USDT"
BAR = datetime(2025, 3, 4, 9, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def strategy(demo: Demo) -> StrategyRecord:
    """The strategy with a filled buy (two fills), a rejected sell, a live executor and a recorder whose
    last beat is a minute old."""
    catalog = demo.catalog
    config = PromoteConfig(name=NAME, run="btc25_run1", symbol=SYMBOL, venue=VENUE, account=ACCOUNT)
    record = promote(catalog, config)
    buy, _ = catalog.create_order(NewOrder(NAME, BAR, 0, "buy", "market", Decimal("1.25")))
    catalog.apply_order_event(buy.client_order_id, OrderUpdate("SUBMIT"))
    for trade, quantity, price, second in (("d-1", "1", "3120.5", 1), ("d-2", "0.25", "3121", 2)):
        amounts = (Decimal(quantity), Decimal(price), Decimal("0.1"))
        at = BAR + timedelta(seconds=second)
        catalog.record_fill(NewFill(VENUE, trade, buy.client_order_id, SYMBOL, "buy", *amounts, "USDT", at))
    sell, _ = catalog.create_order(NewOrder(NAME, BAR, 1, "sell", "market", Decimal("0.5")))
    catalog.apply_order_event(sell.client_order_id, OrderUpdate("SUBMIT"))
    catalog.apply_order_event(sell.client_order_id, OrderUpdate("REJECT", reason="insufficient balance"))
    catalog.heartbeat("executor", "dashlive-exec", "ready", json.dumps({"venue": VENUE, "account": ACCOUNT}))
    catalog.heartbeat("recorder", "dashlive-old", "ok")
    # A recorder that beat last a minute ago: its row as it stands once the process is gone.
    catalog._run(
        lambda db: db.execute(
            "UPDATE service_heartbeats SET last_beat = last_beat - INTERVAL 60 SECOND WHERE instance = %s",
            ["dashlive-old"],
        ),
        write=True,
    )
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    ts = pa.array([now - timedelta(minutes=n) for n in (3, 2, 1)], pa.timestamp("us", tz="UTC"))
    bars = pa.table({"ts": ts, **{column: [1.0] * len(ts) for column, _ in BARS_SCHEMA.columns}})
    demo.store.write(live_bars_table(VENUE, SYMBOL, "1m"), bars, BARS_SCHEMA)
    return record


@pytest.fixture(scope="module")
def page(base_url: str, strategy: StrategyRecord) -> Iterator[object]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1600, "height": 1200})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(base_url + "/live")
        page.wait_for_selector("body[data-ready]", timeout=20_000)
        assert page.get_attribute("body", "data-ready") == "true", page.inner_text("main")
        page.wait_for_selector("#live[data-state='live']", timeout=10_000)
        page.errors = errors  # type: ignore[attr-defined]
        yield page
        assert errors == []
        browser.close()


def _text(page, selector: str) -> str:  # type: ignore[no-untyped-def]
    return page.locator(selector).inner_text().strip()


def test_the_page_shows_the_strategy_position_orders_and_fills_of_the_catalog(page, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    row = f"#strategies-table tr[data-strategy='{NAME}']"
    assert _text(page, f"{row} [data-field='desired_state']") == "stopped"
    assert "btc25_run1 fold" in _text(page, row)
    position = demo.catalog.get_position(VENUE, ACCOUNT, SYMBOL)
    assert (position.quantity, position.average_entry_price) == (Decimal("1.25"), Decimal("3120.6"))
    assert _text(page, f"{row} [data-field='position']") == "1.25"
    held = f"#positions-table tr[data-position='{VENUE}/{ACCOUNT}/{SYMBOL}']"
    assert _text(page, f"{held} [data-field='quantity']") == "1.25"
    assert _text(page, f"{held} [data-field='average_entry_price']") == "3,120.6"
    orders = {o.seq: o for o in demo.catalog.list_orders(NAME)}
    filled = f"#orders-table tr[data-order='{orders[0].client_order_id}']"
    assert _text(page, f"{filled} [data-status]") == "FILLED"
    assert _text(page, f"{filled} [data-field='filled_quantity']") == "1.25"
    assert _text(page, f"{filled} [data-field='average_fill_price']") == "3,120.6"
    rejected = f"#orders-table tr[data-order='{orders[1].client_order_id}']"
    assert page.locator(f"{rejected} [data-status='REJECTED']").get_attribute("class").endswith("bad")
    assert "insufficient balance" in _text(page, rejected)
    for fill in demo.catalog.list_fills(orders[0].client_order_id):
        shown = f"#fills-table tr[data-fill='{VENUE}/{fill.trade_id}']"
        assert _text(page, f"{shown} [data-field='price']") == f"{fill.price:,}"
        assert _text(page, f"{shown} [data-field='quantity']") == str(fill.quantity)
        assert f"{NAME} · btc25_run1 fold" in _text(page, shown)
    if SCREENSHOTS:
        page.screenshot(path=str(Path(SCREENSHOTS) / "dashboard_live.png"), full_page=True)


def test_the_symbols_last_bar_and_lag_are_shown(page, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    table = live_bars_table(VENUE, SYMBOL, "1m")
    row = f"#data-table tr[data-symbol='{table}']"
    assert _text(page, f"{row} [data-field='last_bar']") == f"{demo.store.last_ts(table):%Y-%m-%d %H:%M} UTC"
    # Caught up when the fixture wrote it; a minute may have turned since.
    assert _text(page, f"{row} [data-field='behind']") in ("0 bars", "1 bar")


def test_a_service_that_stopped_beating_is_down_with_its_alert_and_runbook(page, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    old = page.locator("#services-table tr[data-service='recorder']")
    assert old.get_attribute("data-state") == "down" and "service-down" in old.get_attribute("class")
    assert old.locator("[data-field='instance']").inner_text() == "dashlive-old"
    assert old.locator("a[data-runbook]").get_attribute("href") == "/api/v1/live/runbooks/service-stuck"
    # The executor beats as a live one does: the module's beat alone turns late once the tests before this
    # one take longer than an interval (a loaded machine).
    where = json.dumps({"venue": VENUE, "account": ACCOUNT})
    demo.catalog.heartbeat("executor", "dashlive-exec", "ready", where)
    executor = f"#services-table tr[data-service='executor/{VENUE}/{ACCOUNT}']"
    page.wait_for_selector(f"{executor}[data-state='ok']", timeout=5_000)
    assert page.locator(executor).locator("a[data-runbook]").count() == 0
    alert = page.locator("#alerts [data-alert='LiveServiceDown'][data-subject='service:recorder']")
    assert "recorder (dashlive-old): no beat for" in alert.inner_text()
    assert alert.locator("a").get_attribute("href") == "/api/v1/live/runbooks/service-stuck"


def test_a_heartbeat_that_stops_shows_late_within_one_interval_without_a_reload(page, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    """A runner beats every HEARTBEAT_S, then stops (as a stuck process does): the page, not reloaded,
    shows it late, with its alert, no later than one interval after the beat it missed."""
    page.evaluate("window.notReloaded = true")
    row = "#services-table tr[data-service='runner']"
    for _ in range(2):
        beat = demo.catalog.heartbeat("runner", "dashlive-runner", "ok", json.dumps({"running": []}))
        page.wait_for_selector(f"{row}[data-state='ok']", timeout=5_000)
        time.sleep(alerts.HEARTBEAT_S)
    beat = demo.catalog.heartbeat("runner", "dashlive-runner", "ok", json.dumps({"running": []}))
    page.wait_for_selector(f"{row}[data-state='ok']", timeout=5_000)
    # No beat after this one: the next was due HEARTBEAT_S later.
    missed = beat.last_beat + timedelta(seconds=alerts.HEARTBEAT_S)
    page.wait_for_selector(f"{row}[data-state='late']", timeout=20_000)
    shown = datetime.now(UTC)
    assert shown - missed < timedelta(seconds=alerts.HEARTBEAT_S)
    assert page.evaluate("window.notReloaded") is True
    assert page.locator("#alerts [data-alert='LiveServiceLate'][data-subject='service:runner']").count() == 1
    page.wait_for_selector(f"{row}[data-state='down']", timeout=20_000)
    assert page.locator("#alerts [data-alert='LiveServiceDown'][data-subject='service:runner']").count() == 1


def test_a_restarted_service_replaces_its_old_instance(page, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    demo.catalog.heartbeat("recorder", "dashlive-new", "ok")
    row = "#services-table tr[data-service='recorder']"
    page.wait_for_selector(f"{row}[data-state='ok']", timeout=5_000)
    assert page.locator(f"{row} [data-field='instance']").inner_text() == "dashlive-new"
    assert "dashlive-old" in page.locator(f"{row} [data-field='replaced']").inner_text()
    page.wait_for_selector("#alerts [data-subject='service:recorder']", state="detached", timeout=5_000)


def test_every_runbook_is_linked_and_served(page, base_url: str) -> None:  # type: ignore[no-untyped-def]
    links = page.locator("#runbooks a[data-runbook]")
    assert [links.nth(i).get_attribute("data-runbook") for i in range(links.count())] == list(alerts.RUNBOOKS)
    for slug in alerts.RUNBOOKS:
        response = httpx.get(f"{base_url}/api/v1/live/runbooks/{slug}")
        if response.status_code == 200:
            assert response.text.startswith("# ") and "## What a person checks" in response.text
        else:
            assert response.status_code == 404 and "not written yet" in response.json()["detail"]


def test_stop_and_start_set_the_desired_state(page, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    row = f"#strategies-table tr[data-strategy='{NAME}']"
    page.fill("#token", WRITE_TOKEN)
    page.click(f"{row} button[data-action='start']")
    page.wait_for_selector(f"{row} button[data-action='stop']")
    assert demo.catalog.get_strategy(NAME).desired_state == "running"
    assert _text(page, f"{row} [data-field='desired_state']") == "running"
    page.click(f"{row} button[data-action='stop']")
    page.wait_for_selector(f"{row} button[data-action='start']")
    assert demo.catalog.get_strategy(NAME).desired_state == "stopped"


def test_a_new_order_shows_within_a_second_without_a_reload(page, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    page.evaluate("window.notReloaded = true")
    created, _ = demo.catalog.create_order(
        NewOrder(NAME, BAR, 2, "buy", "limit", Decimal("0.3"), Decimal("3050.25"))
    )
    started = time.monotonic()
    shown = f"#orders-table tr[data-order='{created.client_order_id}']"
    page.wait_for_selector(shown, timeout=5_000)
    assert time.monotonic() - started < 1.0
    assert page.evaluate("window.notReloaded") is True
    assert _text(page, f"{shown} [data-status]") == "INITIALIZED"
    assert _text(page, f"{shown} [data-field='limit_price']") == "3,050.25"
    # Newest first: the new order is the table's first row.
    assert page.locator("#orders-table tr").nth(1).get_attribute("data-order") == created.client_order_id


def test_the_kill_switch_refuses_without_the_write_token_and_works_with_it(page, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    row = f"#halts-table tr[data-account='{VENUE}/{ACCOUNT}']"
    page.fill("#token", "")
    page.fill(f"{row} input[data-reason]", "venue maintenance")
    page.click(f"{row} button[data-action='halt']")
    page.wait_for_selector(f"{row} .result.error")
    assert _text(page, f"{row} .result").startswith("401")
    assert demo.catalog.get_trading_halt(VENUE, ACCOUNT) is None
    page.fill("#token", WRITE_TOKEN)
    page.click(f"{row} button[data-action='halt']")
    page.wait_for_selector(f"{row} [data-field='halted']:text('HALTED')")
    halt = demo.catalog.get_trading_halt(VENUE, ACCOUNT)
    assert (halt.halted, halt.reason, halt.set_by) == (True, "venue maintenance", "api")
    page.fill(f"{row} input[data-reason]", "maintenance over")
    page.click(f"{row} button[data-action='resume']")
    page.wait_for_selector(f"{row} [data-field='halted']:text('trading')")
    assert demo.catalog.get_trading_halt(VENUE, ACCOUNT).halted is False
