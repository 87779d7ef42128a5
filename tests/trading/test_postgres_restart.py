"""Postgres restarts while an order is on its way to the venue: the catalog (the orders repository, the
strategies, the signals, the heartbeats) goes away for longer than a call's retries, comes back, and the
services ride it out without a restart: the order is placed once and ends as the venue has it, its fill is
recorded once, the position equals the venue's, no bar is missed or signalled twice.

The Postgres is one of the test's own (`resources.local_servers.PrivatePostgres`), so restarting it
touches no other test; the services are real processes (`restart_setup`)."""

from __future__ import annotations

import time

import pytest
from restart_setup import Floor, Production
from restart_setup import production as build_production

from resources.local_servers import PrivatePostgres


@pytest.fixture(scope="module")
def private_pg(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    pg = PrivatePostgres(tmp_path_factory.mktemp("pg"))
    pg.start()
    yield pg
    pg.close()


@pytest.fixture(scope="module")
def production(tmp_path_factory, private_pg: PrivatePostgres):  # type: ignore[no-untyped-def]
    conninfo = f"host=127.0.0.1 port={private_pg.port} user=postgres dbname=postgres"
    yield from build_production(tmp_path_factory, conninfo, "pgr")


def test_postgres_restarted_mid_order_places_it_once_and_every_record_equals_the_venue(
    production: Production, private_pg: PrivatePostgres, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    floor = Floor(production, tmp_path, "pgr", production.long_run(4))
    try:
        floor.up("recorder")
        floor.up("runner", "executor")
        # The venue answers each request 2.5 s late: the order is in flight when Postgres goes.
        floor.fault("set_latency", ms=2500)
        floor.step()
        floor.wait(lambda: [o.status for o in floor.orders()] == ["SUBMITTED"], "no order was sent")
        private_pg.stop("fast")  # every connection cut
        time.sleep(4.0)  # longer than a catalog call's retries (0.1 s doubling, five tries)
        private_pg.start()
        floor.fault("set_latency", ms=0)
        floor.step(2)  # the market order fills on the bar that opens after it
        floor.settle(timeout_s=90)
        floor.alive()  # nobody restarted: each service rode the outage out

        (order,) = floor.orders()
        assert list(floor.venue_orders()) == [order.client_order_id]  # placed once
        assert (order.status, order.filled_quantity) == ("FILLED", order.quantity)
        assert len(floor.catalog.list_fills(order.client_order_id)) == 1
        assert floor.position() == floor.held() == order.quantity
        floor.assert_orders_equal_the_venue()
        floor.assert_bars_equal_the_venue()
        floor.assert_signals_equal_the_replay()
        # The outage was seen (their connections to it failed), and ridden out.
        assert f"port {private_pg.port} failed" in floor.log("executor") + floor.log("runner")
    finally:
        floor.close()
