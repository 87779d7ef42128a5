"""The bars pipeline as Dagster runs it: real resources (DuckDB files, Postgres in a throwaway schema)."""

import json
import os
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest

from resources.duckdb_store import DuckDBStore
from sensors.landing import landing_sensor
from trading_assets import cli
from trading_assets.bars.assets import bars
from trading_assets.bars.checks import bars_match_source, compare_with_source, sample_rows
from trading_assets.bars.service import BARS_SCHEMA
from trading_assets.compute.bar_format import ReadOptions
from trading_assets.compute.demo_data import generate_bars, write_export
from trading_assets.definitions import defs

ROWS = 3_000


def landed(resources, name: str = "btc25.txt", seed: int = 25) -> Path:
    path = Path(resources["landing"].path) / name
    write_export(generate_bars(n_rows=ROWS, seed=seed), path)
    return path


def materialize(resources, instance, dataset: str = "btc25", **kwargs) -> dg.ExecuteInProcessResult:
    if not instance.has_dynamic_partition("datasets", dataset):
        instance.add_dynamic_partitions("datasets", [dataset])
    return dg.materialize(
        [bars, bars_match_source], partition_key=dataset, resources=resources, instance=instance, **kwargs
    )


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)
    assert defs.resolve_job_def("ingest_bars") is not None
    assert defs.resolve_sensor_def("landing_sensor") is not None


def test_materialized_bars_are_stored_catalogued_checked_and_described(resources, instance):
    source = landed(resources)
    result = materialize(resources, instance)
    assert result.success
    meta = {k: v.value for k, v in result.asset_materializations_for_node("bars")[0].metadata.items()}
    assert meta["dagster/row_count"] == ROWS
    assert meta["dagster/table_name"] == "btc25"
    assert meta["bar_interval"] == "1m"
    assert meta["gap_count"] == 3
    assert meta["close"].startswith("![close price](data:image/png;base64,iVBORw0KGgo")
    assert [c.passed for c in result.get_asset_check_evaluations()] == [True]
    record = resources["catalog"].get_dataset("btc25")
    assert (record.row_count, record.table_name, record.bar_interval_s) == (ROWS, "btc25", 60)
    assert record.source_file == str(source.resolve())
    assert resources["timeseries"].read("btc25").num_rows == ROWS


def test_a_bad_file_fails_the_run_and_keeps_what_was_stored(resources, instance):
    source = landed(resources)
    assert materialize(resources, instance).success
    before = resources["timeseries"].read("btc25")
    record = resources["catalog"].get_dataset("btc25")
    lines = source.read_text().splitlines(keepends=True)
    lines[1234] = lines[1234].replace(",", ",-", 6).replace(",-", ",", 5)  # negative volume on line 1235
    source.write_text("".join(lines))
    with pytest.raises(ValueError, match=r"btc25\.txt line 1235, field 'volume \(column 7\)'.*negative"):
        materialize(resources, instance)
    assert resources["timeseries"].read("btc25").equals(before)
    assert resources["catalog"].get_dataset("btc25") == record


def test_the_check_comparison_finds_a_stored_value_that_differs_from_the_source(resources, instance):
    # A check-only run of a partitioned check cannot be launched in dagster 1.13 (preview feature), so the
    # tampered store is compared with the same function the check runs.
    source = landed(resources)
    assert materialize(resources, instance).success
    store = resources["timeseries"]
    row = store.read("btc25").slice(ROWS - 1, 1)
    close = row.schema.get_field_index("close")
    store.write(
        "btc25", row.set_column(close, "close", pa.array([row["close"][0].as_py() + 0.01])), BARS_SCHEMA
    )
    rows = sample_rows(ROWS, "0" * 64)
    problems = compare_with_source(source, ReadOptions(), store, "btc25", rows, ROWS)
    assert len(problems) == 1
    assert problems[0].startswith(f"row {ROWS - 1}: stored")
    store.write("btc25", store.read("btc25").slice(0, 10), BARS_SCHEMA)  # rewrites its window: no change
    assert compare_with_source(source, ReadOptions(), store, "btc25", rows, ROWS + 1)[-1] == (
        f"the store holds {ROWS} rows; the source has {ROWS + 1}"
    )


def tick(resources, instance, cursor: str | None) -> dg.SensorResult:
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
        result = landing_sensor(context)
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def test_sensor_requests_new_and_changed_files_only(resources, instance):
    source = landed(resources)
    first = tick(resources, instance, None)
    assert [r.partition_key for r in first.run_requests] == ["btc25"]
    assert instance.get_dynamic_partitions("datasets") == ["btc25"]
    assert tick(resources, instance, first.cursor).run_requests == []
    os.utime(source, ns=(1, 1))  # a new mtime with the same content is not a change
    touched = tick(resources, instance, first.cursor)
    assert touched.run_requests == []
    write_export(generate_bars(n_rows=ROWS, seed=26), source)
    changed = tick(resources, instance, touched.cursor)
    assert [r.partition_key for r in changed.run_requests] == ["btc25"]
    assert changed.run_requests[0].run_key != first.run_requests[0].run_key


