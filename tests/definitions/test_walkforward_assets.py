"""Walkforward runs as Dagster runs them: registration from the launchpad config, one partition per fold,
predictions and thresholds with their checks, failure and retry, lineage, the sensor. Real resources:
DuckDB files, and Postgres in a throwaway schema for the catalog."""

import uuid
from dataclasses import replace
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
import pytest

from resources.compute import ComputeResource
from sensors.walkforward import walkforward_sensor
from trading_assets.bars.assets import bars
from trading_assets.compute import walkforward
from trading_assets.compute.demo_data import generate_bars, write_export
from trading_assets.compute.folds import Fold
from trading_assets.compute.indicators import parse_spec
from trading_assets.compute.training import cuda_available
from trading_assets.definitions import defs
from trading_assets.indicators.assets import indicators
from trading_assets.indicators.service import register_set
from trading_assets.partitions import (
    fold_key,
    fold_numbers,
    indicator_set_key,
    walkforward_folds,
    walkforward_runs,
)
from trading_assets.walkforward import checks
from trading_assets.walkforward.assets import FOLDS_OF_THE_RUN, fold_models, predictions, thresholds
from trading_assets.walkforward.jobs import start_walkforward
from trading_assets.walkforward.service import derive_thresholds, kept_thresholds, load_run, prediction_schema

ROWS = 4_000
SET = {
    "name": "small",
    "indicators": [
        {"indicator": "rsi", "params": {"n": 14}},
        {"indicator": "ema", "params": {"n": 20}},
        {"indicator": "logret", "params": {"n": 5}},
        {"indicator": "zscore", "params": {"n": 30}},
        {"indicator": "atr", "params": {"n": 14}},
    ],
}
CONFIG = {
    "dataset": "btc25",
    "indicator_version": 1,
    "target": {"kind": "regression", "horizon": 3},
    "folds": {"train": "1500", "test": "500", "embargo": 5, "max_folds": 4},
    "hyperparameters": {"n_estimators": 25, "max_depth": 3, "early_stopping_rounds": 5},
    "seed": 11,
}


@pytest.fixture(scope="module")
def export_lines(tmp_path_factory) -> list[str]:
    """An export of ROWS + 200 bars; its first ROWS bars are the export the runs train on."""
    path = tmp_path_factory.mktemp("export") / "btc25.txt"
    write_export(generate_bars(n_rows=ROWS + 200, seed=4), path)
    return path.read_text().splitlines(keepends=True)


def land_and_compute(resources, instance, lines: list[str], rows: int) -> None:
    """Import the first `rows` bars as btc25 and compute the small indicator set on them (`btc25_1`)."""
    header = 0 if lines[0][0].isdigit() else 1
    (Path(resources["landing"].path) / "btc25.txt").write_text("".join(lines[: header + rows]))
    if not instance.has_dynamic_partition("datasets", "btc25"):
        instance.add_dynamic_partitions("datasets", ["btc25"])
        instance.add_dynamic_partitions("indicator_versions", ["1"])
    assert dg.materialize([bars], partition_key="btc25", resources=resources, instance=instance).success
    register_set(resources["catalog"], "btc25", parse_spec(SET, source="test"))
    assert dg.materialize(
        [indicators],
        partition_key=indicator_set_key("btc25", 1),
        resources=resources,
        instance=instance,
    ).success


@pytest.fixture
def prepared_dataset(resources, instance, export_lines) -> dict[str, object]:
    """btc25 imported and a small indicator set computed on it, as `btc25_1`."""
    land_and_compute(resources, instance, export_lines, ROWS)
    return resources


def start(resources, instance, config: dict | None = None) -> dg.ExecuteInProcessResult:
    return start_walkforward.execute_in_process(
        run_config={"ops": {"register_walkforward_run": {"config": config or CONFIG}}},
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )


def train(resources, instance, run: str, fold: int) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [fold_models],
        partition_key=fold_key(run, fold),
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )


