"""Hand-worked simulations: each test states a few bars and the trades and ledger worked out on paper."""

import json
import math

import numpy as np
import pytest

from trading_assets.compute.simulator import (
    TRADE_COLUMNS,
    SimConfig,
    SimConfigError,
    SimInputError,
    SimResult,
    simulate,
)

TEN_UNITS = {"sizing": "units", "units": 10.0}


def run(rows: list[tuple[float, float, float, float]], target: list[float], **config) -> SimResult:
    """Simulate bars given as (open, high, low, close) rows; without fees unless the case sets them."""
    o, h, low, c = np.array(rows, dtype=float).T
    return simulate(o, h, low, c, np.array(target, dtype=float), SimConfig(**{"fee_bps": 0.0, **config}))


def trade(result: SimResult, k: int = 0) -> dict:
    return result.trades.iloc[k].to_dict()


FLAT = (100.0, 100.0, 100.0, 100.0)


def test_a_long_trade_fills_at_the_next_open_and_pnl_is_units_times_the_price_change():
    rows = [FLAT, (101, 103, 100, 102), (104, 106, 103, 105), (107, 108, 106, 107)]
    result = run(rows, [1, 1, 0, 0], **TEN_UNITS)
    assert trade(result) == {
        "entry_idx": 1, "exit_idx": 3, "side": 1, "size": 10.0, "entry_price": 101.0, "exit_price": 107.0,
        "pnl": 60.0, "return_pct": 60.0 / 1010.0, "fees": 0.0, "bars_held": 2, "exit_reason": "signal",
    }  # fmt: skip
    np.testing.assert_array_equal(result.position, [0, 10, 10, 0])
    np.testing.assert_array_equal(result.equity, [10_000, 10_010, 10_040, 10_060])


def test_fill_at_close_uses_the_deciding_bars_close():
    rows = [FLAT, (101, 103, 100, 102), (104, 106, 103, 105), (107, 108, 106, 107)]
    result = run(rows, [1, 1, 0, 0], fill="close", **TEN_UNITS)
    assert (trade(result)["entry_idx"], trade(result)["entry_price"]) == (0, 100.0)
    assert (trade(result)["exit_idx"], trade(result)["exit_price"]) == (2, 105.0)
    np.testing.assert_array_equal(result.position, [10, 10, 0, 0])


def test_fees_and_slippage_worked_by_hand():
    # Buy 10 at 100 with 50 bp slippage: 100.5 each, notional 1005, fee 10 bp = 1.005.
    # Sell 10 at 110: 109.45 each, notional 1094.5, fee 1.0945. pnl = 1094.5 - 1005 - 2.0995 = 87.4005.
    rows = [FLAT, (100, 100, 100, 100), (110, 110, 110, 110), (110, 110, 110, 110)]
    result = run(rows, [1, 0, 0, 0], fee_bps=10, slippage_bps=50, **TEN_UNITS)
    t = trade(result)
    assert t["entry_price"] == pytest.approx(100.5, rel=1e-12)
    assert t["exit_price"] == pytest.approx(109.45, rel=1e-12)
    assert t["fees"] == pytest.approx(2.0995, rel=1e-12)
    assert t["pnl"] == pytest.approx(87.4005, rel=1e-12)
    assert t["return_pct"] == pytest.approx(87.4005 / 1005, rel=1e-12)
    assert result.cash[1] == pytest.approx(10_000 - 1005 - 1.005, rel=1e-12)
    assert result.equity[-1] == pytest.approx(10_000 + 87.4005, rel=1e-12)


def test_a_short_sells_below_and_buys_back_above_the_price_with_slippage():
    rows = [FLAT, (100, 100, 100, 100), (90, 90, 90, 90), (90, 90, 90, 90)]
    t = trade(run(rows, [-1, 0, 0, 0], slippage_bps=100, **TEN_UNITS))
    assert (t["side"], t["entry_price"], t["exit_price"]) == (-1, pytest.approx(99.0), pytest.approx(90.9))
    assert t["pnl"] == pytest.approx(10 * (99.0 - 90.9))


