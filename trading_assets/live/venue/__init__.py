"""The local venue: a server speaking the part of Binance spot's REST and WebSocket API that ccxt uses for
markets, klines, orders, trades and balances, replaying a dataset's bars on an accelerated or hand-stepped
clock, matching orders against them, with fault controls (docs/live/venue.md)."""

from trading_assets.live.venue.markets import MarketSpec
from trading_assets.live.venue.venue import LocalVenue, VenueSettings

__all__ = ["LocalVenue", "MarketSpec", "VenueSettings"]
