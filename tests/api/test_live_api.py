"""The live routes on a real server over the demo pipeline's catalog: a strategy promoted from btc25_run1,
orders through the state machine with fills, a heartbeat and recorded bars, all written through the
catalog the live services use. What the routes return equals what was written (decimals as the exact
strings), writes need the write token and change one row, bad names are 422 naming the field, and the
event stream carries a new order within a second."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pyarrow as pa
import pytest
from api_setup import WRITE_TOKEN, Demo, _free_port, serve

from trading_assets.api.settings import ApiSettings
from trading_assets.bars.service import BARS_SCHEMA
from trading_assets.live.config import PromoteConfig
from trading_assets.live.service import promote
from trading_assets.naming import live_bars_table
from trading_assets.records import NewFill, NewOrder, OrderUpdate, SignalRecord, StrategyRecord

WRITE = {"Authorization": f"Bearer {WRITE_TOKEN}"}
# Names of this module's own: other modules of the worker add their strategies to the same catalog.
NAME, OTHER = "apilive", "apilive_idle"
VENUE, ACCOUNT, SYMBOL = "apivenue", "apiacct", "BTC/USDT"
BAR = datetime(2025, 3, 4, 5, 6, tzinfo=UTC)


@dataclass(frozen=True)
class Live:
    strategy: StrategyRecord
    filled: str  # an order filled in two fills
    rejected: str
    waiting: str  # stored, never sent
    last_bar: datetime


def _fill(cid: str, trade: str, side: str, quantity: str, price: str, fee: str, at: int) -> NewFill:
    amounts = (Decimal(quantity), Decimal(price), Decimal(fee))
    return NewFill(VENUE, trade, cid, SYMBOL, side, *amounts, "USDT", BAR + timedelta(seconds=at))


@pytest.fixture(scope="module")
def live(demo: Demo) -> Live:
    catalog = demo.catalog
    config = dict(run="btc25_run1", symbol=SYMBOL, venue=VENUE, account=ACCOUNT, amount="0.015")
    strategy = promote(catalog, PromoteConfig(name=NAME, max_position="0.5", **config))  # type: ignore[arg-type]
    # One strategy per symbol of an account: the idle one trades ETH.
    promote(catalog, PromoteConfig(name=OTHER, **{**config, "symbol": "ETH/USDT"}))  # type: ignore[arg-type]
    catalog.record_signal(SignalRecord(NAME, BAR, 0.00125, 1.0, strategy.model_sha256))
    buy, _ = catalog.create_order(NewOrder(NAME, BAR, 0, "buy", "market", Decimal("0.015")))
    catalog.apply_order_event(buy.client_order_id, OrderUpdate("SUBMIT"))
    catalog.apply_order_event(buy.client_order_id, OrderUpdate("ACCEPT", venue_order_id="v-1"))
    catalog.record_fill(_fill(buy.client_order_id, "t-1", "buy", "0.01", "42000.5", "0.042", 1))
    catalog.record_fill(_fill(buy.client_order_id, "t-2", "buy", "0.005", "42001.25", "0.021", 2))
    sell, _ = catalog.create_order(
        NewOrder(NAME, BAR, 1, "sell", "limit", Decimal("0.01"), Decimal("43000.1"))
    )
    catalog.apply_order_event(sell.client_order_id, OrderUpdate("SUBMIT"))
    catalog.apply_order_event(sell.client_order_id, OrderUpdate("REJECT", reason="insufficient balance"))
    waiting, _ = catalog.create_order(
        NewOrder(NAME, BAR + timedelta(minutes=1), 0, "buy", "market", Decimal("1E-7"))
    )
    catalog.heartbeat("executor", "apilive-1", "ok", json.dumps({"reconciled": True}))
    # Recorded bars of the symbol, the last one three closed bars ago.
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    ts = [now - timedelta(minutes=n) for n in (6, 5, 4)]
    prices = {column: [1.0] * len(ts) for column, _ in BARS_SCHEMA.columns}
    bars = pa.table({"ts": pa.array(ts, pa.timestamp("us", tz="UTC")), **prices})
    demo.store.write(live_bars_table(VENUE, SYMBOL, "1m"), bars, BARS_SCHEMA)
    return Live(strategy, buy.client_order_id, sell.client_order_id, waiting.client_order_id, ts[-1])


@pytest.fixture
def live_api(base_url: str, live: Live) -> httpx.Client:
    with httpx.Client(base_url=f"{base_url}/api/v1/live", timeout=30) as client:
        yield client  # type: ignore[misc]


def _problems(response: httpx.Response) -> dict[str, str]:
    body = response.json()
    assert set(body) == {"detail", "problems"} and "Traceback" not in response.text
    return {p["field"]: p["problem"] for p in body["problems"]}


# --- strategies ------------------------------------------------------------------------------------------


def test_a_strategy_has_its_state_lineage_rules_limits_signal_and_position(
    live_api: httpx.Client, demo: Demo
) -> None:
    listed = {s["name"]: s for s in live_api.get("/strategies").json()}
    assert {NAME, OTHER} <= set(listed)
    body = listed[NAME]
    assert body == live_api.get(f"/strategies/{NAME}").json()
    fold = {f.window.fold: f for f in demo.catalog.list_walkforward_folds("btc25_run1")}
    last = max(fold)
    dataset = demo.catalog.get_dataset("btc25")
    assert body["lineage"] == {
        "walkforward_run": "btc25_run1",
        "fold": last,
        "model_sha256": fold[last].result.model_sha256,
        "measurement": "btc25_1",
        "indicator_version": 1,
        "dataset": "btc25",
        "bars_sha256": dataset.source_sha256,
    }
    assert (body["desired_state"], body["actual_state"], body["state_message"]) == (
        "stopped",
        "stopped",
        None,
    )
    assert (body["symbol"], body["venue"], body["account"]) == (SYMBOL, VENUE, ACCOUNT)
    assert body["rules"] == {"sizing": "units", "amount": "0.015", "direction": "long", "dead_zone": "flat"}
    assert body["limits"] == {
        "max_position": "0.5",
        "max_order_notional": "100000",
        "max_orders_per_minute": 10,
    }
    assert body["latest_signal"]["prediction"] == 0.00125 and body["latest_signal"]["target"] == 1.0
    assert datetime.fromisoformat(body["latest_signal"]["bar_ts"]) == BAR
    # 0.01 at 42000.5 and 0.005 at 42001.25: (420.005 + 210.00625) / 0.015
    assert body["position"]["quantity"] == "0.015"
    assert body["position"]["average_entry_price"] == "42000.75"
    assert body["position"]["realised_pnl"] == "0"
    assert listed[OTHER]["latest_signal"] is None


def test_start_and_stop_need_the_write_token_and_change_one_row(live_api: httpx.Client, demo: Demo) -> None:
    before = {s.name: s for s in demo.catalog.list_strategies()}
    refused = live_api.put(f"/strategies/{OTHER}/desired-state", json={"state": "running"})
    assert refused.status_code == 401
    wrong = live_api.put(
        f"/strategies/{OTHER}/desired-state",
        json={"state": "running"},
        headers={"Authorization": "Bearer nope"},
    )
    assert wrong.status_code == 401
    assert demo.catalog.get_strategy(OTHER) == before[OTHER]
    started = live_api.put(f"/strategies/{OTHER}/desired-state", json={"state": "running"}, headers=WRITE)
    assert started.status_code == 200 and started.json()["desired_state"] == "running"
    after = {s.name: s for s in demo.catalog.list_strategies()}
    assert after[OTHER].desired_state == "running"
    assert {n for n in before if after[n] != before[n]} == {OTHER}
    stopped = live_api.put(f"/strategies/{OTHER}/desired-state", json={"state": "stopped"}, headers=WRITE)
    assert stopped.json()["desired_state"] == "stopped" == demo.catalog.get_strategy(OTHER).desired_state


def test_without_a_write_token_on_the_server_start_and_stop_are_403(demo: Demo, live: Live) -> None:
    with serve(ApiSettings(port=_free_port()), demo) as url:
        response = httpx.put(f"{url}/api/v1/live/strategies/{NAME}/desired-state", json={"state": "running"})
    assert response.status_code == 403
    assert demo.catalog.get_strategy(NAME).desired_state == "stopped"


@pytest.mark.parametrize(
    ("name", "body", "field"),
    [
        (NAME, {"state": "paused"}, "state"),
        (NAME, {"state": "running", "extra": 1}, "extra"),
        (NAME, {}, "state"),
        ("Not-A-Name", {"state": "running"}, "name"),
        ("a" * 25, {"state": "running"}, "name"),
    ],
)
def test_a_bad_state_or_name_is_422_naming_the_field(
    live_api: httpx.Client, name: str, body: dict, field: str
) -> None:
    response = live_api.put(f"/strategies/{name}/desired-state", json=body, headers=WRITE)
    assert response.status_code == 422
    assert field in _problems(response)


def test_an_unknown_strategy_is_404(live_api: httpx.Client) -> None:
    assert (
        live_api.put(
            "/strategies/no_such_one/desired-state", json={"state": "running"}, headers=WRITE
        ).status_code
        == 404
    )
    assert live_api.get("/strategies/no_such_one").status_code == 404


# --- orders, fills, positions ----------------------------------------------------------------------------


def test_orders_are_the_catalogs_newest_first_with_decimals_as_strings(
    live_api: httpx.Client, live: Live
) -> None:
    orders = live_api.get("/orders", params={"strategy": NAME}).json()
    assert orders["next_cursor"] is None
    assert [o["client_order_id"] for o in orders["orders"]] == [live.waiting, live.rejected, live.filled]
    waiting, rejected, filled = orders["orders"]
    assert (filled["status"], filled["quantity"], filled["filled_quantity"]) == ("FILLED", "0.015", "0.015")
    assert filled["average_fill_price"] == "42000.75" and filled["venue_order_id"] == "v-1"
    assert (rejected["status"], rejected["reason"], rejected["limit_price"]) == (
        "REJECTED",
        "insufficient balance",
        "43000.1",
    )
    assert (waiting["status"], waiting["quantity"], waiting["filled_quantity"]) == (
        "INITIALIZED",
        "0.0000001",
        "0",
    )
    only = live_api.get(
        "/orders", params=[("strategy", NAME), ("status", "REJECTED"), ("status", "FILLED")]
    ).json()
    assert [o["client_order_id"] for o in only["orders"]] == [live.rejected, live.filled]


def test_orders_page_through_with_the_cursor(live_api: httpx.Client, live: Live) -> None:
    seen, cursor = [], None
    while True:
        params = {"strategy": NAME, "limit": 1, **({"cursor": cursor} if cursor else {})}
        page = live_api.get("/orders", params=params).json()
        seen += [o["client_order_id"] for o in page["orders"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [live.waiting, live.rejected, live.filled]


def test_an_order_has_its_whole_history(live_api: httpx.Client, live: Live, demo: Demo) -> None:
    body = live_api.get(f"/orders/{live.filled}").json()
    assert body["status"] == "FILLED"
    events = [(e["seq"], e["event"], e["from_status"], e["to_status"]) for e in body["events"]]
    assert events == [
        (e.seq, e.event, e.from_status, e.to_status) for e in demo.catalog.list_order_events(live.filled)
    ]
    assert [e[1] for e in events] == ["CREATE", "SUBMIT", "ACCEPT", "FILL", "FILL"]


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/orders/not an id", {}, "client_order_id"),
        ("/orders", {"strategy": "Bad Name"}, "strategy"),
        ("/orders", {"status": "DONE"}, "status.0"),
        ("/orders", {"cursor": "nope"}, "cursor"),
        ("/orders", {"cursor": "nobody-0000000-000"}, "cursor"),
        ("/orders", {"limit": 0}, "limit"),
        ("/fills", {"venue": "Bad!"}, "venue"),
        ("/fills", {"client_order_id": "x"}, "client_order_id"),
        ("/fills", {"cursor": "apivenue/none"}, "cursor"),
        ("/positions", {"account": "a b"}, "account"),
        ("/halts/Bad/acct", {}, "venue"),
        ("/halts/apivenue/a%20b", {}, "account"),
    ],
)
def test_bad_reads_are_422_naming_the_field(
    live_api: httpx.Client, path: str, params: dict, field: str
) -> None:
    response = live_api.get(path, params=params)
    assert response.status_code == 422, response.text
    assert field in _problems(response)


def test_an_unknown_order_is_404(live_api: httpx.Client) -> None:
    assert live_api.get("/orders/apilive-0000000-zzz").status_code == 404


def test_fills_have_their_decimals_and_lineage(live_api: httpx.Client, live: Live, demo: Demo) -> None:
    body = live_api.get("/fills", params={"strategy": NAME}).json()
    assert [(f["trade_id"], f["quantity"], f["price"], f["fee"]) for f in body["fills"]] == [
        ("t-2", "0.005", "42001.25", "0.021"),
        ("t-1", "0.01", "42000.5", "0.042"),
    ]
    lineage = body["fills"][0]["lineage"]
    strategy = live.strategy
    assert lineage == {
        "strategy": NAME,
        "bar_ts": lineage["bar_ts"],
        "walkforward_run": "btc25_run1",
        "fold": strategy.fold,
        "model_sha256": strategy.model_sha256,
        "measurement": "btc25_1",
        "indicator_version": 1,
        "dataset": "btc25",
        "bars_sha256": demo.catalog.get_dataset("btc25").source_sha256,
    }
    assert datetime.fromisoformat(lineage["bar_ts"]) == BAR
    assert live_api.get("/fills", params={"client_order_id": live.rejected}).json()["fills"] == []
    first = live_api.get("/fills", params={"venue": VENUE, "limit": 1}).json()
    assert first["next_cursor"] == f"{VENUE}/t-2"
    rest = live_api.get("/fills", params={"venue": VENUE, "cursor": first["next_cursor"]}).json()
    assert [f["trade_id"] for f in rest["fills"]] == ["t-1"]


def test_positions_are_the_catalogs(live_api: httpx.Client, demo: Demo) -> None:
    body = live_api.get("/positions", params={"venue": VENUE, "account": ACCOUNT}).json()
    stored = demo.catalog.get_position(VENUE, ACCOUNT, SYMBOL)
    assert [(p["symbol"], p["quantity"], p["average_entry_price"], p["realised_pnl"]) for p in body] == [
        (SYMBOL, "0.015", "42000.75", "0")
    ]
    assert Decimal(body[0]["average_entry_price"]) == stored.average_entry_price


# --- health ----------------------------------------------------------------------------------------------


def test_health_has_each_heartbeat_the_reconciliation_and_the_symbols_lag(
    live_api: httpx.Client, live: Live, demo: Demo
) -> None:
    run = demo.catalog.start_reconciliation("executor", VENUE, ACCOUNT)
    demo.catalog.finish_reconciliation(run.id, "ok", json.dumps({"mismatches": []}))
    body = live_api.get("/health").json()
    now = datetime.fromisoformat(body["now"])
    beat = next(b for b in body["services"] if b["instance"] == "apilive-1")
    assert (beat["service"], beat["status"], beat["detail"], beat["stale"]) == (
        "executor",
        "ok",
        {"reconciled": True},
        False,
    )
    assert 0 <= beat["age_s"] < 15
    reconciled = next(r for r in body["reconciliations"] if (r["venue"], r["account"]) == (VENUE, ACCOUNT))
    assert (reconciled["id"], reconciled["status"], reconciled["details"]) == (
        run.id,
        "ok",
        {"mismatches": []},
    )
    data = next(d for d in body["data"] if d["venue"] == VENUE and d["symbol"] == SYMBOL)
    assert data["table"] == "live_apivenue_btc_usdt_1m" and data["timeframe"] == "1m"
    assert set(data["strategies"]) == {NAME}
    assert datetime.fromisoformat(data["last_bar"]) == live.last_bar
    # Bars that opened before the one forming now have closed; those after the last stored are behind.
    forming = now.replace(second=0, microsecond=0)
    assert data["bars_behind"] == (forming - live.last_bar) // timedelta(minutes=1) - 1


def test_a_service_that_stopped_beating_is_stale(live_api: httpx.Client, demo: Demo) -> None:
    demo.catalog.heartbeat("recorder", "apilive-old", "ok")
    # A recorder that beat last a minute ago: its row as it stands once the process is gone.
    demo.catalog._run(
        lambda db: db.execute(
            "UPDATE service_heartbeats SET last_beat = last_beat - INTERVAL 60 SECOND WHERE instance = %s",
            ["apilive-old"],
        ),
        write=True,
    )
    beat = next(b for b in live_api.get("/health").json()["services"] if b["instance"] == "apilive-old")
    assert beat["stale"] is True and beat["age_s"] >= 60


# --- kill switch -----------------------------------------------------------------------------------------


def test_the_kill_switch_needs_the_write_token_and_a_reason(live_api: httpx.Client, demo: Demo) -> None:
    path = f"/halts/{VENUE}/{ACCOUNT}"
    never_set = {"venue": VENUE, "account": ACCOUNT, "halted": False, "reason": None, "set_by": None}
    assert live_api.get(path).json() == {**never_set, "updated_at": None}
    assert live_api.put(path, json={"halted": True, "reason": "drill"}).status_code == 401
    refusals = [
        ({"halted": True}, "reason"),
        ({"halted": True, "reason": "  "}, "reason"),
        ({"halted": "yes", "reason": "x"}, "halted"),
    ]
    for body, field in refusals:
        response = live_api.put(path, json=body, headers=WRITE)
        assert response.status_code == 422 and field in _problems(response)
    assert demo.catalog.get_trading_halt(VENUE, ACCOUNT) is None
    halted = live_api.put(path, json={"halted": True, "reason": "drill"}, headers=WRITE).json()
    stored = demo.catalog.get_trading_halt(VENUE, ACCOUNT)
    assert (stored.halted, stored.reason, stored.set_by) == (True, "drill", "api")
    assert halted == live_api.get(path).json()
    assert {"venue": VENUE, "account": ACCOUNT, "halted": True}.items() <= halted.items()
    assert any(h == halted for h in live_api.get("/halts").json())
    live_api.put(path, json={"halted": False, "reason": "drill over"}, headers=WRITE)
    assert demo.catalog.get_trading_halt(VENUE, ACCOUNT).halted is False


# --- events ----------------------------------------------------------------------------------------------


def test_the_stream_opens_with_everything_then_carries_a_new_order_within_a_second(
    live_api: httpx.Client, live: Live, demo: Demo
) -> None:
    names: dict[str, list[dict]] = {}
    with live_api.stream("GET", "/events", timeout=10) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        event = None
        created_at = None
        for line in lines:
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: "):
                data = json.loads(line[len("data: ") :])
                names.setdefault(event, []).append(data)
                if (
                    event == "order"
                    and created_at is not None
                    and data["strategy"] == NAME
                    and data["seq"] == 5
                ):
                    break
            elif line == "" and created_at is None and "data" in names:
                # The opening snapshot is out (the data health comes last): now an order arrives.
                demo.catalog.create_order(NewOrder(NAME, BAR, 5, "buy", "market", Decimal("0.002")))
                created_at = time.monotonic()
        delay = time.monotonic() - created_at
    assert delay < 1.0
    assert NAME in {s["name"] for s in names["strategy"]}
    assert {live.filled, live.rejected, live.waiting} <= {o["client_order_id"] for o in names["order"]}
    assert {"t-1", "t-2"} <= {f["trade_id"] for f in names["fill"]}
    assert any(p["venue"] == VENUE for p in names["position"])
    assert any(h["instance"] == "apilive-1" for h in names["heartbeat"])
    assert any(d["venue"] == VENUE for d in names["data"])