def train_requested(resources, instance, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    """The sensor's `train_folds` request run as the daemon would: one run over its range of cells."""
    return dg.materialize(
        [fold_models], tags=dict(request.tags), resources=resources, instance=instance, raise_on_error=False
    )


def trained_cells(result: dg.ExecuteInProcessResult) -> list[str]:
    return [m.partition for m in result.asset_materializations_for_node("fold_models")]


def assemble(resources, instance, run: str) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [predictions, thresholds],
        partition_key=run,
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )


def metadata(result: dg.ExecuteInProcessResult, node: str) -> dict[str, object]:
    return {k: v.value for k, v in result.asset_materializations_for_node(node)[0].metadata.items()}


def test_definitions_load_the_walkforward_assets_jobs_and_sensor():
    dg.Definitions.validate_loadable(defs)
    for job in ("start_walkforward", "train_folds", "predict_walkforward"):
        assert defs.resolve_job_def(job) is not None
    assert defs.resolve_sensor_def("walkforward_sensor") is not None
    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey("fold_models")).parent_entity_keys == {dg.AssetKey("indicators")}
    assert graph.get(dg.AssetKey("predictions")).parent_entity_keys == {dg.AssetKey("fold_models")}
    assert graph.get(dg.AssetKey("thresholds")).parent_entity_keys == {
        dg.AssetKey("predictions"),
        dg.AssetKey("fold_models"),
    }
    # At most one fold trains per GPU: every fold step takes a slot of the `gpu` pool.
    assert graph.get(dg.AssetKey("fold_models")).pools == {"gpu"}


def test_a_runs_predictions_map_to_exactly_its_row_of_fold_cells(instance):
    instance.add_dynamic_partitions(walkforward_runs.name, ["btc25_run1", "btc25_run2"])
    instance.add_dynamic_partitions(fold_numbers.name, ["0", "1", "2"])
    mapped = FOLDS_OF_THE_RUN.get_upstream_mapped_partitions_result_for_partitions(
        walkforward_runs.subset_with_partition_keys(["btc25_run2"]),
        walkforward_runs,
        walkforward_folds,
        dynamic_partitions_store=instance,
    )
    assert set(mapped.partitions_subset.get_partition_keys()) == {fold_key("btc25_run2", k) for k in range(3)}


def test_a_run_trains_every_fold_then_stores_predictions_and_thresholds(prepared_dataset, instance):
    resources, catalog = prepared_dataset, prepared_dataset["catalog"]
    registered = start(resources, instance)
    assert registered.success
    run = registered.output_for_node("register_walkforward_run")
    assert run == "btc25_run1"
    assert instance.has_dynamic_partition(walkforward_runs.name, run)
    record = catalog.get_walkforward_run(run)
    assert (record.status, record.fold_count, record.measurement) == ("registered", 4, "btc25_1")
    assert set(record.features) == {"rsi", "ema", "logret", "zscore", "atr"}

    for fold in range(4):
        result = train(resources, instance, run, fold)
        assert result.success
        meta = metadata(result, "fold_models")
        assert (meta["run"], meta["fold"], meta["device"], meta["indicators_partition"]) == (
            run,
            fold,
            "cpu",
            "btc25|1",
        )
        assert Path(meta["model_path"]).is_file()
    assert catalog.get_walkforward_run(run).status == "trained"
    folds = catalog.list_walkforward_folds(run)
    assert [f.status for f in folds] == ["succeeded"] * 4
    assert all(f.result.model_sha256 and f.result.ic is not None and f.result.log_loss is None for f in folds)

    result = assemble(resources, instance, run)
    assert result.success
    assert {c.check_name: c.passed for c in result.get_asset_check_evaluations()} == {
        "folds_are_causal": True,
        "predictions_reproduce": True,
    }
    meta = metadata(result, "predictions")
    table = resources["timeseries"].read(run)
    assert table.column_names == ["ts", "fold", "y_true", "y_pred"]
    assert meta["dagster/row_count"] == table.num_rows == sum(f.result.test_rows for f in folds)
    assert table.column("fold").to_pylist() == sorted(table.column("fold").to_pylist())
    for key in ("fold_metrics", "predicted_vs_realised", "feature_importance"):
        assert meta[key].startswith("![")
    assert len(meta["folds"].records) == 4
    stored = catalog.get_walkforward_run(run)
    assert (stored.status, stored.prediction_rows) == ("completed", table.num_rows)
    limits = catalog.list_walkforward_thresholds(run)
    assert [t.fold for t in limits] == [0, 1, 2, 3]
    assert all(t.long_threshold >= t.short_threshold and t.source_rows > 0 for t in limits)
    # The fold steps kept them; what the stored models predict on the train periods gives the same.
    assert metadata(result, "thresholds")["source"] == "kept by the fold steps"
    assert derive_thresholds(load_run(resources["timeseries"], catalog, run)) == limits


