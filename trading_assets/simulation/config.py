"""The typed config of a simulation: the launchpad's form, and what the job-request intake validates a
submitted row or `trading-assets submit` file with, so all three doors say the same."""

from typing import Literal

import dagster as dg
from pydantic import Field

from trading_assets.compute.simulator import SimConfig
from trading_assets.simulation.service import SimulationSpec


class SimulationSettings(dg.Config):
    """How a walkforward run's predictions are traded (every simulation setting but the run).
    Conventions (fills, sizing, stops) are in docs/metrics.md."""

    thresholds: Literal["run", "given"] = Field(
        default="run",
        description="run: each bar takes its fold's thresholds (from the fold's own train period); given: "
        "long_threshold/short_threshold for every bar.",
    )
    long_threshold: float | None = Field(default=None, description="Long at or above (thresholds: given).")
    short_threshold: float | None = Field(default=None, description="Short at or below (thresholds: given).")
    dead_zone: Literal["flat", "hold"] = Field(
        default="flat",
        description="Between the thresholds: flat, or hold the position until the other threshold.",
    )
    fill: Literal["next_open", "close"] = Field(
        default="next_open",
        description="next_open: fill at the next bar's open; close: at the signal's close.",
    )
    fee_bps: float = Field(default=1.0, description="Fee per side, basis points of traded notional.")
    slippage_bps: float = Field(default=0.0, description="Slippage against every fill, basis points.")
    initial_cash: float = Field(default=10_000.0, description="Starting equity.")
    sizing: Literal["fraction", "notional", "units"] = Field(
        default="fraction", description="fraction of equity, a fixed notional, or fixed units."
    )
    fraction: float = Field(default=1.0, description="Fraction of equity per position (sizing: fraction).")
    notional: float | None = Field(default=None, description="Notional per position (sizing: notional).")
    units: float | None = Field(default=None, description="Units per position (sizing: units).")
    direction: Literal["both", "long", "short"] = Field(default="both", description="Sides traded.")
    stop_loss_pct: float | None = Field(default=None, description="Stop-loss, fraction of the entry price.")
    take_profit_pct: float | None = Field(default=None, description="Take-profit, fraction of the entry.")
    max_bars_held: int | None = Field(default=None, description="Close a trade after this many bars.")


class SimulationConfig(SimulationSettings):
    """A trading simulation of a walkforward run's predictions. It gets the name <dataset>_sim<n>; the
    simulation sensor then runs it. Conventions (fills, sizing, stops) are in docs/metrics.md."""

    run: str = Field(description="Walkforward run whose predictions are replayed, e.g. btc25_run1.")

    def spec(self) -> SimulationSpec:
        """The simulation spec; SimConfigError (a ValueError) or SimulationError names the wrong field."""
        data = self.model_dump()
        return SimulationSpec(
            run=data.pop("run"),
            thresholds=data.pop("thresholds"),
            long_threshold=data.pop("long_threshold"),
            short_threshold=data.pop("short_threshold"),
            dead_zone=data.pop("dead_zone"),
            sim=SimConfig(**data),
        )
