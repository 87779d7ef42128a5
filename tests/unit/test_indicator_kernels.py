"""Built-in indicator values: against TA-Lib, against plain pandas formulas, and on hand-worked bars."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
import talib

from trading_assets.compute.indicators import builtin  # noqa: F401  (registers the built-ins)
from trading_assets.compute.indicators.registry import REGISTRY

Bars = dict[str, np.ndarray]
SEEDS = (0, 1, 2)


def random_bars(seed: int, size: int = 2_000) -> Bars:
    """A geometric random walk around 100 with consistent OHLC and positive volume."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, size)))
    open_ = np.concatenate(([close[0]], close[:-1]))
    high = np.maximum(open_, close) * (1.0 + np.abs(rng.normal(0.0, 0.003, size)))
    low = np.minimum(open_, close) * (1.0 - np.abs(rng.normal(0.0, 0.003, size)))
    return {"open": open_, "high": high, "low": low, "close": close, "volume": rng.uniform(1e3, 1e5, size)}


def compute(name: str, bars: Bars, **params: float) -> dict[str, np.ndarray]:
    item = REGISTRY.get(name)
    return item.compute(bars, item.validate(params))


def _hlc(b: Bars) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return b["high"], b["low"], b["close"]


# TA-Lib's value of each output we compare, by indicator.
TALIB: dict[str, Callable[[Bars, dict], dict[str, np.ndarray]]] = {
    "sma": lambda b, p: {"value": talib.SMA(b["close"], p["n"])},
    "ema": lambda b, p: {"value": talib.EMA(b["close"], p["n"])},
    "wma": lambda b, p: {"value": talib.WMA(b["close"], p["n"])},
    "rsi": lambda b, p: {"value": talib.RSI(b["close"], p["n"])},
    "macd": lambda b, p: dict(
        zip(
            ("line", "signal", "hist"), talib.MACD(b["close"], p["fast"], p["slow"], p["signal"]), strict=True
        )
    ),
    "bbands": lambda b, p: dict(
        zip(("upper", "middle", "lower"), talib.BBANDS(b["close"], p["n"], p["k"], p["k"], 0), strict=True)
    ),
    "atr": lambda b, p: {"value": talib.ATR(*_hlc(b), p["n"])},
    "adx": lambda b, p: {
        "adx": talib.ADX(*_hlc(b), p["n"]),
        "plus_di": talib.PLUS_DI(*_hlc(b), p["n"]),
        "minus_di": talib.MINUS_DI(*_hlc(b), p["n"]),
    },
    "stoch": lambda b, p: dict(
        zip(("k", "d"), talib.STOCH(*_hlc(b), p["k"], p["smooth"], 0, p["d"], 0), strict=True)
    ),
    "cci": lambda b, p: {"value": talib.CCI(*_hlc(b), p["n"])},
    "willr": lambda b, p: {"value": talib.WILLR(*_hlc(b), p["n"])},
    "obv": lambda b, p: {"value": talib.OBV(b["close"], b["volume"])},
    "mfi": lambda b, p: {"value": talib.MFI(*_hlc(b), b["volume"], p["n"])},
    "roc": lambda b, p: {"value": talib.ROC(b["close"], p["n"])},
    "mom": lambda b, p: {"value": talib.MOM(b["close"], p["n"])},
}

