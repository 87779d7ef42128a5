"""The paper venue's fill model: when, at what price and how much of an order the bars after it fill.

Rules (docs/live/paper.md states them for users):
- an order becomes active `latency` after it arrives; only bars that open at or after that time fill it
  (a bar that had begun before the order existed could fill it only by looking ahead);
- a market order fills at the bar's open moved `slippage_bps` against the taker (up for a buy, down for a
  sell); a limit order fills on a bar whose range reaches its limit, at the limit, or at the open when the
  open is already better;
- a bar fills at most `participation` x its volume, so a big order fills over several bars; quantities
  are rounded down to the instrument's step, and a fill below the minimum quantity does not happen unless
  it completes the order;
- the fee is `fee_rate` x the fill's notional, in the quote currency;
- an order is refused when its quantity is below the minimum or off the step (invalid quantity), when the
  free balance cannot pay for it (insufficient funds), or by a seeded draw with `reject_probability`.

Deterministic: the draws of an order (rejection, latency) come from a generator seeded by (seed, client
order id) alone, so the same order on the same bars fills the same way in any process, after any restart,
whatever other orders did; trade ids are `<client order id>-<n>`. Pure: no storage, no network.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Context, Decimal, DivisionByZero, InvalidOperation, Overflow
from typing import Literal

from trading_assets.orders import OrderError, check_decimal, rounded

Side = Literal["buy", "sell"]
OrderType = Literal["market", "limit"]

INVALID_QUANTITY = "invalid quantity"
INSUFFICIENT_FUNDS = "insufficient funds"
SIMULATED_REJECTION = "rejected by the venue (simulated)"

# The context sums and products of stored values run in: two of 18 places need 76 digits, so nothing rounds
# before `rounded` (the default context keeps 28 digits).
WIDE = Context(prec=80, traps=[InvalidOperation, Overflow, DivisionByZero])
_BPS = Decimal(10_000)


@dataclass(frozen=True)
class Instrument:
    """How an instrument's quantities are counted: the step every quantity is a multiple of, and the
    smallest quantity an order (and a fill, unless it completes the order) may have."""

    step: Decimal
    min_quantity: Decimal

    def __post_init__(self) -> None:
        check_decimal("step", self.step)
        check_decimal("min_quantity", self.min_quantity)


@dataclass(frozen=True)
class FillParams:
    """The fill model's parameters (docs/live/paper.md)."""

    fee_rate: Decimal = Decimal("0.001")
    slippage_bps: Decimal = Decimal(5)
    participation: Decimal = Decimal("0.1")
    latency_s: tuple[float, float] = (0.05, 0.25)
    reject_probability: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        check_decimal("fee_rate", self.fee_rate, positive=False)
        check_decimal("slippage_bps", self.slippage_bps, positive=False)
        check_decimal("participation", self.participation)
        if self.participation > 1:
            raise ValueError(f"participation {self.participation} must be in (0, 1]")
        low, high = self.latency_s
        if not 0 <= low <= high:
            raise ValueError(f"latency_s {self.latency_s} must be (min, max) with 0 <= min <= max")
        if not 0 <= self.reject_probability <= 1:
            raise ValueError(f"reject_probability {self.reject_probability} must be in [0, 1]")


@dataclass(frozen=True)
class Order:
    """An order as the model sees it: `active_at` is its arrival plus its latency."""

    client_order_id: str
    side: Side
    type: OrderType
    quantity: Decimal
    active_at: datetime
    limit_price: Decimal | None = None


@dataclass(frozen=True)
class Bar:
    """A closed bar; `ts` is the time it opened."""

    ts: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


@dataclass(frozen=True)
class Fill:
    """One execution: on the bar opening at `ts`, fee in the quote currency."""

    trade_id: str
    ts: datetime
    quantity: Decimal
    price: Decimal
    fee: Decimal


@dataclass(frozen=True)
class Draws:
    """An order's random outcomes, drawn once from its own generator."""

    rejected: bool
    latency: timedelta


def draws(params: FillParams, client_order_id: str) -> Draws:
    """The draws of the order named `client_order_id`: the same for the same (seed, id), everywhere.

    The generator is seeded by a SHA-256 of both (Python's `hash` of a str changes between processes) and
    only `random()` is used, whose sequence Python keeps stable across versions.
    """
    digest = hashlib.sha256(f"{params.seed}\x00{client_order_id}".encode()).digest()
    generator = random.Random(int.from_bytes(digest[:16], "big"))
    rejected = generator.random() < params.reject_probability
    low, high = params.latency_s
    latency = timedelta(microseconds=round((low + (high - low) * generator.random()) * 1_000_000))
    return Draws(rejected, latency)


def floor_to_step(quantity: Decimal, step: Decimal) -> Decimal:
    """The largest multiple of `step` not above `quantity` (>= 0)."""
    steps = WIDE.divide(quantity, step).to_integral_value(rounding=ROUND_FLOOR)
    return WIDE.multiply(max(steps, Decimal(0)), step)


def stored(value: Decimal) -> Decimal:
    """`value` rounded to the stored scale, without trailing zeros (prices and fees print as venues write
    them: 101.101, not 101.101000000000000000)."""
    value = rounded(value)
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize(WIDE)


def notional(quantity: Decimal, price: Decimal) -> Decimal:
    """quantity x price at the stored scale."""
    return stored(WIDE.multiply(quantity, price))


