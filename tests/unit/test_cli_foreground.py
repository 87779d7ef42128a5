"""`trading-assets walkforward`, `simulate`, `indicators` and `sweep`: the daemon's jobs run in the
foreground, against the embedded default in a tmp data folder (DuckDB files and a Dagster home there)."""

import re
import sys
import time
from pathlib import Path

import pytest

from resources.duckdb_catalog import DuckDBCatalog
from resources.duckdb_store import DuckDBStore
from trading_assets import cli
from trading_assets import settings as cfg
from trading_assets.cli.launcher import Launcher, Progress
from trading_assets.compute.demo_data import generate_bars, write_export
from trading_assets.compute.indicators import parse_spec
from trading_assets.indicators.service import register_set
from trading_assets.partitions import indicator_set_key

SET = {
    "name": "small",
    "indicators": [
        {"indicator": "rsi", "params": {"n": 14}},
        {"indicator": "logret", "params": {"n": 5}},
        {"indicator": "zscore", "params": {"n": 30}},
    ],
}
RUN = """\
dataset: btc25
indicator_version: 1
target: {kind: regression, horizon: 3}
folds: {train: "1500", test: "500", embargo: 5, max_folds: 3}
hyperparameters: {n_estimators: 20, max_depth: 3, early_stopping_rounds: 5}
seed: 11
"""
SET_FILE = """\
name: small
indicators:
  - {indicator: rsi, params: {n: 14}}
  - {indicator: logret, params: {n: 5}}
  - {indicator: zscore, params: {n: 30}}
datasets: [btc25]
"""
GRID = "long_quantiles: [0.6, 0.8]\nshort_quantiles: [0.2, 0.4]\nfee_bps: 2\n"
FOLD_LINE = re.compile(r"^fold (\d)/3 done: IC [+-]\d\.\d{3}, hit rate \d\.\d{2}, \d+\.\ds$", re.M)


@pytest.fixture
def home(data_dir, monkeypatch) -> Launcher:
    """A Dagster home in the data folder, as `make` writes it (the embedded default's instance, so Dagster
    prints no notices of its own); the launcher on it."""
    home = data_dir / "dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("TRADING_DEVICE", "cpu")
    return Launcher.for_settings(cfg.Settings.from_env())


@pytest.fixture
def bars(home, data_dir) -> Path:
    """btc25 (3,500 one-minute bars) imported by the job the landing sensor would launch; the catalog's
    file."""
    settings = cfg.Settings.from_env()
    settings.landing_dir.mkdir()
    write_export(generate_bars(n_rows=3_500, seed=4), settings.landing_dir / "btc25.txt")
    home.instance.add_dynamic_partitions("datasets", ["btc25"])
    assert home.execute("ingest_bars", partition_key="btc25").success
    return data_dir / "catalog.duckdb"


@pytest.fixture
def dataset(bars, home) -> Path:
    """btc25 with a small indicator set computed on it, as `btc25_1`, by the jobs the sensors would launch;
    the catalog's file."""
    home.instance.add_dynamic_partitions("indicator_versions", ["1"])
    register_set(DuckDBCatalog(path=str(bars)), "btc25", parse_spec(SET, source="test"))
    assert home.execute("materialize_indicators", partition_key=indicator_set_key("btc25", 1)).success
    return bars


def test_walkforward_trains_every_fold_in_the_foreground_and_prints_their_table(dataset, capsys):
    Path("run.yaml").write_text(RUN)
    assert cli.main(["walkforward", "run.yaml"]) == 0
    out = capsys.readouterr().out
    assert [m.group(1) for m in FOLD_LINE.finditer(out)] == ["1", "2", "3"]
    catalog = DuckDBCatalog(path=str(dataset))
    (run,) = catalog.list_walkforward_runs("btc25")
    assert run.status == "completed"
    assert f"run            {run.name}  (completed; predictions" in out
    for fold in catalog.list_walkforward_folds(run.name):
        window = f"{fold.window.test_start_ts:%Y-%m-%d %H:%M}"
        row = next(line for line in out.splitlines() if line.startswith(f"{fold.window.fold:>4}  "))
        assert window in row and f"IC {fold.result.ic:+.3f}" in row
    (request,) = catalog.list_job_requests()
    assert (request.kind, request.target, request.status) == ("walkforward", run.name, "COMPLETED")


