"""Orders in the domain: the state machine every status change of an order goes through, the deterministic
client order ids orders are sent under, and what a fill does to a position. Pure: no storage, no network.

The machine is one explicit table of (from, event, to) triples, after nautilus_trader's order model. An
event that can lead to two states (a fill: partly or wholly filled) picks the one whose filled quantity
fits (`fits`): states say what they hold, so the choice never depends on anything but the order itself.
Nothing leaves a terminal state. A venue's definitive refusal is REJECT (with its reason); a timeout or a
lost response is TIMEOUT, to UNKNOWN, which only the venue's answer to a query by the same client order id
resolves (ACCEPT, FILL, CANCEL, REJECT or EXPIRE): the order is never sent again under another id.
A venue that reports an order canceled after fills must have its fills applied first (the executor reads
them before the cancel), since CANCELED takes no fill.

Quantities are `decimal.Decimal`: venues speak decimal strings, and a cumulative filled quantity built by
adding floats drifts (0.1 + 0.2 != 0.3), so "filled == quantity" could never be trusted. Integers of the
instrument's step would be exact too but would carry the step into every record and query; Decimal needs
nothing but the numbers. Sums run in a context that traps any rounding, so they are exact or fail.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Context, Decimal, DivisionByZero, Inexact, InvalidOperation, Overflow
from enum import StrEnum
from typing import Any

from trading_assets.naming import InvalidNameError, strategy_name


class OrderStatus(StrEnum):
    INITIALIZED = "INITIALIZED"  # the intent, stored before anything is sent
    DENIED = "DENIED"  # refused before sending (risk checks, kill switch); never reached the venue
    SUBMITTED = "SUBMITTED"  # recorded as sent, before the request leaves: a crash leaves it to query
    ACCEPTED = "ACCEPTED"  # working at the venue, nothing filled
    REJECTED = "REJECTED"  # the venue refused it, definitively
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    PENDING_CANCEL = "PENDING_CANCEL"  # a cancel is in flight; fills still arrive
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"  # ended by the venue (time in force, IOC remainder)
    UNKNOWN = "UNKNOWN"  # a request's outcome was lost; resolved by querying its client order id


class OrderEvent(StrEnum):
    DENY = "DENY"
    SUBMIT = "SUBMIT"
    ACCEPT = "ACCEPT"  # the venue says the order is working (an acknowledgement, or a query's answer)
    REJECT = "REJECT"
    FILL = "FILL"
    CANCEL_REQUEST = "CANCEL_REQUEST"
    CANCEL_REJECT = "CANCEL_REJECT"  # the venue refused the cancel: the order still works
    CANCEL = "CANCEL"  # the venue confirms the order canceled
    EXPIRE = "EXPIRE"
    TIMEOUT = "TIMEOUT"  # no answer, or an answer lost: the outcome is unknown


S, E = OrderStatus, OrderEvent

TRANSITIONS: frozenset[tuple[OrderStatus, OrderEvent, OrderStatus]] = frozenset(
    [
        (S.INITIALIZED, E.DENY, S.DENIED),
        (S.INITIALIZED, E.SUBMIT, S.SUBMITTED),
        (S.SUBMITTED, E.ACCEPT, S.ACCEPTED),
        (S.SUBMITTED, E.REJECT, S.REJECTED),
        (S.SUBMITTED, E.FILL, S.PARTIALLY_FILLED),
        (S.SUBMITTED, E.FILL, S.FILLED),
        (S.SUBMITTED, E.CANCEL_REQUEST, S.PENDING_CANCEL),
        (S.SUBMITTED, E.CANCEL, S.CANCELED),
        (S.SUBMITTED, E.EXPIRE, S.EXPIRED),
        (S.SUBMITTED, E.TIMEOUT, S.UNKNOWN),
        (S.ACCEPTED, E.FILL, S.PARTIALLY_FILLED),
        (S.ACCEPTED, E.FILL, S.FILLED),
        (S.ACCEPTED, E.CANCEL_REQUEST, S.PENDING_CANCEL),
        (S.ACCEPTED, E.CANCEL, S.CANCELED),
        (S.ACCEPTED, E.EXPIRE, S.EXPIRED),
        (S.PARTIALLY_FILLED, E.FILL, S.PARTIALLY_FILLED),
        (S.PARTIALLY_FILLED, E.FILL, S.FILLED),
        (S.PARTIALLY_FILLED, E.CANCEL_REQUEST, S.PENDING_CANCEL),
        (S.PARTIALLY_FILLED, E.CANCEL, S.CANCELED),
        (S.PARTIALLY_FILLED, E.EXPIRE, S.EXPIRED),
        # A partial fill during a cancel keeps the cancel pending; the last fill ends the order.
        (S.PENDING_CANCEL, E.FILL, S.PENDING_CANCEL),
        (S.PENDING_CANCEL, E.FILL, S.FILLED),
        (S.PENDING_CANCEL, E.CANCEL, S.CANCELED),
        (S.PENDING_CANCEL, E.CANCEL_REJECT, S.ACCEPTED),
        (S.PENDING_CANCEL, E.CANCEL_REJECT, S.PARTIALLY_FILLED),
        (S.PENDING_CANCEL, E.EXPIRE, S.EXPIRED),
        (S.PENDING_CANCEL, E.TIMEOUT, S.UNKNOWN),
        (S.UNKNOWN, E.ACCEPT, S.ACCEPTED),
        (S.UNKNOWN, E.ACCEPT, S.PARTIALLY_FILLED),
        (S.UNKNOWN, E.FILL, S.PARTIALLY_FILLED),
        (S.UNKNOWN, E.FILL, S.FILLED),
        (S.UNKNOWN, E.CANCEL, S.CANCELED),
        (S.UNKNOWN, E.REJECT, S.REJECTED),
        (S.UNKNOWN, E.EXPIRE, S.EXPIRED),
    ]
)
TERMINAL = frozenset({S.DENIED, S.REJECTED, S.FILLED, S.CANCELED, S.EXPIRED})
# States in which the order may still work at the venue (or may have reached it): what reconciliation asks
# the venue about.
OPEN = frozenset(OrderStatus) - TERMINAL - {S.INITIALIZED}
# Events that end an order with a reason, which they must carry.
NEEDS_REASON = frozenset({E.DENY, E.REJECT})


class OrderError(ValueError):
    """An event the order cannot take; the message names the order, its status and the event."""


class IllegalTransition(OrderError):
    pass


class Overfill(OrderError):
    pass


def fits(status: OrderStatus, filled: Decimal, quantity: Decimal) -> bool:
    """Whether an order of `quantity` with `filled` filled may be in `status`."""
    if status is S.PARTIALLY_FILLED:
        return 0 < filled < quantity
    if status is S.FILLED:
        return filled == quantity
    if status in (S.PENDING_CANCEL, S.UNKNOWN, S.CANCELED, S.EXPIRED):
        return filled < quantity
    return filled == 0


@dataclass(frozen=True)
class OrderState:
    """What the machine needs of an order: its id (for messages), quantity, status and filled quantity."""

    client_order_id: str
    quantity: Decimal
    status: OrderStatus = S.INITIALIZED
    filled_quantity: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        check_decimal("quantity", self.quantity)
        check_decimal("filled quantity", self.filled_quantity, positive=False)
        if not fits(self.status, self.filled_quantity, self.quantity):
            raise OrderError(
                f"order {self.client_order_id}: {self.status} does not hold "
                f"{self.filled_quantity} filled of {self.quantity}"
            )


def next_state(order: OrderState, event: OrderEvent, fill_quantity: Decimal | None = None) -> OrderState:
    """The order after `event` (a FILL of `fill_quantity`, which only FILL takes).

    IllegalTransition if the table has no (status, event) triple, or none whose state fits the filled
    quantity (a REJECT after fills, say); Overfill if a fill would take more than the order's quantity.
    """
    what = f"order {order.client_order_id}: {event} in {order.status}"
    filled = order.filled_quantity
    if event is E.FILL:
        if fill_quantity is None:
            raise OrderError(f"{what}: a fill needs its quantity")
        filled = _EXACT.add(filled, check_decimal("fill quantity", fill_quantity))
    elif fill_quantity is not None:
        raise OrderError(f"{what}: only a fill has a quantity, got {fill_quantity}")
    targets = [to for (start, on, to) in TRANSITIONS if start is order.status and on is event]
    if not targets:
        terminal = " (a terminal state takes no event)" if order.status in TERMINAL else ""
        raise IllegalTransition(f"{what} is not allowed{terminal}")
    if filled > order.quantity:
        raise Overfill(f"{what}: {fill_quantity} more would fill {filled} of {order.quantity}")
    fitting = [to for to in targets if fits(to, filled, order.quantity)]
    if len(fitting) != 1:
        raise IllegalTransition(
            f"{what} is not allowed with {filled} filled of {order.quantity} "
            f"(it leads to {' or '.join(sorted(targets))})"
        )
    return replace(order, status=fitting[0], filled_quantity=filled)


# Quantities, prices and money as the catalog stores them (DECIMAL(38, 18): DuckDB's widest).
SCALE = 18
MAX_DIGITS = 38
_LIMIT = Decimal(10) ** (MAX_DIGITS - SCALE)
_QUANTUM = Decimal(1).scaleb(-SCALE)
# Sums and differences of stored values need at most 40 digits: this context raises rather than rounds.
_EXACT = Context(prec=MAX_DIGITS + 2, traps=[Inexact, InvalidOperation, Overflow, DivisionByZero])
# Products and quotients (average prices, PnL) are rounded to the stored scale, half to even.
_ROUNDED = Context(prec=2 * MAX_DIGITS + 2, traps=[InvalidOperation, Overflow, DivisionByZero])


def replay_history(client_order_id: str, quantity: Decimal, events: Iterable[Any]) -> OrderState:
    """An order's stored events (each with `event`, `detail` as JSON with a FILL's `quantity`, and
    `to_status`; CREATE first) replayed through the state machine: the state they lead to. OrderError if
    one is not a legal step or the state it leads to is not the status recorded with it."""
    state: OrderState | None = None
    for record in events:
        if record.event == "CREATE":
            state = OrderState(client_order_id, quantity)
            continue
        if state is None:
            raise OrderError(f"{client_order_id}: {record.event} before the order was created")
        detail = json.loads(record.detail or "{}")
        fill = Decimal(str(detail["quantity"])) if record.event == OrderEvent.FILL else None
        state = next_state(state, OrderEvent(record.event), fill)
        if state.status != OrderStatus(record.to_status):
            raise OrderError(
                f"{client_order_id}: {record.event} leads to {state.status}, "
                f"the record says {record.to_status}"
            )
    if state is None:
        raise OrderError(f"{client_order_id}: no CREATE event")
    return state


def check_decimal(name: str, value: object, *, positive: bool = True) -> Decimal:
    """`value` if it is a Decimal the catalog stores exactly: finite, at most SCALE decimal places, below
    10**(MAX_DIGITS - SCALE) in size, and > 0 (>= 0 unless `positive`). Floats are refused, not converted:
    a float's decimal expansion is rarely the number the venue sent (take Decimal(str(x)) of a venue's
    float, which gives back the shortest decimal that prints as it)."""
    if not isinstance(value, Decimal):
        raise OrderError(f"{name} {value!r} is a {type(value).__name__}; give a decimal.Decimal")
    if not value.is_finite():
        raise OrderError(f"{name} {value} is not finite")
    if value < 0 or (positive and value == 0):
        raise OrderError(f"{name} {value} must be {'> 0' if positive else '>= 0'}")
    if abs(value) >= _LIMIT or value != rounded(value):
        raise OrderError(f"{name} {value} does not fit {SCALE} decimal places below {_LIMIT:.0e}")
    return value


def rounded(value: Decimal) -> Decimal:
    """`value` at the stored scale, half to even."""
    return value.quantize(_QUANTUM, context=_ROUNDED)


def average_price(held: Decimal, average: Decimal | None, quantity: Decimal, price: Decimal) -> Decimal:
    """The quantity-weighted mean price of `held` at `average` and `quantity` at `price`, rounded."""
    total = _ROUNDED.add(_ROUNDED.multiply(held, average or 0), _ROUNDED.multiply(quantity, price))
    return rounded(_ROUNDED.divide(total, _EXACT.add(held, quantity)))


SIDES = ("buy", "sell")


@dataclass(frozen=True)
class PositionState:
    """A position in one instrument: signed quantity (> 0 long), the average entry price of what is held
    (None when flat) and the PnL realised by reducing it, in the quote currency, before fees."""

    quantity: Decimal = Decimal(0)
    average_entry_price: Decimal | None = None
    realised_pnl: Decimal = Decimal(0)


def position_after_fill(
    position: PositionState, side: str, quantity: Decimal, price: Decimal
) -> PositionState:
    """The position after a fill of `quantity` at `price` on `side` ("buy" or "sell").

    A fill that adds to the position (or opens it) moves the average entry to the quantity-weighted mean; one
    that reduces it realises (price - entry) on the closed quantity, times the old side, and keeps the
    entry; one that crosses zero closes the old position and opens the rest at `price`. The quantity is
    exact; entry and PnL are rounded to the stored scale.
    """
    if side not in SIDES:
        raise OrderError(f"fill side {side!r} is not one of {SIDES}")
    check_decimal("fill quantity", quantity)
    check_decimal("fill price", price)
    held = position.quantity
    delta = quantity if side == "buy" else -quantity
    after = _EXACT.add(held, delta)
    if abs(after) >= _LIMIT:
        raise OrderError(f"position {after} does not fit {SCALE} decimal places below {_LIMIT:.0e}")
    entry, pnl = position.average_entry_price, position.realised_pnl
    if held == 0 or (held > 0) == (delta > 0):
        return PositionState(after, average_price(abs(held), entry, quantity, price), pnl)
    closed = min(abs(delta), abs(held))
    gain = _ROUNDED.multiply(_ROUNDED.multiply(closed, _ROUNDED.subtract(price, entry or 0)), held.compare(0))
    pnl = rounded(_ROUNDED.add(pnl, gain))
    if after == 0:
        return PositionState(Decimal(0), None, pnl)
    return PositionState(after, entry if (after > 0) == (held > 0) else price, pnl)


# Client order ids: `<strategy>-<bar>-<seq>`, the bar as its UTC epoch second and the sequence in base 36,
# fixed width (7 and 3 digits: bars until the year 4453, 46656 orders per bar). Strategy names never hold
# "-", so the id parses back; a strategy name of at most 24 characters keeps it within Binance's 36.
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_BAR_WIDTH, _SEQ_WIDTH = 7, 3
MAX_SEQ = 36**_SEQ_WIDTH - 1
_MAX_BAR_S = 36**_BAR_WIDTH - 1
# Binance's newClientOrderId rule; the ids made here also fit most venues' (letters, digits, - and _).
VENUE_CLIENT_ORDER_ID = re.compile(r"[a-zA-Z0-9_-]{1,36}")
_CLIENT_ORDER_ID = re.compile(rf"([a-z][a-z0-9_]*)-([0-9a-z]{{{_BAR_WIDTH}}})-([0-9a-z]{{{_SEQ_WIDTH}}})")


def client_order_id(strategy: str, bar_ts: datetime, seq: int) -> str:
    """The id of the `seq`-th order (0, 1, ...) a strategy places on the bar closing at `bar_ts`: the same in
    every process, after every restart. OrderError for a naive or pre-1970 `bar_ts`, one with a fraction of
    a second, or `seq` outside 0..MAX_SEQ; InvalidNameError for an invalid strategy name."""
    name = strategy_name(strategy)
    if bar_ts.tzinfo is None or bar_ts.utcoffset() is None:
        raise OrderError(f"bar time {bar_ts} has no time zone; pass UTC")
    if bar_ts.microsecond:
        raise OrderError(f"bar time {bar_ts} has a fraction of a second; bars close on whole seconds")
    seconds = int(bar_ts.timestamp())
    if not 0 <= seconds <= _MAX_BAR_S:
        raise OrderError(f"bar time {bar_ts} is outside 1970..{datetime.fromtimestamp(_MAX_BAR_S, UTC):%Y}")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= MAX_SEQ:
        raise OrderError(f"order sequence {seq!r} is not an integer in 0..{MAX_SEQ}")
    return f"{name}-{_base36(seconds, _BAR_WIDTH)}-{_base36(seq, _SEQ_WIDTH)}"


def parse_client_order_id(value: str) -> tuple[str, datetime, int]:
    """(strategy, bar_ts, seq) of an id made by `client_order_id`; OrderError for any other string."""
    match = _CLIENT_ORDER_ID.fullmatch(value)
    if match is None:
        raise OrderError(f"{value!r} is not a client order id of this system (<strategy>-<bar>-<seq>)")
    try:
        name = strategy_name(match[1])
    except InvalidNameError as err:
        raise OrderError(f"{value!r}: {err}") from None
    return name, datetime.fromtimestamp(int(match[2], 36), UTC), int(match[3], 36)


def _base36(n: int, width: int) -> str:
    digits = ""
    while n:
        n, digit = divmod(n, 36)
        digits = _DIGITS[digit] + digits
    return digits.rjust(width, "0")
