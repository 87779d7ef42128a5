"""What a promoted strategy trades by, and the `promote_strategy` job's config.

`StrategyRules` are the simulator's rules for turning a target into a position (sizing, direction) and
the signal function's dead zone; they are stored as JSON in the strategy's `sizing` column, so the runner,
the executor and the offline replay read the same rules the research simulation used.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from typing import Literal

import dagster as dg
from pydantic import Field


class StrategyConfigError(ValueError):
    """A strategy setting that cannot be used; the message names the field."""


@dataclass(frozen=True)
class StrategyRules:
    """How a strategy's target (-1, 0, +1) becomes a position: `units` of the base asset, a `notional` in
    the quote currency at the last close, or a `fraction` of the account's equity in the quote currency;
    `direction` drops the side it excludes (as the simulator does); `dead_zone` is the signal function's
    rule between the thresholds."""

    sizing: Literal["units", "notional", "fraction"] = "units"
    amount: Decimal = Decimal(1)
    direction: Literal["both", "long", "short"] = "both"
    dead_zone: Literal["flat", "hold"] = "flat"

    def __post_init__(self) -> None:
        if self.sizing not in ("units", "notional", "fraction"):
            raise StrategyConfigError(f"sizing must be units, notional or fraction, got {self.sizing!r}")
        if self.direction not in ("both", "long", "short"):
            raise StrategyConfigError(f"direction must be both, long or short, got {self.direction!r}")
        if self.dead_zone not in ("flat", "hold"):
            raise StrategyConfigError(f"dead_zone must be flat or hold, got {self.dead_zone!r}")
        if not isinstance(self.amount, Decimal) or not self.amount.is_finite() or self.amount <= 0:
            raise StrategyConfigError(f"amount must be a positive decimal, got {self.amount!r}")

    def to_json(self) -> str:
        body = {**asdict(self), "amount": str(self.amount)}
        return json.dumps(body, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> StrategyRules:
        try:
            body = json.loads(text)
        except ValueError as err:
            raise StrategyConfigError(f"sizing: not JSON ({err})") from None
        if not isinstance(body, dict):
            raise StrategyConfigError("sizing: not a JSON object")
        unknown = set(body) - {"sizing", "amount", "direction", "dead_zone"}
        if unknown:
            raise StrategyConfigError(f"sizing: unknown field(s) {sorted(unknown)}")
        try:
            amount = Decimal(str(body.get("amount", "1")))
        except InvalidOperation:
            raise StrategyConfigError(f"sizing.amount: {body.get('amount')!r} is not a number") from None
        return cls(
            sizing=body.get("sizing", "units"),
            amount=amount,
            direction=body.get("direction", "both"),
            dead_zone=body.get("dead_zone", "flat"),
        )

    def side_allowed(self, target: float) -> float:
        """The target with the excluded side made flat."""
        if (self.direction == "long" and target < 0) or (self.direction == "short" and target > 0):
            return 0.0
        return target


class PromoteConfig(dg.Config):
    """Promote one fold's model of a completed walkforward run to a live strategy (stopped until asked to
    run). The thresholds are the fold's own unless given."""

    name: str = Field(description="The strategy's name: [a-z][a-z0-9_]*, at most 24 characters.")
    run: str = Field(description="A completed walkforward run, e.g. btc25_run1.")
    fold: int | None = Field(default=None, description="The fold whose model trades; the last one if unset.")
    symbol: str = Field(description="The ccxt symbol traded, e.g. BTC/USDT.")
    venue: str = Field(default="binance", description="The ccxt venue id.")
    account: str = Field(default="main", description="The venue account's name in the orders repository.")
    sizing: Literal["units", "notional", "fraction"] = "units"
    amount: str = Field(default="0.01", description="Units, notional or fraction, as a decimal string.")
    # Spot markets take only "long": a spot account cannot sell what it does not hold.
    direction: Literal["both", "long", "short"] = "long"
    dead_zone: Literal["flat", "hold"] = "flat"
    long_threshold: float | None = None
    short_threshold: float | None = None
    max_position: str = Field(default="1", description="Largest position either side, in base units.")
    max_order_notional: str = Field(default="100000", description="Largest order, in the quote currency.")
    max_orders_per_minute: int = 10

    def rules(self) -> StrategyRules:
        try:
            amount = Decimal(self.amount)
        except InvalidOperation:
            raise StrategyConfigError(f"amount: {self.amount!r} is not a number") from None
        return StrategyRules(self.sizing, amount, self.direction, self.dead_zone)