def test_simulate_replays_a_completed_run_and_prints_the_metrics_the_catalog_keeps(dataset, capsys):
    Path("run.yaml").write_text(RUN)
    assert cli.main(["walkforward", "run.yaml"]) == 0
    Path("sim.yaml").write_text("run: btc25_run1\nfee_bps: 1\nslippage_bps: 1\n")
    capsys.readouterr()
    assert cli.main(["simulate", "sim.yaml"]) == 0
    out = capsys.readouterr().out
    catalog = DuckDBCatalog(path=str(dataset))
    (sim,) = catalog.list_simulations("btc25")
    assert sim.status == "completed"
    (request,) = catalog.list_job_requests(kind="simulation")
    assert (request.target, request.status) == (sim.name, "COMPLETED")
    m = sim.metric_values()
    assert f"simulation     {sim.name}  (run btc25_run1," in out
    assert f"total return {m['total_return']:+.2%}, CAGR {m['cagr']:+.2%}, Sharpe {m['sharpe']:.2f}" in out
    assert f"{m['n_trades']} trades, win rate {m['win_rate']:.1%}, profit factor " in out
    assert f"profit factor {m['profit_factor']:.2f}, exposure {m['exposure']:.1%}" in out


def test_ctrl_c_during_a_fold_stops_records_the_fold_as_failed_and_says_how_to_resume(
    dataset, capsys, monkeypatch
):
    import trading_assets.walkforward.assets as assets

    trained = assets.train_one
    calls = []

    def interrupted_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return trained(*args, **kwargs)

    monkeypatch.setattr(assets, "train_one", interrupted_second)
    Path("run.yaml").write_text(RUN)
    assert cli.main(["walkforward", "run.yaml"]) == 130
    captured = capsys.readouterr()
    assert len(FOLD_LINE.findall(captured.out)) == 1
    assert "interrupted: 1 of 3 folds of btc25_run1 trained. To resume, start the daemon" in captured.err
    assert "materialise the interrupted fold 1 (partition 1|btc25_run1, job train_folds)" in captured.err
    assert "Traceback" not in captured.err
    catalog = DuckDBCatalog(path=str(dataset))
    assert [f.status for f in catalog.list_walkforward_folds("btc25_run1")] == [
        "succeeded",
        "failed",
        "pending",
    ]
    assert catalog.get_walkforward_run("btc25_run1").status == "failed"
    (request,) = catalog.list_job_requests()
    assert request.status == "FAILED"