def test_a_stop_loss_touched_inside_the_bar_fills_at_the_stop_level():
    rows = [FLAT, (99, 100, 94, 96), (96, 97, 95, 96)]
    result = run(rows, [1, 1, 1], fill="close", stop_loss_pct=0.05, **TEN_UNITS)
    t = trade(result)
    assert (t["exit_idx"], t["exit_price"], t["exit_reason"]) == (1, 95.0, "stop_loss")
    assert t["pnl"] == pytest.approx(-50.0)


def test_a_stop_loss_at_exactly_the_low_triggers():
    rows = [FLAT, (99, 100, 95, 96), (96, 97, 95, 96)]
    t = trade(run(rows, [1, 1, 1], fill="close", stop_loss_pct=0.05, **TEN_UNITS))
    assert (t["exit_price"], t["exit_reason"]) == (95.0, "stop_loss")


def test_a_gap_through_the_stop_fills_at_the_open():
    rows = [FLAT, (90, 92, 88, 91), (91, 92, 90, 91)]
    t = trade(run(rows, [1, 1, 1], fill="close", stop_loss_pct=0.05, **TEN_UNITS))
    assert (t["exit_idx"], t["exit_price"], t["exit_reason"]) == (1, 90.0, "stop_loss")


def test_a_gap_through_the_take_profit_fills_at_the_open():
    rows = [FLAT, (112, 115, 111, 113), (113, 113, 113, 113)]
    t = trade(run(rows, [1, 1, 1], fill="close", take_profit_pct=0.1, **TEN_UNITS))
    assert (t["exit_price"], t["exit_reason"]) == (112.0, "take_profit")


def test_stop_and_take_profit_touched_in_one_bar_counts_the_stop():
    rows = [FLAT, (100, 111, 94, 105), (105, 105, 105, 105)]
    config = {"fill": "close", "stop_loss_pct": 0.05, "take_profit_pct": 0.1, **TEN_UNITS}
    t = trade(run(rows, [1, 1, 1], **config))
    assert (t["exit_price"], t["exit_reason"]) == (95.0, "stop_loss")


def test_a_take_profit_touched_inside_the_bar_fills_at_its_level_and_is_mirrored_for_shorts():
    rows = [FLAT, (100, 101, 89, 92), (92, 92, 92, 92)]
    t = trade(run(rows, [-1, -1, -1], fill="close", take_profit_pct=0.1, **TEN_UNITS))
    assert (t["side"], t["exit_price"], t["exit_reason"]) == (-1, pytest.approx(90.0), "take_profit")
    assert t["pnl"] == pytest.approx(100.0)


def test_a_trade_filled_at_the_open_can_be_stopped_in_the_same_bar():
    rows = [FLAT, (100, 101, 90, 92), (92, 92, 92, 92)]
    t = trade(run(rows, [1, 1, 1], stop_loss_pct=0.05, **TEN_UNITS))
    assert (t["entry_idx"], t["exit_idx"], t["exit_price"], t["exit_reason"]) == (1, 1, 95.0, "stop_loss")


def test_after_a_stop_the_simulator_stays_flat_until_the_target_changes():
    rows = [FLAT, (99, 100, 94, 96), FLAT, FLAT, FLAT, FLAT]
    result = run(rows, [1, 1, 1, 0, 1, 1], fill="close", stop_loss_pct=0.05, **TEN_UNITS)
    assert result.trades[["entry_idx", "exit_idx", "exit_reason"]].values.tolist() == [
        [0, 1, "stop_loss"],
        [4, 5, "end"],
    ]
    np.testing.assert_array_equal(result.position, [10, 0, 0, 0, 10, 0])