TALIB_CASES = [
    ("sma", {"n": 20}),
    ("sma", {"n": 1}),
    ("sma", {"n": 200}),
    ("ema", {"n": 20}),
    ("ema", {"n": 2}),
    ("ema", {"n": 100}),
    ("wma", {"n": 20}),
    ("wma", {"n": 2}),
    ("wma", {"n": 60}),
    ("rsi", {"n": 14}),
    ("rsi", {"n": 2}),
    ("rsi", {"n": 50}),
    ("macd", {"fast": 12, "slow": 26, "signal": 9}),
    ("macd", {"fast": 2, "slow": 3, "signal": 2}),
    ("macd", {"fast": 5, "slow": 35, "signal": 1}),
    ("bbands", {"n": 20, "k": 2.0}),
    ("bbands", {"n": 5, "k": 1.5}),
    ("bbands", {"n": 100, "k": 3.0}),
    ("atr", {"n": 14}),
    ("atr", {"n": 1}),
    ("atr", {"n": 30}),
    ("adx", {"n": 14}),
    ("adx", {"n": 2}),
    ("adx", {"n": 30}),
    ("stoch", {"k": 14, "smooth": 3, "d": 3}),
    ("stoch", {"k": 5, "smooth": 1, "d": 1}),
    ("stoch", {"k": 21, "smooth": 5, "d": 4}),
    ("cci", {"n": 20}),
    ("cci", {"n": 2}),
    ("cci", {"n": 50}),
    ("willr", {"n": 14}),
    ("willr", {"n": 2}),
    ("willr", {"n": 40}),
    ("obv", {}),
    ("mfi", {"n": 14}),
    ("mfi", {"n": 2}),
    ("mfi", {"n": 40}),
    ("roc", {"n": 10}),
    ("roc", {"n": 1}),
    ("mom", {"n": 10}),
    ("mom", {"n": 1}),
]

# Outputs that cross zero, where TA-Lib's running sums leave residues of ~1e-12 (e.g. an MFI of 1e-13
# where the exact value, and ours, is 0), so relative error alone is meaningless near zero.
ZERO_CROSSING_ATOL = {"macd": 1e-9, "cci": 1e-9, "mfi": 1e-9}
# Same operations in the same order as TA-Lib: equal bit for bit, not just close.
BIT_FOR_BIT = {"adx", "obv", "roc", "mom"}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("name", "params"), TALIB_CASES, ids=lambda v: str(v).replace(" ", ""))
def test_matches_talib(name: str, params: dict, seed: int) -> None:
    bars = random_bars(seed)
    item = REGISTRY.get(name)
    full = item.validate(params)
    ours = item.compute(bars, full)
    lookbacks = item.lookbacks(full)
    for output, expected in TALIB[name](bars, full).items():
        valid = ~np.isnan(expected)
        # TA-Lib gives every output of a function its longest warm-up (MACD's line and STOCH's %K start
        # later there); where it has values they must agree, and our own warm-up is the declared one.
        assert np.isnan(ours[output][: lookbacks[output]]).all()
        assert not np.isnan(ours[output][lookbacks[output] :]).any()
        assert int(np.argmax(valid)) >= lookbacks[output]
        if name in BIT_FOR_BIT:
            np.testing.assert_array_equal(ours[output][valid], expected[valid])
        np.testing.assert_allclose(
            ours[output][valid], expected[valid], rtol=1e-9, atol=ZERO_CROSSING_ATOL.get(name, 0.0)
        )
        if output not in ("line", "k"):
            np.testing.assert_array_equal(np.isnan(ours[output]), ~valid)


def _series(bars: Bars) -> dict[str, pd.Series]:
    return {k: pd.Series(v) for k, v in bars.items()}


def rolling_std(values: pd.Series, n: int, ddof: int) -> pd.Series:
    """The std of each window on its own. pandas' `rolling().std()` updates a running variance whose
    error grows along the array (~1e-8 relative after 2,000 bars of 5-bar windows): too coarse here."""
    return values.rolling(n).apply(lambda window: np.std(window, ddof=ddof), raw=True)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n", [1, 5, 20])
def test_vwap_matches_pandas(seed: int, n: int) -> None:
    bars = random_bars(seed)
    s = _series(bars)
    tp = (s["high"] + s["low"] + s["close"]) / 3.0
    expected = (tp * s["volume"]).rolling(n).sum() / s["volume"].rolling(n).sum()
    np.testing.assert_allclose(compute("vwap", bars, n=n)["value"], expected.to_numpy(), rtol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n", [1, 5, 20])
def test_logret_matches_pandas(seed: int, n: int) -> None:
    bars = random_bars(seed)
    close = pd.Series(bars["close"])
    expected = np.log(close / close.shift(n))
    np.testing.assert_allclose(compute("logret", bars, n=n)["value"], expected.to_numpy(), rtol=1e-14)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("n", "scale"), [(2, 1.0), (20, 1.0), (60, 525_600.0)])
