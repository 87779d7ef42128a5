"""The ccxt broker and the executor against a real venue's testnet, when a person gives one: balances, a
tiny market order filled and its fills, a limit order far from the market cancelled, an order's status by
its client order id, and an executor restarted after an order that reconciles with the account.

Every test runs twice: on the local venue (always: it shows the suite's own code works) and on the testnet
named by TRADING_TESTNET_VENUE (a ccxt id whose client has a sandbox, e.g. binance) with the account's
TRADING_TESTNET_API_KEY / TRADING_TESTNET_SECRET, through ccxt's own sandbox switch
(`CcxtVenue(sandbox=True)`); without them the testnet run skips, saying so. TRADING_TESTNET_SYMBOL
(default BTC/USDT) is the spot market traded; the orders are as small as the market allows (its least
amount and cost, with a margin). The testnet account must hold some of the quote asset.
docs/configuration.md, docs/live/unattended.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

import pytest
from research_setup import Research
from venue_setup import KEY, KEY_ENV, SECRET, SECRET_ENV, btc_bars

from resources.brokers.base import OrderRequest, VenueOrder
from resources.brokers.ccxt_broker import CcxtBroker, CcxtBrokerConfig
from resources.duckdb_catalog import DuckDBCatalog
from resources.duckdb_store import DuckDBStore
from resources.venues import CcxtVenue
from trading_assets.live.config import PromoteConfig
from trading_assets.live.executor import Executor, ExecutorConfig, Instrument
from trading_assets.live.process import VenueTime
from trading_assets.live.service import promote
from trading_assets.live.venue import LocalVenue, VenueSettings
from trading_assets.records import NewOrder, OrderUpdate

D = Decimal
TESTNET_ENV = ("TRADING_TESTNET_VENUE", "TRADING_TESTNET_API_KEY", "TRADING_TESTNET_SECRET")


@dataclass(frozen=True)
class Target:
    """A venue account to run the suite on: how ccxt reaches it, its name in fills and the repository, the
    market traded."""

    name: str
    client: CcxtVenue
    symbol: str


@pytest.fixture(params=["local", "testnet"])
def target(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Target]:
    if request.param == "testnet":
        missing = [name for name in TESTNET_ENV if not os.environ.get(name)]
        if missing:
            pytest.skip(
                f"{', '.join(missing)} not set: no testnet account to trade on (docs/configuration.md)"
            )
        venue_id = os.environ["TRADING_TESTNET_VENUE"]
        client = CcxtVenue(
            venue_id=venue_id,
            sandbox=True,
            api_key_env="TRADING_TESTNET_API_KEY",
            secret_env="TRADING_TESTNET_SECRET",
            timeout_ms=20_000,
        )
        yield Target(f"{venue_id}-testnet", client, os.environ.get("TRADING_TESTNET_SYMBOL", "BTC/USDT"))
        return
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.setenv(SECRET_ENV, SECRET)
    bars = btc_bars(120)
    start = bars.column("ts")[3].as_py()
    settings = VenueSettings(
        api_key=KEY,
        api_secret=SECRET,
        start_ms=int(start.timestamp() * 1000),
        speed=1.0,
        balances={"USDT": "10000", "BTC": "1"},
    )
    with LocalVenue({"BTC/USDT": bars}, settings) as venue:
        client = CcxtVenue(local_url=venue.url, api_key_env=KEY_ENV, secret_env=SECRET_ENV, timeout_ms=5_000)
        yield Target("local", client, "BTC/USDT")


@dataclass(frozen=True)
class Market:
    """What a tiny order on the market needs: the last price, the amount step and the least cost."""

    now: datetime  # the venue's clock
    last: Decimal
    step: Decimal
    tick: Decimal
    least_amount: Decimal
    least_cost: Decimal

    def quantity_at(self, price: Decimal) -> Decimal:
        """The least quantity the market takes at `price`, with a margin of half its least cost."""
        wanted = max(self.least_amount, self.least_cost * D("1.5") / price, self.step)
        return (wanted / self.step).to_integral_value(ROUND_CEILING) * self.step

    def far_below(self) -> Decimal:
        """A buy price the market will not reach while the test runs (and venues still accept: Binance
        refuses prices under a fifth of the average)."""
        return (self.last * D("0.5") / self.tick).to_integral_value(ROUND_FLOOR) * self.tick


async def _market(target: Target) -> Market:
    exchange = target.client.exchange("async")
    try:
        markets = await exchange.load_markets()
        if target.symbol not in markets:
            raise AssertionError(f"{target.symbol} is not a market of {target.name}")
        market = markets[target.symbol]
        (*_, last_bar) = await exchange.fetch_ohlcv(target.symbol, "1m", limit=2)
        now_ms = await exchange.fetch_time()
    finally:
        await exchange.close()
    limits = market["limits"]
    step = D(str(market["precision"]["amount"]))
    return Market(
        now=datetime.fromtimestamp(now_ms / 1000, UTC),
        last=D(str(last_bar[4])),
        step=step,
        tick=D(str(market["precision"]["price"])),
        least_amount=D(str((limits.get("amount") or {}).get("min") or step)),
        least_cost=D(str((limits.get("cost") or {}).get("min") or 1)),
    )


def _cid(what: str) -> str:
    """A client order id no earlier run used: the testnet account keeps its orders."""
    return f"t-{what}-{uuid.uuid4().hex[:16]}"


def _trade(target: Target, scenario: Callable[[CcxtBroker, Market], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        market = await _market(target)
        config = CcxtBrokerConfig(target.name, target.client, (target.symbol,), poll_s=1.0)
        async with CcxtBroker(config) as broker:
            return await scenario(broker, market)

    return asyncio.run(main())


async def _until(check: Callable[[], Awaitable[Any]], what: str, timeout_s: float = 30.0) -> Any:
    """Ask until `check` gives something: a venue may show an order before its trades."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not (found := await check()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} within {timeout_s:.0f} s")
        await asyncio.sleep(0.5)
    return found