def test_a_reversal_closes_and_opens_at_one_price_in_one_bar():
    rows = [FLAT, (101, 101, 101, 101), (102, 102, 102, 102), (103, 103, 103, 103), (99, 99, 99, 99), FLAT]
    result = run(rows, [1, 1, -1, -1, 0, 0], **TEN_UNITS)
    long, short = trade(result, 0), trade(result, 1)
    assert (long["exit_idx"], long["exit_price"], long["exit_reason"]) == (3, 103.0, "signal")
    assert (short["entry_idx"], short["entry_price"], short["side"]) == (3, 103.0, -1)
    assert (short["exit_idx"], short["exit_price"]) == (5, 100.0)
    assert (long["pnl"], short["pnl"]) == (20.0, 30.0)
    np.testing.assert_array_equal(result.position, [0, 10, 10, -10, -10, 0])


def test_a_same_side_reduction_stays_one_trade_and_trades_only_the_difference():
    # 10 units bought at 100, 5 sold at 110, 5 sold at 120: one trade of size 10 exiting at 115 on average,
    # with fees (10 bp) on 10 + 5 + 5 units only.
    rows = [FLAT, (100,) * 4, (110,) * 4, (115,) * 4, (120,) * 4, (120,) * 4]
    result = run(rows, [1, 0.5, 0.5, 0, 0, 0], fee_bps=10, **TEN_UNITS)
    assert len(result.trades) == 1
    t = trade(result)
    assert (t["size"], t["entry_price"], t["exit_price"], t["exit_idx"]) == (10.0, 100.0, 115.0, 4)
    assert t["fees"] == pytest.approx((1000 + 550 + 600) * 0.001)
    assert t["pnl"] == pytest.approx(150 - t["fees"])
    np.testing.assert_array_equal(result.position, [0, 10, 5, 5, 0, 0])


def test_a_same_side_increase_averages_the_entry_price_by_units():
    rows = [FLAT, (100,) * 4, (130,) * 4, (130,) * 4, (140,) * 4]
    t = trade(run(rows, [0.5, 1, 1, 0, 0], **TEN_UNITS))
    assert (t["size"], t["entry_price"], t["exit_price"]) == (10.0, 115.0, 140.0)
    assert t["pnl"] == 250.0


def test_max_bars_exits_at_the_fill_of_the_mth_bar_and_waits_for_a_new_target():
    rows = [FLAT, (101,) * 4, (102,) * 4, (103,) * 4, (104,) * 4, (105,) * 4, (106,) * 4, (107,) * 4]
    result = run(rows, [1, 1, 1, 1, 0, 1, 1, 1], max_bars_held=2, **TEN_UNITS)
    assert result.trades[
        ["entry_idx", "exit_idx", "exit_price", "bars_held", "exit_reason"]
    ].values.tolist() == [
        [1, 3, 103.0, 2, "max_bars"],
        [6, 7, 107.0, 1, "end"],
    ]


def test_max_bars_with_fill_at_close_exits_at_the_close_m_bars_after_entry():
    rows = [FLAT, (101,) * 4, (102,) * 4, (103,) * 4]
    t = trade(run(rows, [1, 1, 1, 1], fill="close", max_bars_held=2, **TEN_UNITS))
    assert (t["entry_idx"], t["exit_idx"], t["exit_price"], t["exit_reason"]) == (0, 2, 102.0, "max_bars")


def test_a_flip_on_the_max_bars_fill_counts_as_the_signal():
    rows = [FLAT, (101,) * 4, (102,) * 4, (103,) * 4, (104,) * 4]
    result = run(rows, [1, 1, -1, -1, -1], max_bars_held=2, **TEN_UNITS)
    assert result.trades[["side", "entry_idx", "exit_idx", "exit_reason"]].values.tolist() == [
        [1, 1, 3, "signal"],
        [-1, 3, 4, "end"],
    ]


def test_end_of_data_closes_the_open_trade_at_the_last_close_with_costs():
    rows = [FLAT, (101, 102, 100, 101), (102, 104, 101, 103)]
    result = run(rows, [1, 1, 1], fee_bps=10, **TEN_UNITS)
    t = trade(result)
    assert (t["exit_idx"], t["exit_price"], t["exit_reason"], t["bars_held"]) == (2, 103.0, "end", 1)
    assert t["fees"] == pytest.approx((1010 + 1030) * 0.001)
    assert result.position[-1] == 0
    assert result.equity[-1] == pytest.approx(10_000 + t["pnl"])


