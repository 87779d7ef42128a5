"""`trading-assets walkforward` and `simulate`: the daemon's jobs run in the foreground, against the embedded
default in a tmp data folder (DuckDB files and a Dagster home there)."""

import re
import sys
from pathlib import Path

import pytest

from resources.duckdb_catalog import DuckDBCatalog
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
FOLD_LINE = re.compile(r"^fold (\d)/3 done: IC [+-]\d\.\d{3}, hit rate \d\.\d{2}, \d+\.\ds$", re.M)


@pytest.fixture
def dataset(data_dir, monkeypatch) -> Path:
    """btc25 (3,500 one-minute bars) imported and a small indicator set computed on it, as `btc25_1`, by
    the jobs the sensors would launch; the catalog's file."""
    home = data_dir / "dagster_home"
    home.mkdir(parents=True)
    # As `make` writes it (the embedded default's instance), so Dagster prints no notices of its own.
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("TRADING_DEVICE", "cpu")
    settings = cfg.Settings.from_env()
    settings.landing_dir.mkdir()
    write_export(generate_bars(n_rows=3_500, seed=4), settings.landing_dir / "btc25.txt")
    launcher = Launcher.for_settings(settings)
    launcher.instance.add_dynamic_partitions("datasets", ["btc25"])
    launcher.instance.add_dynamic_partitions("indicator_versions", ["1"])
    assert launcher.execute("ingest_bars", partition_key="btc25").success
    catalog = DuckDBCatalog(path=str(data_dir / "catalog.duckdb"))
    register_set(catalog, "btc25", parse_spec(SET, source="test"))
    assert launcher.execute("materialize_indicators", partition_key=indicator_set_key("btc25", 1)).success
    return data_dir / "catalog.duckdb"


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

    trained = assets.train_and_record
    calls = []

    def interrupted_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return trained(*args, **kwargs)

    monkeypatch.setattr(assets, "train_and_record", interrupted_second)
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

    monkeypatch.setattr(assets, "train_and_record", broken)
    Path("run.yaml").write_text(RUN)
    assert cli.main(["walkforward", "run.yaml"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: fold 0 of btc25_run1 failed: ") and "no memory left (run " in line
    (request,) = DuckDBCatalog(path=str(dataset)).list_job_requests()
    assert request.status == "FAILED"


@pytest.mark.parametrize(
    ("command", "text", "says"),
    [
        ("walkforward", RUN.replace("test: ", "tset: "), "folds.tset: unknown field; folds.test: field"),
        ("simulate", "run: btc25_run1\nfee_bps: cheap\n", "fee_bps"),
    ],
)
def test_an_invalid_file_exits_2_naming_the_field_and_writes_nothing(data_dir, capsys, command, text, says):
    Path("run.yaml").write_text(text)
    assert cli.main([command, "run.yaml"]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1
    assert not data_dir.exists()


def test_a_run_that_does_not_fit_the_data_exits_1_with_one_line(dataset, capsys):
    Path("run.yaml").write_text(RUN.replace("dataset: btc25", "dataset: eth25"))
    assert cli.main(["walkforward", "run.yaml"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: the run was not registered: ") and "eth25" in err
    assert len(err.splitlines()) == 1
