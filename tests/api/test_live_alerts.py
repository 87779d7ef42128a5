"""The services' states and the firing alerts, from heartbeats, strategies, reconciliations, the kill switch,
orders and recorded bars written through the catalog as the live services write them, read through the
live routes of a real server; and the runbooks each alert names, served by the same server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pyarrow as pa
import pytest
from api_setup import Demo

from trading_assets.api import live_routes
from trading_assets.bars.service import BARS_SCHEMA
from trading_assets.live import alerts, checks, executor, recorder, runner
from trading_assets.live.alerts import AlertRules, service_states
from trading_assets.live.config import PromoteConfig
from trading_assets.live.service import promote
from trading_assets.naming import live_bars_table
from trading_assets.records import HeartbeatRecord, NewOrder, OrderUpdate

# Names of this module's own: other modules of the worker add theirs to the same catalog.
NAME, VENUE, ACCOUNT, SYMBOL = "alertlive", "alertvenue", "alertacct", "XRP/USDT"
BAR = datetime(2025, 3, 4, 7, 0, tzinfo=UTC)
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def _beat(service: str, instance: str, age_s: float, status: str = "ok", **detail: object) -> HeartbeatRecord:
    return HeartbeatRecord(service, instance, status, json.dumps(detail), NOW - timedelta(seconds=age_s))


@pytest.fixture(scope="module")
def strategy(demo: Demo) -> str:
    promote(
        demo.catalog, PromoteConfig(name=NAME, run="btc25_run1", symbol=SYMBOL, venue=VENUE, account=ACCOUNT)
    )
    return NAME


@pytest.fixture
def live_api(base_url: str, strategy: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{base_url}/api/v1/live", timeout=30) as client:
        yield client


def _firing(live_api: httpx.Client, subject: str) -> list[dict]:
    return [a for a in live_api.get("/alerts").json()["alerts"] if a["subject"] == subject]


def _backdate(demo: Demo, table: str, column: str, seconds: int, where: str, key: str) -> None:
    demo.catalog._run(
        lambda db: db.execute(
            f"UPDATE {table} SET {column} = {column} - INTERVAL {seconds} SECOND WHERE {where} = %s", [key]
        ),
        write=True,
    )


# --- services --------------------------------------------------------------------------------------------


def test_the_heartbeat_interval_and_lag_limit_are_the_services_and_dagsters() -> None:
    assert alerts.HEARTBEAT_S == runner.HEARTBEAT_S == executor.HEARTBEAT_S == recorder.HEARTBEAT_S
    assert alerts.LAG_BARS == checks.WARN_BARS
    # One missed beat is late before the next interval ends: a stuck service shows within one.
    assert alerts.HEARTBEAT_S < alerts.LATE_AFTER_S < 2 * alerts.HEARTBEAT_S < alerts.DOWN_AFTER_S


@pytest.mark.parametrize(
    ("age_s", "status", "reasons", "state"),
    [
        (0.0, "ok", [], "ok"),
        (alerts.LATE_AFTER_S, "ready", [], "ok"),
        (0.0, "not ready", ["not reconciled"], "not ready"),
        (0.0, "ok", ["broker disconnected"], "not ready"),
        (alerts.LATE_AFTER_S + 0.1, "ok", [], "late"),
        (alerts.LATE_AFTER_S + 0.1, "not ready", ["not reconciled"], "late"),
        (alerts.DOWN_AFTER_S + 0.1, "ok", [], "down"),
        # Its last beat as it exited (SIGTERM): stopped while a successor may come, down once none has.
        (0.0, "stopped", ["stopped"], "stopped"),
        (alerts.LATE_AFTER_S + 0.1, "stopped", ["stopped"], "stopped"),
        (alerts.DOWN_AFTER_S + 0.1, "stopped", ["stopped"], "down"),
    ],
)
def test_a_services_state_is_its_newest_beats(age_s: float, status: str, reasons: list, state: str) -> None:
    [shown] = service_states([_beat("runner", "h-1", age_s, status, reasons=reasons)], NOW)
    assert (shown.state, shown.reasons, shown.instance) == (state, tuple(reasons), "h-1")


def test_a_service_that_stopped_links_the_eviction_runbook_and_alerts_only_once_it_stays_down() -> None:
    [stopping] = service_states([_beat("runner", "h-1", 1.0, "stopped", reasons=["stopped"])], NOW)
    assert (stopping.state, stopping.runbook) == ("stopped", "pod-eviction")
    assert AlertRules()._services([stopping], NOW) == []
    [gone] = service_states([_beat("runner", "h-1", alerts.DOWN_AFTER_S + 1, "stopped")], NOW)
    [alert] = AlertRules()._services([gone], NOW)
    assert (alert.name, alert.runbook) == ("LiveServiceDown", "pod-eviction")
    assert "stopped" in alert.summary and "not started again" in alert.summary


def test_a_recorder_not_ready_links_the_runbook_of_what_it_waits_for() -> None:
    """Spooling because the store is away is the QuestDB page's; waiting for the venue, the broker's."""
    spooling = ["SOL/USDT: store unavailable: 12 bars spooled"]
    [store_away] = service_states([_beat("recorder", "h-1", 0.0, "not ready", reasons=spooling)], NOW)
    [venue_away] = service_states(
        [_beat("recorder", "h-2", 0.0, "not ready", reasons=["SOL/USDT: not connected"])], NOW
    )
    assert (store_away.state, store_away.runbook) == ("not ready", "questdb-down")
    assert (venue_away.state, venue_away.runbook) == ("not ready", "broker-disconnect")


def test_a_replaced_instance_is_not_down_and_each_executor_account_is_its_own_service() -> None:
    beats = [
        _beat("executor", "h-10", 600.0, venue="binance", account="main"),  # before a restart
        _beat("executor", "h-11", 1.0, venue="binance", account="main"),
        _beat("executor", "h-12", 60.0, venue="binance", account="other"),
        _beat("runner", "h-20", 900.0),
        _beat("runner", "h-21", 2.0),
    ]
    states = {s.key: s for s in service_states(beats, NOW)}
    assert set(states) == {"executor/binance/main", "executor/binance/other", "runner"}
    main = states["executor/binance/main"]
    assert (main.instance, main.state, main.replaced) == ("h-11", "ok", ("h-10",))
    assert (states["executor/binance/other"].state, states["executor/binance/other"].runbook) == (
        "down",
        "service-stuck",
    )
    assert (states["runner"].instance, states["runner"].state, states["runner"].replaced) == (
        "h-21",
        "ok",
        ("h-20",),
    )


def test_a_service_not_ready_alerts_only_after_its_grace(demo: Demo, strategy: str) -> None:
    """An executor that goes on beating "not ready" (each beat fresh at the time the rules look)."""
    rules, now = AlertRules(), datetime.now(UTC)
    subject = f"service:executor/{VENUE}/{ACCOUNT}"
    scope = {"venue": VENUE, "account": ACCOUNT}

    def firing(after_s: float, status: str = "not ready", reasons: tuple = ("reconciliation failed: 503",)):
        at = now + timedelta(seconds=after_s)
        beat = HeartbeatRecord(
            "executor", "alertlive-ex", status, json.dumps({"reasons": reasons, **scope}), at
        )
        return [
            a
            for a in rules.evaluate(demo.catalog, at, (), service_states([beat], at))
            if a.subject == subject
        ]

    assert firing(0) == []
    assert firing(alerts.NOT_READY_FOR_S - 1) == []
    [alert] = firing(alerts.NOT_READY_FOR_S + 1)
    assert (alert.name, alert.severity, alert.since, alert.runbook) == (
        "LiveServiceNotReady",
        "warning",
        now,
        "broker-disconnect",
    )
    assert "alertlive-ex" in alert.summary and "reconciliation failed: 503" in alert.summary
    # Ready again: the alert ends, and a later not-ready counts its grace from then.
    assert firing(alerts.NOT_READY_FOR_S + 2, "ready", ()) == []
    assert firing(alerts.NOT_READY_FOR_S + 3) == []


def test_the_services_route_gives_each_current_instance(live_api: httpx.Client, demo: Demo) -> None:
    demo.catalog.heartbeat("recorder", "alertlive-rec", "ok", json.dumps({"venue": VENUE}))
    _backdate(demo, "service_heartbeats", "last_beat", 30, "instance", "alertlive-rec")
    [shown] = [s for s in live_api.get("/services").json() if s["key"] == f"recorder/{VENUE}"]
    assert (shown["instance"], shown["state"], shown["runbook"]) == ("alertlive-rec", "down", "service-stuck")
    [alert] = _firing(live_api, f"service:recorder/{VENUE}")
    assert (alert["name"], alert["severity"], alert["runbook"]) == (
        "LiveServiceDown",
        "critical",
        "service-stuck",
    )
    assert alert["summary"].startswith(f"recorder/{VENUE} (alertlive-rec): no beat for ")


# --- strategies, reconciliations, kill switch, orders, bars ----------------------------------------------


def test_a_failed_strategy_alerts_and_links_its_runbook(live_api: httpx.Client, demo: Demo) -> None:
    demo.catalog.report_strategy_state(NAME, "failed", "the model file's hash changed")
    try:
        [alert] = _firing(live_api, f"strategy:{NAME}")
        assert (alert["name"], alert["severity"], alert["runbook"]) == (
            "LiveStrategyFailed",
            "critical",
            "service-stuck",
        )
        assert alert["summary"] == f"strategy {NAME}: failed: the model file's hash changed"
        assert live_api.get(f"/strategies/{NAME}").json()["runbook"] == "service-stuck"
    finally:
        demo.catalog.report_strategy_state(NAME, "stopped")
    assert _firing(live_api, f"strategy:{NAME}") == []
    assert live_api.get(f"/strategies/{NAME}").json()["runbook"] is None


@pytest.mark.parametrize(
    ("status", "name"), [("mismatch", "LiveReconciliationMismatch"), ("failed", "LiveReconciliationFailed")]
)
def test_the_latest_reconciliation_gone_wrong_alerts_until_one_is_ok(
    live_api: httpx.Client, demo: Demo, status: str, name: str
) -> None:
    subject = f"account:{VENUE}/{ACCOUNT}"
    run = demo.catalog.start_reconciliation("executor", VENUE, ACCOUNT)
    details = (
        {"mismatches": [{"order": "x", "field": "status"}]} if status == "mismatch" else {"error": "503"}
    )
    demo.catalog.finish_reconciliation(run.id, status, json.dumps(details))
    [alert] = [a for a in _firing(live_api, subject) if a["name"].startswith("LiveReconciliation")]
    assert (alert["name"], alert["runbook"]) == (name, "broker-disconnect")
    assert f"reconciliation {run.id} {status}" in alert["summary"]
    again = demo.catalog.start_reconciliation("executor", VENUE, ACCOUNT)
    demo.catalog.finish_reconciliation(again.id, "ok", json.dumps({"mismatches": []}))
    assert [a for a in _firing(live_api, subject) if a["name"].startswith("LiveReconciliation")] == []


def test_the_kill_switch_on_is_an_alert(live_api: httpx.Client, demo: Demo) -> None:
    demo.catalog.set_trading_halt(VENUE, ACCOUNT, True, "drill", "test")
    try:
        [alert] = [
            a for a in _firing(live_api, f"account:{VENUE}/{ACCOUNT}") if a["name"] == "LiveKillSwitchOn"
        ]
        assert alert["severity"] == "info" and "kill switch on (drill, by test)" in alert["summary"]
    finally:
        demo.catalog.set_trading_halt(VENUE, ACCOUNT, False, "drill over", "test")
    assert [
        a for a in _firing(live_api, f"account:{VENUE}/{ACCOUNT}") if a["name"] == "LiveKillSwitchOn"
    ] == []


def test_an_order_unknown_for_minutes_is_stuck(live_api: httpx.Client, demo: Demo) -> None:
    order, _ = demo.catalog.create_order(NewOrder(NAME, BAR, 0, "buy", "market", Decimal("2.5")))
    cid = order.client_order_id
    demo.catalog.apply_order_event(cid, OrderUpdate("SUBMIT"))
    demo.catalog.apply_order_event(cid, OrderUpdate("TIMEOUT"))
    assert demo.catalog.get_order(cid).status == "UNKNOWN"
    # Unknown for a moment is the executor's to resolve: no alert yet, but its runbook is linked.
    assert _firing(live_api, f"order:{cid}") == []
    assert live_api.get(f"/orders/{cid}").json()["runbook"] == "broker-disconnect"
    _backdate(demo, "orders", "updated_at", int(alerts.ORDER_STUCK_S) + 60, "client_order_id", cid)
    [alert] = _firing(live_api, f"order:{cid}")
    assert (alert["name"], alert["severity"], alert["runbook"]) == (
        "LiveOrderStuck",
        "critical",
        "broker-disconnect",
    )
    assert alert["summary"].startswith(f"order {cid} ({NAME}, buy 2.5 {SYMBOL}): UNKNOWN for ")


def test_recorded_bars_lagging_alert_from_the_lag_the_check_counts(
    live_api: httpx.Client, demo: Demo
) -> None:
    table = live_bars_table(VENUE, SYMBOL, "1m")
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    ts = pa.array([now - timedelta(minutes=n) for n in (12, 11, 10)], pa.timestamp("us", tz="UTC"))
    demo.store.write(
        table, pa.table({"ts": ts, **{c: [1.0] * 3 for c, _ in BARS_SCHEMA.columns}}), BARS_SCHEMA
    )
    [alert] = _firing(live_api, f"data:{table}")
    assert (alert["name"], alert["severity"], alert["runbook"]) == (
        "LiveBarsLagging",
        "warning",
        "questdb-down",
    )
    assert f"{table}: " in alert["summary"] and "closed bars not recorded" in alert["summary"]
    caught_up = pa.array([now - timedelta(minutes=n) for n in range(9, 0, -1)], pa.timestamp("us", tz="UTC"))
    bars = pa.table({"ts": caught_up, **{c: [1.0] * 9 for c, _ in BARS_SCHEMA.columns}})
    demo.store.write(table, bars, BARS_SCHEMA)
    assert _firing(live_api, f"data:{table}") == []


def test_the_event_stream_sends_the_alerts_when_they_change(live_api: httpx.Client, demo: Demo) -> None:
    subject = f"account:{VENUE}/{ACCOUNT}"
    sent = []
    with live_api.stream("GET", "/events", timeout=10) as response:
        event = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: ") and event == "alerts":
                names = [
                    a["name"] for a in json.loads(line[len("data: ") :])["alerts"] if a["subject"] == subject
                ]
                sent.append(names)
                if len(sent) == 1:
                    demo.catalog.set_trading_halt(VENUE, ACCOUNT, True, "stream drill", "test")
                elif "LiveKillSwitchOn" in names:
                    break
    demo.catalog.set_trading_halt(VENUE, ACCOUNT, False, "stream drill over", "test")
    assert "LiveKillSwitchOn" not in sent[0] and "LiveKillSwitchOn" in sent[-1]


# --- runbooks --------------------------------------------------------------------------------------------


def test_a_runbook_is_served_as_text_and_anything_else_is_404(
    live_api: httpx.Client, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(live_routes, "RUNBOOK_DIR", tmp_path)
    (tmp_path / "lost-link.md").write_text("# Lost link\n\n## Symptoms\n")
    page = live_api.get("/runbooks/lost-link")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/plain")
    assert page.text == "# Lost link\n\n## Symptoms\n"
    missing = live_api.get("/runbooks/pod-eviction")
    assert missing.status_code == 404
    assert (
        missing.json()["detail"]
        == "runbook 'pod-eviction' is not written yet (docs/runbooks/pod-eviction.md)"
    )
    (tmp_path / "secret.md").write_text("# not a runbook")
    for slug in ("secret", "README", "lost-link.md"):
        refused = live_api.get(f"/runbooks/{slug}")
        assert refused.status_code == 404 and "the runbooks are broker-disconnect" in refused.json()["detail"]
    assert live_api.get("/runbooks/..%2Fsecret").status_code == 404
    index = {r["slug"]: r for r in live_api.get("/runbooks").json()}
    assert list(index) == list(alerts.RUNBOOKS)
    assert index["lost-link"]["title"] == "Lost link" and index["pod-eviction"]["title"] is None


def test_an_installed_package_serves_the_runbooks_of_the_folder_trading_runbooks_dir_names(
    live_api: httpx.Client, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    # An image has no docs/ beside its installed package: it copies the pages and names their folder.
    monkeypatch.setattr(live_routes, "RUNBOOK_DIR", tmp_path / "not-there")
    monkeypatch.setenv("TRADING_RUNBOOKS_DIR", str(tmp_path))
    (tmp_path / "questdb-down.md").write_text("# QuestDB down\n")
    assert live_api.get("/runbooks/questdb-down").text == "# QuestDB down\n"
    titles = {r["slug"]: r["title"] for r in live_api.get("/runbooks").json()}
    assert titles["questdb-down"] == "QuestDB down" and titles["lost-link"] is None