def test_rvol_matches_pandas(seed: int, n: int, scale: float) -> None:
    bars = random_bars(seed)
    close = pd.Series(bars["close"])
    expected = rolling_std(np.log(close / close.shift(1)), n, ddof=1) * np.sqrt(scale)
    np.testing.assert_allclose(
        compute("rvol", bars, n=n, scale=scale)["value"], expected.to_numpy(), rtol=1e-9
    )


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n", [2, 20, 100])
def test_zscore_matches_pandas(seed: int, n: int) -> None:
    bars = random_bars(seed)
    close = pd.Series(bars["close"])
    expected = (close - close.rolling(n).mean()) / rolling_std(close, n, ddof=0)
    np.testing.assert_allclose(
        compute("zscore", bars, n=n)["value"], expected.to_numpy(), rtol=1e-9, atol=1e-9
    )


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("n", "k"), [(20, 2.0), (5, 1.5)])
def test_bbands_pctb_bandwidth_match_pandas(seed: int, n: int, k: float) -> None:
    bars = random_bars(seed)
    close = pd.Series(bars["close"])
    middle = close.rolling(n).mean()
    std = rolling_std(close, n, ddof=0)
    upper, lower = middle + k * std, middle - k * std
    ours = compute("bbands", bars, n=n, k=k)
    # pctb crosses 0 and 1 where the close touches a band: an absolute tolerance for those bars.
    np.testing.assert_allclose(
        ours["pctb"], ((close - lower) / (upper - lower)).to_numpy(), rtol=1e-9, atol=1e-9
    )
    np.testing.assert_allclose(ours["bandwidth"], ((upper - lower) / middle).to_numpy(), rtol=1e-9)


def _close_bars(close: list[float]) -> Bars:
    values = np.array(close, dtype=np.float64)
    return {"high": values, "low": values, "close": values, "volume": np.ones_like(values)}


def test_ema_seed_is_the_sma_of_the_first_n_closes() -> None:
    # n = 3, alpha = 2 / 4 = 0.5. Seed at bar 2: (2 + 4 + 6) / 3 = 4.
    # Bar 3: (8 - 4) * 0.5 + 4 = 6. Bar 4: (11 - 6) * 0.5 + 6 = 8.5.
    out = compute("ema", _close_bars([2, 4, 6, 8, 11]), n=3)["value"]
    np.testing.assert_array_equal(out, [np.nan, np.nan, 4.0, 6.0, 8.5])


def test_rsi_wilder_seed_and_smoothing() -> None:
    # n = 3; changes from bar 1: +1, -0.5, +1, -0.5, +1.
    # Bar 3: avg gain (1 + 0 + 1) / 3 = 2/3, avg loss 0.5 / 3 = 1/6 -> RSI 100 * (2/3) / (5/6) = 80.
    # Bar 4 (-0.5): gain (2/3 * 2 + 0) / 3 = 4/9, loss (1/6 * 2 + 0.5) / 3 = 5/18 -> 100 * 8/13.
    # Bar 5 (+1): gain (4/9 * 2 + 1) / 3 = 17/27, loss (5/18 * 2) / 3 = 5/27 -> 100 * 17/22.
    out = compute("rsi", _close_bars([10, 11, 10.5, 11.5, 11, 12]), n=3)["value"]
    np.testing.assert_allclose(out, [np.nan, np.nan, np.nan, 80.0, 800 / 13, 1700 / 22], rtol=1e-14)


def test_atr_seed_is_the_mean_true_range_of_bars_1_to_n() -> None:
    bars = {
        "high": np.array([10.0, 11, 12, 11, 13]),
        "low": np.array([9.0, 10, 11, 9, 12]),
        "close": np.array([9.5, 11.5, 11.5, 10, 12.5]),
    }
    # TR1 = max(11 - 10, |11 - 9.5|, |10 - 9.5|) = 1.5 (gap up), TR2 = max(1, 0.5, 0.5) = 1,
    # TR3 = max(2, |11 - 11.5|, |9 - 11.5|) = 2.5, TR4 = max(1, |13 - 10|, |12 - 10|) = 3.
    # n = 3: ATR at bar 3 = (1.5 + 1 + 2.5) / 3 = 5/3; bar 4 = (5/3 * 2 + 3) / 3 = 19/9.
    out = compute("atr", bars, n=3)["value"]
    np.testing.assert_allclose(out, [np.nan, np.nan, np.nan, 5 / 3, 19 / 9], rtol=1e-14)


