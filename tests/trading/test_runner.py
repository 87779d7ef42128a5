"""Promotion and the strategy runner: a completed run's fold model becomes a strategy after its file's hash
is checked; the runner follows the strategies table, signals each recorded bar once, equal to the offline
replay bit for bit, across a restart and a stop; a tampered model fails the strategy with the reason."""

from __future__ import annotations

import shutil
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from research_setup import Research

from resources.duckdb_catalog import DuckDBCatalog
from resources.duckdb_store import DuckDBStore
from trading_assets import naming
from trading_assets.bars.service import BARS_SCHEMA
from trading_assets.compute.indicators.registry import BAR_INPUTS
from trading_assets.compute.live_signals import replay_signals
from trading_assets.live.config import PromoteConfig, StrategyRules
from trading_assets.live.runner import StrategyRunner
from trading_assets.live.service import PromotionError, load_signal_model, promote

TABLE = naming.live_bars_table("binance", "BTC/USDT", "1m")


@pytest.fixture
def live(research: Research, tmp_path) -> tuple[DuckDBCatalog, DuckDBStore]:  # type: ignore[no-untyped-def]
    """A catalog of its own (a copy of the research one) and an empty store for recorded bars."""
    shutil.copy(research.catalog.path, tmp_path / "catalog.duckdb")
    return DuckDBCatalog(path=str(tmp_path / "catalog.duckdb")), DuckDBStore(path=str(tmp_path / "ts.duckdb"))


def _record(store: DuckDBStore, bars: pa.Table) -> None:
    store.write(TABLE, bars, BARS_SCHEMA)


def _promote(catalog: DuckDBCatalog, research: Research, **overrides: object):  # type: ignore[no-untyped-def]
    return promote(catalog, PromoteConfig(name="demo", run=research.run, symbol="BTC/USDT", **overrides))