def test_balances_hold_the_quote_asset_a_tiny_order_needs(target: Target) -> None:
    async def scenario(broker: CcxtBroker, market: Market) -> tuple[dict, Market]:
        return await broker.balances(), market

    balances, market = _trade(target, scenario)
    quote = target.symbol.split("/")[1]
    assert all(isinstance(v, Decimal) and v >= 0 for v in balances.values())
    assert balances.get(quote, D(0)) >= market.quantity_at(market.last) * market.last, balances


def test_a_tiny_market_order_fills_and_its_fills_add_up_to_it(target: Target) -> None:
    cid = _cid("mkt")

    async def scenario(broker: CcxtBroker, market: Market) -> tuple[VenueOrder, VenueOrder, list, Decimal]:
        since = market.now - timedelta(minutes=5)
        quantity = market.quantity_at(market.last)
        placed = await broker.submit(OrderRequest(cid, target.symbol, "buy", "market", quantity))

        async def filled() -> VenueOrder | None:
            order = await broker.order_status(cid, target.symbol)
            return order if order is not None and order.status == "closed" else None

        done = await _until(filled, f"market order {cid} filled")

        async def fills() -> list:
            ours = [f for f in await broker.fills_since(target.symbol, since) if f.client_order_id == cid]
            return ours if sum(f.quantity for f in ours) == done.filled else []

        return placed, done, await _until(fills, f"the fills of {cid}"), quantity

    placed, done, fills, quantity = _trade(target, scenario)
    assert (placed.client_order_id, placed.side, placed.type) == (cid, "buy", "market")
    assert (done.status, done.filled, done.quantity) == ("closed", quantity, quantity)
    assert len({f.trade_id for f in fills}) == len(fills)
    assert all(f.venue == target.name and f.venue_order_id == done.venue_order_id for f in fills)
    # The average price is the fills' quantity-weighted price (as the venue rounds it).
    assert done.average_price is not None
    assert abs(done.average_price - sum(f.quantity * f.price for f in fills) / done.filled) < D("1e-8")


def test_a_limit_order_far_from_the_market_rests_and_is_cancelled(target: Target) -> None:
    cid = _cid("lmt")

    async def scenario(broker: CcxtBroker, market: Market) -> tuple:
        price = market.far_below()
        quantity = market.quantity_at(price)
        placed = await broker.submit(OrderRequest(cid, target.symbol, "buy", "limit", quantity, price))
        try:
            working = await broker.open_orders(target.symbol)
        finally:
            canceled = await broker.cancel(cid, target.symbol)
        return placed, working, canceled, await broker.order_status(cid, target.symbol), quantity

    placed, working, canceled, status, quantity = _trade(target, scenario)
    assert (placed.status, placed.filled, placed.quantity) == ("open", 0, quantity)
    assert cid in {o.client_order_id for o in working}
    assert (canceled.client_order_id, canceled.status, canceled.filled) == (cid, "canceled", 0)
    assert status == canceled