def test_sensor_reingests_when_the_reading_options_change(resources, instance):
    source = landed(resources)
    first = tick(resources, instance, None)
    source.with_suffix(".json").write_text(json.dumps({"timezone": "Europe/Berlin"}))
    assert [r.partition_key for r in tick(resources, instance, first.cursor).run_requests] == ["btc25"]


def test_sensor_skips_files_already_imported_and_bad_names(resources, instance):
    landed(resources)
    assert materialize(resources, instance).success
    (Path(resources["landing"].path) / "bad name.txt").write_text("x")
    result = tick(resources, instance, None)  # a fresh cursor: the catalog knows btc25's content
    assert result.run_requests == []


def test_an_import_that_died_after_its_commit_point_is_run_again_by_the_sensor(
    resources, instance, monkeypatch
):
    longer = generate_bars(n_rows=ROWS + 50, seed=25)
    source = write_export(longer.slice(0, ROWS), Path(resources["landing"].path) / "btc25.txt")
    first = tick(resources, instance, None)
    assert materialize(resources, instance).success
    write_export(longer, source)  # the same history and 50 bars more

    def crash(self, name):  # the process dies after the catalog's commit point, before the swap
        raise SystemExit("killed")

    monkeypatch.setattr(DuckDBStore, "publish", crash)
    with pytest.raises(SystemExit):
        materialize(resources, instance)
    monkeypatch.undo()
    pending = resources["catalog"].get_dataset("btc25")
    assert pending.publish_pending and pending.row_count == ROWS + 50
    assert resources["timeseries"].read("btc25").num_rows == ROWS  # the old bars, still the table

    second = tick(resources, instance, first.cursor)  # the file changed: one request, not two
    assert [r.partition_key for r in second.run_requests] == ["btc25"]
    third = tick(resources, instance, second.cursor)  # nothing changed, but the import is unfinished
    assert [r.partition_key for r in third.run_requests] == ["btc25"]
    assert third.run_requests[0].tags["trading/finishes_import"] == pending.version

    # The export has since gone bad: the run fails on it, but only after completing the committed import.
    source.write_text(source.read_text().replace(",", ";", 1))
    with pytest.raises(ValueError, match=r"btc25\.txt: cannot recognise the date/time format"):
        materialize(resources, instance)
    record = resources["catalog"].get_dataset("btc25")
    assert not record.publish_pending
    assert resources["timeseries"].read("btc25").num_rows == record.row_count == ROWS + 50


def test_cli_ingest_then_refuse_a_bad_file_without_touching_the_data(data_dir, tmp_path, capsys):
    good = tmp_path / "ETH_M1.txt"
    write_export(generate_bars(n_rows=ROWS), good)
    assert cli.main(["ingest", str(good)]) == 0
    assert "eth_m1: 3000 bars" in capsys.readouterr().out
    store = DuckDBStore(path=str(data_dir / "timeseries.duckdb"))
    before = store.read("eth_m1")
    bad = tmp_path / "bad.txt"
    bad.write_text(good.read_text().replace("2025.01.01,00:10,", "2025.01.01,00:1O,", 1))
    assert cli.main(["ingest", str(bad), "--dataset", "eth_m1"]) == 1
    assert "bad.txt line 11, field 'timestamp (columns 1-2)'" in capsys.readouterr().err
    assert store.read("eth_m1").equals(before)
    assert cli.main(["ingest", str(good), "--dataset", "x; drop table eth_m1"]) == 1
    assert "not a valid name" in capsys.readouterr().err


def test_reading_options_of_an_import_are_recorded_and_used_by_the_check(resources, instance):
    landed(resources)
    config = {"ops": {"bars": {"config": {"timezone": "Europe/Berlin"}}}}
    result = materialize(resources, instance, run_config=config)
    assert [c.passed for c in result.get_asset_check_evaluations()] == [True]
    record = resources["catalog"].get_dataset("btc25")
    assert json.loads(record.read_options) == {"timezone": "Europe/Berlin"}
    assert record.first_ts.isoformat() == "2024-12-31T23:00:00+00:00"  # 00:00 in Berlin (CET)


def test_sensor_with_a_fresh_cursor_reingests_when_the_reading_options_differ_from_the_import(
    resources, instance
):
    source = landed(resources)
    assert materialize(resources, instance).success
    source.with_suffix(".json").write_text(json.dumps({"timezone": "Europe/Berlin"}))
    assert [r.partition_key for r in tick(resources, instance, None).run_requests] == ["btc25"]


def test_every_file_of_a_contested_dataset_is_skipped(resources, instance):
    for name in ("btc25.txt", "btc25.csv", "BTC25.tsv"):
        landed(resources, name)
    files, problems = resources["landing"].scan()
    assert files == []
    assert len(problems) == 2