def test_folds_trained_without_kept_thresholds_get_them_from_their_stored_models(prepared_dataset, instance):
    resources, catalog = prepared_dataset, prepared_dataset["catalog"]
    run = start(resources, instance).output_for_node("register_walkforward_run")
    for fold in range(4):
        assert train(resources, instance, run, fold).success
    expected = kept_thresholds(catalog.get_walkforward_run(run), catalog.list_walkforward_folds(run))
    # Fold 2 as a fold trained before folds kept thresholds (migration 0006) stores it.
    stored = catalog.list_walkforward_folds(run)[2].result
    catalog.start_walkforward_fold(run, 2)
    catalog.record_walkforward_fold(
        run, 2, replace(stored, long_threshold=None, short_threshold=None, threshold_rows=None)
    )
    result = assemble(resources, instance, run)
    assert result.success
    assert metadata(result, "thresholds")["source"] == "derived from the stored models"
    assert catalog.list_walkforward_thresholds(run) == expected


def test_the_same_config_and_seed_give_bit_identical_models_and_predictions(prepared_dataset, instance):
    resources, catalog = prepared_dataset, prepared_dataset["catalog"]
    config = {**CONFIG, "folds": {**CONFIG["folds"], "max_folds": 2}}
    tables = []
    for run in ("btc25_run1", "btc25_run2"):
        assert start(resources, instance, config).success
        for fold in range(2):
            assert train(resources, instance, run, fold).success
        assert assemble(resources, instance, run).success
        tables.append(resources["timeseries"].read(run))
    hashes = [
        [f.result.model_sha256 for f in catalog.list_walkforward_folds(r)]
        for r in ("btc25_run1", "btc25_run2")
    ]
    assert hashes[0] == hashes[1]
    assert tables[0].equals(tables[1])


def test_a_failed_fold_fails_the_run_and_its_retry_completes_it(prepared_dataset, instance, monkeypatch):
    resources, catalog = prepared_dataset, prepared_dataset["catalog"]
    config = {**CONFIG, "folds": {**CONFIG["folds"], "max_folds": 2}}
    assert start(resources, instance, config).success
    run = "btc25_run1"
    assert train(resources, instance, run, 0).success
    real = walkforward.train_fold

    def broken(*args, **kwargs):
        raise MemoryError("out of device memory")

    monkeypatch.setattr(walkforward, "train_fold", broken)
    assert not train(resources, instance, run, 1).success
    record = catalog.get_walkforward_run(run)
    assert record.status == "failed"
    assert "fold 1" in record.message and "out of device memory" in record.message
    # Predictions need every fold: the run stays failed and nothing is written.
    result = assemble(resources, instance, run)
    assert not result.success
    assert run not in resources["timeseries"].list_tables()

    monkeypatch.setattr(walkforward, "train_fold", real)
    assert train(resources, instance, run, 1).success
    fold = catalog.list_walkforward_folds(run)[1]
    assert (fold.status, fold.attempts) == ("succeeded", 2)
    assert catalog.get_walkforward_run(run).status == "trained"
    assert assemble(resources, instance, run).success
    assert catalog.get_walkforward_run(run).status == "completed"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"folds": {"train": "1500", "test": "0"}}, "test"),
        ({"folds": {"train": "1500", "test": "500", "purge": 1}}, "purge"),
        ({"features": ["rsi", "macd_line"]}, "macd_line"),
        ({"indicator_version": 7}, "version 7"),
        ({"folds": {"train": "100000", "test": "500"}}, "not enough data"),
        ({"hyperparameters": {"learning_rate": 0}}, "learning_rate"),
        ({"folds": {"train": "90x", "test": "500"}}, "90x"),
    ],
)
def test_an_invalid_run_config_fails_with_a_readable_message_and_registers_nothing(
    prepared_dataset, instance, change, message
):
    result = start(prepared_dataset, instance, {**CONFIG, **change})
    assert not result.success
    text = " ".join(str(e.event_specific_data) for e in result.all_events if e.is_failure)
    assert message in text
    assert prepared_dataset["catalog"].list_walkforward_runs() == []


