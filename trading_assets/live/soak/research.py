"""A small research pipeline for live runs, made by the project's own jobs: a dataset of one-minute bars
from the demo generator, an indicator set (stateful and windowed indicators), and a completed 2-fold
walkforward run whose fold models a strategy is promoted from. The soak and the live tests start here.

The same generator, run longer, gives the bars after the dataset's: what a local venue replays live.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from resources.catalog import Catalog
from resources.timeseries import TimeSeriesStore

RUN = """\
dataset: {dataset}
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
    catalog: Catalog
    store: TimeSeriesStore
    run: str
    # The dataset's bars and the bars after them (the same generator, longer): what a venue replays live.
    bars: pa.Table
    later: pa.Table


@contextmanager
def environment(**values: str) -> Iterator[None]:
    """`values` set in os.environ for the block, and put back as they were after it."""
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


@contextmanager
def _pipeline_environment(root: Path, env: dict[str, str]) -> Iterator[None]:
    """The working directory `root` and the pipeline's environment (the embedded default unless `env` names
    other backends) for the block; both put back as they were after it."""
    data = root / "data"
    cwd = os.getcwd()
    os.chdir(root)
    saved = {name: os.environ.pop(name, None) for name in ("TRADING_TIMESERIES", "TRADING_CATALOG")}
    try:
        with environment(
            TRADING_DATA_DIR=str(data), DAGSTER_HOME=str(data / "dagster_home"), TRADING_DEVICE="cpu", **env
        ):
            yield
    finally:
        os.environ.update({k: v for k, v in saved.items() if v is not None})
        os.chdir(cwd)


def _bars(later_bars: int) -> pa.Table:
    """The dataset's bars and the `later_bars` after them: seeded, the same table in every process."""
    from trading_assets.compute.demo_data import generate_bars

    return generate_bars(n_rows=BARS + later_bars, seed=4, n_gaps=0)


def build_research(root: Path, dataset: str = "btc25", later_bars: int = 2_000, **env: str) -> Research:
    """The pipeline in `root`, on the embedded default unless `env` names other backends (e.g.
    TRADING_CATALOG=postgres, TRADING_TIMESERIES=questdb); `later_bars` bars follow the dataset's."""
    from trading_assets import cli
    from trading_assets import settings as cfg
    from trading_assets.cli.launcher import Launcher
    from trading_assets.compute.demo_data import write_export
    from trading_assets.compute.indicators import parse_spec
    from trading_assets.indicators.service import register_set
    from trading_assets.partitions import indicator_set_key

    home = root / "data" / "dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    everything = _bars(later_bars)
    with _pipeline_environment(root, env):
        settings = cfg.Settings.from_env()
        launcher = Launcher.for_settings(settings)
        settings.landing_dir.mkdir()
        write_export(everything.slice(0, BARS), settings.landing_dir / f"{dataset}.txt")
        launcher.instance.add_dynamic_partitions("datasets", [dataset])
        if not launcher.execute("ingest_bars", partition_key=dataset).success:
            raise RuntimeError(f"research: ingest_bars of {dataset} failed")
        launcher.instance.add_dynamic_partitions("indicator_versions", ["1"])
        catalog, store = cfg.catalog(settings), cfg.timeseries_store(settings)
        register_set(catalog, dataset, parse_spec(SET, source="soak"))
        key = indicator_set_key(dataset, 1)
        if not launcher.execute("materialize_indicators", partition_key=key).success:
            raise RuntimeError(f"research: materialize_indicators of {key} failed")
        Path("run.yaml").write_text(RUN.replace("{dataset}", dataset))
        if cli.main(["walkforward", "run.yaml"]) != 0:
            raise RuntimeError(f"research: the walkforward run of {dataset} failed")
    return _research(root, dataset, catalog, store, everything)


def open_research(root: Path, dataset: str = "btc25", later_bars: int = 2_000, **env: str) -> Research:
    """What `build_research` with the same arguments made in `root`, perhaps in another process: its catalog
    and store, opened without running or writing anything, and its bars."""
    from trading_assets import settings as cfg

    with _pipeline_environment(root, env):
        settings = cfg.Settings.from_env()
        catalog, store = cfg.catalog(settings), cfg.timeseries_store(settings)
    return _research(root, dataset, catalog, store, _bars(later_bars))


def _research(
    root: Path, dataset: str, catalog: Catalog, store: TimeSeriesStore, everything: pa.Table
) -> Research:
    return Research(
        root / "data", catalog, store, f"{dataset}_run1", everything.slice(0, BARS), everything.slice(BARS)
    )
