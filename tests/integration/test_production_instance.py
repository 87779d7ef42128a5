"""The production Dagster instance (`dagster.yaml` at the repo root) against the real Postgres: it loads
with its credentials from environment variables, keeps runs, events, schedules and dynamic partitions in
Postgres, queues runs, limits the `gpu` pool, and runs one of the project's jobs end to end."""

import shutil
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from trading_assets import settings as cfg
from trading_assets.compute.demo_data import generate_bars, write_export
from trading_assets.definitions import build_definitions

ROOT = Path(__file__).resolve().parents[2]
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@pytest.fixture
def production_home(tmp_path: Path, dagster_db: str, pg_settings: dict, monkeypatch) -> Path:
    """DAGSTER_HOME holding the repo's production dagster.yaml as it is, its credentials in the
    environment, and the project's data folders in tmp_path."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_PG_HOST", pg_settings["host"])
    monkeypatch.setenv("DAGSTER_PG_PORT", str(pg_settings["port"]))
    monkeypatch.setenv("DAGSTER_PG_USER", pg_settings["user"])
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", pg_settings["password"] or "")
    monkeypatch.setenv("DAGSTER_PG_DB", dagster_db)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("TRADING_DATA_DIR", str(tmp_path / "data"))
    for name in ("TRADING_LANDING_DIR", "TRADING_SETS_DIR", "TRADING_ARTIFACTS_DIR", "TRADING_CATALOG"):
        monkeypatch.delenv(name, raising=False)
    return home


def test_the_production_instance_keeps_everything_in_postgres_and_runs_a_job(
    production_home: Path, dagster_db: str, pg_settings: dict
):
    settings = cfg.Settings.from_env()
    settings.landing_dir.mkdir(parents=True)
    write_export(generate_bars(n_rows=500, seed=3), settings.landing_dir / "btc25.txt")
    defs = build_definitions(settings)
    with dg.DagsterInstance.from_config(str(production_home)) as instance:
        storages = (instance.run_storage, instance.event_log_storage, instance.schedule_storage)
        assert [type(s).__name__ for s in storages] == [
            "PostgresRunStorage",
            "PostgresEventLogStorage",
            "PostgresScheduleStorage",
        ]
        # Runs wait in a queue, at most 8 at once (what the run queue daemon reads); steps of the `gpu`
        # pool take one slot each, one slot per pool.
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        concurrency = instance.get_concurrency_config()
        assert concurrency.run_queue_config.max_concurrent_runs == 8
        # One run per partition at a time: two imports of a dataset would share its staging table.
        assert [
            (limit["key"], limit["value"], limit["limit"])
            for limit in concurrency.run_queue_config.tag_concurrency_limits
        ] == [("dagster/partition", {"applyLimitPerUniqueValue": True}, 1)]
        pools = concurrency.pool_config
        assert (pools.default_pool_limit, pools.pool_granularity.value) == (1, "op")

        instance.add_dynamic_partitions("datasets", ["btc25"])
        result = defs.resolve_job_def("ingest_bars").execute_in_process(
            instance=instance, partition_key="btc25", run_config=QUIET
        )
        assert result.success
        run_id = result.run_id

    # What the run left is in the Postgres database, readable by any process (the webserver, the daemon).
    with psycopg.connect(
        host=pg_settings["host"], port=pg_settings["port"], user=pg_settings["user"], dbname=dagster_db
    ) as conn:
        assert conn.execute("SELECT status FROM runs WHERE run_id = %s", [run_id]).fetchone() == ("SUCCESS",)
        materialised = conn.execute(
            "SELECT count(*) FROM event_logs "
            "WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'",
            [run_id],
        ).fetchone()
        assert materialised == (1,)
        partitions = conn.execute(
            "SELECT partition FROM dynamic_partitions WHERE partitions_def_name = 'datasets'"
        ).fetchall()
        assert partitions == [("btc25",)]
