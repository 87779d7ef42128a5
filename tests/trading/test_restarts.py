"""Each live service killed with SIGKILL and started again comes back in the right state: the executor
records what the venue did while it was down (the rest of a partial fill), is ready only after a
reconciliation has succeeded, and never places an order twice, however often it restarts; the runner neither
misses a bar nor signals one twice; the recorder fills the gap from the venue. Real processes on Postgres and
QuestDB, the real ccxt client, the local venue's clock stepped by hand (`restart_setup`)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from restart_setup import FIRST_START, Floor, Production


@pytest.fixture
def floor_at(production: Production, tmp_path):  # type: ignore[no-untyped-def]
    floors: list[Floor] = []

    def make(name: str, start: int) -> Floor:
        floors.append(Floor(production, tmp_path, name, start))
        return floors[-1]

    yield make
    for floor in floors:
        floor.close()


def test_an_executor_killed_mid_fill_records_the_rest_on_restart_and_is_ready_only_once_reconciled(
    production: Production, floor_at
) -> None:  # type: ignore[no-untyped-def]
    floor = floor_at("midfill", production.long_run(3))
    floor.up("recorder")
    floor.up("runner", "executor")
    floor.fault("partial_fill_next_order", share=0.4, rest="later")
    floor.step()
    floor.wait(lambda: [o.status for o in floor.orders()] == ["PARTIALLY_FILLED"], "no partial fill")
    floor.kill("executor")
    (order,) = floor.orders()
    assert len(floor.catalog.list_fills(order.client_order_id)) == 1
    # While it is down the venue fills the rest on the first bar that opens after the order (two bars close,
    # their targets still long).
    floor.step(2)
    assert floor.venue_orders()[order.client_order_id]["status"] == "FILLED"
    done = len(floor.reconciliations())

    floor.start("executor")
    answers: list[dict] = []

    def ready() -> bool:
        answer = floor.readyz("executor")
        if answer is None:
            return False
        answers.append(answer)
        if answer["ready"]:
            # Ready: a reconciliation has succeeded since the restart, and it had the missing fill.
            since = floor.reconciliations()[done:]
            assert [r.status for r in since if r.status][-1:] == ["ok"], since
            assert len(floor.catalog.list_fills(order.client_order_id)) == 2
        return bool(answer["ready"])

    floor.wait(ready, "the restarted executor was not ready")
    assert not answers[0]["ready"] and answers[0]["reasons"]
    floor.settle()
    stored = floor.catalog.get_order(order.client_order_id)
    assert (stored.status, stored.filled_quantity) == ("FILLED", order.quantity)
    assert list(floor.venue_orders()) == [order.client_order_id]  # placed once
    assert floor.position() == floor.held() == order.quantity
    floor.assert_orders_equal_the_venue()


def test_ten_executor_restarts_place_no_order_and_reconcile_a_fill_older_than_the_lookback(
    production: Production, floor_at
) -> None:  # type: ignore[no-untyped-def]
    floor = floor_at("tenkills", production.long_run(8))
    lookback = ("--fills-lookback", "120")
    floor.up("recorder")
    floor.up("runner")
    floor.start("executor", *lookback)
    floor.wait_ready("executor")
    floor.step()  # the first signal is long: one order, filled at once
    floor.wait(lambda: [o.status for o in floor.orders()] == ["FILLED"], lambda: f"no fill: {floor.orders()}")
    floor.kill("executor")
    placed = floor.venue_orders()
    floor.step(5)  # the fill is five minutes old, the venue's fills are read two back; the target still long
    floor.settle()
    ((order,), (fill,)) = floor.orders(), floor.catalog.list_fills(floor.orders()[0].client_order_id)
    assert fill.ts < floor.now() - timedelta(seconds=120)
    done = len(floor.reconciliations())

    # Killed at varied moments: while starting, while reconciling, and polling once ready.
    for i in range(10):
        floor.start("executor", *lookback)
        if i % 3 == 2:
            floor.wait_ready("executor")
        time.sleep(0.2 * i)
        floor.kill("executor")
    floor.start("executor", *lookback)
    floor.wait_ready("executor")
    time.sleep(1.0)  # ten polls of a ready executor
    # Each reconciliation that finished found the position the repository's fills make: none mismatched.
    assert {r.status for r in floor.reconciliations()[done:]} <= {"ok", None}
    assert floor.venue_orders() == placed
    assert [o.client_order_id for o in floor.orders()] == [order.client_order_id]
    assert floor.position() == floor.held() == order.quantity
    floor.assert_orders_equal_the_venue()


def test_a_runner_killed_mid_stream_misses_no_bar_and_signals_none_twice(
    production: Production, floor_at
) -> None:  # type: ignore[no-untyped-def]
    floor = floor_at("runnerkill", FIRST_START)
    floor.up("recorder")
    floor.up("runner")
    floor.step(3)
    floor.settle()
    floor.step(4)
    floor.kill("runner")  # while those bars are being recorded and signalled
    floor.step(3)  # bars keep coming while it is down
    floor.settle(signalled=False)
    floor.up("runner")
    floor.step(2)
    floor.settle()
    floor.assert_bars_equal_the_venue()
    floor.assert_signals_equal_the_replay()


def test_a_recorder_killed_fills_the_gap_from_the_venue(production: Production, floor_at) -> None:  # type: ignore[no-untyped-def]
    floor = floor_at("recorderkill", FIRST_START)
    floor.up("recorder")
    floor.step(2)
    floor.settle(signalled=False)
    floor.kill("recorder")
    floor.step(5)  # five bars close while nothing records them
    floor.up("recorder")
    floor.step()
    floor.settle(signalled=False)
    floor.assert_bars_equal_the_venue()
