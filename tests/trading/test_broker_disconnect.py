"""The venue unreachable for the executor (every REST request answered 503, while the market-data stream
still brings bars and the strategy turns long): no order goes out and the executor is not ready; once the
venue answers again it reconciles over REST (orders, fills, positions) before it trades. Real processes on
Postgres and QuestDB, the real ccxt client, the local venue stepped by hand (`restart_setup`)."""

from __future__ import annotations

import time

from restart_setup import Floor, Production


def test_no_order_goes_out_while_the_venue_is_unreachable_and_it_reconciles_before_trading_again(
    production: Production, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    start = production.long_run(3)
    floor = Floor(production, tmp_path, "disconnect", start)
    try:
        floor.up("recorder")
        floor.up("runner", "executor")
        # From now on every REST request is turned away with a 503 ("not processed"); the stream is not REST.
        floor.fault("fail_next_requests", count=1_000_000, status=503)
        floor.wait(lambda: not floor.ready("executor"), "the executor stayed ready with the venue away")
        assert "the broker is disconnected" in floor.readyz("executor")["reasons"]
        assert floor.metric("executor", "live_broker_connected") == 0
        floor.step()  # the strategy's first signal: long
        floor.wait(lambda: floor.catalog.list_signals(floor.name), "the runner did not signal the bar")
        time.sleep(1.0)  # ten polls of the executor with a target to trade
        assert not floor.ready("executor")
        assert floor.venue_orders() == {}
        # Nothing was sent: any order attempted is rejected as not sent.
        assert all(o.status == "REJECTED" and o.reason.startswith("not sent") for o in floor.orders())
        done = len(floor.reconciliations())

        floor.clear_faults()
        floor.wait(
            lambda: any(o.status == "FILLED" for o in floor.orders()), "no order after the venue came back"
        )
        floor.wait_ready("executor")
        assert floor.metric("executor", "live_broker_connected") == 1
        floor.settle()
        (filled,) = [o for o in floor.orders() if o.status == "FILLED"]
        # It reconciled over REST, successfully, before that order was sent.
        runs = [r for r in floor.reconciliations()[done:] if r.status == "ok"]
        sent = next(e for e in floor.catalog.list_order_events(filled.client_order_id) if e.event == "SUBMIT")
        assert runs and runs[0].finished_at <= sent.recorded_at
        assert list(floor.venue_orders()) == [filled.client_order_id]
        floor.assert_orders_equal_the_venue()
    finally:
        floor.close()


def test_an_executor_started_while_the_venue_is_away_waits_not_ready_then_reconciles(
    production: Production, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    floor = Floor(production, tmp_path, "cold", production.long_run(2))
    try:
        port = floor.venue.port
        floor.venue.stop()  # nothing listens on the venue's port
        floor.start("executor")
        floor.wait(
            lambda: "cannot be reached" in " ".join((floor.readyz("executor") or {}).get("reasons", [])),
            lambda: f"the executor did not say why it is not ready: {floor.readyz('executor')}",
        )
        floor.venue.start(port=port)  # the venue back on the same port, with its state
        floor.wait_ready("executor")
        assert [r.status for r in floor.reconciliations()] == ["ok"]
        assert floor.terminate("executor") == 0
    finally:
        floor.close()
