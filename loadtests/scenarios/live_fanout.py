"""live_fanout: many clients on the live event stream (GET /api/v1/live/events, server-sent events) while
one writer stores new orders through the catalog, as the executor does (`writes_per_s` a second).

Each client's "request" is one order delivered: its latency runs from the order's write (its `created_at`,
the writing transaction's time in Postgres, on this machine's clock) to the moment the client reads the
event. A client reads until a second before the scenario ends; then every order written while it listened
(but for the last two seconds) that it did not receive is an error, and so is a stream that breaks."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import gevent
import requests
from locust import User, task

from resources.postgres_catalog import PostgresCatalog
from trading_assets.records import NewOrder

NAME = "order delivered"
# An order written this long before a client stops reading need not have reached it yet (the stream reads
# the catalog every 0.25 s).
GRACE_S = 2.0
AMOUNT = Decimal("0.001")


class OrderWriter(User):
    """Stores `writes_per_s` new orders a second of the scenario's strategy until the clients stop reading;
    one pass per scenario."""

    fixed_count = 1

    def wait_time(self) -> float:
        return 3600.0  # one pass: it then idles until the scenario stops it

    @task
    def write(self) -> None:
        options = self.environment.parsed_options
        catalog = PostgresCatalog(**options.catalog)
        step, due, seq, second = 1.0 / options.writes_per_s, time.time(), 0, 0
        try:
            # Stops with the clients' reading, so the scenario's end never interrupts a transaction.
            while due < options.ends_at - 1.0:
                gevent.sleep(max(0.0, due - time.time()))
                due += step
                # The n-th order of the current second: new ids on every run, however often it is run.
                now = int(time.time())
                seq, second = (seq + 1 if now == second else 0), now
                order = NewOrder(
                    options.strategy, datetime.fromtimestamp(now, UTC), seq, "buy", "market", AMOUNT
                )
                catalog.create_order(order)
        finally:
            catalog.close()


class EventClient(User):
    """One stream, read until a second before the scenario's end, then its deliveries checked."""

    def wait_time(self) -> float:
        return 3600.0  # one watch per user: it then idles until the scenario stops it

    def on_start(self) -> None:
        self.session = requests.Session()

    def on_stop(self) -> None:
        self.session.close()

    def _report(self, started: float, error: Exception | None = None) -> None:
        self.environment.events.request.fire(
            request_type="SSE",
            name=NAME,
            response_time=(time.time() - started) * 1000,
            response_length=0,
            exception=error,
            context={},
        )

    @task
    def watch(self) -> None:
        options = self.environment.parsed_options
        opened = time.time()
        until = options.ends_at - 1.0
        received: set[str] = set()
        # Leaves the block quietly at `until`, wherever the read is.
        with gevent.Timeout(max(0.0, until - opened), False):
            try:
                with self.session.get(
                    f"{options.api}/api/v1/live/events", stream=True, timeout=30
                ) as response:
                    response.raise_for_status()
                    for event, data in _events(response):
                        if event != "order":
                            continue
                        order = json.loads(data)
                        written = datetime.fromisoformat(order["created_at"]).timestamp()
                        ident = order["client_order_id"]
                        if (
                            order["strategy"] == options.strategy
                            and written >= opened
                            and ident not in received
                        ):
                            received.add(ident)
                            self._report(written)
            except requests.RequestException as err:
                self._report(time.time(), RuntimeError(f"the stream broke: {err}"))
                return
        self._missed(opened, min(time.time(), until) - GRACE_S, received)

    def _missed(self, opened: float, settled: float, received: set[str]) -> None:
        """An error for each order written in [opened, settled] that the stream did not bring."""
        options = self.environment.parsed_options
        page = self.session.get(
            f"{options.api}/api/v1/live/orders",
            params={"strategy": options.strategy, "limit": 1000},
            timeout=30,
        )
        page.raise_for_status()
        for order in page.json()["orders"]:
            written = datetime.fromisoformat(order["created_at"]).timestamp()
            if opened <= written <= settled and order["client_order_id"] not in received:
                self._report(written, RuntimeError(f"an order not delivered within {GRACE_S:.0f} s"))


def _events(response: requests.Response) -> Iterator[tuple[str, str]]:
    """(event, data) of each server-sent event; comments (pings) skipped."""
    event, data = "message", []
    for line in response.iter_lines(decode_unicode=True):
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


USERS = [OrderWriter, EventClient]


def host(options: Any) -> str:
    return options.api  # type: ignore[no-any-return]
