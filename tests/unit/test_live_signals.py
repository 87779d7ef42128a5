"""Live signals bar by bar equal the offline replay over the same bars, bit for bit: the default indicator
set (stateful and windowed indicators), a real XGBoost model, both dead-zone rules, both kinds."""

from __future__ import annotations

import numpy as np
import pytest

from trading_assets.compute import training
from trading_assets.compute.demo_data import generate_bars
from trading_assets.compute.indicators import compute_set, default_spec
from trading_assets.compute.indicators.registry import BAR_INPUTS
from trading_assets.compute.live_signals import LiveSignalError, LiveSignals, SignalModel, replay_signals

N_BARS, HISTORY = 1_600, 1_200
FEATURES = ("rsi_14", "macd_hist", "atr_14", "adx_14_adx", "obv", "logret_1")


@pytest.fixture(scope="module")
def bars() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    table = generate_bars(n_rows=N_BARS, seed=7, n_gaps=0)
    ts = table.column("ts").cast("int64").to_numpy()
    return ts, {k: table.column(k).to_numpy().astype(np.float64) for k in BAR_INPUTS}


def _model(bars, kind: str, dead_zone: str):  # type: ignore[no-untyped-def]
    """A model fitted on the first half of the history's features against the next bar's log return."""
    _ts, columns = bars
    spec = default_spec()
    values = compute_set(spec, columns).values
    features = np.column_stack([values[name] for name in FEATURES])
    warmup = max(c.lookback for c in spec.columns if c.name in FEATURES)
    future = np.append(np.diff(np.log(columns["close"])), np.nan)
    rows = np.arange(warmup, HISTORY // 2)
    target = future[rows] if kind == "regression" else (future[rows] > 0).astype(np.float64)
    fitted = training.fit(
        features[rows], target, kind, training.Hyperparameters(n_estimators=20), seed=3, columns=FEATURES
    )
    prediction = training.predict(fitted.booster, features[rows], kind)
    signal = prediction[0] if kind == "regression" else prediction[1]
    long, short = np.quantile(signal, [0.7, 0.3])
    model = SignalModel(spec, FEATURES, warmup, kind, float(long), float(short), dead_zone)  # type: ignore[arg-type]
    return model, fitted.booster


@pytest.mark.parametrize(("kind", "dead_zone"), [("regression", "flat"), ("classification", "hold")])
def test_bar_by_bar_equals_the_offline_replay_bit_for_bit(bars, kind: str, dead_zone: str) -> None:  # type: ignore[no-untyped-def]
    ts, columns = bars
    model, booster = _model(bars, kind, dead_zone)
    offline_pred, offline_target = replay_signals(model, booster, ts, columns)

    history = {k: v[:HISTORY] for k, v in columns.items()}
    live = LiveSignals(
        model, booster, ts[:HISTORY], history, previous_target=float(offline_target[HISTORY - 1])
    )
    steps = [live.step(int(ts[i]), {k: columns[k][i] for k in BAR_INPUTS}) for i in range(HISTORY, N_BARS)]

    prediction = np.array([s.prediction for s in steps])
    target = np.array([s.target for s in steps])
    assert prediction.view(np.int64).tolist() == offline_pred[HISTORY:].view(np.int64).tolist()
    assert np.array_equal(target, offline_target[HISTORY:])
    assert live.bars_taken == N_BARS
    # The model takes positions on both sides over these bars, so the comparison means something.
    assert {-1.0, 1.0} <= set(target.tolist())


def test_inside_the_warm_up_a_bar_has_no_prediction_and_a_flat_target(bars) -> None:  # type: ignore[no-untyped-def]
    ts, columns = bars
    model, booster = _model(bars, "regression", "flat")
    live = LiveSignals(model, booster, ts[:0], {k: v[:0] for k, v in columns.items()})
    first = live.step(int(ts[0]), {k: columns[k][0] for k in BAR_INPUTS})
    assert np.isnan(first.prediction) and first.target == 0.0


def test_a_bar_out_of_order_or_not_finite_is_refused_by_field(bars) -> None:  # type: ignore[no-untyped-def]
    ts, columns = bars
    model, booster = _model(bars, "regression", "flat")
    live = LiveSignals(model, booster, ts[:HISTORY], {k: v[:HISTORY] for k, v in columns.items()})
    bar = {k: columns[k][HISTORY] for k in BAR_INPUTS}
    with pytest.raises(LiveSignalError, match="does not come after the last bar"):
        live.step(int(ts[HISTORY - 1]), bar)
    with pytest.raises(LiveSignalError, match="close is nan"):
        live.step(int(ts[HISTORY]), {**bar, "close": float("nan")})
    with pytest.raises(LiveSignalError, match=r"missing field\(s\) \['volume'\]"):
        live.step(int(ts[HISTORY]), {k: v for k, v in bar.items() if k != "volume"})
    # Nothing was taken by the refused bars: the next good one goes through.
    assert live.step(int(ts[HISTORY]), bar).ts_us == int(ts[HISTORY])


def test_a_model_naming_a_column_the_set_lacks_is_refused() -> None:
    with pytest.raises(LiveSignalError, match=r"features \['nope'\] are not columns"):
        SignalModel(default_spec(), ("nope",), 0, "regression", 0.1, -0.1)