def test_an_order_decided_at_the_last_bar_is_not_executed():
    for fill in ("next_open", "close"):
        result = run([FLAT, FLAT], [0, 1], fill=fill, **TEN_UNITS)
        assert result.trades.empty
        np.testing.assert_array_equal(result.equity, [10_000, 10_000])


def test_fraction_sizing_takes_equity_at_the_fill_price_before_the_trade():
    # Short 100 units at 100 (all of the 10_000); at the flip bar (open 80) equity is 10_000 + 100 * 20, so
    # the full long buys 12_000 / 80 units.
    rows = [FLAT, (100,) * 4, (80,) * 4, (80,) * 4]
    result = run(rows, [-1, 1, 1, 1], sizing="fraction", fraction=1.0)
    assert result.position[1] == -100.0
    assert result.position[2] == 12_000 / 80
    assert trade(result, 1)["size"] == 12_000 / 80


def test_notional_sizing_buys_the_amount_at_the_raw_fill_price():
    rows = [FLAT, (125,) * 4, (125,) * 4]
    result = run(rows, [0.5, 0.5, 0.5], sizing="notional", notional=1_000.0, slippage_bps=100)
    assert result.position[1] == 4.0


def test_fraction_sizing_opens_nothing_once_equity_is_gone():
    # 10 units short at 100, then an open at 2_100: equity 11_000 - 21_000 < 0, so the long buys nothing.
    rows = [FLAT, (100,) * 4, (2_100,) * 4, (2_100,) * 4, (2_100,) * 4]
    result = run(rows, [-1, 1, 1, 1, 1], sizing="fraction", fraction=0.1)
    assert result.position[2] == 0
    assert len(result.trades) == 1


def test_a_long_only_simulation_treats_short_targets_as_flat_and_a_short_only_one_long_targets():
    rows = [FLAT, (101,) * 4, (102,) * 4, (103,) * 4, (104,) * 4]
    longs = run(rows, [1, -1, -1, 1, 0], direction="long", **TEN_UNITS)
    assert longs.trades[["side", "entry_idx", "exit_idx"]].values.tolist() == [[1, 1, 2], [1, 4, 4]]
    shorts = run(rows, [1, -1, -1, 1, 0], direction="short", **TEN_UNITS)
    assert shorts.trades[["side", "entry_idx", "exit_idx"]].values.tolist() == [[-1, 2, 4]]


def test_the_ledger_balances_and_drawdown_is_measured_from_the_running_peak():
    rows = [FLAT, (100,) * 4, (110,) * 4, (99,) * 4, (121,) * 4]
    result = run(rows, [1, 1, 1, 1, 1], fill="close", **TEN_UNITS)
    np.testing.assert_array_equal(result.equity, [10_000, 10_000, 10_100, 9_990, 10_210])
    np.testing.assert_array_equal(
        result.cash + result.position * np.array([r[3] for r in rows]), result.equity
    )
    np.testing.assert_allclose(result.drawdown, [0, 0, 0, 9_990 / 10_100 - 1, 0])


def test_trades_have_the_documented_columns_and_types():
    trades = run([FLAT, FLAT, FLAT], [1, 0, 0], **TEN_UNITS).trades
    assert tuple(trades.columns) == TRADE_COLUMNS
    assert {c: trades[c].dtype.kind for c in ("entry_idx", "exit_idx", "side", "bars_held")} == dict.fromkeys(
        ("entry_idx", "exit_idx", "side", "bars_held"), "i"
    )
    assert run([FLAT], [0], **TEN_UNITS).trades.columns.tolist() == list(TRADE_COLUMNS)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ([0, math.nan, 0], "target at index 1: target is NaN"),
        ([0, 0, 1.5], "target at index 2: target must be"),
    ],
)
def test_a_bad_target_is_an_error_naming_its_index(target, message):
    with pytest.raises(SimInputError, match=message):
        run([FLAT] * 3, target)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ((100, 99, 98, 100), "bar at index 1: high is below"),
        ((100, 101, 100.5, 101), "bar at index 1: low is above"),
        ((100, 101, 0, 100), "bar at index 1: prices must be finite and > 0"),
        ((100, math.inf, 99, 100), "bar at index 1: prices must be finite"),
    ],
)
def test_an_impossible_bar_is_an_error_naming_its_index(row, message):
    with pytest.raises(SimInputError, match=message):
        run([FLAT, row], [0, 0])


