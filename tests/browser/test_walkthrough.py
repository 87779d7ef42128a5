"""The UI walkthrough (scripts/walkthrough.py, docs/qa/walkthrough.md) in Debian's headless Chromium.

A small demo (`trading-assets demo --rows 150000`: 104 days of bars, three walkforward folds and one
simulation) is built in a temporary data folder with the Dagster instance config `make demo` writes; the
walkthrough starts the webserver on it, visits the lineage graph, the fold grid and the simulation, and
reports what the rendered pages showed. These tests compare that with the demo's catalog.
"""

from __future__ import annotations

import importlib.util
import os
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from resources.duckdb_catalog import DuckDBCatalog

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
# 150,000 one-minute bars: 60 days of training and three 14-day test windows, so the grid has rows.
DEMO_ROWS = 150_000
RUN, SIMULATION = "btc25_run1", "btc25_sim1"
# The demo and the walkthrough (a fold backfill retrains the folds) are one fixture: 2-3 minutes on a 2-core
# machine beside other work, more beside two other test workers, past the project's 300 s per-test guard;
# this module's guard is longer.
pytestmark = pytest.mark.timeout(900)
PIPELINE = ("bars", "indicators", "fold_models", "predictions", "thresholds", "simulation")


def _load_walkthrough() -> ModuleType:
    # scripts/ is not a package: load the script by path, as `python scripts/walkthrough.py` runs it.
    spec = importlib.util.spec_from_file_location("walkthrough", REPO / "scripts" / "walkthrough.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Walked:
    report: object  # walkthrough.Report
    catalog_path: Path
    out: Path
    viewport: dict[str, int]


def _run(command: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


@pytest.fixture(scope="module")
def walked(tmp_path_factory: pytest.TempPathFactory) -> Walked:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run installs it)")
    walkthrough = _load_walkthrough()
    data_dir = tmp_path_factory.mktemp("walkthrough")
    home = data_dir / "dagster_home"
    # The embedded default only, whatever this shell points at; CPU so training is quick and the same
    # everywhere. One OpenMP thread: XGBoost's threads wait for each other many times per tree, which on
    # a busy 2-core machine (the other test workers, the webserver, the daemon) made a fold's fit 15-18 s
    # on both cores against 2-3 s on one; the models do not depend on the thread count.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADING_", "DAGSTER_"))}
    env.update(
        TRADING_DATA_DIR=str(data_dir), DAGSTER_HOME=str(home), TRADING_DEVICE="cpu", OMP_NUM_THREADS="1"
    )
    # The instance config (the `gpu` pool) comes from the Makefile's own rule, so the two cannot drift.
    _run(["make", "-s", f"TRADING_DATA_DIR={data_dir}", f"DAGSTER_HOME={home}", f"{home}/dagster.yaml"], env)
    _run([sys.executable, "-m", "trading_assets.cli", "demo", "--rows", str(DEMO_ROWS)], env)
    out = data_dir / "img"
    report = walkthrough.walk(data_dir, home, out, env=env)
    return Walked(report, data_dir / "catalog.duckdb", out, walkthrough.VIEWPORT)


@pytest.fixture(scope="module")
def catalog(walked: Walked) -> DuckDBCatalog:
    # Read once the walkthrough has stopped its daemon and code server, so no run of theirs writes it.
    return DuckDBCatalog(path=str(walked.catalog_path)).process_config_and_initialize()


def test_lineage_graph_draws_every_pipeline_asset_as_a_node(walked: Walked) -> None:
    assert set(PIPELINE) <= set(walked.report.lineage_nodes)


def test_fold_grid_shows_every_fold_of_the_run_materialised(walked: Walked, catalog: DuckDBCatalog) -> None:
    folds = [str(f.window.fold) for f in catalog.list_walkforward_folds(RUN)]
    assert len(folds) == 3
    report = walked.report
    assert report.fold_states == dict.fromkeys(folds, "materialized")
    assert report.run_states == {RUN: "materialized"}
    assert report.fold_counts == {"Failed": 0, "Materialized": 3, "Materializing": 0, "Missing": 0}
    # The selected cell is the last fold trained; its metadata panel names its run and fold.
    assert report.fold_partition == f"{folds[-1]}|{RUN}"
    assert (report.fold_metadata["run"], report.fold_metadata["fold"]) == (RUN, folds[-1])


def test_fold_backfill_page_shows_every_fold_of_the_run_succeeded(
    walked: Walked, catalog: DuckDBCatalog
) -> None:
    keys = [f"{f.window.fold}|{RUN}" for f in catalog.list_walkforward_folds(RUN)]
    report = walked.report
    # Launched from the dialog (the run, All folds), executed by the daemon, read from the backfill's page.
    assert report.backfill_id
    assert report.backfill_dialog_count == f"{len(keys)} partitions"
    assert report.backfill_status == "Succeeded"
    assert sorted(report.backfill_partitions) == sorted(keys)
    n = str(len(keys))
    assert report.backfill_assets == {
        "fold_models": {
            "completed": "100% completed",
            "Partitions targeted": n,
            "In progress": "0",
            "Succeeded": n,
            "Failed": "0",
        }
    }
    # One run for all the folds of the run (fold_models' single-run backfill policy), a success.
    assert report.backfill_runs == ["Success"]


def test_simulation_page_shows_the_metrics_the_catalog_stored(walked: Walked, catalog: DuckDBCatalog) -> None:
    stored = catalog.get_simulation(SIMULATION).metric_values()
    shown = walked.report.simulation_metadata
    assert walked.report.simulation == SIMULATION
    assert set(stored) <= set(shown)
    # The UI prints floats in their shortest round-trip form, as Python does: the values are exact.
    for name in ("total_return", "sharpe", "max_drawdown", "win_rate", "n_trades"):
        assert float(shown[name]) == stored[name], name


def test_simulation_equity_chart_is_a_decoded_inline_png(walked: Walked) -> None:
    chart = walked.report.equity_chart
    assert chart["alt"] == "equity and drawdown"
    assert chart["src_prefix"] == "data:image/png;base64,"
    assert chart["width"] > 100 and chart["height"] > 100


def test_each_stop_is_saved_as_a_screenshot(walked: Walked) -> None:
    names = [
        "lineage.png",
        "fold_partitions.png",
        "backfill.png",
        "backfill_runs.png",
        "simulation_metrics.png",
        "simulation_equity.png",
    ]
    assert walked.report.screenshots == [walked.out / n for n in names]
    for path in walked.report.screenshots:
        header = path.read_bytes()[:24]
        assert header[:8] == b"\x89PNG\r\n\x1a\n", path
        width, height = struct.unpack(">II", header[16:24])
        assert (width, height) == (walked.viewport["width"], walked.viewport["height"]), path