def fee(quantity: Decimal, price: Decimal, params: FillParams) -> Decimal:
    """The fee of a fill, in the quote currency, at the stored scale."""
    return stored(WIDE.multiply(WIDE.multiply(quantity, price), params.fee_rate))


def cost(quantity: Decimal, price: Decimal, params: FillParams) -> Decimal:
    """What buying `quantity` at `price` takes from the quote balance, fee included."""
    return notional(quantity, price) + fee(quantity, price, params)


def reference_price(order: Order, close: Decimal | None, params: FillParams) -> Decimal | None:
    """The price a buy's funds are checked (and reserved) at: the limit, or the last close moved by the
    slippage for a market order (None when no close is known yet)."""
    if order.type == "limit":
        return order.limit_price
    return None if close is None else _slipped(close, order.side, params)


def rejection(
    order: Order, instrument: Instrument, params: FillParams, free: Decimal, price: Decimal | None
) -> str | None:
    """Why the venue refuses `order`, or None: the deterministic rules first, then the seeded draw.

    `free` is the balance the order spends that other working orders leave (quote for a buy, base for a
    sell); `price` is the buy's `reference_price`.
    """
    try:
        check_decimal("quantity", order.quantity)
        if order.limit_price is not None:
            check_decimal("limit price", order.limit_price)
    except OrderError as err:
        return f"{INVALID_QUANTITY}: {err}"
    if order.quantity < instrument.min_quantity:
        return f"{INVALID_QUANTITY}: {order.quantity} is below the minimum {instrument.min_quantity}"
    if floor_to_step(order.quantity, instrument.step) != order.quantity:
        return f"{INVALID_QUANTITY}: {order.quantity} is not a multiple of the step {instrument.step}"
    if order.side == "buy":
        if price is None:
            return "no market price yet to check the funds of a market buy"
        need = cost(order.quantity, price, params)
    else:
        need = order.quantity
    if need > free:
        return f"{INSUFFICIENT_FUNDS}: needs {need}, {free} free"
    if draws(params, order.client_order_id).rejected:
        return SIMULATED_REJECTION
    return None


def fill_price(order: Order, bar: Bar, params: FillParams) -> Decimal | None:
    """The price `bar` fills `order` at, or None when it does not (too early, or the limit not reached)."""
    if bar.ts < order.active_at:
        return None
    if order.type == "market":
        return _slipped(bar.open, order.side, params)
    limit = order.limit_price
    assert limit is not None  # OrderRequest and rejection() guarantee it
    if order.side == "buy":
        return min(bar.open, limit) if bar.low <= limit else None
    return max(bar.open, limit) if bar.high >= limit else None


def bar_fill(
    order: Order,
    bar: Bar,
    remaining: Decimal,
    instrument: Instrument,
    params: FillParams,
    taken: Decimal = Decimal(0),
    affordable: Decimal | None = None,
) -> tuple[Decimal, Decimal] | None:
    """(quantity, price) that `bar` fills of the `remaining` quantity of `order`, or None.

    `taken` is what earlier orders took of this bar's participation; `affordable` the most the account
    can pay for (None: no limit).
    """
    price = fill_price(order, bar, params)
    if price is None or remaining <= 0:
        return None
    room = WIDE.subtract(WIDE.multiply(params.participation, bar.volume), taken)
    cap = min(remaining, room) if affordable is None else min(remaining, room, affordable)
    quantity = floor_to_step(cap, instrument.step)
    if quantity <= 0 or (quantity < instrument.min_quantity and quantity != remaining):
        return None
    return quantity, price


def affordable(
    side: Side, free: Decimal, price: Decimal, instrument: Instrument, params: FillParams
) -> Decimal:
    """The most a fill at `price` may take with `free` (quote for a buy, fee included; base for a sell)."""
    if side == "sell":
        return floor_to_step(free, instrument.step)
    quantity = floor_to_step(WIDE.divide(free, WIDE.multiply(price, 1 + params.fee_rate)), instrument.step)
    # The fee is rounded to the stored scale: a half-unit up may leave the cost a hair above `free`.
    while quantity > 0 and cost(quantity, price, params) > free:
        quantity -= instrument.step
    return quantity


def fills(order: Order, bars: Iterable[Bar], instrument: Instrument, params: FillParams) -> list[Fill]:
    """The fills of `order` over `bars` in time order, alone on the market and with funds enough: what the
    paper broker does bar by bar, for one order."""
    out: list[Fill] = []
    filled = Decimal(0)
    for bar in bars:
        taken = bar_fill(order, bar, order.quantity - filled, instrument, params)
        if taken is None:
            continue
        quantity, price = taken
        filled = WIDE.add(filled, quantity)
        n = len(out) + 1
        out.append(
            Fill(trade_id(order.client_order_id, n), bar.ts, quantity, price, fee(quantity, price, params))
        )
        if filled == order.quantity:
            break
    return out


def trade_id(client_order_id: str, n: int) -> str:
    """The id of the `n`-th fill (1, 2, ...) of an order."""
    return f"{client_order_id}-{n}"


def _slipped(price: Decimal, side: Side, params: FillParams) -> Decimal:
    move = WIDE.divide(params.slippage_bps, _BPS)
    return stored(WIDE.multiply(price, 1 + move if side == "buy" else 1 - move))
