"""Binance spot's JSON shapes for what the venue holds: klines (REST rows and stream events), orders in
their ACK/RESULT/FULL and query forms, account trades and balances."""

from __future__ import annotations

from decimal import Decimal

import numpy as np

from trading_assets.live.venue.engine import Balance, Order, Trade
from trading_assets.live.venue.tape import Bar


def f8(x: Decimal) -> str:
    return f"{x:.8f}"


def price_text(x: float) -> str:
    """A float as the shortest positional decimal that reads back as the same float: what a client parses
    is the replayed value bit for bit, without an exponent Binance never sends."""
    return np.format_float_positional(x, unique=True, trim="-")


def kline_row(bar: Bar) -> list:
    """One row of /api/v3/klines. Quote volume is volume * close (the dataset has no finer record); trade
    counts and taker volumes are not in the dataset and read 0."""
    return [
        bar.open_ms,
        price_text(bar.open),
        price_text(bar.high),
        price_text(bar.low),
        price_text(bar.close),
        price_text(bar.volume),
        bar.close_ms - 1,
        price_text(bar.volume * bar.close),
        0,
        "0",
        "0",
        "0",
    ]


def kline_event(symbol: str, interval: str, bar: Bar, event_ms: int) -> dict:
    """A `<symbol>@kline_<interval>` stream message; `x` is true once the bar has closed."""
    return {
        "e": "kline",
        "E": event_ms,
        "s": symbol,
        "k": {
            "t": bar.open_ms,
            "T": bar.close_ms - 1,
            "s": symbol,
            "i": interval,
            "f": -1,
            "L": -1,
            "o": price_text(bar.open),
            "c": price_text(bar.close),
            "h": price_text(bar.high),
            "l": price_text(bar.low),
            "v": price_text(bar.volume),
            "n": 0,
            "x": bar.final,
            "q": price_text(bar.volume * bar.close),
            "V": "0",
            "Q": "0",
            "B": "0",
        },
    }


def _order_common(order: Order) -> dict:
    return {
        "symbol": order.symbol,
        "orderId": order.order_id,
        "orderListId": -1,
        "clientOrderId": order.client_order_id,
        "price": f8(order.price),
        "origQty": f8(order.orig_qty),
        "executedQty": f8(order.executed_qty),
        "origQuoteOrderQty": f8(order.orig_quote_qty),
        "cummulativeQuoteQty": f8(order.cum_quote),
        "status": order.status,
        "timeInForce": "GTC",
        "type": order.type,
        "side": order.side,
        "selfTradePreventionMode": "EXPIRE_MAKER",
    }


def order_created(order: Order, fills: list[Trade], resp_type: str) -> dict:
    """POST /api/v3/order's answer in the form `newOrderRespType` asks for (ACK, RESULT or FULL)."""
    if resp_type == "ACK":
        return {
            "symbol": order.symbol,
            "orderId": order.order_id,
            "orderListId": -1,
            "clientOrderId": order.client_order_id,
            "transactTime": order.time,
        }
    body = {**_order_common(order), "transactTime": order.time, "workingTime": order.time}
    if resp_type == "FULL":
        body["fills"] = [
            {
                "price": f8(t.price),
                "qty": f8(t.qty),
                "commission": f8(t.commission),
                "commissionAsset": t.commission_asset,
                "tradeId": t.trade_id,
            }
            for t in fills
        ]
    return body


def order_status(order: Order) -> dict:
    """GET /api/v3/order and /openOrders."""
    return {
        **_order_common(order),
        "stopPrice": "0.00000000",
        "icebergQty": "0.00000000",
        "time": order.time,
        "updateTime": order.update_time,
        "isWorking": True,
        "workingTime": order.time,
    }


def order_canceled(order: Order, cancel_client_id: str, now_ms: int) -> dict:
    """DELETE /api/v3/order: `clientOrderId` is the cancel request's own id, as on Binance."""
    return {
        **_order_common(order),
        "origClientOrderId": order.client_order_id,
        "clientOrderId": cancel_client_id,
        "transactTime": now_ms,
    }


def account_trade(trade: Trade) -> dict:
    """GET /api/v3/myTrades."""
    return {
        "symbol": trade.symbol,
        "id": trade.trade_id,
        "orderId": trade.order_id,
        "orderListId": -1,
        "price": f8(trade.price),
        "qty": f8(trade.qty),
        "quoteQty": f8(trade.quote_qty),
        "commission": f8(trade.commission),
        "commissionAsset": trade.commission_asset,
        "time": trade.time,
        "isBuyer": trade.side == "BUY",
        "isMaker": trade.is_maker,
        "isBestMatch": True,
    }


def account(balances: dict[str, Balance], fee_rate: Decimal, now_ms: int) -> dict:
    """GET /api/v3/account."""
    bps = int(fee_rate * 10_000)
    return {
        "makerCommission": bps,
        "takerCommission": bps,
        "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {
            "maker": f8(fee_rate),
            "taker": f8(fee_rate),
            "buyer": f8(Decimal(0)),
            "seller": f8(Decimal(0)),
        },
        "canTrade": True,
        "canWithdraw": False,
        "canDeposit": False,
        "brokered": False,
        "requireSelfTradePrevention": False,
        "preventSor": False,
        "updateTime": now_ms,
        "accountType": "SPOT",
        "balances": [{"asset": a, "free": f8(b.free), "locked": f8(b.locked)} for a, b in balances.items()],
        "permissions": ["SPOT"],
    }
