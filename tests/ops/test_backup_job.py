"""Backups of the embedded profile (DuckDB catalog and time series, artifacts), taken by the Dagster job
`backup` and the CLI: the job keeps the newest N complete backups and never touches a partial one, the
schedule asks for one a day, a restore gives back the same rows, and a verification catches a table whose
checksum is not the manifest's."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from resources.duckdb_catalog import DuckDBCatalog
from trading_assets.cli import main
from trading_assets.ops.backup import complete_backups
from trading_assets.ops.jobs import backup, backup_schedule

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@pytest.fixture
def embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data folder of the embedded profile with a migrated catalog, a time-series table whose values
    need care as text (a newline, quotes, nulls, NaN) and two model files; TRADING_* point at it."""
    data = tmp_path / "data"
    monkeypatch.setenv("TRADING_DATA_DIR", str(data))
    for name in ("TRADING_CATALOG", "TRADING_TIMESERIES", "TRADING_ARTIFACTS_DIR", "TRADING_BACKUP_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("DAGSTER_PG_DB", raising=False)
    DuckDBCatalog(path=str(data / "catalog.duckdb")).migrate()
    with duckdb.connect(str(data / "timeseries.duckdb")) as con:
        con.execute(
            "CREATE TABLE btc AS SELECT TIMESTAMPTZ '2024-01-01 00:00:00+00' + i * INTERVAL 1 MINUTE AS ts, "
            "CASE WHEN i % 7 = 0 THEN NULL WHEN i % 11 = 0 THEN 'NaN'::DOUBLE ELSE i / 3 END AS close, "
            "'say \"hi\",' || chr(10) || i AS note FROM range(5000) t(i)"
        )
    (data / "artifacts" / "btc25_run1").mkdir(parents=True)
    (data / "artifacts" / "btc25_run1" / "fold_0.ubj").write_bytes(bytes(range(256)) * 40)
    (data / "artifacts" / "btc25_run1" / "fold_1.ubj").write_bytes(b"model 1")
    return data


def rows_of(path: Path) -> dict[str, str]:
    """Every table's rows in order, as their repr (where NaN equals NaN)."""
    with duckdb.connect(str(path), read_only=True) as con:
        tables = con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()
        return {t: repr(con.execute(f'SELECT * FROM "{t}" ORDER BY ALL').fetchall()) for (t,) in tables}


def test_the_backup_job_keeps_the_newest_complete_backups_and_leaves_partial_ones(embedded: Path):
    backups = embedded / "backups"
    # A backup that died half-way (or one being written by another run): never pruned.
    (backups / ".partial-20200101T000000Z").mkdir(parents=True)
    taken = []
    for _ in range(2):
        result = backup.execute_in_process(
            run_config={"ops": {"take_backup": {"config": {"keep": 1}}}, **QUIET}
        )
        assert result.success
        taken.append(result.output_for_node("take_backup"))

    assert [p.name for p in complete_backups(backups)] == taken[1:]
    assert (backups / ".partial-20200101T000000Z").is_dir()
    [output] = [e for e in result.events_for_node("take_backup") if e.is_successful_output]
    metadata = output.step_output_data.metadata
    assert metadata["deleted"].value == taken[0]
    assert metadata["kept"].value == 1


def test_the_schedule_asks_for_one_backup_a_day_keeping_seven():
    tick = datetime(2026, 3, 4, 1, 30, tzinfo=UTC)
    request = backup_schedule(dg.build_schedule_context(scheduled_execution_time=tick))

    assert (backup_schedule.cron_schedule, backup_schedule.execution_timezone) == ("30 1 * * *", "UTC")
    assert request.run_key == "2026-03-04"
    assert request.run_config["ops"]["take_backup"]["config"] == {"keep": 7}


def test_a_restore_into_a_fresh_data_folder_gives_back_the_same_rows_and_files(
    embedded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    assert main(["backup"]) == 0
    fresh = tmp_path / "fresh"
    monkeypatch.setenv("TRADING_BACKUP_DIR", str(embedded / "backups"))
    monkeypatch.setenv("TRADING_DATA_DIR", str(fresh))
    capsys.readouterr()

    assert main(["restore", "latest"]) == 0

    out = capsys.readouterr().out
    assert out.count("all match") == 3, out  # two DuckDB files and the artifacts
    for name in ("catalog.duckdb", "timeseries.duckdb"):
        assert rows_of(fresh / name) == rows_of(embedded / name)
    for model in (embedded / "artifacts").rglob("*.ubj"):
        assert (fresh / model.relative_to(embedded)).read_bytes() == model.read_bytes()


def test_verification_fails_on_a_table_whose_checksum_is_not_the_manifests(
    embedded: Path, capsys: pytest.CaptureFixture[str]
):
    assert main(["backup", "--out", str(embedded / "backups")]) == 0
    taken = complete_backups(embedded / "backups")[-1]
    assert main(["verify-backup", str(taken)]) == 0
    capsys.readouterr()

    manifest = json.loads((taken / "manifest.json").read_text())
    timeseries = next(e for e in manifest["duckdb"] if e["role"] == "timeseries")
    timeseries["tables"]["main.btc"]["rows"] = 4999
    (taken / "manifest.json").write_text(json.dumps(manifest))

    assert main(["verify-backup", str(taken)]) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error == "error: duckdb/timeseries.duckdb table main.btc: 5000 rows, the manifest says 4999"


def test_backup_keep_deletes_the_oldest_beyond_n(embedded: Path, capsys: pytest.CaptureFixture[str]):
    for _ in range(2):
        assert main(["backup", "--keep", "1"]) == 0

    out = capsys.readouterr().out
    kept = complete_backups(embedded / "backups")
    assert len(kept) == 1
    assert "kept 1 backups, deleted 1" in out


def test_a_restore_refuses_a_data_folder_that_is_not_empty(
    embedded: Path, capsys: pytest.CaptureFixture[str]
):
    assert main(["backup"]) == 0
    before = rows_of(embedded / "timeseries.duckdb")
    (embedded / "artifacts" / "btc25_run1" / "fold_1.ubj").unlink()
    capsys.readouterr()

    assert main(["restore", "latest"]) == 1

    err = capsys.readouterr().err
    assert err.startswith("error: not empty: ") and err.endswith("or pass --force\n")
    assert str(embedded / "timeseries.duckdb") in err
    assert rows_of(embedded / "timeseries.duckdb") == before
    assert not (embedded / "artifacts" / "btc25_run1" / "fold_1.ubj").exists()

    assert main(["restore", "latest", "--force"]) == 0
    assert (embedded / "artifacts" / "btc25_run1" / "fold_1.ubj").read_bytes() == b"model 1"


def test_a_folder_without_a_manifest_is_no_backup(embedded: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["backup"]) == 0
    taken = complete_backups(embedded / "backups")[-1]
    half = taken.with_name(".partial-x")
    shutil.copytree(taken, half)
    (half / "manifest.json").unlink()

    assert main(["verify-backup", str(half)]) == 1
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith("no manifest.json; not a backup, or one that did not complete")
    )
