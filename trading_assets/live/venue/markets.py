"""What the venue lists: each symbol's assets and Binance filters (PRICE_FILTER, LOT_SIZE, MIN_NOTIONAL),
and the order of the checks a new order passes through them."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


class BinanceError(Exception):
    """A refusal in Binance's words: its error code, message and HTTP status."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status


INSUFFICIENT_BALANCE = (-2010, "Account has insufficient balance for requested action.")
LOT_SIZE = (-1013, "Filter failure: LOT_SIZE")


@dataclass(frozen=True)
class MarketSpec:
    """One spot market: `symbol` as ccxt writes it (BTC/USDT); sizes as decimal strings."""

    symbol: str
    tick_size: str = "0.01"
    step_size: str = "0.00001"
    min_qty: str = "0.00001"
    max_qty: str = "9000"
    min_notional: str = "5"

    def __post_init__(self) -> None:
        base, sep, quote = self.symbol.partition("/")
        if not sep or not base.isalnum() or not quote.isalnum():
            raise ValueError(f"market symbol {self.symbol!r} is not BASE/QUOTE (e.g. BTC/USDT)")
        for name in ("tick_size", "step_size", "min_qty", "max_qty", "min_notional"):
            if Decimal(getattr(self, name)) < 0:
                raise ValueError(f"market {self.symbol}: {name} must not be negative")

    @property
    def base(self) -> str:
        return self.symbol.split("/")[0].upper()

    @property
    def quote(self) -> str:
        return self.symbol.split("/")[1].upper()

    @property
    def venue_id(self) -> str:
        return self.base + self.quote

    def floor_qty(self, qty: Decimal) -> Decimal:
        step = Decimal(self.step_size)
        return (qty // step) * step if step else qty

    def check_quantity(self, qty: Decimal) -> None:
        step, low, high = Decimal(self.step_size), Decimal(self.min_qty), Decimal(self.max_qty)
        if qty < low or qty > high or (step and (qty - low) % step):
            raise BinanceError(*LOT_SIZE)

    def check_price(self, price: Decimal) -> None:
        tick = Decimal(self.tick_size)
        if price <= 0 or (tick and price % tick):
            raise BinanceError(-1013, "Filter failure: PRICE_FILTER")

    def check_notional(self, notional: Decimal) -> None:
        if notional < Decimal(self.min_notional):
            raise BinanceError(-1013, "Filter failure: MIN_NOTIONAL")

    def exchange_info(self) -> dict:
        """The market's entry in /api/v3/exchangeInfo `symbols`."""
        eight = "{:.8f}".format
        return {
            "symbol": self.venue_id,
            "status": "TRADING",
            "baseAsset": self.base,
            "baseAssetPrecision": 8,
            "quoteAsset": self.quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": ["LIMIT", "MARKET"],
            "icebergAllowed": False,
            "ocoAllowed": False,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": False,
            "cancelReplaceAllowed": False,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": eight(Decimal(self.tick_size)),
                    "maxPrice": "1000000.00000000",
                    "tickSize": eight(Decimal(self.tick_size)),
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": eight(Decimal(self.min_qty)),
                    "maxQty": eight(Decimal(self.max_qty)),
                    "stepSize": eight(Decimal(self.step_size)),
                },
                {
                    "filterType": "MIN_NOTIONAL",
                    "minNotional": eight(Decimal(self.min_notional)),
                    "applyToMarket": True,
                    "avgPriceMins": 0,
                },
            ],
            "permissions": ["SPOT"],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["EXPIRE_MAKER"],
        }
