"""Executor rules that no venue at hand can provoke on demand, against a broker whose answers the test
scripts (the executor's logic under test, not a venue): an order the venue ended with fills its trade list
has not shown yet stays open until they arrive, so no fill is lost and nothing is bought twice."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

from research_setup import Research

from resources.brokers.base import BrokerEvent, OrderRequest, VenueFill, VenueOrder
from resources.duckdb_catalog import DuckDBCatalog
from resources.duckdb_store import DuckDBStore
from trading_assets.live.config import PromoteConfig
from trading_assets.live.executor import Executor, ExecutorConfig, Instrument
from trading_assets.live.service import promote
from trading_assets.records import NewOrder, OrderUpdate

D = Decimal
SYMBOL = "BTC/USDT"
BAR = datetime(2025, 1, 3, 12, 0, tzinfo=UTC)


class ScriptedBroker:
    """Answers what the test sets: one order's state and the trades listed so far."""

    venue = "binance"

    def __init__(self) -> None:
        self.order: VenueOrder | None = None
        self.trades: list[VenueFill] = []

    async def submit(self, request: OrderRequest) -> VenueOrder:
        raise AssertionError("nothing is to be sent here")

    async def cancel(self, client_order_id: str, symbol: str) -> VenueOrder:
        raise AssertionError("nothing is to be cancelled here")

    async def order_status(self, client_order_id: str, symbol: str) -> VenueOrder | None:
        return self.order

    async def open_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        return []

    async def fills_since(self, symbol: str, since: datetime) -> list[VenueFill]:
        return list(self.trades)

    async def balances(self) -> dict[str, Decimal]:
        return {}

    async def positions(self) -> dict[str, Decimal]:
        return {}

    async def events(self) -> AsyncIterator[BrokerEvent]:  # type: ignore[override]
        return
        yield

    async def close(self) -> None:
        return None


def test_an_order_ended_before_its_fills_are_listed_waits_for_them(research: Research, tmp_path) -> None:  # type: ignore[no-untyped-def]
    shutil.copy(research.catalog.path, tmp_path / "catalog.duckdb")
    catalog = DuckDBCatalog(path=str(tmp_path / "catalog.duckdb"))
    promote(catalog, PromoteConfig(name="rules", run=research.run, symbol=SYMBOL, account="main"))
    order, _ = catalog.create_order(NewOrder("rules", BAR, 0, "buy", "market", D(1)))
    cid = order.client_order_id
    catalog.apply_order_event(cid, OrderUpdate(event="SUBMIT"))
    catalog.apply_order_event(cid, OrderUpdate(event="ACCEPT", venue_order_id="7"))
    broker = ScriptedBroker()
    config = ExecutorConfig("binance", "main", {SYMBOL: Instrument(D("0.001"), D("0.001"))})
    executor = Executor(config, catalog, broker, DuckDBStore(path=str(tmp_path / "ts.duckdb")))

    async def scenario() -> None:
        # The venue says: canceled, 0.4 filled; its trade list does not show the trade yet.
        broker.order = VenueOrder(cid, "7", SYMBOL, "buy", "market", "canceled", D(1), D("0.4"), D(100))
        await executor._sync_open_orders()
        stored = catalog.get_order(cid)
        assert (stored.status, stored.filled_quantity) == ("ACCEPTED", 0)  # not ended without its fill
        # The trade is listed: recorded first, then the cancel.
        broker.trades = [
            VenueFill("binance", "t-1", cid, "7", SYMBOL, "buy", D("0.4"), D(100), D("0.04"), "USDT", BAR)
        ]
        await executor._sync_open_orders()
        stored = catalog.get_order(cid)
        assert (stored.status, stored.filled_quantity) == ("CANCELED", D("0.4"))
        assert catalog.get_position("binance", "main", SYMBOL).quantity == D("0.4")
        events = [e.event for e in catalog.list_order_events(cid)]
        assert events == ["CREATE", "SUBMIT", "ACCEPT", "FILL", "CANCEL"]

    asyncio.run(scenario())
