"""A small research pipeline for the live tests, made by the project's own jobs on the embedded default:
dataset btc25 (3,000 one-minute bars), indicator set btc25_1 (stateful and windowed indicators), and a
completed 2-fold walkforward run btc25_run1 whose fold models a strategy is promoted from."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from resources.duckdb_catalog import DuckDBCatalog
from resources.duckdb_store import DuckDBStore

RUN = """\
dataset: btc25
indicator_version: 1
target: {kind: regression, horizon: 3}
folds: {train: "1500", test: "500", embargo: 5, max_folds: 2}
hyperparameters: {n_estimators: 20, max_depth: 3, early_stopping_rounds: 5}
seed: 11
"""
SET = {
    "name": "live_small",
    "indicators": [
        {"indicator": "rsi", "params": {"n": 14}},
        {"indicator": "ema", "params": {"n": 20}},
        {"indicator": "macd", "params": {}},
        {"indicator": "logret", "params": {"n": 5}},
        {"indicator": "zscore", "params": {"n": 30}},
    ],
}
BARS = 3_000


@dataclass
class Research:
    data: Path
    catalog: DuckDBCatalog
    store: DuckDBStore
    run: str
    # The dataset's bars and the bars after them (the same generator, longer): what a venue replays live.
    bars: pa.Table
    later: pa.Table


@contextmanager
def _env(**values: str) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def build_research(root: Path) -> Research:
    from trading_assets import cli
    from trading_assets import settings as cfg
    from trading_assets.cli.launcher import Launcher
    from trading_assets.compute.demo_data import generate_bars, write_export
    from trading_assets.compute.indicators import parse_spec
    from trading_assets.indicators.service import register_set
    from trading_assets.partitions import indicator_set_key

    data = root / "data"
    home = data / "dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    everything = generate_bars(n_rows=BARS + 2_000, seed=4, n_gaps=0)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        with _env(TRADING_DATA_DIR=str(data), DAGSTER_HOME=str(home), TRADING_DEVICE="cpu"):
            for backend in ("TRADING_TIMESERIES", "TRADING_CATALOG"):
                os.environ.pop(backend, None)
            settings = cfg.Settings.from_env()
            launcher = Launcher.for_settings(settings)
            settings.landing_dir.mkdir()
            write_export(everything.slice(0, BARS), settings.landing_dir / "btc25.txt")
            launcher.instance.add_dynamic_partitions("datasets", ["btc25"])
            assert launcher.execute("ingest_bars", partition_key="btc25").success
            launcher.instance.add_dynamic_partitions("indicator_versions", ["1"])
            catalog = DuckDBCatalog(path=str(data / "catalog.duckdb"))
            register_set(catalog, "btc25", parse_spec(SET, source="test"))
            assert launcher.execute(
                "materialize_indicators", partition_key=indicator_set_key("btc25", 1)
            ).success
            Path("run.yaml").write_text(RUN)
            assert cli.main(["walkforward", "run.yaml"]) == 0
    finally:
        os.chdir(cwd)
    store = DuckDBStore(path=str(data / "timeseries.duckdb"))
    return Research(data, catalog, store, "btc25_run1", everything.slice(0, BARS), everything.slice(BARS))