def test_promotion_takes_the_last_folds_model_and_thresholds_and_starts_stopped(research, live) -> None:  # type: ignore[no-untyped-def]
    catalog, _ = live
    strategy = _promote(catalog, research, amount="0.05", dead_zone="hold")
    folds = catalog.list_walkforward_folds(research.run)
    last = max(folds, key=lambda f: f.window.fold)
    thresholds = {t.fold: t for t in catalog.list_walkforward_thresholds(research.run)}[last.window.fold]
    assert (strategy.fold, strategy.model_sha256) == (last.window.fold, last.result.model_sha256)
    assert (strategy.long_threshold, strategy.short_threshold) == (
        thresholds.long_threshold,
        thresholds.short_threshold,
    )
    assert StrategyRules.from_json(strategy.sizing) == StrategyRules("units", Decimal("0.05"), "long", "hold")
    assert (strategy.desired_state, strategy.actual_state) == ("stopped", "stopped")
    assert strategy.bars_sha256 == catalog.get_dataset("btc25").source_sha256


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"run": "btc25_run9"}, "run: 'btc25_run9' is not in the catalog"),
        ({"fold": 7}, "has no succeeded fold 7"),
        ({"name": "Demo!"}, "strategy name"),
        ({"amount": "-1"}, "amount must be a positive decimal"),
        ({"max_position": "x"}, "max_position: 'x' is not a number"),
        ({"symbol": "BTC;DROP"}, "not a ccxt symbol"),
        ({"direction": "both"}, "direction: 'both' on the spot market BTC/USDT"),
        (
            {"long_threshold": -1.0, "short_threshold": 1.0},
            "short_threshold 1.0 is above long_threshold -1.0",
        ),
    ],
)
def test_promotion_refuses_what_cannot_trade_naming_the_field(research, live, overrides, message) -> None:  # type: ignore[no-untyped-def]
    catalog, _ = live
    config = {"name": "demo", "run": research.run, "symbol": "BTC/USDT", **overrides}
    with pytest.raises(PromotionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        promote(catalog, PromoteConfig(**config))
    assert catalog.list_strategies() == []


def test_one_symbol_of_an_account_is_traded_by_one_strategy(research, live) -> None:  # type: ignore[no-untyped-def]
    catalog, _ = live
    _promote(catalog, research)
    with pytest.raises(PromotionError, match="BTC/USDT on binance/main is traded by strategy demo"):
        promote(catalog, PromoteConfig(name="other", run=research.run, symbol="BTC/USDT"))
    # Another account, or the same strategy again (new settings), is fine.
    promote(catalog, PromoteConfig(name="other", run=research.run, symbol="BTC/USDT", account="second"))
    assert _promote(catalog, research, amount="0.02").name == "demo"


def _offline(catalog: DuckDBCatalog, store: DuckDBStore) -> tuple[np.ndarray, np.ndarray]:
    loaded = load_signal_model(catalog, catalog.get_strategy("demo"))
    bars = store.read(TABLE)
    ts = bars.column("ts").cast(pa.int64()).to_numpy()
    return replay_signals(
        loaded.model, loaded.booster, ts, {k: bars.column(k).to_numpy() for k in BAR_INPUTS}
    )


def _signals(catalog: DuckDBCatalog) -> tuple[list, np.ndarray, np.ndarray]:
    stored = catalog.list_signals("demo")
    return (
        [s.bar_ts for s in stored],
        np.array([s.prediction for s in stored]),
        np.array([s.target for s in stored]),
    )


def test_the_runner_signals_each_new_bar_once_equal_to_the_offline_replay(research, live) -> None:  # type: ignore[no-untyped-def]
    catalog, store = live
    later = research.later
    _record(store, later.slice(0, 300))
    _promote(catalog, research)
    runner = StrategyRunner(catalog, store)
    runner.tick()
    assert catalog.get_strategy("demo").actual_state == "stopped"  # not asked to run yet

    catalog.set_strategy_desired_state("demo", "running")
    runner.tick()
    assert catalog.get_strategy("demo").actual_state == "running"
    assert catalog.list_signals("demo") == []  # the bars so far are its history
    _record(store, later.slice(300, 40))
    runner.tick()
    runner.tick()  # nothing new: nothing recorded twice
    # The runner restarts while 25 bars arrive: the new one signals exactly those.
    _record(store, later.slice(340, 25))
    StrategyRunner(catalog, store).tick()

    when, prediction, target = _signals(catalog)
    offline_prediction, offline_target = _offline(catalog, store)
    assert len(when) == 65 == len(set(when))
    assert [w.timestamp() for w in when] == [
        t.timestamp() for t in later.slice(300, 65).column("ts").to_pylist()
    ]
    assert prediction.view(np.int64).tolist() == offline_prediction[300:].view(np.int64).tolist()
    assert np.array_equal(target, offline_target[300:])
    assert np.isfinite(prediction).all()  # past the warm-up: the model predicted every bar


def test_stopping_and_starting_again_misses_no_bar(research, live) -> None:  # type: ignore[no-untyped-def]
    catalog, store = live
    later = research.later
    _record(store, later.slice(0, 200))
    _promote(catalog, research, dead_zone="hold")
    catalog.set_strategy_desired_state("demo", "running")
    runner = StrategyRunner(catalog, store)
    runner.tick()
    _record(store, later.slice(200, 10))
    runner.tick()
    catalog.set_strategy_desired_state("demo", "stopped")
    runner.tick()
    assert catalog.get_strategy("demo").actual_state == "stopped"
    _record(store, later.slice(210, 10))
    runner.tick()
    assert len(catalog.list_signals("demo")) == 10  # stopped: no signals
    catalog.set_strategy_desired_state("demo", "running")
    runner.tick()
    when, prediction, target = _signals(catalog)
    offline_prediction, offline_target = _offline(catalog, store)
    assert len(when) == 20
    assert prediction.view(np.int64).tolist() == offline_prediction[200:].view(np.int64).tolist()
    assert np.array_equal(target, offline_target[200:])


def test_a_strategy_waits_for_its_bars_and_a_tampered_model_fails_it_with_the_reason(
    research, live, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    catalog, store = live
    strategy = _promote(catalog, research)
    catalog.set_strategy_desired_state("demo", "running")
    runner = StrategyRunner(catalog, store)
    runner.tick()
    stored = catalog.get_strategy("demo")
    assert stored.actual_state == "starting" and TABLE in stored.state_message

    # A strategy whose model file is not the one promoted (its bytes changed on disk).
    tampered = tmp_path / "model.ubj"
    tampered.write_bytes(b"not the model" + Path(strategy.model_path).read_bytes())
    catalog.upsert_strategy(replace(strategy, name="forged", model_path=str(tampered)))
    catalog.set_strategy_desired_state("forged", "running")
    _record(store, research.later.slice(0, 100))
    runner.tick()
    assert catalog.get_strategy("demo").actual_state == "running"
    failed = catalog.get_strategy("forged")
    assert failed.actual_state == "failed" and "has sha256" in failed.state_message
    assert "forged" not in runner.running
    runner.tick()  # not tried again until the strategy changes
    assert catalog.get_strategy("forged").updated_at == failed.updated_at