def trained_run(resources, instance, max_folds: int = 2) -> str:
    assert start(
        resources, instance, {**CONFIG, "folds": {**CONFIG["folds"], "max_folds": max_folds}}
    ).success
    for fold in range(max_folds):
        assert train(resources, instance, "btc25_run1", fold).success
    assert assemble(resources, instance, "btc25_run1").success
    return "btc25_run1"


def test_predictions_reproduce_finds_a_tampered_prediction_and_metric(prepared_dataset, instance):
    resources = prepared_dataset
    run = trained_run(resources, instance)
    store = resources["timeseries"]
    loaded = load_run(store, resources["catalog"], run)
    assert checks.reproduce_problems(loaded, store)[0] == []
    table = store.read(run)
    y_pred = table.column("y_pred").to_numpy().copy()
    y_pred[table.column("fold").to_numpy() == 1] += 1e-9  # every row of fold 1, a hair off
    tampered = table.set_column(table.column_names.index("y_pred"), "y_pred", pa.array(y_pred))
    store.replace(run, tampered, prediction_schema("regression"))
    problems, _ = checks.reproduce_problems(loaded, store)
    assert any(p.startswith("fold 1: y_pred") for p in problems)
    assert any(p.startswith("fold 1: rmse") for p in problems)
    assert not any(p.startswith("fold 0") for p in problems)


def test_predictions_refuse_a_model_file_that_is_not_the_one_catalogued(prepared_dataset, instance):
    resources = prepared_dataset
    run = trained_run(resources, instance)
    folds = resources["catalog"].list_walkforward_folds(run)
    Path(folds[1].result.model_path).write_bytes(Path(folds[0].result.model_path).read_bytes())
    result = assemble(resources, instance, run)
    assert not result.success
    text = " ".join(str(e.event_specific_data) for e in result.all_events if e.is_failure)
    assert "fold 1" in text and folds[1].result.model_sha256 in text


def test_folds_are_causal_names_a_fold_whose_training_reaches_its_test_window(prepared_dataset, instance):
    resources = prepared_dataset
    run = trained_run(resources, instance)
    loaded = load_run(resources["timeseries"], resources["catalog"], run)
    assert checks.causality(loaded) == []
    first = loaded.prepared.folds[1]
    leaky = Fold(number=1, train=((first.train[0][0], first.test[0] - 1),), test=first.test)
    broken = replace(loaded, prepared=replace(loaded.prepared, folds=[loaded.prepared.folds[0], leaky]))
    problems = checks.causality(broken)
    assert problems and all(p.startswith("fold 1") for p in problems)
    assert not checks.folds_are_causal(broken).passed


def evaluate(resources, instance) -> dg.SensorResult:
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        return walkforward_sensor(context)


