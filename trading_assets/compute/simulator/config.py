"""How a simulation trades: fills, costs, sizing, direction, exits and the year length for annualising.

A `SimConfig` is checked when it is made, so an invalid one never reaches the kernel; the error names the
field and the value. `to_dict`/`from_dict` round-trip exactly through JSON, because the catalog stores the
config of every simulation and re-runs it from there.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

FILLS = ("next_open", "close")
SIZINGS = ("fraction", "notional", "units")
DIRECTIONS = ("both", "long", "short")


class SimConfigError(ValueError):
    """A config field that is missing, of the wrong type or out of range; the message names it."""


@dataclass(frozen=True)
class SimConfig:
    """Trading rules of one simulation; conventions in the package docstring and docs/metrics.md.

    `fee_bps` and `slippage_bps` are basis points (1 bp = 0.0001) per fill. `*_pct` fields are fractions:
    `stop_loss_pct=0.02` exits 2 % against the entry price. `fraction` may exceed 1 (leverage).
    """

    fill: Literal["next_open", "close"] = "next_open"
    # The launchpad's default since its first version, which stored job requests that leave it out mean.
    fee_bps: float = 1.0
    slippage_bps: float = 0.0
    initial_cash: float = 10_000.0
    sizing: Literal["fraction", "notional", "units"] = "fraction"
    fraction: float = 1.0
    notional: float | None = None
    units: float | None = None
    direction: Literal["both", "long", "short"] = "both"
    stop_loss_pct: float | None = None
    take_profit_pct: float | None = None
    max_bars_held: int | None = None
    bars_per_year: float = 252.0

    def __post_init__(self) -> None:
        _choice("fill", self.fill, FILLS)
        _choice("sizing", self.sizing, SIZINGS)
        _choice("direction", self.direction, DIRECTIONS)
        _number("fee_bps", self.fee_bps, low=0.0)
        # Slippage of 100 % or more would sell at a price of zero or below.
        _number("slippage_bps", self.slippage_bps, low=0.0, below=10_000.0)
        _number("initial_cash", self.initial_cash, above=0.0)
        _number("fraction", self.fraction, above=0.0)
        _number("bars_per_year", self.bars_per_year, above=0.0)
        for name in ("notional", "units"):
            if getattr(self, name) is not None:
                _number(name, getattr(self, name), above=0.0)
        if self.sizing in ("notional", "units") and getattr(self, self.sizing) is None:
            raise SimConfigError(f"{self.sizing} must be set when sizing={self.sizing!r}, got None")
        if self.stop_loss_pct is not None:
            # A long's stop at 100 % or more below its entry could never trigger at a positive price.
            _number("stop_loss_pct", self.stop_loss_pct, above=0.0, below=1.0)
        if self.take_profit_pct is not None:
            _number("take_profit_pct", self.take_profit_pct, above=0.0)
        if self.max_bars_held is not None and (
            isinstance(self.max_bars_held, bool)
            or not isinstance(self.max_bars_held, int)
            or self.max_bars_held < 1
        ):
            raise SimConfigError(f"max_bars_held must be None or an int >= 1, got {self.max_bars_held!r}")

    @property
    def trade_size(self) -> float:
        """The amount the sizing scales by the target: fraction of equity, notional or units."""
        return {"fraction": self.fraction, "notional": self.notional, "units": self.units}[self.sizing]

    def to_dict(self) -> dict[str, Any]:
        """Every field by name; JSON-safe (str, float, int or None)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SimConfig:
        """The config `to_dict` wrote; unknown keys are an error (a typo must not fall back to a default)."""
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise SimConfigError(f"unknown SimConfig fields {sorted(unknown)}")
        return cls(**data)


def _choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise SimConfigError(f"{name} must be one of {allowed}, got {value!r}")


def _number(
    name: str,
    value: object,
    *,
    low: float | None = None,
    above: float | None = None,
    below: float | None = None,
) -> None:
    """`value` is a finite real number (not a bool) with value >= low, value > above and value < below."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SimConfigError(f"{name} must be a finite number, got {value!r}")
    if (
        (low is not None and value < low)
        or (above is not None and value <= above)
        or (below is not None and value >= below)
    ):
        bounds = [f">= {low}" if low is not None else "", f"> {above}" if above is not None else ""]
        bounds.append(f"< {below}" if below is not None else "")
        raise SimConfigError(f"{name} must be {' and '.join(b for b in bounds if b)}, got {value!r}")