def test_macd_start_indices_with_small_periods() -> None:
    # fast 2 (alpha 2/3), slow 3 (alpha 1/2), signal 2 (alpha 2/3) on closes 1, 2, 4, 8, 16.
    # Bar 2: slow = (1 + 2 + 4) / 3 = 7/3, fast = (2 + 4) / 2 = 3 -> line 2/3 (first line value, bar slow-1).
    # Bar 3: slow = (8 - 7/3) / 2 + 7/3 = 31/6, fast = (8 - 3) * 2/3 + 3 = 19/3 -> line 7/6;
    #        signal = (2/3 + 7/6) / 2 = 11/12 (first signal, bar slow + signal - 2), hist 7/6 - 11/12 = 1/4.
    # Bar 4: slow = (16 - 31/6) / 2 + 31/6 = 127/12, fast = (16 - 19/3) * 2/3 + 19/3 = 115/9 -> line 79/36;
    #        signal = (79/36 - 11/12) * 2/3 + 11/12 = 191/108, hist = 79/36 - 191/108 = 23/54.
    out = compute("macd", _close_bars([1, 2, 4, 8, 16]), fast=2, slow=3, signal=2)
    nan = np.nan
    np.testing.assert_allclose(out["line"], [nan, nan, 2 / 3, 7 / 6, 79 / 36], rtol=1e-14)
    np.testing.assert_allclose(out["signal"], [nan, nan, nan, 11 / 12, 191 / 108], rtol=1e-14)
    np.testing.assert_allclose(out["hist"], [nan, nan, nan, 1 / 4, 23 / 54], rtol=1e-13)


def test_flat_prices_give_the_neutral_values() -> None:
    # 0.1 is not a binary fraction: sum(20 * [0.1]) / 20 != 0.1, so a naive mean/std would leave an
    # ulp-sized deviation and turn z-score, %b and CCI into noise instead of their flat-window values.
    size = 60
    bars = {"high": np.full(size, 0.1), "low": np.full(size, 0.1), "close": np.full(size, 0.1)}
    bars["volume"] = np.full(size, 5.0)
    after = slice(40, None)  # past every warm-up below
    assert (compute("rsi", bars, n=14)["value"][after] == 50.0).all()
    stoch = compute("stoch", bars)
    assert (stoch["k"][after] == 50.0).all() and (stoch["d"][after] == 50.0).all()
    assert (compute("willr", bars, n=14)["value"][after] == -50.0).all()
    assert (compute("zscore", bars, n=20)["value"][after] == 0.0).all()
    assert (compute("cci", bars, n=20)["value"][after] == 0.0).all()
    assert (compute("mfi", bars, n=14)["value"][after] == 50.0).all()
    bands = compute("bbands", bars, n=20, k=2.0)
    assert (bands["pctb"][after] == 0.5).all() and (bands["bandwidth"][after] == 0.0).all()
    np.testing.assert_array_equal(bands["upper"], bands["lower"])
    adx = compute("adx", bars, n=14)
    for output in ("adx", "plus_di", "minus_di"):
        assert (adx[output][after] == 0.0).all()
    assert (compute("atr", bars, n=14)["value"][after] == 0.0).all()
    assert (compute("rvol", bars, n=20)["value"][after] == 0.0).all()


def test_vwap_of_a_window_without_volume_is_the_mean_typical_price() -> None:
    bars = {
        "high": np.array([12.0, 15.0, 18.0]),
        "low": np.array([9.0, 9.0, 12.0]),
        "close": np.array([9.0, 12.0, 15.0]),
        "volume": np.array([4.0, 0.0, 0.0]),
    }
    # tp = 10, 12, 15. Window of bars 0-1 has volume 4 at tp 10 -> 10; bars 1-2 have none -> (12 + 15) / 2.
    np.testing.assert_array_equal(compute("vwap", bars, n=2)["value"], [np.nan, 10.0, 13.5])