def test_the_sensor_trains_every_fold_once_then_assembles_the_run(prepared_dataset, instance):
    resources = prepared_dataset
    config = {**CONFIG, "folds": {**CONFIG["folds"], "max_folds": 2}}
    assert start(resources, instance, config).success
    requests = evaluate(resources, instance).run_requests
    # One run for the run's folds: the range of its cells 0|btc25_run1 .. 1|btc25_run1.
    assert [(r.job_name, r.partition_key, r.run_key, r.partition_key_range) for r in requests] == [
        (
            "train_folds",
            None,
            "btc25_run1:folds:0-1",
            dg.PartitionKeyRange(fold_key("btc25_run1", 0), fold_key("btc25_run1", 1)),
        )
    ]
    trained = train_requested(resources, instance, requests[0])
    assert trained.success
    assert trained_cells(trained) == [fold_key("btc25_run1", 0), fold_key("btc25_run1", 1)]
    # Each cell is materialised with its own fold's metadata and its model's hash as data version.
    folds = resources["catalog"].list_walkforward_folds("btc25_run1")
    for event, fold in zip(trained.asset_materializations_for_node("fold_models"), folds, strict=True):
        assert event.metadata["fold"].value == fold.window.fold
        assert event.metadata["model_sha256"].value == fold.result.model_sha256
        assert event.tags["dagster/data_version"] == fold.result.model_sha256[:16]
    assert evaluate(resources, instance).run_requests[0].job_name == "predict_walkforward"
    requests = evaluate(resources, instance).run_requests
    assert [(r.job_name, r.partition_key) for r in requests] == [("predict_walkforward", "btc25_run1")]
    assert assemble(resources, instance, "btc25_run1").success
    assert evaluate(resources, instance).run_requests == []
    # Retraining a fold clears the run's thresholds; on CPU the model has the same bits, and the run is
    # still asked to be assembled again, under a new run key (the daemon runs a key only once).
    assert train(resources, instance, "btc25_run1", 1).success
    again = evaluate(resources, instance).run_requests
    assert [r.job_name for r in again] == ["predict_walkforward"]
    assert again[0].run_key != requests[0].run_key


def test_the_sensor_adds_the_partitions_of_a_run_registered_outside_dagster(prepared_dataset, instance):
    from trading_assets.walkforward.config import WalkforwardConfig
    from trading_assets.walkforward.service import register_run

    config = WalkforwardConfig(**{**CONFIG, "folds": {**CONFIG["folds"], "max_folds": 3}})
    register_run(prepared_dataset["timeseries"], prepared_dataset["catalog"], "btc25", 1, config.spec())
    result = evaluate(prepared_dataset, instance)
    assert [r.partition_keys for r in result.dynamic_partitions_requests] == [["btc25_run1"], ["0", "1", "2"]]
    assert [r.partition_key_range for r in result.run_requests] == [
        dg.PartitionKeyRange(fold_key("btc25_run1", 0), fold_key("btc25_run1", 2))
    ]


def test_the_sensor_asks_nothing_more_of_a_run_while_its_training_run_is_in_flight(
    prepared_dataset, instance
):
    """A training run starts each fold's attempt as it reaches it: until then its later folds read "never
    attempted", and a tick in between must not ask for them again."""
    resources = prepared_dataset
    assert start(resources, instance, {**CONFIG, "folds": {**CONFIG["folds"], "max_folds": 3}}).success
    (request,) = evaluate(resources, instance).run_requests
    run = dg.DagsterRun(
        job_name="train_folds",
        run_id=str(uuid.uuid4()),
        status=dg.DagsterRunStatus.STARTED,
        tags={**request.tags, "dagster/run_key": request.run_key},
    )
    instance.add_run(run)
    resources["catalog"].start_walkforward_fold("btc25_run1", 0)
    assert evaluate(resources, instance).run_requests == []
    # The run died after its first fold started: the folds it never reached are asked for again.
    instance.report_run_failed(run)
    (again,) = evaluate(resources, instance).run_requests
    assert again.partition_key_range == dg.PartitionKeyRange(
        fold_key("btc25_run1", 1), fold_key("btc25_run1", 2)
    )


def test_one_run_trains_a_runs_folds_and_a_failed_fold_fails_alone(prepared_dataset, instance, monkeypatch):
    from trading_assets.walkforward import assets

    resources = prepared_dataset
    assert start(resources, instance, {**CONFIG, "folds": {**CONFIG["folds"], "max_folds": 3}}).success
    request = evaluate(resources, instance).run_requests[0]
    trained = assets.train_one

    def second_fails(run, number, *args):
        if number == 1:
            return trained(run, number, "no-such-device", *args[1:])
        return trained(run, number, *args)

    monkeypatch.setattr(assets, "train_one", second_fails)
    result = train_requested(resources, instance, request)
    assert not result.success
    # Folds 0 and 2 trained and are materialised; fold 1 is recorded failed and its cell shows failed.
    assert trained_cells(result) == [fold_key("btc25_run1", 0), fold_key("btc25_run1", 2)]
    folds = resources["catalog"].list_walkforward_folds("btc25_run1")
    assert [f.status for f in folds] == ["succeeded", "failed", "succeeded"]
    assert "fold 1" in result.failure_data_for_node("fold_models").error.message
    status = instance.get_status_by_partition(
        fold_models.key, [fold_key("btc25_run1", n) for n in range(3)], fold_models.partitions_def
    )
    assert [s.value for s in status.values()] == ["MATERIALIZED", "FAILED", "MATERIALIZED"]
    # The sensor does not ask again; the failed cell re-runs alone, and then the run is assembled.
    assert evaluate(resources, instance).run_requests == []
    monkeypatch.setattr(assets, "train_one", trained)
    assert trained_cells(train(resources, instance, "btc25_run1", 1)) == [fold_key("btc25_run1", 1)]
    assert [r.job_name for r in evaluate(resources, instance).run_requests] == ["predict_walkforward"]


