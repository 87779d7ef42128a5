"""Indicator sets as Dagster runs them: registration, the asset and its checks, incremental updates, the
sensor. Real resources: DuckDB files, and Postgres in a throwaway schema for the catalog."""

from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
import pytest

from sensors.indicator_sets import indicator_sets_sensor
from trading_assets.bars.assets import bars
from trading_assets.compute.demo_data import generate_bars, write_export
from trading_assets.compute.indicators import REGISTRY, compute_set, default_spec, indicator, parse_spec
from trading_assets.definitions import defs
from trading_assets.indicators.assets import BARS_OF_THE_DATASET, indicators
from trading_assets.indicators.jobs import add_indicator_set
from trading_assets.indicators.service import read_bars, register_set, stored_values, table_schema
from trading_assets.partitions import datasets, indicator_set_key, indicator_sets
from trading_assets.records import IndicatorOutputs

ROWS = 3_000


@pytest.fixture(scope="module")
def export_lines(tmp_path_factory) -> list[str]:
    """A 4,000-bar export; its first 3,000 bars are the 'old' export of the same instrument."""
    path = tmp_path_factory.mktemp("export") / "full.txt"
    write_export(generate_bars(n_rows=ROWS + 1_000, seed=25), path)
    return path.read_text().splitlines(keepends=True)


def land(resources, lines: list[str], rows: int, dataset: str = "btc25") -> None:
    header = 1 if not lines[0][0].isdigit() else 0
    (Path(resources["landing"].path) / f"{dataset}.txt").write_text("".join(lines[: header + rows]))


def ingest(resources, instance, dataset: str = "btc25", replace: bool = False) -> None:
    if not instance.has_dynamic_partition("datasets", dataset):
        instance.add_dynamic_partitions("datasets", [dataset])
    config = {"ops": {"bars": {"config": {"replace": replace}}}}
    assert dg.materialize(
        [bars], partition_key=dataset, resources=resources, instance=instance, run_config=config
    ).success


def compute(resources, instance, dataset: str, version: int, **kwargs) -> dg.ExecuteInProcessResult:
    if not instance.has_dynamic_partition("indicator_versions", str(version)):
        instance.add_dynamic_partitions("indicator_versions", [str(version)])
    return dg.materialize(
        [indicators],
        partition_key=indicator_set_key(dataset, version),
        resources=resources,
        instance=instance,
        selection=[indicators],
        **kwargs,
    )


