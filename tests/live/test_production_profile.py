"""Switching on production is configuration, not code: the whole pipeline (ingest -> indicators -> walkforward
-> predictions -> thresholds -> simulation -> sweep -> export) run once on the embedded default (DuckDB store
and catalog, SQLite Dagster instance) and once on the production profile (QuestDB store, Postgres catalog,
the repo's dagster.yaml on Postgres) gives the same outputs bit for bit: every time-series table, every fold's
model hash and metrics, thresholds, every trade, the simulation's metrics, the sweep's grid, the export.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from trading_assets import settings as cfg
from trading_assets.cli import main as cli
from trading_assets.compute.demo_data import generate_bars, write_export
from trading_assets.compute.indicators import default_spec
from trading_assets.definitions import build_definitions
from trading_assets.indicators.service import register_set
from trading_assets.partitions import fold_key, indicator_set_key, indicator_versions

pytestmark = pytest.mark.live

ROOT = Path(__file__).resolve().parents[2]
DATASET = "btc25"
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
WALKFORWARD = {
    "dataset": DATASET,
    "indicator_version": 1,
    "target": {"kind": "regression", "horizon": 5},
    "folds": {"train": "1500", "test": "500", "embargo": 5, "max_folds": 3},
    "hyperparameters": {"n_estimators": 30, "max_depth": 3},
    "seed": 13,
}
SIMULATION = {"thresholds": "run", "fee_bps": 1.0, "slippage_bps": 1.0, "stop_loss_pct": 0.004}
SWEEP = {"long_quantiles": [0.7, 0.9], "short_quantiles": [0.1, 0.3], "stop_loss_pcts": [0.004, 0.008]}


@dataclass
class Outputs:
    tables: dict[str, pa.Table]
    folds: list[dict]
    thresholds: list[dict]
    simulation: dict
    trades: list[dict]
    sweep: pa.Table
    export: pa.Table


def run(defs: dg.Definitions, instance: dg.DagsterInstance, job: str, partition: str | None = None, **config):
    run_config = {**QUIET, "ops": {op: {"config": c} for op, c in config.items()}} if config else QUIET
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance, partition_key=partition, run_config=run_config, raise_on_error=True
    )
    assert all(check.passed for check in result.get_asset_check_evaluations()), job
    return result


def pipeline(settings: cfg.Settings, instance: dg.DagsterInstance, tmp_path: Path) -> Outputs:
    """The demo's steps, in-process, on whatever profile `settings` describes."""
    with cfg.catalog(settings).process_config_and_initialize_cm() as catalog:
        return steps(settings, instance, tmp_path, catalog)


def steps(settings: cfg.Settings, instance: dg.DagsterInstance, tmp_path: Path, catalog) -> Outputs:
    settings.landing_dir.mkdir(parents=True)
    write_export(generate_bars(n_rows=3_200, seed=21), settings.landing_dir / f"{DATASET}.txt")
    defs = build_definitions(settings)
    instance.add_dynamic_partitions("datasets", [DATASET])
    run(defs, instance, "ingest_bars", DATASET)

    record, _ = register_set(catalog, DATASET, default_spec())
    instance.add_dynamic_partitions(indicator_versions.name, [str(record.version)])
    run(defs, instance, "materialize_indicators", indicator_set_key(DATASET, record.version))

    started = run(defs, instance, "start_walkforward", register_walkforward_run=WALKFORWARD)
    name = started.output_for_node("register_walkforward_run")
    for fold in catalog.list_walkforward_folds(name):
        run(defs, instance, "train_folds", fold_key(name, fold.window.fold))
    run(defs, instance, "predict_walkforward", name)

    registered = run(defs, instance, "start_simulation", register_simulation_op={"run": name, **SIMULATION})
    sim = registered.output_for_node("register_simulation_op")
    run(defs, instance, "simulate", sim)
    swept = run(defs, instance, "sweep_thresholds", name, simulation_sweep=SWEEP)
    sweep_path = swept.asset_materializations_for_node("simulation_sweep")[0].metadata["metrics_table"].value

    export = tmp_path / "export.parquet"
    assert cli(["export", f"{DATASET}_1", "--out", str(export), "--batch-rows", "700"]) == 0
    assert cli(["catalog", "--dataset", DATASET]) == 0

    store = cfg.timeseries_store(settings)
    tables = {t: store.read(t) for t in (DATASET, f"{DATASET}_1", name, sim)}
    assert sorted(tables) == sorted(t for t in store.list_tables() if t.startswith(DATASET))
    folds = [asdict(f.result) | {"window": asdict(f.window)} for f in catalog.list_walkforward_folds(name)]
    for fold in folds:
        # Where the model file lies and how long training took differ by nature; the model's bytes don't.
        fold.pop("model_path"), fold.pop("train_seconds")
    simulation = catalog.get_simulation(sim)
    return Outputs(
        tables=tables,
        folds=folds,
        thresholds=[asdict(t) for t in catalog.list_walkforward_thresholds(name)],
        simulation={
            "name": simulation.name,
            "config": simulation.config,
            "metrics": simulation.metric_values(),
        },
        trades=[asdict(t) for t in catalog.list_simulation_trades(sim)],
        sweep=pq.read_table(sweep_path),
        export=pq.read_table(export),
    )


