"""Invariants that hold on every input: the ledger balances, costs never help, fills stay inside their own
bar, and nothing after a bar changes what happened up to it."""

from dataclasses import replace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from trading_assets.compute.simulator import SimConfig, simulate

SETTINGS = settings(max_examples=100, deadline=None, derandomize=True)


def random_bars(seed: int, n: int, levels=(-1.0, -0.5, 0.0, 0.0, 0.4, 1.0)) -> tuple[np.ndarray, ...]:
    """Valid OHLC with gaps, and targets drawn from `levels` that persist for a while."""
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.03, n)))
    open_ = close * np.exp(rng.normal(0, 0.02, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.01, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.01, n)))
    target = np.asarray(levels)[rng.integers(0, len(levels), n)]
    target = target[np.maximum.accumulate(np.where(rng.random(n) < 0.3, np.arange(n), 0))]
    return open_, high, low, close, target


configs = st.builds(
    SimConfig,
    fill=st.sampled_from(["next_open", "close"]),
    fee_bps=st.sampled_from([0.0, 10.0]),
    slippage_bps=st.sampled_from([0.0, 10.0]),
    sizing=st.sampled_from(["fraction", "notional", "units"]),
    fraction=st.sampled_from([1.0, 3.0]),
    notional=st.just(2_000.0),
    units=st.just(3.0),
    direction=st.sampled_from(["both", "long", "short"]),
    stop_loss_pct=st.sampled_from([None, 0.02]),
    take_profit_pct=st.sampled_from([None, 0.04]),
    max_bars_held=st.sampled_from([None, 2]),
)
seeds = st.integers(0, 2**32 - 1)
lengths = st.integers(2, 60)


@SETTINGS
@given(config=configs, seed=seeds, n=lengths)
def test_cash_plus_position_value_is_equity_on_every_bar(config, seed, n):
    o, h, low, c, target = random_bars(seed, n)
    result = simulate(o, h, low, c, target, config)
    np.testing.assert_array_equal(result.cash + result.position * c, result.equity)


@SETTINGS
@given(config=configs, seed=seeds, n=lengths)
def test_the_trades_account_for_the_whole_equity_change(config, seed, n):
    o, h, low, c, target = random_bars(seed, n)
    result = simulate(o, h, low, c, target, config)
    total = result.equity[-1] - config.initial_cash
    assert abs(result.trades["pnl"].sum() - total) <= 1e-9 * max(config.initial_cash, abs(total))


@SETTINGS
@given(
    config=configs.filter(lambda c: c.sizing != "fraction"),
    fee_bps=st.sampled_from([1.0, 30.0]),
    slippage_bps=st.sampled_from([0.0, 25.0]),
    seed=seeds,
    n=lengths,
)
def test_fees_and_slippage_never_make_a_trade_better(config, fee_bps, slippage_bps, seed, n):
    # Unit and notional sizes do not depend on the costs, nor do stop levels (measured from the entry
    # price before slippage), so both runs make the same trades.
    o, h, low, c, target = random_bars(seed, n)
    free = replace(config, fee_bps=0.0, slippage_bps=0.0)
    costly = replace(free, fee_bps=fee_bps, slippage_bps=slippage_bps)
    without = simulate(o, h, low, c, target, free).trades
    with_costs = simulate(o, h, low, c, target, costly).trades
    np.testing.assert_array_equal(with_costs[["entry_idx", "exit_idx"]], without[["entry_idx", "exit_idx"]])
    assert (with_costs["pnl"] <= without["pnl"]).all()
    worse_entry = (with_costs["entry_price"] - without["entry_price"]) * with_costs["side"]
    worse_exit = (without["exit_price"] - with_costs["exit_price"]) * with_costs["side"]
    assert (worse_entry >= 0).all() and (worse_exit >= 0).all()


@SETTINGS
@given(config=configs, seed=seeds, n=lengths)
def test_every_fill_is_inside_its_own_bars_range(config, seed, n):
    # Whole-unit targets: each trade has one entry and one exit fill, so its prices are single fills.
    o, h, low, c, target = random_bars(seed, n, levels=(-1.0, 0.0, 1.0))
    trades = simulate(o, h, low, c, target, replace(config, slippage_bps=0.0)).trades
    for at, price in (("entry_idx", "entry_price"), ("exit_idx", "exit_price")):
        bar = trades[at].to_numpy()
        assert ((low[bar] <= trades[price]) & (trades[price] <= h[bar])).all(), at


@SETTINGS
@given(config=configs, seed=seeds, other_seed=seeds, n=lengths, data=st.data())
def test_changing_everything_after_bar_k_changes_nothing_up_to_bar_k(config, seed, other_seed, n, data):
    k = data.draw(st.integers(0, n - 2), label="k")
    bars = random_bars(seed, n)
    later = random_bars(other_seed, n)
    changed = [np.r_[now[: k + 1], after[k + 1 :]] for now, after in zip(bars, later, strict=True)]
    original, perturbed = simulate(*bars, config), simulate(*changed, config)
    for series in ("equity", "cash", "position", "drawdown"):
        np.testing.assert_array_equal(getattr(original, series)[: k + 1], getattr(perturbed, series)[: k + 1])
    closed = original.trades[original.trades["exit_idx"] <= k]
    assert closed.equals(perturbed.trades[perturbed.trades["exit_idx"] <= k])


@settings(max_examples=20, deadline=None, derandomize=True)
@given(config=configs, seed=seeds, n=lengths)
def test_the_same_inputs_give_bit_identical_results(config, seed, n):
    bars = random_bars(seed, n)
    first, second = simulate(*bars, config), simulate(*bars, config)
    np.testing.assert_array_equal(first.equity, second.equity)
    assert first.trades.equals(second.trades)
    assert str(first.metrics) == str(second.metrics)