def metadata(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    return {k: v.value for k, v in result.asset_materializations_for_node("indicators")[0].metadata.items()}


def checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {c.check_name: c.passed for c in result.get_asset_check_evaluations()}


def test_definitions_load_the_indicator_jobs_and_sensor():
    dg.Definitions.validate_loadable(defs)
    assert defs.resolve_job_def("materialize_indicators") is not None
    assert defs.resolve_job_def("add_indicator_set") is not None
    assert defs.resolve_sensor_def("indicator_sets_sensor") is not None


def test_lineage_maps_each_set_to_exactly_its_datasets_bars(instance):
    instance.add_dynamic_partitions("datasets", ["btc25", "eth"])
    instance.add_dynamic_partitions("indicator_versions", ["1", "2"])
    mapped = BARS_OF_THE_DATASET.get_upstream_mapped_partitions_result_for_partitions(
        indicator_sets.subset_with_partition_keys([indicator_set_key("btc25", 2)]),
        indicator_sets,
        datasets,
        dynamic_partitions_store=instance,
    )
    assert set(mapped.partitions_subset.get_partition_keys()) == {"btc25"}
    dep = defs.resolve_asset_graph().get(dg.AssetKey("indicators")).parent_entity_keys
    assert dep == {dg.AssetKey("bars")}


def test_the_default_set_is_computed_stored_catalogued_and_checked(resources, instance, export_lines):
    land(resources, export_lines, ROWS)
    ingest(resources, instance)
    record, created = register_set(resources["catalog"], "btc25", default_spec())
    assert (record.measurement, record.version, record.status, created) == ("btc25_1", 1, "registered", True)
    result = compute(resources, instance, "btc25", 1)
    assert result.success
    assert checks(result) == {"no_lookahead": True, "warmup_only_nans": True, "matches_store": True}
    meta = metadata(result)
    assert meta["dagster/table_name"] == "btc25_1"
    assert meta["dagster/row_count"] == ROWS
    assert meta["update"] == "full"
    assert meta["price_with_overlays"].startswith("![price with overlays](data:image/png;base64,iVBORw0KGgo")
    assert meta["histograms"].startswith("![histograms")
    stats = {row.data["column"]: row.data for row in meta["column_stats"].records}
    assert stats["rsi_14"]["nan_count"] == 14
    assert stats["macd_signal"]["lookback"] == 33
    assert 0 <= stats["rsi_14"]["min"] <= stats["rsi_14"]["max"] <= 100

    stored = resources["catalog"].get_indicator_set("btc25", 1)
    assert (stored.status, stored.row_count, stored.message) == ("ready", ROWS, None)
    bars_now = read_bars(resources["timeseries"], "btc25")
    assert stored.first_ts.timestamp() * 1e6 == bars_now["ts"][0]
    assert stored.last_ts.timestamp() * 1e6 == bars_now["ts"][-1]
    expected = compute_set(default_spec(), bars_now).values
    table = resources["timeseries"].read("btc25_1")
    assert table.column_names == ["ts", *default_spec().column_names]
    assert table.column("rsi_14").null_count == 14
    got = stored_values(resources["timeseries"], "btc25_1", default_spec())
    for name, values in expected.items():
        np.testing.assert_array_equal(got[name], values, err_msg=name)


def test_a_longer_export_recomputes_only_the_tail_and_equals_a_full_recompute(
    resources, instance, export_lines
):
    land(resources, export_lines, ROWS)
    ingest(resources, instance)
    register_set(resources["catalog"], "btc25", default_spec())
    assert compute(resources, instance, "btc25", 1).success
    land(resources, export_lines, ROWS + 1_000)
    ingest(resources, instance)
    result = compute(resources, instance, "btc25", 1)
    assert result.success
    assert all(checks(result).values())
    meta = metadata(result)
    assert (meta["update"], meta["rows_written"], meta["dagster/row_count"]) == (
        "append",
        1_000,
        ROWS + 1_000,
    )
    full = compute_set(default_spec(), read_bars(resources["timeseries"], "btc25")).values
    got = stored_values(resources["timeseries"], "btc25_1", default_spec())
    for name, values in full.items():
        np.testing.assert_array_equal(got[name], values, err_msg=name)
    assert resources["catalog"].get_indicator_set("btc25", 1).row_count == ROWS + 1_000
    again = compute(resources, instance, "btc25", 1)
    assert (metadata(again)["update"], metadata(again)["rows_written"]) == ("unchanged", 0)


def test_changed_bars_before_the_old_end_recompute_everything(resources, instance, export_lines):
    land(resources, export_lines, ROWS)
    ingest(resources, instance)
    register_set(resources["catalog"], "btc25", default_spec())
    assert compute(resources, instance, "btc25", 1).success
    land(resources, export_lines[:1] + export_lines[2:], ROWS)  # first bar gone: not an append
    ingest(resources, instance, replace=True)
    result = compute(resources, instance, "btc25", 1)
    assert metadata(result)["update"] == "full"
    assert all(checks(result).values())


def test_a_changed_spec_is_a_new_version_and_the_same_spec_keeps_its_own(resources, instance, export_lines):
    land(resources, export_lines, ROWS)
    ingest(resources, instance)
    catalog = resources["catalog"]
    first, _ = register_set(catalog, "btc25", default_spec())
    other = parse_spec({"name": "fast", "indicators": [{"indicator": "rsi", "params": {"n": 7}}]})
    second, created = register_set(catalog, "btc25", other)
    again, created_again = register_set(catalog, "btc25", default_spec())
    assert (second.measurement, created) == ("btc25_2", True)
    assert (again.version, created_again, again.spec) == (1, False, first.spec)
    assert compute(resources, instance, "btc25", 2).success
    assert resources["timeseries"].read("btc25_2").column_names == ["ts", "rsi"]


def test_a_leaky_indicator_fails_the_blocking_lookahead_check_naming_column_and_row(
    resources, instance, export_lines
):
    land(resources, export_lines, ROWS)
    ingest(resources, instance)
    with REGISTRY.scoped():

        @indicator(lookback=0)
        def next_close(close):
            """The next bar's close: a feature that knows the future."""
            return np.append(close[1:], close[-1:])

        spec = parse_spec(
            {
                "name": "leaky",
                "indicators": [{"indicator": "sma"}, {"indicator": "next_close", "column": "peek"}],
            }
        )
        register_set(resources["catalog"], "btc25", spec)
        result = compute(resources, instance, "btc25", 1, raise_on_error=False)
    evaluations = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert not result.success  # blocking: the step fails, so nothing downstream runs on these features
    assert not evaluations["no_lookahead"].passed
    assert evaluations["no_lookahead"].metadata["columns_with_lookahead"].value == ["peek"]
    first_cut = evaluations["no_lookahead"].metadata["cuts"].value[0]
    assert (
        f"`peek` first bad row {first_cut - 1}"
        in evaluations["no_lookahead"].metadata["first_bad_rows"].value
    )
    stored = resources["catalog"].get_indicator_set("btc25", 1)
    assert (stored.status, stored.row_count) == ("failed", None)
    assert stored.message.startswith("update refused: no_lookahead: peek uses future bars: with the bars cut")
    assert "btc25_1" not in resources["timeseries"].list_tables()  # leaking features are never stored


def test_a_version_the_dataset_does_not_have_fails_with_a_clear_message(resources, instance, export_lines):
    land(resources, export_lines, ROWS)
    ingest(resources, instance)
    with pytest.raises(Exception, match=r"version 3 of 'btc25' is not registered \(it has versions \[\]\)"):
        compute(resources, instance, "btc25", 3)


def test_the_launchpad_job_registers_the_set_and_its_partition(resources, instance, export_lines):
    land(resources, export_lines, ROWS)
    ingest(resources, instance)
    config = {
        "dataset": "btc25",
        "name": "momentum",
        "indicators": [
            {"indicator": "rsi", "params": {"n": 10}, "column": "rsi_10"},
            {"indicator": "bbands", "column": "bb", "outputs": ["pctb"]},
        ],
    }
    run_config = {"ops": {"register_indicator_set": {"config": config}}}
    result = add_indicator_set.execute_in_process(
        run_config=run_config, resources=resources, instance=instance
    )
    assert result.success
    record = resources["catalog"].get_indicator_set("btc25", 1)
    assert (record.label, record.columns, record.lookbacks) == ("momentum", ("rsi_10", "bb_pctb"), (10, 19))
    assert instance.has_dynamic_partition("indicator_versions", "1")


def test_the_launchpad_job_refuses_a_bad_set_with_a_readable_message(resources, instance, export_lines):
    land(resources, export_lines, ROWS)
    ingest(resources, instance)
    config = {"dataset": "btc25", "indicators": [{"indicator": "rsii"}]}
    result = add_indicator_set.execute_in_process(
        run_config={"ops": {"register_indicator_set": {"config": config}}},
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    failure = result.failure_data_for_node("register_indicator_set").error
    assert "launchpad config: entry 1: unknown indicator 'rsii'; did you mean rsi?" in failure.message
    assert resources["catalog"].list_indicator_sets() == []


def evaluate(resources, instance, cursor=None) -> dg.SensorResult:
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
        return indicator_sets_sensor(context)


def test_the_sensor_registers_dropped_files_and_requests_their_runs(resources, instance, export_lines):
    land(resources, export_lines, ROWS)
    ingest(resources, instance)
    folder = Path(resources["sets_folder"].path)
    folder.mkdir()
    (folder / "fast.yaml").write_text(
        "name: fast\ndatasets: [btc25, eth]\nindicators:\n  - {indicator: rsi, params: {n: 7}}\n"
    )
    (folder / "broken.yaml").write_text(
        "name: broken\ndatasets: [btc25]\nindicators:\n  - {indicator: nope}\n"
    )
    result = evaluate(resources, instance)
    assert [(r.partition_key, r.run_key) for r in result.run_requests] == [
        (
            indicator_set_key("btc25", 1),
            f"btc25_1:{resources['catalog'].get_indicator_set('btc25', 1).spec_sha256[:16]}",
        )
    ]
    assert [r.partition_keys for r in result.dynamic_partitions_requests] == [["1"]]
    # eth is not imported yet: the file stays pending, and eth gets its set once it is.
    land(resources, export_lines, ROWS, dataset="eth")
    ingest(resources, instance, dataset="eth")
    result = evaluate(resources, instance, cursor=result.cursor)
    assert sorted(r.partition_key for r in result.run_requests) == sorted(
        [indicator_set_key("btc25", 1), indicator_set_key("eth", 1)]
    )


def test_the_sensor_updates_a_set_when_its_bars_are_imported_again(resources, instance, export_lines):
    land(resources, export_lines, ROWS)
    ingest(resources, instance)
    register_set(resources["catalog"], "btc25", default_spec())
    assert compute(resources, instance, "btc25", 1).success
    assert evaluate(resources, instance).run_requests == []
    land(resources, export_lines, ROWS + 1_000)
    ingest(resources, instance)
    requests = evaluate(resources, instance).run_requests
    version = resources["catalog"].get_dataset("btc25").version
    assert [(r.partition_key, r.run_key) for r in requests] == [
        (indicator_set_key("btc25", 1), f"btc25_1:bars:{version[:16]}")
    ]


def test_a_set_computed_while_its_bars_were_imported_again_is_still_due(resources, instance, export_lines):
    land(resources, export_lines, ROWS)
    ingest(resources, instance)
    catalog = resources["catalog"]
    register_set(catalog, "btc25", default_spec())
    assert compute(resources, instance, "btc25", 1).success
    before = catalog.get_indicator_set("btc25", 1)
    land(resources, export_lines, ROWS + 1_000)
    ingest(resources, instance)
    # A run that read the old bars finishes after the import and records its outcome last.
    catalog.record_indicator_output("btc25", 1, IndicatorOutputs.of(before))
    assert [r.partition_key for r in evaluate(resources, instance).run_requests] == [
        indicator_set_key("btc25", 1)
    ]


def custom_set(resources, body: str) -> None:
    """Register (again) indicator `mine` with `body` as its value and a set using it on btc25."""

    @indicator(lookback=0, replace=True)
    def mine(close):
        return eval(body)  # the tests choose the body: an honest feature or a leaky one

    register_set(
        resources["catalog"], "btc25", parse_spec({"name": "mine", "indicators": [{"indicator": "mine"}]})
    )


def test_a_leaky_update_keeps_the_good_table_and_its_catalog_row(resources, instance, export_lines):
    land(resources, export_lines, ROWS)
    ingest(resources, instance)
    with REGISTRY.scoped():
        custom_set(resources, "close * 2")
        assert compute(resources, instance, "btc25", 1).success
        good = resources["timeseries"].read("btc25_1")
        before = resources["catalog"].get_indicator_set("btc25", 1)
        custom_set(resources, "np.append(close[1:], close[-1:])")  # the same set, its code now leaks
        result = compute(resources, instance, "btc25", 1, raise_on_error=False)
    assert not result.success
    assert resources["timeseries"].read("btc25_1").equals(good)
    after = resources["catalog"].get_indicator_set("btc25", 1)
    assert (after.status, after.row_count, after.state, after.code_version) == (
        "ready",
        before.row_count,
        before.state,
        before.code_version,
    )
    assert after.message.startswith("update refused: no_lookahead: mine uses future bars")


def test_matches_store_finds_stored_values_altered_since_they_were_written(resources, instance, export_lines):
    land(resources, export_lines, ROWS)
    ingest(resources, instance)
    register_set(resources["catalog"], "btc25", default_spec())
    assert compute(resources, instance, "btc25", 1).success
    store = resources["timeseries"]
    last = store.read("btc25_1").slice(ROWS - 1, 1)
    column = last.schema.get_field_index("rsi_14")
    store.write("btc25_1", last.set_column(column, "rsi_14", pa.array([50.5])), table_schema(default_spec()))
    result = compute(resources, instance, "btc25", 1, raise_on_error=False)
    evaluation = {c.check_name: c for c in result.get_asset_check_evaluations()}["matches_store"]
    assert (metadata(result)["update"], evaluation.passed) == ("unchanged", False)
    assert evaluation.description.startswith(f"`rsi_14` row {ROWS - 1}: stored 50.5, computed ")
    assert resources["catalog"].get_indicator_set("btc25", 1).status == "failed"


def test_nans_after_the_warm_up_fail_warmup_only_nans_but_are_stored(resources, instance, export_lines):
    land(resources, export_lines, ROWS)
    ingest(resources, instance)
    with REGISTRY.scoped():

        @indicator(lookback=1)
        def holey(close):
            """A one-bar log return with a hole at bar 100."""
            out = np.log(close / np.append(np.nan, close[:-1]))
            out[100:101] = np.nan  # (the lookahead audit also runs it on prefixes shorter than that)
            return out

        register_set(
            resources["catalog"], "btc25", parse_spec({"name": "h", "indicators": [{"indicator": "holey"}]})
        )
        result = compute(resources, instance, "btc25", 1)
    assert result.success  # not blocking
    assert checks(result) == {"no_lookahead": True, "warmup_only_nans": False, "matches_store": True}
    stored = resources["catalog"].get_indicator_set("btc25", 1)
    assert stored.status == "failed"
    assert stored.message == "warmup_only_nans: holey: row 100 is nan after the 1-bar warm-up"
    assert resources["timeseries"].read("btc25_1").column("holey").null_count == 2
