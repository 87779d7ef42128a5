"""The venue's state and matching: balances per asset, orders, fills with unique trade ids, matched
against the replayed bars as the clock lets them close.

Amounts are decimals truncated to 8 places (Binance's asset precision). A market order fills at once at
the last closed bar's close, moved against the taker by the slippage; a resting limit order fills at its
price on a bar that opened after it was placed and traded through it (low below a buy, high above a sell),
at most a share of the bar's volume when a cap is set, shared by the orders in placement order. Fees are
charged in the quote asset.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_DOWN, Decimal

from trading_assets.live.venue.faults import Faults, PartialFill
from trading_assets.live.venue.markets import INSUFFICIENT_BALANCE, BinanceError, MarketSpec
from trading_assets.live.venue.tape import Bar, Tape

ZERO = Decimal(0)
EIGHT = Decimal("0.00000001")


def trunc8(x: Decimal) -> Decimal:
    return x.quantize(EIGHT, rounding=ROUND_DOWN)


def ceil8(x: Decimal) -> Decimal:
    return x.quantize(EIGHT, rounding=ROUND_CEILING)


def decimal_of(x: float) -> Decimal:
    # repr is the shortest string that reads back as the same float: the bar's price as the feed shows it.
    return Decimal(repr(x))


@dataclass(frozen=True)
class MatchingRules:
    fee_rate: Decimal = Decimal("0.001")
    slippage_bps: Decimal = ZERO
    volume_share: Decimal | None = None  # cap on what one bar fills, as a share of its volume


@dataclass(frozen=True)
class OrderRequest:
    symbol: str  # venue id, e.g. BTCUSDT
    side: str
    type: str
    quantity: Decimal | None = None
    quote_quantity: Decimal | None = None
    price: Decimal | None = None
    time_in_force: str | None = None
    client_order_id: str | None = None


@dataclass
class Order:
    order_id: int
    client_order_id: str
    symbol: str
    side: str
    type: str
    price: Decimal  # the limit price; 0 for a market order
    orig_qty: Decimal
    orig_quote_qty: Decimal
    time: int
    update_time: int
    executed_qty: Decimal = ZERO
    cum_quote: Decimal = ZERO
    status: str = "NEW"
    locked: Decimal = ZERO  # what this order holds of the account's locked balance
    at_market: bool = False  # a market order's remainder, filled at the next closed bars' close

    @property
    def remaining(self) -> Decimal:
        return self.orig_qty - self.executed_qty

    @property
    def is_open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")


@dataclass(frozen=True)
class Trade:
    trade_id: int
    order_id: int
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    commission: Decimal
    commission_asset: str
    time: int
    is_maker: bool


@dataclass
class Balance:
    free: Decimal = ZERO
    locked: Decimal = ZERO


@dataclass
class Engine:
    tape: Tape
    markets: Mapping[str, MarketSpec]  # by venue id
    rules: MatchingRules
    faults: Faults
    balances: dict[str, Balance]
    matched_until_ms: int
    lock: threading.RLock = field(default_factory=threading.RLock)
    orders: dict[int, Order] = field(default_factory=dict)
    trades: list[Trade] = field(default_factory=list)
    _by_client_id: dict[str, int] = field(default_factory=dict)
    _order_ids: Iterable[int] = field(default_factory=lambda: itertools.count(1))
    _trade_ids: Iterable[int] = field(default_factory=lambda: itertools.count(1))

    # -- the clock's consequences -------------------------------------------------------------------------

    def catch_up(self, now_ms: int) -> None:
        """Match the open orders against every bar that closed since the last call, in closing order."""
        with self.lock:
            if now_ms <= self.matched_until_ms:
                return
            for symbol, i in self.tape.closed_between(self.matched_until_ms, now_ms):
                self._on_bar(symbol, self.tape.bar(symbol, i))
            self.matched_until_ms = now_ms

    def _on_bar(self, symbol: str, bar: Bar) -> None:
        budget = None if self.rules.volume_share is None else self.rules.volume_share * decimal_of(bar.volume)
        spec = self.markets[symbol]
        for order in [o for o in self.orders.values() if o.symbol == symbol and o.is_open]:
            if order.time > bar.open_ms:
                continue
            if order.at_market:
                price = self._slipped(order.side, bar.close)
            elif (order.side == "BUY" and decimal_of(bar.low) < order.price) or (
                order.side == "SELL" and decimal_of(bar.high) > order.price
            ):
                price = order.price
            else:
                continue
            qty = order.remaining if budget is None else min(order.remaining, spec.floor_qty(budget))
            if qty <= 0:
                continue
            if budget is not None:
                budget -= qty
            if order.at_market and not self._can_pay(order, qty, price):
                self._close(order, "EXPIRED", bar.close_ms - 1)
                continue
            self._fill(order, qty, price, bar.close_ms - 1, is_maker=not order.at_market)

    # -- orders -------------------------------------------------------------------------------------------

    def place(self, now_ms: int, req: OrderRequest) -> tuple[Order, list[Trade]]:
        with self.lock:
            self.catch_up(now_ms)
            spec = self._market(req.symbol)
            self._check_request(req)
            if req.client_order_id is not None and self._open_with_client_id(req.client_order_id):
                raise BinanceError(-2010, "Duplicate order sent.")
            rejection = self.faults.take_rejection()
            if rejection is not None:
                raise BinanceError(*rejection)
            if req.type == "MARKET":
                return self._place_market(now_ms, spec, req)
            return self._place_limit(now_ms, spec, req)

    def _check_request(self, req: OrderRequest) -> None:
        if req.side not in ("BUY", "SELL"):
            raise BinanceError(
                -1100, "Illegal characters found in parameter 'side'; legal range is 'BUY, SELL'."
            )
        if req.type not in ("MARKET", "LIMIT"):
            raise BinanceError(-1116, "Invalid orderType.")
        if req.type == "LIMIT":
            for name, value in (
                ("timeInForce", req.time_in_force),
                ("quantity", req.quantity),
                ("price", req.price),
            ):
                if value is None:
                    raise BinanceError(
                        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
                    )
            if req.time_in_force != "GTC":
                raise BinanceError(-1115, "Invalid timeInForce.")
        else:
            if req.price is not None:
                raise BinanceError(-1106, "Parameter 'price' sent when not required.")
            if (req.quantity is None) == (req.quote_quantity is None):
                raise BinanceError(
                    -1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!"
                )

    def _place_market(self, now_ms: int, spec: MarketSpec, req: OrderRequest) -> tuple[Order, list[Trade]]:
        last = self.tape.last_closed(spec.venue_id, now_ms)
        if last is None:
            raise BinanceError(-1013, "Market is closed.")
        price = self._slipped(req.side, last.close)
        qty = req.quantity if req.quantity is not None else spec.floor_qty(req.quote_quantity / price)
        spec.check_quantity(qty)
        spec.check_notional(qty * price)
        cost = trunc8(qty * price)
        if req.side == "BUY":
            self._require(spec.quote, cost + trunc8(cost * self.rules.fee_rate))
        else:
            self._require(spec.base, qty)
        order = self._new_order(now_ms, req, ZERO, qty)
        partial = self.faults.take_partial()
        now_qty = qty if partial is None else spec.floor_qty(qty * Decimal(repr(partial.share)))
        trades = [self._fill(order, now_qty, price, now_ms, is_maker=False)] if now_qty > 0 else []
        if order.is_open:
            self._rest_after_partial(order, spec, partial, price, now_ms)
        return order, trades

    def _place_limit(self, now_ms: int, spec: MarketSpec, req: OrderRequest) -> tuple[Order, list[Trade]]:
        assert req.price is not None and req.quantity is not None
        spec.check_price(req.price)
        spec.check_quantity(req.quantity)
        spec.check_notional(req.quantity * req.price)
        asset, amount = self._reserve(req.side, spec, req.quantity, req.price)
        self._require(asset, amount)
        order = self._new_order(now_ms, req, req.price, req.quantity)
        self._lock_for(order, asset, amount)
        partial = self.faults.take_partial()
        trades = []
        if partial is not None:
            now_qty = spec.floor_qty(req.quantity * Decimal(repr(partial.share)))
            if now_qty > 0:
                trades.append(self._fill(order, now_qty, req.price, now_ms, is_maker=False))
            if partial.rest == "never" and order.is_open:
                self._close(order, "EXPIRED", now_ms)
        return order, trades

    def _rest_after_partial(
        self, order: Order, spec: MarketSpec, partial: PartialFill | None, price: Decimal, now_ms: int
    ) -> None:
        if partial is None or partial.rest == "never":
            self._close(order, "EXPIRED", now_ms)
            return
        order.at_market = True
        asset, amount = self._reserve(order.side, spec, order.remaining, price)
        self._lock_for(order, asset, min(amount, self.balances[asset].free))

    def cancel(self, now_ms: int, symbol: str, order_id: int | None, client_id: str | None) -> Order:
        with self.lock:
            self.catch_up(now_ms)
            self._market(symbol)
            order = self._find(symbol, order_id, client_id)
            if order is None or not order.is_open:
                raise BinanceError(-2011, "Unknown order sent.")
            self._close(order, "CANCELED", now_ms)
            return order

    def cancel_all(self, now_ms: int, symbol: str) -> list[Order]:
        with self.lock:
            self.catch_up(now_ms)
            self._market(symbol)
            orders = [o for o in self.orders.values() if o.symbol == symbol and o.is_open]
            for order in orders:
                self._close(order, "CANCELED", now_ms)
            return orders

    def order(self, now_ms: int, symbol: str, order_id: int | None, client_id: str | None) -> Order:
        with self.lock:
            self.catch_up(now_ms)
            self._market(symbol)
            order = self._find(symbol, order_id, client_id)
            if order is None:
                raise BinanceError(-2013, "Order does not exist.")
            return order

    def open_orders(self, now_ms: int, symbol: str | None) -> list[Order]:
        with self.lock:
            self.catch_up(now_ms)
            if symbol is not None:
                self._market(symbol)
            return [o for o in self.orders.values() if o.is_open and symbol in (None, o.symbol)]

    def my_trades(
        self,
        now_ms: int,
        symbol: str,
        order_id: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        from_id: int | None = None,
        limit: int = 500,
    ) -> list[Trade]:
        """Binance's /myTrades, from `fromId` or `startTime` the first `limit`, else the last."""
        with self.lock:
            self.catch_up(now_ms)
            self._market(symbol)
            trades = [
                t
                for t in self.trades
                if t.symbol == symbol
                and (order_id is None or t.order_id == order_id)
                and (start_ms is None or t.time >= start_ms)
                and (end_ms is None or t.time <= end_ms)
                and (from_id is None or t.trade_id >= from_id)
            ]
            return trades[:limit] if from_id is not None or start_ms is not None else trades[-limit:]

    def account(self, now_ms: int) -> dict[str, Balance]:
        with self.lock:
            self.catch_up(now_ms)
            return {asset: Balance(b.free, b.locked) for asset, b in sorted(self.balances.items())}

    # -- helpers ------------------------------------------------------------------------------------------

    def _market(self, symbol: str) -> MarketSpec:
        spec = self.markets.get(symbol)
        if spec is None:
            raise BinanceError(-1121, "Invalid symbol.")
        return spec

    def _slipped(self, side: str, close: float) -> Decimal:
        move = self.rules.slippage_bps / Decimal(10_000)
        factor = 1 + move if side == "BUY" else 1 - move
        return trunc8(decimal_of(close) * factor)

    def _open_with_client_id(self, client_id: str) -> bool:
        order_id = self._by_client_id.get(client_id)
        return order_id is not None and self.orders[order_id].is_open

    def _find(self, symbol: str, order_id: int | None, client_id: str | None) -> Order | None:
        if order_id is None and client_id is None:
            raise BinanceError(
                -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"
            )
        key = order_id if order_id is not None else self._by_client_id.get(client_id or "")
        order = self.orders.get(key) if key is not None else None
        if order is None or order.symbol != symbol:
            return None
        if client_id is not None and order.client_order_id != client_id:
            return None
        return order

    def _new_order(self, now_ms: int, req: OrderRequest, price: Decimal, qty: Decimal) -> Order:
        order_id = next(self._order_ids)  # type: ignore[call-overload]
        client_id = req.client_order_id or f"venue-{order_id}"
        order = Order(
            order_id=order_id,
            client_order_id=client_id,
            symbol=req.symbol,
            side=req.side,
            type=req.type,
            price=price,
            orig_qty=qty,
            orig_quote_qty=req.quote_quantity or ZERO,
            time=now_ms,
            update_time=now_ms,
        )
        self.orders[order_id] = order
        self._by_client_id[client_id] = order_id
        return order

    def _reserve(self, side: str, spec: MarketSpec, qty: Decimal, price: Decimal) -> tuple[str, Decimal]:
        """What an order's unfilled `qty` must hold: the quote it may pay with its fee, or the base it sells.
        Rounded up, while each fill's amounts are truncated, so the parts never outgrow the whole."""
        if side == "SELL":
            return spec.base, qty
        cost = qty * price
        return spec.quote, ceil8(cost) + ceil8(cost * self.rules.fee_rate)

    def _require(self, asset: str, amount: Decimal) -> None:
        if self.balances.setdefault(asset, Balance()).free < amount:
            raise BinanceError(*INSUFFICIENT_BALANCE)

    def _lock_for(self, order: Order, asset: str, amount: Decimal) -> None:
        balance = self.balances[asset]
        balance.free -= amount
        balance.locked += amount
        order.locked += amount

    def _can_pay(self, order: Order, qty: Decimal, price: Decimal) -> bool:
        spec = self.markets[order.symbol]
        if order.side == "SELL":
            return order.locked + self.balances[spec.base].free >= qty
        cost = trunc8(qty * price)
        return order.locked + self.balances[spec.quote].free >= cost + trunc8(cost * self.rules.fee_rate)

    def _pay(self, order: Order, asset: str, amount: Decimal) -> None:
        balance = self.balances[asset]
        from_lock = min(amount, order.locked)
        order.locked -= from_lock
        balance.locked -= from_lock
        balance.free -= amount - from_lock

    def _fill(self, order: Order, qty: Decimal, price: Decimal, time_ms: int, is_maker: bool) -> Trade:
        spec = self.markets[order.symbol]
        cost = trunc8(qty * price)
        fee = trunc8(cost * self.rules.fee_rate)
        if order.side == "BUY":
            self._pay(order, spec.quote, cost + fee)
            self.balances.setdefault(spec.base, Balance()).free += qty
        else:
            self._pay(order, spec.base, qty)
            self.balances.setdefault(spec.quote, Balance()).free += cost - fee
        order.executed_qty += qty
        order.cum_quote += cost
        order.update_time = time_ms
        trade = Trade(
            trade_id=next(self._trade_ids),  # type: ignore[call-overload]
            order_id=order.order_id,
            symbol=order.symbol,
            side=order.side,
            price=price,
            qty=qty,
            quote_qty=cost,
            commission=fee,
            commission_asset=spec.quote,
            time=time_ms,
            is_maker=is_maker,
        )
        self.trades.append(trade)
        if order.remaining == 0:
            self._close(order, "FILLED", time_ms)
        else:
            order.status = "PARTIALLY_FILLED"
        return trade

    def _close(self, order: Order, status: str, time_ms: int) -> None:
        """End an order: what it still held goes back to the free balance."""
        if order.locked:
            spec = self.markets[order.symbol]
            balance = self.balances[spec.base if order.side == "SELL" else spec.quote]
            balance.locked -= order.locked
            balance.free += order.locked
            order.locked = ZERO
        order.status = status
        order.update_time = time_ms