def test_folds_are_recorded_in_groups_and_an_interrupt_records_the_group_it_stopped(
    prepared_dataset, instance, monkeypatch
):
    from trading_assets.walkforward import assets

    resources = prepared_dataset
    assert start(resources, instance, {**CONFIG, "folds": {**CONFIG["folds"], "max_folds": 4}}).success
    request = evaluate(resources, instance).run_requests[0]
    trained = assets.train_one
    calls = []

    def interrupted_third(run, number, *args):
        calls.append(number)
        if number == 2:
            raise KeyboardInterrupt
        return trained(run, number, *args)

    # Fold 0 alone, then every other fold in one group (as light folds are): 1 trains, 2 is interrupted.
    monkeypatch.setattr(assets, "GROUP_SECONDS", 1e9)
    monkeypatch.setattr(assets, "train_one", interrupted_third)
    assert not train_requested(resources, instance, request).success
    assert calls == [0, 1, 2]
    folds = resources["catalog"].list_walkforward_folds("btc25_run1")
    assert [(f.status, f.attempts) for f in folds] == [("succeeded", 1)] * 2 + [("failed", 1)] * 2
    assert folds[2].result.message == "interrupted (KeyboardInterrupt) while it trained"
    assert folds[3].result.message == "interrupted (KeyboardInterrupt) at fold 2, before it"
    # What the group got to is materialised: the cells of the two folds that trained.
    status = instance.get_status_by_partition(
        fold_models.key, [fold_key("btc25_run1", n) for n in range(2)], fold_models.partitions_def
    )
    assert [s.value for s in status.values()] == ["MATERIALIZED", "MATERIALIZED"]


def test_a_range_over_cells_a_run_does_not_have_trains_its_folds_and_fails_the_rest(
    prepared_dataset, instance
):
    resources = prepared_dataset
    assert start(resources, instance, {**CONFIG, "folds": {**CONFIG["folds"], "max_folds": 2}}).success
    instance.add_dynamic_partitions("fold_numbers", ["0", "1", "2", "3"])
    tags = {
        "dagster/asset_partition_range_start": fold_key("btc25_run1", 0),
        "dagster/asset_partition_range_end": fold_key("btc25_run1", 3),
    }
    result = dg.materialize(
        [fold_models], tags=tags, resources=resources, instance=instance, raise_on_error=False
    )
    assert not result.success
    assert trained_cells(result) == [fold_key("btc25_run1", 0), fold_key("btc25_run1", 1)]
    message = result.failure_data_for_node("fold_models").error.message
    assert "run 'btc25_run1' has folds 0..1; folds 2, 3 are not among them" in message


def test_predictions_of_a_classifier_carry_the_probability(prepared_dataset, instance):
    resources = prepared_dataset
    config = {**CONFIG, "target": {"kind": "classification", "horizon": 3, "dead_zone": 0.0005}}
    config["folds"] = {**CONFIG["folds"], "max_folds": 2}
    assert start(resources, instance, config).success
    for fold in range(2):
        assert train(resources, instance, "btc25_run1", fold).success
    result = assemble(resources, instance, "btc25_run1")
    assert result.success
    table = resources["timeseries"].read("btc25_run1")
    assert table.column_names == ["ts", "fold", "y_true", "y_pred", "prob"]
    prob = table.column("prob").to_numpy()
    assert ((prob > 0) & (prob < 1)).all()
    assert np.array_equal(table.column("y_pred").to_numpy(), (prob >= 0.5).astype(float))
    fold = resources["catalog"].list_walkforward_folds("btc25_run1")[0]
    assert fold.result.auc is not None and fold.result.rmse is None


