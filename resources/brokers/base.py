"""What the executor needs of a venue: the broker interface, its records and its three kinds of failure.

Every quantity, price and fee is a `decimal.Decimal` (as `trading_assets.orders` requires); times are
tz-aware UTC. Orders are named by their client order id, which the executor derives deterministically, so
an order is asked about, cancelled and reconciled by the same id after a restart.

Failures are told apart because the executor must act on each differently:
- `OrderRejected`: the venue refused the order definitively (insufficient funds, invalid quantity...);
  the order is REJECTED with the reason.
- `OutcomeUnknown`: the request may or may not have reached the venue (a timeout, a dropped response);
  the order goes to UNKNOWN and is resolved by `order_status` of the same client order id, never sent
  again under a new one.
- `BrokerUnavailable`: the request certainly did not reach the venue (the broker is disconnected, or the
  venue answered that it is down before taking it); nothing is sent while it lasts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal, Protocol, runtime_checkable

Side = Literal["buy", "sell"]
OrderType = Literal["market", "limit"]
# How a venue describes an order (ccxt's unified statuses); the executor maps them to the order machine.
VenueStatus = Literal["open", "closed", "canceled", "expired", "rejected"]
EventKind = Literal["order", "fill", "disconnected", "reconnected"]


class BrokerError(RuntimeError):
    """A broker call that failed; the subclasses say what the executor may conclude."""


class OrderRejected(BrokerError):
    """The venue refused the order for good; `reason` is the venue's words."""

    def __init__(self, client_order_id: str, reason: str) -> None:
        super().__init__(f"order {client_order_id} rejected: {reason}")
        self.client_order_id = client_order_id
        self.reason = reason


class OutcomeUnknown(BrokerError):
    """The request's outcome is not known: ask the venue by client order id before anything else."""


class BrokerUnavailable(BrokerError):
    """The venue cannot be reached and nothing was sent."""


@dataclass(frozen=True)
class OrderRequest:
    """An order to send: `limit_price` for limit orders only."""

    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    quantity: Decimal
    limit_price: Decimal | None = None

    def __post_init__(self) -> None:
        if self.side not in ("buy", "sell"):
            raise ValueError(f"order {self.client_order_id}: side must be 'buy' or 'sell', got {self.side!r}")
        if self.type not in ("market", "limit"):
            raise ValueError(
                f"order {self.client_order_id}: type must be 'market' or 'limit', got {self.type!r}"
            )
        if (self.type == "limit") != (self.limit_price is not None):
            raise ValueError(
                f"order {self.client_order_id}: a limit price goes with limit orders, and only them"
            )


@dataclass(frozen=True)
class VenueOrder:
    """An order as the venue reports it now."""

    client_order_id: str
    venue_order_id: str | None
    symbol: str
    side: Side
    type: OrderType
    status: VenueStatus
    quantity: Decimal
    filled: Decimal
    average_price: Decimal | None
    # The venue's reason for a rejection or an expiry, when it gives one.
    reason: str | None = None


@dataclass(frozen=True)
class VenueFill:
    """One execution, unique at its venue by `trade_id`."""

    venue: str
    trade_id: str
    client_order_id: str | None
    venue_order_id: str | None
    symbol: str
    side: Side
    quantity: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str | None
    ts: datetime


@dataclass(frozen=True)
class BrokerEvent:
    """What the broker's event stream carries: an order's new state, a fill, or the link going down or up
    (after "reconnected" the executor asks the venue for what it may have missed)."""

    kind: EventKind
    at: datetime
    order: VenueOrder | None = None
    fill: VenueFill | None = None
    detail: str = ""


@runtime_checkable
class Broker(Protocol):
    """A venue account, as the executor uses it."""

    venue: str

    async def submit(self, request: OrderRequest) -> VenueOrder:
        """Send the order; its state as the venue answered. OrderRejected, OutcomeUnknown or
        BrokerUnavailable as above."""
        ...

    async def cancel(self, client_order_id: str, symbol: str) -> VenueOrder:
        """Ask the venue to cancel; its state after the request (it may have filled meanwhile)."""
        ...

    async def order_status(self, client_order_id: str, symbol: str) -> VenueOrder | None:
        """The order as the venue knows it, or None if the venue never received it."""
        ...

    async def open_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        """Orders still working at the venue."""
        ...

    async def fills_since(self, symbol: str, since: datetime) -> list[VenueFill]:
        """Executions of `symbol` at or after `since`, oldest first."""
        ...

    async def balances(self) -> dict[str, Decimal]:
        """Total balance per asset (free and locked)."""
        ...

    async def positions(self) -> dict[str, Decimal]:
        """Position per symbol (on a spot venue: the base asset's balance)."""
        ...

    def events(self) -> AsyncIterator[BrokerEvent]:
        """Order updates and fills as they happen, with "disconnected" and "reconnected" marks."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