def test_an_order_is_found_by_its_client_order_id_and_an_unknown_id_is_none(target: Target) -> None:
    cid = _cid("id")

    async def scenario(broker: CcxtBroker, market: Market) -> tuple:
        price = market.far_below()
        placed = await broker.submit(
            OrderRequest(cid, target.symbol, "buy", "limit", market.quantity_at(price), price)
        )
        try:
            found = await broker.order_status(cid, target.symbol)
        finally:
            await broker.cancel(cid, target.symbol)
        return placed, found, await broker.order_status(_cid("never-sent"), target.symbol)

    placed, found, unknown = _trade(target, scenario)
    assert found is not None
    assert (found.client_order_id, found.venue_order_id) == (cid, placed.venue_order_id)
    assert unknown is None


def test_an_executor_restarted_after_an_order_reconciles_with_the_account(
    target: Target, research: Research, tmp_path: Path
) -> None:
    """A strategy of the account, a first reconciliation (what the account holds becomes the baseline), an
    order of ours sent and filled while no executor ran, then a new executor: it asks the venue for the
    order by its client order id, records its fills and finds the position equal to the account's."""
    shutil.copy(research.catalog.path, tmp_path / "catalog.duckdb")
    catalog = DuckDBCatalog(path=str(tmp_path / "catalog.duckdb"))
    store = DuckDBStore(path=str(tmp_path / "ts.duckdb"))
    name = f"testnet_{uuid.uuid4().hex[:8]}"
    promote(catalog, PromoteConfig(name=name, run=research.run, symbol=target.symbol, venue=target.name))

    async def main() -> tuple:
        market = await _market(target)
        exchange = target.client.exchange("async")
        clock = VenueTime(exchange)
        await clock.sync()
        # The account's trades before this test are not ours: reconcile over what happens from now on.
        started = clock()
        config = CcxtBrokerConfig(target.name, target.client, (target.symbol,), poll_s=1.0)
        instruments = {target.symbol: Instrument(market.step, market.least_amount)}

        async def executor(broker: CcxtBroker) -> Executor:
            await clock.sync()
            lookback = clock() - started
            settings = ExecutorConfig(target.name, "main", instruments, fills_lookback=lookback)
            return Executor(settings, catalog, broker, store, clock=clock)

        try:
            async with CcxtBroker(config, clock=clock) as broker:
                first = await (await executor(broker)).reconcile()
                quantity = market.quantity_at(market.last)
                bar = clock().replace(second=0, microsecond=0)
                order, _ = catalog.create_order(NewOrder(name, bar, 0, "buy", "market", quantity))
                catalog.apply_order_event(order.client_order_id, OrderUpdate("SUBMIT"))
                await broker.submit(
                    OrderRequest(order.client_order_id, target.symbol, "buy", "market", order.quantity)
                )
                await _until(
                    lambda: _closed(broker, order.client_order_id, target.symbol), "the order closed"
                )
            async with CcxtBroker(config, clock=clock) as broker:
                restarted = await executor(broker)

                async def reconciled() -> bool:
                    # A venue's trade list may lag its order's status: ask again until it shows.
                    return await restarted.reconcile()

                await _until(reconciled, f"the restarted executor reconciled ({restarted.problem})")
                held = (await broker.positions()).get(target.symbol, D(0))
        finally:
            await exchange.close()
        return first, order.client_order_id, held

    first, cid, held = asyncio.run(main())
    assert first
    stored = catalog.get_order(cid)
    fills = catalog.list_fills(cid)
    assert stored is not None and stored.status == "FILLED" and stored.filled_quantity == stored.quantity
    assert sum(f.quantity for f in fills) == stored.quantity
    position = catalog.get_position(target.name, "main", target.symbol)
    (baseline,) = [r for r in catalog.list_reconciliations(target.name, "main") if r.status == "ok"][:1]
    assert position is not None and baseline.details is not None
    before = D(json.loads(baseline.details)["baseline"].get(target.symbol, "0"))
    assert held == before + position.quantity


async def _closed(broker: CcxtBroker, cid: str, symbol: str) -> bool:
    order = await broker.order_status(cid, symbol)
    return order is not None and order.status == "closed"