def test_on_a_terminal_progress_is_one_line_redrawn_in_place(capsys, monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    progress = Progress(3, "fold")
    for _ in range(3):
        progress.step("IC +0.010, hit rate 0.51", 0.2)
    out = capsys.readouterr().out
    assert out.count("\r") == 3 and out.endswith("\n") and out.count("\n") == 1
    assert "[" + "#" * 30 + "] 3/3 folds  IC +0.010, hit rate 0.51" in out


def test_a_fold_that_fails_exits_1_with_one_line_naming_the_fold_and_its_run(dataset, capsys, monkeypatch):
    import trading_assets.walkforward.assets as assets

    def broken(*args, **kwargs):
        raise RuntimeError("no memory left")

    monkeypatch.setattr(assets, "train_one", broken)
    Path("run.yaml").write_text(RUN)
    assert cli.main(["walkforward", "run.yaml"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: fold 0 of btc25_run1 failed: ") and "no memory left (run " in line
    (request,) = DuckDBCatalog(path=str(dataset)).list_job_requests()
    assert request.status == "FAILED"


@pytest.mark.parametrize(
    ("argv", "text", "says"),
    [
        (["walkforward"], RUN.replace("test: ", "tset: "), "folds.tset: unknown field; folds.test: field"),
        (["simulate"], "run: btc25_run1\nfee_bps: cheap\n", "fee_bps"),
        (["indicators"], SET_FILE.replace("{n: 5}", "{n: 5, m: 2}"), "run.yaml: entry 2 (line 4): "),
        (["sweep", "btc25_run1"], "long_quantiles: [0.6]\nfee: 2\n", "fee: unknown field"),
        (["sweep", "btc25_run1"], "short_quantiles: low\n", "short_quantiles: Input should be a valid list"),
    ],
)
def test_an_invalid_file_exits_2_naming_the_field_and_writes_nothing(data_dir, capsys, argv, text, says):
    Path("run.yaml").write_text(text)
    assert cli.main([*argv, "run.yaml"]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1
    assert not data_dir.exists()


def test_a_run_that_does_not_fit_the_data_exits_1_with_one_line(dataset, capsys):
    Path("run.yaml").write_text(RUN.replace("dataset: btc25", "dataset: eth25"))
    assert cli.main(["walkforward", "run.yaml"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: the run was not registered: ") and "eth25" in err
    assert len(err.splitlines()) == 1


def test_indicators_computes_the_files_set_and_prints_each_columns_warm_up_and_first_value(bars, capsys):
    Path("set.yaml").write_text(SET_FILE)
    assert cli.main(["indicators", "set.yaml"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^set 1/1 done: btc25_1, full update, 3,500 rows written, \d+\.\ds$", out, re.M)
    (record,) = DuckDBCatalog(path=str(bars)).list_indicator_sets("btc25")
    assert (record.measurement, record.status) == ("btc25_1", "ready")
    ts = DuckDBStore(path=str(bars.with_name("timeseries.duckdb"))).read("btc25", columns=["ts"])["ts"]
    # The oracle: each column is NaN exactly in its warm-up (the set's contract), values after it.
    for column, lookback in zip(record.columns, record.lookbacks, strict=True):
        row = next(line.split() for line in out.splitlines() if line.startswith(f"  {column} "))
        assert row[1:5] == [
            str(lookback),
            f"{3_500 - lookback:,}",
            *f"{ts[lookback].as_py():%Y-%m-%d %H:%M}".split(),
        ]


def test_ctrl_c_while_a_set_computes_leaves_it_registered_and_running_again_resumes(
    bars, capsys, monkeypatch
):
    import trading_assets.indicators.assets as assets

    computed = assets.compute_into_store

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(assets, "compute_into_store", interrupted)
    Path("set.yaml").write_text(SET_FILE)
    assert cli.main(["indicators", "set.yaml"]) == 130
    err = capsys.readouterr().err
    assert (
        "interrupted: 0 of 1 sets computed. btc25_1 was not computed (registered, nothing stored yet). "
        in err
    )
    assert "To resume, run this command again" in err and "Traceback" not in err
    catalog = DuckDBCatalog(path=str(bars))
    assert [r.status for r in catalog.list_indicator_sets("btc25")] == ["registered"]
    assert "btc25_1" not in DuckDBStore(path=str(bars.with_name("timeseries.duckdb"))).list_tables()
    monkeypatch.setattr(assets, "compute_into_store", computed)
    assert cli.main(["indicators", "set.yaml"]) == 0
    assert [(r.version, r.status) for r in catalog.list_indicator_sets("btc25")] == [(1, "ready")]


def test_a_set_that_fails_to_compute_exits_1_with_one_line_naming_it(bars, capsys, monkeypatch):
    import trading_assets.indicators.assets as assets

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(assets, "compute_into_store", broken)
    Path("set.yaml").write_text(SET_FILE)
    assert cli.main(["indicators", "set.yaml"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: computing btc25_1 failed: RuntimeError: disk full (run ")


def test_sweep_prints_the_best_cells_of_its_table_and_the_best_cells_deflated_sharpe_ratio(dataset, capsys):
    import dagster as dg
    import pandas as pd

    Path("run.yaml").write_text(RUN.replace("max_folds: 3", "max_folds: 1"))
    assert cli.main(["walkforward", "run.yaml"]) == 0
    Path("grid.yaml").write_text(GRID)
    capsys.readouterr()
    assert cli.main(["sweep", "btc25_run1", "grid.yaml", "--top", "3"]) == 0
    out = capsys.readouterr().out
    table = pd.read_parquet(dataset.parent / "artifacts" / "btc25_run1" / "sweep.parquet")
    assert f"swept {len(table)} cells" in out
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["long", ">="])
    best = table.sort_values("sharpe", ascending=False).head(3)
    for line, (_, cell) in zip(lines[header + 1 : header + 4], best.iterrows(), strict=True):
        assert line.split() == [
            f"{cell['long_threshold']:.4g}",
            f"{cell['short_threshold']:.4g}",
            str(int(cell["n_trades"])),
            f"{cell['sharpe']:.2f}",
            f"{cell['total_return']:+.2%}",
            f"{cell['max_drawdown']:.2%}",
            f"{cell['win_rate']:.1%}",
        ]
    event = dg.DagsterInstance.get().get_latest_materialization_event(dg.AssetKey("simulation_sweep"))
    chosen = event.asset_materialization.metadata["best_cell"].value
    assert chosen["sharpe"] == table["sharpe"].max()
    assert f"deflated Sharpe ratio {chosen['deflated_sharpe_ratio']:.3f} over {len(table)} trials" in out


def test_ctrl_c_during_a_sweep_exits_130_and_leaves_no_table(home, data_dir, capsys, monkeypatch):
    import trading_assets.simulation.assets as assets

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(assets, "load_inputs", interrupted)
    home.instance.add_dynamic_partitions("walkforward_runs", ["btc25_run1"])
    assert cli.main(["sweep", "btc25_run1"]) == 130
    err = capsys.readouterr().err
    assert err.startswith(
        "interrupted: the sweep of btc25_run1 did not finish; it records nothing in the catalog"
    )
    assert "Traceback" not in err
    assert not (data_dir / "artifacts" / "btc25_run1").exists()


def test_a_sweep_of_a_run_that_does_not_exist_exits_1_with_one_line(home, capsys):
    assert cli.main(["sweep", "btc25_run9"]) == 1
    assert capsys.readouterr().err == (
        "error: there is no walkforward run 'btc25_run9' (trading-assets catalog lists them)\n"
    )


@pytest.mark.parametrize(
    ("argv", "name", "text"),
    [
        (["walkforward"], "run.yaml", RUN),
        (["simulate"], "sim.yaml", "run: btc25_run1\n"),
        (["indicators"], "set.yaml", SET_FILE),
    ],
)
def test_with_a_daemon_alive_on_the_instance_the_foreground_refuses_and_registers_nothing(
    bars, home, capsys, argv, name, text
):
    from dagster._daemon.types import DaemonHeartbeat

    home.instance.add_daemon_heartbeat(DaemonHeartbeat(time.time() - 20, "SENSOR", "daemon", None))
    Path(name).write_text(text)
    assert cli.main([*argv, name]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(
        f"error: a Dagster daemon is running on {home.instance.root_directory} (heartbeat 2"
    )
    catalog = DuckDBCatalog(path=str(bars))
    assert (catalog.list_job_requests(), catalog.list_indicator_sets()) == ([], [])
    assert len(home.instance.get_runs()) == 1  # the import's


def test_the_demo_refuses_before_its_export_lands_while_a_daemon_beats(home, data_dir, capsys):
    from dagster._daemon.types import DaemonHeartbeat

    home.instance.add_daemon_heartbeat(DaemonHeartbeat(time.time() - 20, "SENSOR", "daemon", None))
    assert cli.main(["demo", "--rows", "3000"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: a Dagster daemon is running on {home.instance.root_directory}")
    assert line.endswith("; stop it first (make dev runs one)")
    assert not (data_dir / "landing").exists() and home.instance.get_runs() == []


def test_a_daemon_that_stopped_beating_does_not_hold_the_foreground_back(bars, home, capsys):
    from dagster._daemon.types import DaemonHeartbeat

    home.instance.add_daemon_heartbeat(DaemonHeartbeat(time.time() - 300, "SENSOR", "daemon", None))
    Path("set.yaml").write_text(SET_FILE)
    assert cli.main(["indicators", "set.yaml"]) == 0


def test_the_request_of_a_foreground_run_is_never_queued_for_the_daemons_intake(dataset, monkeypatch):
    import dagster as dg

    import trading_assets.walkforward.assets as assets
    from sensors.intake import job_request_intake_sensor

    trained, asked = assets.train_one, []

    def watched(*args, **kwargs):
        resources = {"catalog": DuckDBCatalog(path=str(dataset))}
        with dg.build_sensor_context(instance=dg.DagsterInstance.get(), resources=resources) as context:
            asked.append(job_request_intake_sensor(context).run_requests)
        return trained(*args, **kwargs)

    monkeypatch.setattr(assets, "train_one", watched)
    Path("run.yaml").write_text(RUN.replace("max_folds: 3", "max_folds: 1"))
    assert cli.main(["walkforward", "run.yaml"]) == 0
    assert asked == [[]]
