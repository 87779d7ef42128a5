"""The typed config of a simulation: the launchpad's form, and what the job-request intake validates a
submitted row or `trading-assets submit` file with, so all three doors say the same."""

import dataclasses

from pydantic import Field

from trading_assets.compute.simulator import SimConfig
from trading_assets.launchpad import derived_config
from trading_assets.simulation.service import SimulationSpec

# Every field of the spec but the run and of the trading rules (names, types, defaults), made from the
# dataclasses; the descriptions are the launchpad's help text.
SimulationSettings = derived_config(
    "SimulationSettings",
    (SimulationSpec, SimConfig),
    {
        "thresholds": "run: each bar takes its fold's thresholds (from the fold's own train period); given: "
        "long_threshold/short_threshold for every bar.",
        "long_threshold": "Long at or above (thresholds: given).",
        "short_threshold": "Short at or below (thresholds: given).",
        "dead_zone": "Between the thresholds: flat, or hold the position until the other threshold.",
        "fill": "next_open: fill at the next bar's open; close: at the signal's close.",
        "fee_bps": "Fee per side, basis points of traded notional.",
        "slippage_bps": "Slippage against every fill, basis points.",
        "initial_cash": "Starting equity.",
        "sizing": "fraction of equity, a fixed notional, or fixed units.",
        "fraction": "Fraction of equity per position (sizing: fraction).",
        "notional": "Notional per position (sizing: notional).",
        "units": "Units per position (sizing: units).",
        "direction": "Sides traded.",
        "stop_loss_pct": "Stop-loss, fraction of the entry price.",
        "take_profit_pct": "Take-profit, fraction of the entry.",
        "max_bars_held": "Close a trade after this many bars.",
    },
    module=__name__,
    doc="How a walkforward run's predictions are traded (every simulation setting but the run). "
    "Conventions (fills, sizing, stops) are in docs/metrics.md.",
    # The run is SimulationConfig's own field (a chained simulation has none yet); the rules are the
    # spec's `sim`; bars_per_year is inferred from the bars when the simulation is registered.
    exclude=("run", "sim", "bars_per_year"),
)
_RULES = {f.name for f in dataclasses.fields(SimConfig)}


class SimulationConfig(SimulationSettings):
    """A trading simulation of a walkforward run's predictions. It gets the name <dataset>_sim<n>; the
    simulation sensor then runs it. Conventions (fills, sizing, stops) are in docs/metrics.md."""

    run: str = Field(description="Walkforward run whose predictions are replayed, e.g. btc25_run1.")

    def spec(self) -> SimulationSpec:
        """The simulation spec; SimConfigError (a ValueError) or SimulationError names the wrong field."""
        data = self.model_dump()
        rules = {name: data.pop(name) for name in _RULES & data.keys()}
        return SimulationSpec(**data, sim=SimConfig(**rules))
