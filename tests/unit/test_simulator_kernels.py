"""The simulator's fast paths equal their plain definitions bit for bit: the sweep's blocks of cells side by
side equal `simulate` cell by cell on random grids and rules, whatever the number of cells against the
block size, and the SIMD bar check accepts exactly the bars that the bar-by-bar one accepts."""

import math

import numpy as np
import pytest

from trading_assets.compute.simulator import (
    METRIC_NAMES,
    SimConfig,
    signals_from_predictions,
    simulate,
    sweep,
)
from trading_assets.compute.simulator import kernels as nb


def market(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = close * np.exp(rng.normal(0, 0.004, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.006, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.006, n)))
    pred = np.r_[np.diff(np.log(close)), 0.0] * 50 + rng.normal(0, 1, n)
    pred[rng.random(n) < 0.03] = np.nan
    return open_, high, low, close, pred


def random_config(rng: np.random.Generator) -> SimConfig:
    sizing = str(rng.choice(["fraction", "notional", "units"]))
    return SimConfig(
        fill=str(rng.choice(["next_open", "close"])),
        fee_bps=float(rng.choice([0.0, 3.0])),
        slippage_bps=float(rng.choice([0.0, 2.0])),
        sizing=sizing,
        fraction=float(rng.choice([0.5, 1.0, 2.0])),
        notional=5_000.0 if sizing == "notional" else None,
        units=3.0 if sizing == "units" else None,
        direction=str(rng.choice(["both", "long", "short"])),
        max_bars_held=int(rng.choice([0, 3, 20])) or None,
    )


def random_stop(rng: np.random.Generator) -> float | None:
    return None if rng.random() < 0.4 else float(rng.uniform(0.002, 0.03))


def same_metrics(row, expected: dict) -> bool:
    """Equal bit for bit, NaN equal to NaN."""
    got = {k: getattr(row, k) for k in METRIC_NAMES}
    return all(
        got[k] == expected[k] or (math.isnan(got[k]) and math.isnan(expected[k])) for k in METRIC_NAMES
    )


# One cell, a partial block, one full block, one more than a block, several blocks and a partial one.
@pytest.mark.parametrize(
    "seed, longs, shorts, stops", [(1, 1, 1, 1), (2, 31, 1, 1), (3, 4, 4, 2), (4, 11, 3, 1), (5, 5, 3, 5)]
)
def test_every_cell_of_a_random_grid_equals_simulate_bit_for_bit(seed, longs, shorts, stops):
    rng = np.random.default_rng(seed)
    *prices, pred = market(rng, 300)
    config = random_config(rng)
    # Thresholds beyond every prediction make cells that never trade.
    long_thresholds = np.r_[rng.uniform(-0.5, 2.5, longs - 1), 1e9]
    short_thresholds = np.r_[rng.uniform(-2.5, -0.5, shorts - 1), -1e9]
    stop_pairs = [(random_stop(rng), random_stop(rng)) for _ in range(stops)]
    for dead_zone in ("flat", "hold"):
        table = sweep(*prices, pred, long_thresholds, short_thresholds, config, stop_pairs, dead_zone)
        assert len(table) == longs * shorts * stops
        assert (table["n_trades"] == 0).any()
        for row in table.itertuples(index=False):
            target = signals_from_predictions(pred, row.long_threshold, row.short_threshold, dead_zone)
            stop, take = row.stop_loss_pct, row.take_profit_pct
            cell = SimConfig.from_dict(
                config.to_dict()
                | {
                    "stop_loss_pct": None if math.isnan(stop) else stop,
                    "take_profit_pct": None if math.isnan(take) else take,
                }
            )
            assert same_metrics(row, simulate(*prices, target, cell).metrics), (dead_zone, row)


def test_the_simd_bar_check_accepts_exactly_the_bars_the_bar_by_bar_check_accepts():
    rng = np.random.default_rng(6)
    *prices, _ = market(rng, 50)
    bad_values = [np.nan, np.inf, -np.inf, 0.0, -1.0, 1e-300, 1e300]
    verdicts = set()
    for trial in range(400):
        arrays = [a.copy() for a in prices] + [rng.uniform(-1, 1, 50)]
        for _ in range(int(rng.integers(0, 3))):
            column, bar = int(rng.integers(0, 5)), int(rng.integers(0, 50))
            if column == 4:
                arrays[4][bar] = rng.choice([np.nan, 1.0 + 1e-12, -1.5, 1.0, -1.0])
            elif rng.random() < 0.5:
                arrays[column][bar] = rng.choice(bad_values)
            else:  # a swap of two prices of one bar, which may put high below or low above another
                other = int(rng.integers(0, 4))
                arrays[column][bar], arrays[other][bar] = arrays[other][bar], arrays[column][bar]
        for target in (arrays[4], np.empty(0)):
            index, _ = nb.invalid_bar_nb(*arrays[:4], target)
            assert nb.bars_valid_nb(*arrays[:4], target) == (index < 0), trial
            verdicts.add(index < 0)
    assert verdicts == {True, False}
