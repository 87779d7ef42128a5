"""The API against real data: a small pipeline (import, indicators, a 3-fold walkforward run, a simulation)
run by the same jobs the daemon launches, into a tmp folder on the embedded default (DuckDB catalog and
store), and the app served by a real uvicorn server on a free loopback port. They are built once per pytest
process (session scope): under `--dist loadfile` a worker runs files of several packages in turn, and a
package fixture would be rebuilt (30 s) each time the worker came back to tests/api."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_setup import READ_TOKEN, WRITE_TOKEN, Demo, _free_port, serve

from resources.duckdb_catalog import DuckDBCatalog
from resources.duckdb_store import DuckDBStore
from trading_assets.api.settings import ApiSettings
from trading_assets.live.soak.research import environment

RUN = """\
dataset: btc25
indicator_version: 1
target: {kind: regression, horizon: 3}
folds: {train: "1500", test: "500", embargo: 5, max_folds: 3}
hyperparameters: {n_estimators: 20, max_depth: 3, early_stopping_rounds: 5}
seed: 11
"""
SET = {
    "name": "small",
    "indicators": [
        {"indicator": "rsi", "params": {"n": 14}},
        {"indicator": "logret", "params": {"n": 5}},
        {"indicator": "zscore", "params": {"n": 30}},
    ],
}


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """btc25 (3,500 one-minute bars), indicator set btc25_1, walkforward run btc25_run1 and simulations
    btc25_sim1 and btc25_sim2 (dearer costs), made by the project's own jobs in the foreground
    (`trading-assets walkforward`/`simulate`)."""
    from trading_assets import cli
    from trading_assets import settings as cfg
    from trading_assets.cli.launcher import Launcher
    from trading_assets.compute.demo_data import generate_bars, write_export
    from trading_assets.compute.indicators import parse_spec
    from trading_assets.indicators.service import register_set
    from trading_assets.partitions import indicator_set_key

    root = tmp_path_factory.mktemp("api")
    data = root / "data"
    home = data / "dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        with environment(TRADING_DATA_DIR=str(data), DAGSTER_HOME=str(home), TRADING_DEVICE="cpu"):
            for backend in ("TRADING_TIMESERIES", "TRADING_CATALOG"):
                os.environ.pop(backend, None)
            settings = cfg.Settings.from_env()
            launcher = Launcher.for_settings(settings)
            settings.landing_dir.mkdir()
            write_export(generate_bars(n_rows=3_500, seed=4), settings.landing_dir / "btc25.txt")
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
            Path("sim.yaml").write_text("run: btc25_run1\nfee_bps: 1\nslippage_bps: 1\n")
            assert cli.main(["simulate", "sim.yaml"]) == 0
            # A second sim of the same run with dearer costs, to compare.
            Path("sim2.yaml").write_text("run: btc25_run1\nfee_bps: 5\nslippage_bps: 2\n")
            assert cli.main(["simulate", "sim2.yaml"]) == 0
    finally:
        os.chdir(cwd)
    return Demo(data, catalog, DuckDBStore(path=str(data / "timeseries.duckdb")), launcher)


@pytest.fixture(scope="session")
def base_url(demo: Demo) -> Iterator[str]:
    """Served with a write token and open reads."""
    with serve(ApiSettings(port=_free_port(), write_token=WRITE_TOKEN, max_body=64 * 1024), demo) as url:
        yield url


@pytest.fixture(scope="session")
def guarded_url(demo: Demo) -> Iterator[str]:
    """Served with both tokens: reads need one too."""
    settings = ApiSettings(port=_free_port(), write_token=WRITE_TOKEN, read_token=READ_TOKEN)
    with serve(settings, demo) as url:
        yield url


@pytest.fixture
def api(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{base_url}/api/v1", timeout=30) as client:
        yield client