def test_a_run_whose_folds_are_not_causal_writes_and_materialises_nothing(
    prepared_dataset, instance, monkeypatch
):
    resources = prepared_dataset
    assert start(resources, instance, {**CONFIG, "folds": {**CONFIG["folds"], "max_folds": 2}}).success
    for fold in range(2):
        assert train(resources, instance, "btc25_run1", fold).success
    monkeypatch.setattr(checks, "causality", lambda run: ["fold 1: training row 1999 reaches row 2002"])
    result = assemble(resources, instance, "btc25_run1")
    assert not result.success
    assert result.asset_materializations_for_node("predictions") == []
    assert {c.check_name: c.passed for c in result.get_asset_check_evaluations()} == {
        "folds_are_causal": False,
        "predictions_reproduce": False,
    }
    assert "btc25_run1" not in resources["timeseries"].list_tables()
    assert resources["catalog"].list_walkforward_thresholds("btc25_run1") == []


@pytest.mark.skipif(cuda_available()[0], reason="needs a machine without CUDA")
def test_a_fold_that_cannot_get_its_device_is_recorded_as_failed(prepared_dataset, instance):
    cuda = ComputeResource(device="cuda", artifacts_dir=prepared_dataset["compute"].artifacts_dir)
    resources = {**prepared_dataset, "compute": cuda}
    assert start(resources, instance, {**CONFIG, "folds": {**CONFIG["folds"], "max_folds": 2}}).success
    assert not train(resources, instance, "btc25_run1", 0).success
    fold = resources["catalog"].list_walkforward_folds("btc25_run1")[0]
    assert (fold.status, fold.attempts) == ("failed", 1)
    record = resources["catalog"].get_walkforward_run("btc25_run1")
    assert record.status == "failed" and record.message.startswith("fold 0: TrainingError")
    # The sensor does not ask for it again: a person retries once the cause is fixed.
    (request,) = evaluate(resources, instance).run_requests
    assert request.partition_key_range == dg.PartitionKeyRange(
        fold_key("btc25_run1", 1), fold_key("btc25_run1", 1)
    )


def test_a_cell_of_a_fold_the_run_does_not_have_fails_at_once(prepared_dataset, instance):
    assert start(prepared_dataset, instance, {**CONFIG, "folds": {**CONFIG["folds"], "max_folds": 2}}).success
    instance.add_dynamic_partitions(fold_numbers.name, ["7"])
    result = train(prepared_dataset, instance, "btc25_run1", 7)
    assert not result.success
    text = " ".join(str(e.event_specific_data) for e in result.all_events if e.is_failure)
    assert "run 'btc25_run1' has folds 0..1; fold 7 is not among them" in text


def test_predictions_still_reproduce_after_bars_are_appended(resources, instance, export_lines):
    # Test windows of 499 bars end at row 3998 of 4000: the last one's final row has no target yet.
    land_and_compute(resources, instance, export_lines, ROWS)
    config = {**CONFIG, "folds": {"train": "1500", "test": "499"}}
    assert start(resources, instance, config).success
    folds = resources["catalog"].list_walkforward_folds("btc25_run1")
    assert folds[-1].window.test_end_row == 3998
    for fold in folds:
        assert train(resources, instance, "btc25_run1", fold.window.fold).success
    assert assemble(resources, instance, "btc25_run1").success
    before = resources["timeseries"].read("btc25_run1")
    land_and_compute(resources, instance, export_lines, ROWS + 200)
    result = assemble(resources, instance, "btc25_run1")
    assert result.success
    assert all(c.passed for c in result.get_asset_check_evaluations())
    after = resources["timeseries"].read("btc25_run1")
    # The same folds and predictions; the last row's realised target is now known.
    assert after.num_rows == before.num_rows
    assert after.column("y_pred").equals(before.column("y_pred"))
    assert before.column("y_true").null_count == 1 and after.column("y_true").null_count == 0