def test_arrays_of_different_lengths_or_no_bars_are_errors():
    with pytest.raises(SimInputError, match="target has 2 bars but open has 3"):
        simulate(*[np.full(3, 100.0)] * 4, np.zeros(2), SimConfig())
    with pytest.raises(SimInputError, match="no bars"):
        simulate(*[np.empty(0)] * 5, SimConfig())


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"fill": "open"}, "fill must be one of"),
        ({"fee_bps": -1.0}, "fee_bps must be >= 0.0, got -1.0"),
        ({"slippage_bps": math.nan}, "slippage_bps must be a finite number, got nan"),
        ({"initial_cash": 0}, "initial_cash must be > 0.0, got 0"),
        ({"sizing": "units"}, "units must be set when sizing='units'"),
        ({"stop_loss_pct": 1.0}, "stop_loss_pct must be > 0.0 and < 1.0, got 1.0"),
        ({"take_profit_pct": True}, "take_profit_pct must be a finite number, got True"),
        ({"max_bars_held": 0}, "max_bars_held must be None or an int >= 1, got 0"),
        ({"direction": "flat"}, "direction must be one of"),
    ],
)
def test_an_invalid_config_names_the_field_and_value(fields, message):
    with pytest.raises(SimConfigError, match=message):
        SimConfig(**fields)


def test_the_config_round_trips_exactly_through_json():
    config = SimConfig(
        fill="close", fee_bps=7.5, slippage_bps=0.1, initial_cash=12_345.678, sizing="notional",
        notional=1e3 / 3, direction="long", stop_loss_pct=0.0123, take_profit_pct=0.1, max_bars_held=7,
        bars_per_year=365.25 * 24,
    )  # fmt: skip
    assert SimConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(SimConfigError, match=r"unknown SimConfig fields \['fees'\]"):
        SimConfig.from_dict({"fees": 1.0})


def test_slippage_does_not_move_the_stop_so_it_cannot_make_the_trade_better():
    # Entry at bar 1's open, 100; stop 5 % below it, at 95. Bar 1 dips to 95.5, bar 2 gaps to 80. With 1 %
    # slippage the entry costs 101, but the stop stays at 95 (not 95.95, which bar 1 would touch): both
    # runs are stopped by bar 2's gap, and the slipped one loses more.
    rows = [FLAT, (100, 100.5, 95.5, 96), (80, 81, 79, 80), (80, 80, 80, 80)]
    free = trade(run(rows, [1, 1, 1, 1], sizing="units", units=1.0, stop_loss_pct=0.05))
    slipped = trade(run(rows, [1, 1, 1, 1], sizing="units", units=1.0, stop_loss_pct=0.05, slippage_bps=100))
    assert (free["exit_idx"], free["exit_price"], free["exit_reason"]) == (2, 80.0, "stop_loss")
    assert (slipped["entry_price"], slipped["exit_idx"], slipped["exit_price"]) == (101.0, 2, 80.0 * 0.99)
    assert slipped["pnl"] < free["pnl"] == -20.0


def test_a_run_without_drawdown_reports_zero_not_minus_zero():
    result = run([FLAT, (100, 102, 100, 101), (101, 103, 101, 102)], [1, 1, 1], **TEN_UNITS)
    assert math.copysign(1.0, result.metrics["max_drawdown"]) == 1.0
