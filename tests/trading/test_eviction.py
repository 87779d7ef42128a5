"""SIGTERM (a pod evicted, a supervisor stopping a service) of each live service while an order is on its way
to the venue: each finishes the poll it is in, leaves no order INITIALIZED or half-recorded, says that it
stopped (the runner on its strategies' rows, the executor in its heartbeat), and exits 0 within a bound; a
restart then resumes with nothing lost. Real processes and signals on Postgres and QuestDB, the real ccxt
client, the local venue stepped by hand (`restart_setup`)."""

from __future__ import annotations

import time
from decimal import Decimal

from restart_setup import Floor, Production

# Longer than the drain of one poll with a slow venue (each request below takes a second), far shorter than
# the grace a supervisor, Compose or Kubernetes gives (30 s).
DRAIN_BOUND_S = 15.0


def test_sigterm_drains_each_service_and_a_restart_resumes_with_nothing_lost(
    production: Production, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    floor = Floor(production, tmp_path, "evict", production.long_run(4))
    try:
        floor.up("recorder")
        floor.up("runner", "executor")
        # The venue answers each request after a second and fills the next order in part.
        floor.fault("set_latency", ms=1000)
        floor.fault("partial_fill_next_order", share=0.4, rest="later")
        floor.step()
        floor.wait(lambda: [o.status for o in floor.orders()] == ["SUBMITTED"], "no order on its way")
        started = time.monotonic()
        assert floor.terminate("executor", DRAIN_BOUND_S) == 0, floor.log("executor")
        # It waited for the venue's answer and recorded it: the order is where the venue has it.
        (order,) = floor.orders()
        theirs = floor.venue_orders()[order.client_order_id]
        assert (order.status, theirs["status"]) == ("PARTIALLY_FILLED", "PARTIALLY_FILLED")
        fills = floor.catalog.list_fills(order.client_order_id)
        assert sum(f.quantity for f in fills) == order.filled_quantity == Decimal(theirs["executedQty"])
        assert floor.position() == order.filled_quantity
        beats = {b.instance: b for b in floor.catalog.list_heartbeats("executor")}
        assert [b.status for b in beats.values()] == ["stopped"]
        floor.fault("set_latency", ms=0)
        for service in ("runner", "recorder"):
            assert floor.terminate(service, DRAIN_BOUND_S) == 0, floor.log(service)
        assert time.monotonic() - started < 3 * DRAIN_BOUND_S
        strategy = floor.catalog.get_strategy(floor.name)
        assert (strategy.desired_state, strategy.actual_state) == ("running", "stopped")
        assert strategy.state_message == "the runner stopped"
        assert [b.status for b in floor.catalog.list_heartbeats("runner")] == ["stopped"]

        # Evicted: the venue fills the rest and two bars close. Started again, everything catches up.
        floor.step(2)
        floor.up("recorder")
        floor.up("runner", "executor")
        floor.step()
        floor.settle()
        assert floor.catalog.get_strategy(floor.name).actual_state == "running"
        done = floor.catalog.get_order(order.client_order_id)
        assert (done.status, done.filled_quantity) == ("FILLED", order.quantity)
        assert list(floor.venue_orders()) == [order.client_order_id]
        floor.assert_bars_equal_the_venue()
        floor.assert_signals_equal_the_replay()
        floor.assert_orders_equal_the_venue()
    finally:
        floor.close()
