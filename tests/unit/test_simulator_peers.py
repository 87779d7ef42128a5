"""Where their conventions match ours, vectorbt and backtesting.py find the same trades.

Both peers fill an order in the bar it is given at the price they are told: a target decided at bar i's
close becomes a peer signal at bar i + 1 priced at its open. Targets end flat before the last bar, since
the peers leave a trade open at the end where we close it. Sizes are fixed units.
"""

import numpy as np
import pandas as pd
import pytest

from trading_assets.compute.simulator import SimConfig, simulate

vbt = pytest.importorskip("vectorbt")
backtesting = pytest.importorskip("backtesting")

UNITS = 10.0


def market(seed: int, n: int = 300) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.r_[100.0, close[:-1]] * np.exp(rng.normal(0, 0.003, n))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, n))
    return open_, high, low, close


def persistent_targets(seed: int, n: int, levels: list[float]) -> np.ndarray:
    """Targets holding each level for a few bars; flat on the first two bars (backtesting.py calls its
    strategy from the second bar on) and the last three."""
    rng = np.random.default_rng(seed)
    target = np.repeat(rng.choice(levels, n // 5 + 1), 5)[:n].astype(float)
    target[:2] = target[-3:] = 0.0
    return target


def vectorbt_trades(open_, close, target, side, fees, slippage) -> pd.DataFrame:
    """vectorbt's trades for `target` (0 or `side`), each signal moved to the next bar, priced at its open."""
    wanted_during = np.r_[False, target[:-1] == side]  # bar j trades what bar j - 1 decided
    wanted_before = np.r_[False, wanted_during[:-1]]
    enter, leave = wanted_during & ~wanted_before, wanted_before & ~wanted_during
    portfolio = vbt.Portfolio.from_signals(
        pd.Series(close),
        entries=enter,
        exits=leave,
        price=pd.Series(open_),
        size=UNITS,
        size_type="amount",
        fees=fees,
        slippage=slippage,
        direction="longonly" if side > 0 else "shortonly",
        init_cash=1e9,
    )
    records = pd.DataFrame(portfolio.trades.records)
    return records.rename(columns={"return": "return_pct"})


@pytest.mark.parametrize("side", [1.0, -1.0])
def test_vectorbt_from_signals_finds_the_same_trades_with_fees_and_slippage(side):
    open_, high, low, close = market(seed=1)
    target = persistent_targets(seed=2, n=close.size, levels=[0.0, side])
    config = SimConfig(sizing="units", units=UNITS, fee_bps=10, slippage_bps=5)
    ours = simulate(open_, high, low, close, target, config).trades
    theirs = vectorbt_trades(open_, close, target, side, fees=0.001, slippage=0.0005)

    assert len(ours) == len(theirs) > 10
    np.testing.assert_array_equal(ours["entry_idx"], theirs["entry_idx"])
    np.testing.assert_array_equal(ours["exit_idx"], theirs["exit_idx"])
    for column in ("entry_price", "exit_price", "pnl", "size"):
        np.testing.assert_allclose(ours[column], theirs[column], rtol=1e-9, err_msg=column)
    np.testing.assert_allclose(ours["fees"], theirs["entry_fees"] + theirs["exit_fees"], rtol=1e-9)


def backtesting_trades(open_, high, low, close, target, commission) -> pd.DataFrame:
    """backtesting.py's trades when its strategy moves to `target` * UNITS whenever the target changes."""

    class FollowTarget(backtesting.Strategy):
        def init(self):
            self.last = 0.0

        def next(self):
            wanted = target[len(self.data) - 1]
            if wanted != self.last:
                self.position.close()
                if wanted:
                    (self.buy if wanted > 0 else self.sell)(size=UNITS)
                self.last = wanted

    data = pd.DataFrame(
        {"Open": open_, "High": high, "Low": low, "Close": close},
        index=pd.date_range("2024-01-01", periods=close.size, freq="D"),
    )
    test = backtesting.Backtest(data, FollowTarget, cash=1e9, commission=commission, trade_on_close=False)
    return test.run()["_trades"]


# backtesting.py 0.6.6 computes its stats with an accessor pandas 3.1 deprecates.
@pytest.mark.filterwarnings("ignore:DatetimeIndex.dayofweek is deprecated:pandas.errors.Pandas4Warning")
def test_backtesting_py_finds_the_same_trades_including_reversals():
    open_, high, low, close = market(seed=3)
    target = persistent_targets(seed=4, n=close.size, levels=[-1.0, 0.0, 1.0])
    config = SimConfig(sizing="units", units=UNITS, fee_bps=20)
    ours = simulate(open_, high, low, close, target, config).trades
    theirs = backtesting_trades(open_, high, low, close, target, commission=0.002)

    assert len(ours) == len(theirs) > 10
    assert (ours["exit_idx"].to_numpy()[:-1] == ours["entry_idx"].to_numpy()[1:]).any()  # a reversal
    np.testing.assert_array_equal(ours["entry_idx"], theirs["EntryBar"])
    np.testing.assert_array_equal(ours["exit_idx"], theirs["ExitBar"])
    np.testing.assert_array_equal(ours["side"] * ours["size"], theirs["Size"])
    for ours_column, theirs_column in [
        ("entry_price", "EntryPrice"),
        ("exit_price", "ExitPrice"),
        ("pnl", "PnL"),
    ]:
        np.testing.assert_allclose(ours[ours_column], theirs[theirs_column], rtol=1e-9, err_msg=ours_column)