def bits(table: pa.Table) -> dict[str, list]:
    """Each column's values with doubles as their 64-bit patterns (so -0.0 != 0.0), nulls as None."""
    out = {}
    for name in table.column_names:
        column = table.column(name).combine_chunks()
        if pa.types.is_floating(column.type):
            raw = column.fill_null(0.0).to_numpy(zero_copy_only=False).view(np.uint64).tolist()
            out[name] = [None if column[i].is_valid is False else raw[i] for i in range(len(column))]
        else:
            out[name] = column.to_pylist()
    return out


@pytest.fixture
def embedded(tmp_path: Path, monkeypatch) -> Outputs:
    monkeypatch.setenv("TRADING_DATA_DIR", str(tmp_path / "embedded"))
    monkeypatch.setenv("TRADING_TIMESERIES", "duckdb")
    monkeypatch.setenv("TRADING_CATALOG", "duckdb")
    monkeypatch.setenv("TRADING_DEVICE", "cpu")
    for name in ("TRADING_LANDING_DIR", "TRADING_SETS_DIR", "TRADING_ARTIFACTS_DIR", "DAGSTER_HOME"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "embedded_home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "embedded_home")) as instance:
        outputs = pipeline(cfg.Settings.from_env(), instance, tmp_path / "embedded")
    monkeypatch.undo()
    return outputs


@pytest.fixture
def production(tmp_path: Path, monkeypatch, own_server, pg_settings, pg_schema_name, dagster_db) -> Outputs:
    questdb = own_server()
    home = tmp_path / "production_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {
        "TRADING_DATA_DIR": str(tmp_path / "production"),
        "TRADING_TIMESERIES": "questdb",
        "QUESTDB_ADDR": f"127.0.0.1:{questdb.http_port}",
        "TRADING_CATALOG": "postgres",
        "PGHOST": pg_settings["host"],
        "PGPORT": str(pg_settings["port"]),
        "PGUSER": pg_settings["user"],
        "PGDATABASE": pg_settings["dbname"],
        "TRADING_CATALOG_SCHEMA": pg_schema_name,
        "TRADING_DEVICE": "cpu",
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_HOST": pg_settings["host"],
        "DAGSTER_PG_PORT": str(pg_settings["port"]),
        "DAGSTER_PG_USER": pg_settings["user"],
        "DAGSTER_PG_PASSWORD": pg_settings["password"] or "",
        "DAGSTER_PG_DB": dagster_db,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("TRADING_LANDING_DIR", "TRADING_SETS_DIR", "TRADING_ARTIFACTS_DIR", "PGPASSWORD"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "production").mkdir()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        outputs = pipeline(cfg.Settings.from_env(), instance, tmp_path / "production")
    monkeypatch.undo()
    return outputs


def test_the_production_profile_gives_the_embedded_defaults_outputs_bit_for_bit(embedded, production):
    assert sorted(production.tables) == sorted(embedded.tables)
    for name, table in embedded.tables.items():
        assert production.tables[name].schema == table.schema, name
        assert bits(production.tables[name]) == bits(table), name
    assert production.folds == embedded.folds
    assert all(fold["status"] == "succeeded" and fold["model_sha256"] for fold in embedded.folds)
    assert production.thresholds == embedded.thresholds
    assert production.simulation == embedded.simulation
    assert production.trades == embedded.trades and embedded.trades
    assert bits(production.sweep) == bits(embedded.sweep)
    assert bits(production.export) == bits(embedded.export) == bits(embedded.tables[f"{DATASET}_1"])
