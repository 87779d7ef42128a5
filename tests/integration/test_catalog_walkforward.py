"""Walkforward runs, folds and thresholds in both catalogs: Postgres in a throwaway schema, DuckDB in a
tmp file."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from catalog_setup import minute, race, window, with_indicators

from resources.catalog import Catalog
from resources.duckdb_catalog import DuckDBCatalog
from resources.postgres_catalog import PostgresCatalog
from trading_assets.records import (
    CatalogError,
    FoldResult,
    FoldThresholds,
    NewWalkforwardRun,
    WalkforwardPredictions,
    WalkforwardRunRecord,
)

CONFIG = '{"features": ["rsi_14", "ema_20"], "folds": {"test": 20, "train": 100}, "seed": 7}'
CONFIG_SHA256 = hashlib.sha256(CONFIG.encode()).hexdigest()
SUCCEEDED = FoldResult(
    status="succeeded",
    train_rows=95,
    validation_rows=5,
    test_rows=20,
    dropped='{"warmup": 5}',
    model_path="models/btc_run1/fold_0.ubj",
    model_sha256="12" * 32,
    best_iteration=42,
    device="cpu",
    train_seconds=1.5,
    rmse=0.5,
    mae=0.25,
    r2=0.125,
    ic=0.0625,
    rank_ic=0.03125,
    hit_rate=0.5,
    feature_importance='{"ema_20": 0.25, "rsi_14": 0.75}',
)


def register(catalog: Catalog, dataset: str = "btc", folds: int = 3, **changes: Any) -> WalkforwardRunRecord:
    """Register a run of `folds` folds on indicator set 1 of `dataset`, with `changes` to the arguments."""
    args: dict[str, Any] = {
        "dataset": dataset,
        "indicator_version": 1,
        "config": CONFIG,
        "config_sha256": CONFIG_SHA256,
        "hyperparameters": '{"max_depth": 4}',
        "target": '{"horizon": 5, "kind": "return"}',
        "features": ["rsi_14", "ema_20"],
        "dataset_version": "ef" * 32,
        "code_version": "abc123",
        "windows": [window(fold) for fold in range(folds)],
    }
    return catalog.register_walkforward_run(NewWalkforwardRun(**(args | changes)))


def train(catalog: Catalog, run: str, folds: range) -> None:
    """Start every fold of `folds` and record it as succeeded."""
    for fold in folds:
        catalog.start_walkforward_fold(run, fold)
        catalog.record_walkforward_fold(run, fold, SUCCEEDED)


def thresholds(folds: range = range(3), long: float = 0.5, short: float = -0.5) -> list[FoldThresholds]:
    return [FoldThresholds(fold, long + fold, short - fold, '{"long_quantile": 0.8}', 95) for fold in folds]


def status_of(catalog: Catalog, run: str = "btc_run1") -> str:
    stored = catalog.get_walkforward_run(run)
    assert stored is not None
    return stored.status


@pytest.fixture
def catalog(new_catalog: Callable[[], Catalog]) -> Catalog:
    """A catalog with datasets btc and eth, each with indicator set 1."""
    return with_indicators(new_catalog(), "btc", "eth")


# Registration


def test_the_first_run_of_a_dataset_is_number_1_named_after_it(catalog: Catalog) -> None:
    stored = register(catalog)

    assert replace(stored, created_at=None, updated_at=None) == WalkforwardRunRecord(
        name="btc_run1",
        dataset="btc",
        number=1,
        indicator_version=1,
        measurement="btc_1",
        config=CONFIG,
        config_sha256=CONFIG_SHA256,
        hyperparameters='{"max_depth": 4}',
        target='{"horizon": 5, "kind": "return"}',
        features=("rsi_14", "ema_20"),
        dataset_version="ef" * 32,
        code_version="abc123",
        fold_count=3,
        status="registered",
    )
    assert stored.created_at is not None and stored.created_at.tzinfo is UTC
    assert catalog.get_walkforward_run("btc_run1") == stored


def test_runs_are_numbered_per_dataset_and_listed_by_dataset_then_number(catalog: Catalog) -> None:
    register(catalog, "eth")
    register(catalog, "btc")

    second = register(catalog, "btc")

    assert (second.number, second.name) == (2, "btc_run2")
    assert [run.name for run in catalog.list_walkforward_runs()] == ["btc_run1", "btc_run2", "eth_run1"]
    assert [run.name for run in catalog.list_walkforward_runs("eth")] == ["eth_run1"]
    assert catalog.list_walkforward_runs("sol") == []


def test_folds_are_stored_pending_with_their_windows_exactly(catalog: Catalog) -> None:
    # An embargo cuts fold 1's training window in two; fold 0's timestamps come in another zone.
    plus_two = timezone(timedelta(hours=2))
    fold0 = replace(window(0), train_start_ts=minute(0).astimezone(plus_two))
    fold1 = replace(window(1), train_ranges=((20, 105), (110, 120)))

    register(catalog, windows=[fold0, fold1])

    folds = catalog.list_walkforward_folds("btc_run1")
    assert [fold.window for fold in folds] == [window(0), fold1]
    assert folds[0].window.train_start_ts.tzinfo is UTC
    assert [(f.run, f.status, f.attempts, f.result) for f in folds] == [("btc_run1", "pending", 0, None)] * 2
    assert [(f.started_at, f.finished_at) for f in folds] == [(None, None)] * 2


def test_a_run_or_its_folds_are_none_or_empty_when_unknown(catalog: Catalog) -> None:
    register(catalog)

    assert catalog.get_walkforward_run("btc_run2") is None
    assert catalog.list_walkforward_folds("btc_run2") == []
    assert catalog.list_walkforward_thresholds("btc_run2") == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dataset": "sol"}, "dataset 'sol' is not in the catalog"),
        ({"indicator_version": 2}, "dataset 'btc' has no indicator set version 2"),
        ({"features": ["rsi_14", "vwap"]}, r"features \['vwap'\] are not columns of indicator set 'btc_1'"),
        ({"features": ["rsi_14", "rsi_14"]}, "name a column twice"),
        ({"windows": []}, "has no folds"),
        ({"windows": [window(1), window(2)]}, r"folds are numbered \[1, 2\]; number them 0, 1, \.\.\."),
        ({"windows": [window(0), window(2)]}, r"folds are numbered \[0, 2\]"),
        ({"windows": [window(1), window(0)]}, r"folds are numbered \[1, 0\]"),
    ],
    ids=[
        "unknown_dataset",
        "unknown_indicator_version",
        "unknown_feature",
        "repeated_feature",
        "no_windows",
        "not_from_0",
        "gap",
        "out_of_order",
    ],
)
def test_a_registration_that_cannot_work_is_refused_and_writes_nothing(
    catalog: Catalog, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(CatalogError, match=message):
        register(catalog, **changes)

    assert catalog.list_walkforward_runs() == []


@pytest.mark.parametrize(
    "ranges",
    [(), ((0, 50), (40, 100)), ((0, 106),), ((10, 10),), ((-1, 100),)],
    ids=["empty", "overlapping", "into_the_test_window", "empty_range", "negative_row"],
)
def test_malformed_training_ranges_are_refused(catalog: Catalog, ranges: tuple[tuple[int, int], ...]) -> None:
    with pytest.raises(CatalogError, match=r"fold 0 of walkforward run of dataset 'btc': train_ranges"):
        register(catalog, windows=[replace(window(0), train_ranges=ranges)])

    assert catalog.list_walkforward_runs() == []


def test_a_naive_window_timestamp_is_refused(catalog: Catalog) -> None:
    naive = replace(window(1), test_end_ts=datetime(2024, 1, 1, 2, 24))

    with pytest.raises(CatalogError, match=r"fold 1 .*: test_end_ts 2024-01-01 02:24:00 has no time zone"):
        register(catalog, windows=[window(0), naive])

    assert catalog.list_walkforward_runs() == []


def test_a_fold_refused_by_the_database_leaves_no_run_behind(catalog: Catalog) -> None:
    # Fold 0 and the run row are written before the table refuses fold 1's empty test window.
    empty_test = replace(window(1), test_end_row=window(1).test_start_row)

    with pytest.raises(
        CatalogError, match="fold 1 of walkforward run 'btc_run1' refused by the catalog"
    ) as err:
        register(catalog, windows=[window(0), empty_test, window(2)])

    if isinstance(catalog, PostgresCatalog):
        assert "walkforward_folds_test_rows" in str(err.value)
    assert catalog.list_walkforward_runs() == []
    assert catalog.list_walkforward_folds("btc_run1") == []
    assert register(catalog).name == "btc_run1"


def test_the_table_refuses_a_fold_that_trains_after_its_test_window_starts(catalog: Catalog) -> None:
    leaking = replace(window(0), train_end_ts=window(0).test_start_ts)

    with pytest.raises(CatalogError, match="fold 0 of walkforward run 'btc_run1' refused") as err:
        register(catalog, windows=[leaking])

    if isinstance(catalog, PostgresCatalog):
        assert "walkforward_folds_train_before_test" in str(err.value)


def test_concurrent_registrations_get_numbers_1_to_n(new_catalog: Callable[[], Catalog]) -> None:
    with_indicators(new_catalog(), "btc")
    # One catalog per thread: separate pools (Postgres) or connections (DuckDB), as in step processes.
    catalogs = [new_catalog() for _ in range(6)]

    registered = race(catalogs, lambda _, catalog: register(catalog))

    assert sorted(run.number for run in registered) == [1, 2, 3, 4, 5, 6]
    assert [run.name for run in catalogs[0].list_walkforward_runs()] == [f"btc_run{n}" for n in range(1, 7)]
    assert all(len(catalogs[0].list_walkforward_folds(run.name)) == 3 for run in registered)


# Folds and the run's status


def test_the_run_status_follows_its_folds_through_failure_retry_training_and_thresholds(
    catalog: Catalog,
) -> None:
    register(catalog, folds=2)
    seen = [status_of(catalog)]

    def then(step: Callable[[], object]) -> None:
        step()
        seen.append(status_of(catalog))

    then(lambda: catalog.start_walkforward_fold("btc_run1", 0))
    then(lambda: catalog.record_walkforward_fold("btc_run1", 0, SUCCEEDED))
    then(lambda: catalog.start_walkforward_fold("btc_run1", 1))
    then(
        lambda: catalog.record_walkforward_fold("btc_run1", 1, FoldResult("failed", message="out of memory"))
    )
    then(lambda: catalog.start_walkforward_fold("btc_run1", 1))
    then(lambda: catalog.record_walkforward_fold("btc_run1", 1, SUCCEEDED))
    then(lambda: catalog.record_walkforward_thresholds("btc_run1", thresholds(range(2))))
    then(lambda: catalog.start_walkforward_fold("btc_run1", 0))

    assert seen == [
        "registered",
        "running",
        "running",
        "running",
        "failed",
        "running",
        "trained",
        "completed",
        "running",
    ]


def test_starting_a_fold_runs_it_and_the_run_from_that_moment(catalog: Catalog) -> None:
    register(catalog)

    fold = catalog.start_walkforward_fold("btc_run1", 1)

    run = catalog.get_walkforward_run("btc_run1")
    assert run is not None
    assert (fold.status, fold.attempts, fold.result, fold.finished_at) == ("running", 1, None, None)
    assert fold.started_at is not None and fold.started_at.tzinfo is UTC
    assert (run.status, run.started_at, run.finished_at) == ("running", fold.started_at, None)
    assert catalog.list_walkforward_folds("btc_run1")[1] == fold


def test_a_succeeded_result_is_stored_with_every_field(catalog: Catalog) -> None:
    register(catalog)
    catalog.start_walkforward_fold("btc_run1", 0)

    fold = catalog.record_walkforward_fold("btc_run1", 0, SUCCEEDED)

    assert (fold.status, fold.result) == ("succeeded", SUCCEEDED)
    assert fold.finished_at is not None and fold.started_at is not None
    assert fold.finished_at >= fold.started_at
    assert catalog.list_walkforward_folds("btc_run1")[0] == fold


def test_a_group_of_results_is_recorded_and_the_next_group_started_at_once(catalog: Catalog) -> None:
    register(catalog, folds=4)
    catalog.record_walkforward_folds("btc_run1", {}, start=[0, 1])

    recorded, started = catalog.record_walkforward_folds(
        "btc_run1", {0: SUCCEEDED, 1: FoldResult("failed", message="nan loss")}, start=[2, 3]
    )

    assert [(f.window.fold, f.status) for f in recorded] == [(0, "succeeded"), (1, "failed")]
    assert [(f.window.fold, f.status, f.attempts) for f in started] == [(2, "running", 1), (3, "running", 1)]
    assert recorded[0].result == SUCCEEDED
    assert [f.status for f in catalog.list_walkforward_folds("btc_run1")] == [
        "succeeded",
        "failed",
        "running",
        "running",
    ]
    assert status_of(catalog) == "failed"


def test_a_group_with_a_refused_result_stores_none_of_it(catalog: Catalog) -> None:
    register(catalog, folds=3)
    catalog.record_walkforward_folds("btc_run1", {}, start=[0])

    # Fold 1 was never started: the whole transaction is refused, fold 0's result and 2's start included.
    with pytest.raises(CatalogError, match="fold 1 of walkforward run 'btc_run1' was never started"):
        catalog.record_walkforward_folds("btc_run1", {0: SUCCEEDED, 1: SUCCEEDED}, start=[2])

    assert [(f.status, f.attempts) for f in catalog.list_walkforward_folds("btc_run1")] == [
        ("running", 1),
        ("pending", 0),
        ("pending", 0),
    ]


def test_a_failed_fold_fails_the_run_with_its_message(catalog: Catalog) -> None:
    register(catalog)
    catalog.start_walkforward_fold("btc_run1", 0)
    catalog.start_walkforward_fold("btc_run1", 1)

    catalog.record_walkforward_fold("btc_run1", 1, FoldResult("failed", message="out of memory"))

    run = catalog.get_walkforward_run("btc_run1")
    assert run is not None
    assert (run.status, run.message) == ("failed", "fold 1: out of memory")
    assert run.finished_at is not None


def test_retrying_a_failed_fold_clears_its_result_and_counts_the_attempt(catalog: Catalog) -> None:
    register(catalog)
    first = catalog.start_walkforward_fold("btc_run1", 1)
    catalog.record_walkforward_fold("btc_run1", 1, replace(SUCCEEDED, status="failed", message="nan loss"))

    retry = catalog.start_walkforward_fold("btc_run1", 1)

    run = catalog.get_walkforward_run("btc_run1")
    assert run is not None
    assert (retry.status, retry.attempts, retry.result, retry.finished_at) == ("running", 2, None, None)
    assert retry.started_at is not None and first.started_at is not None
    assert retry.started_at > first.started_at
    # The run is running again, with no message, and still started when the first attempt did.
    assert (run.status, run.message, run.finished_at) == ("running", None, None)
    assert run.started_at == first.started_at


def test_the_run_is_trained_when_every_fold_succeeded(catalog: Catalog) -> None:
    register(catalog)
    train(catalog, "btc_run1", range(2))
    assert status_of(catalog) == "running"

    train(catalog, "btc_run1", range(2, 3))

    run = catalog.get_walkforward_run("btc_run1")
    assert run is not None
    assert (run.status, run.message) == ("trained", None)
    assert run.finished_at is not None and run.started_at is not None
    assert run.finished_at >= run.started_at


def test_recording_a_fold_that_was_never_started_is_refused(catalog: Catalog) -> None:
    register(catalog)

    with pytest.raises(CatalogError, match="fold 0 of walkforward run 'btc_run1' was never started"):
        catalog.record_walkforward_fold("btc_run1", 0, SUCCEEDED)

    assert catalog.list_walkforward_folds("btc_run1")[0].status == "pending"


@pytest.mark.parametrize("status", ["running", "pending", "done"])
def test_a_result_must_say_succeeded_or_failed(catalog: Catalog, status: str) -> None:
    register(catalog)
    catalog.start_walkforward_fold("btc_run1", 0)

    with pytest.raises(CatalogError, match=f"result status '{status}' is neither 'succeeded' nor 'failed'"):
        catalog.record_walkforward_fold("btc_run1", 0, replace(SUCCEEDED, status=status))


def test_a_result_breaking_a_constraint_is_refused_and_the_fold_keeps_running(catalog: Catalog) -> None:
    register(catalog)
    catalog.start_walkforward_fold("btc_run1", 0)

    with pytest.raises(
        CatalogError, match="fold 0 of walkforward run 'btc_run1' refused by the catalog"
    ) as err:
        catalog.record_walkforward_fold("btc_run1", 0, replace(SUCCEEDED, model_sha256="AB" * 32))

    if isinstance(catalog, PostgresCatalog):
        assert "walkforward_folds_model_sha256_hex" in str(err.value)
    assert catalog.list_walkforward_folds("btc_run1")[0].status == "running"


@pytest.mark.parametrize(
    ("run", "fold", "message"),
    [("btc_run2", 0, "no walkforward run 'btc_run2' in the catalog"), ("btc_run1", 3, "has no fold 3")],
)
def test_starting_or_recording_an_unknown_fold_is_refused(
    catalog: Catalog, run: str, fold: int, message: str
) -> None:
    register(catalog)

    with pytest.raises(CatalogError, match=message):
        catalog.start_walkforward_fold(run, fold)
    with pytest.raises(CatalogError, match=message):
        catalog.record_walkforward_fold(run, fold, SUCCEEDED)


def test_concurrent_fold_results_leave_the_run_trained(new_catalog: Callable[[], Catalog]) -> None:
    # Each result derives the run's status from the other folds: they must see each other's commits.
    register(with_indicators(new_catalog(), "btc"), folds=6)
    catalogs = [new_catalog() for _ in range(6)]

    race(catalogs, lambda fold, catalog: train(catalog, "btc_run1", range(fold, fold + 1)))

    assert status_of(catalogs[0]) == "trained"


# Thresholds


def test_thresholds_complete_a_trained_run(catalog: Catalog) -> None:
    register(catalog)
    train(catalog, "btc_run1", range(3))

    completed = catalog.record_walkforward_thresholds("btc_run1", list(reversed(thresholds())))

    assert (completed.status, completed.message) == ("completed", None)
    assert completed.finished_at is not None
    assert catalog.get_walkforward_run("btc_run1") == completed
    assert catalog.list_walkforward_thresholds("btc_run1") == thresholds()


def test_thresholds_are_refused_before_every_fold_succeeded(catalog: Catalog) -> None:
    register(catalog)
    train(catalog, "btc_run1", range(2))

    with pytest.raises(CatalogError, match=r"walkforward run 'btc_run1': folds \[2\] have not succeeded"):
        catalog.record_walkforward_thresholds("btc_run1", thresholds())

    assert catalog.list_walkforward_thresholds("btc_run1") == []
    assert status_of(catalog) == "running"


@pytest.mark.parametrize(
    ("folds", "given"),
    [(range(2), r"\[0, 1\]"), ([0, 1, 1], r"\[0, 1, 1\]"), (range(4), r"\[0, 1, 2, 3\]")],
    ids=["missing", "repeated", "extra"],
)
def test_thresholds_must_be_given_once_for_every_fold(
    catalog: Catalog, folds: range | list[int], given: str
) -> None:
    register(catalog)
    train(catalog, "btc_run1", range(3))
    listed = [FoldThresholds(fold, 0.5, -0.5, "{}", 95) for fold in folds]

    with pytest.raises(CatalogError, match=f"has folds 0..2 but thresholds were given for folds {given}"):
        catalog.record_walkforward_thresholds("btc_run1", listed)

    assert status_of(catalog) == "trained"


def test_recording_thresholds_again_replaces_them(catalog: Catalog) -> None:
    register(catalog)
    train(catalog, "btc_run1", range(3))
    catalog.record_walkforward_thresholds("btc_run1", thresholds(long=0.5))

    catalog.record_walkforward_thresholds("btc_run1", thresholds(long=0.75))

    assert catalog.list_walkforward_thresholds("btc_run1") == thresholds(long=0.75)


@pytest.mark.parametrize(
    ("bad", "constraint"),
    [
        ({"long_threshold": -3.0}, "walkforward_thresholds_long_above_short"),
        ({"long_threshold": float("nan")}, "walkforward_thresholds_long_finite"),
        ({"short_threshold": float("-inf")}, "walkforward_thresholds_short_finite"),
        ({"source_rows": -1}, "walkforward_thresholds_source_rows_non_negative"),
    ],
    ids=["long_below_short", "nan", "infinite", "negative_rows"],
)
def test_refused_thresholds_leave_the_previous_ones_in_place(
    catalog: Catalog, bad: dict[str, Any], constraint: str
) -> None:
    register(catalog)
    train(catalog, "btc_run1", range(3))
    catalog.record_walkforward_thresholds("btc_run1", thresholds())
    # Folds 0 and 1 are written before fold 2's values are refused: none of it may stay.
    replacing = thresholds(long=0.75)
    replacing[2] = replace(replacing[2], **bad)

    with pytest.raises(
        CatalogError, match="thresholds of fold 2 of walkforward run 'btc_run1' refused"
    ) as err:
        catalog.record_walkforward_thresholds("btc_run1", replacing)

    if isinstance(catalog, PostgresCatalog):
        assert constraint in str(err.value)
    assert catalog.list_walkforward_thresholds("btc_run1") == thresholds()
    assert status_of(catalog) == "completed"


def test_starting_a_fold_of_a_completed_run_drops_that_folds_thresholds(catalog: Catalog) -> None:
    register(catalog)
    train(catalog, "btc_run1", range(3))
    catalog.record_walkforward_thresholds("btc_run1", thresholds())

    catalog.start_walkforward_fold("btc_run1", 1)

    run = catalog.get_walkforward_run("btc_run1")
    assert run is not None
    assert (run.status, run.finished_at) == ("running", None)
    # They came from the fold's previous model; the others still describe theirs.
    assert [t.fold for t in catalog.list_walkforward_thresholds("btc_run1")] == [0, 2]


# Predictions


def test_the_predictions_table_is_described_on_the_run(catalog: Catalog) -> None:
    register(catalog)
    plus_two = timezone(timedelta(hours=2))

    stored = catalog.record_walkforward_predictions(
        "btc_run1",
        WalkforwardPredictions(["prediction", "fold"], 60, minute(105).astimezone(plus_two), minute(164)),
    )

    assert (stored.prediction_columns, stored.prediction_rows) == (("prediction", "fold"), 60)
    assert (stored.first_ts, stored.last_ts) == (minute(105), minute(164))
    assert stored.first_ts is not None and stored.first_ts.tzinfo is UTC
    assert catalog.get_walkforward_run("btc_run1") == stored


@pytest.mark.parametrize(
    ("run", "rows", "last_ts", "message"),
    [
        ("btc_run2", 60, minute(164), "no walkforward run 'btc_run2' in the catalog"),
        ("btc_run1", 60, datetime(2024, 1, 1, 2, 44), "last_ts 2024-01-01 02:44:00 has no time zone"),
        ("btc_run1", -1, minute(164), "walkforward run 'btc_run1' refused by the catalog"),
        ("btc_run1", 60, minute(104), "walkforward run 'btc_run1' refused by the catalog"),
    ],
    ids=["unknown_run", "naive", "negative_rows", "reversed_range"],
)
def test_a_predictions_description_that_cannot_be_right_is_refused(
    catalog: Catalog, run: str, rows: int, last_ts: datetime, message: str
) -> None:
    register(catalog)

    with pytest.raises(CatalogError, match=message):
        catalog.record_walkforward_predictions(
            run, WalkforwardPredictions(["prediction"], rows, minute(105), last_ts)
        )

    stored = catalog.get_walkforward_run("btc_run1")
    assert stored is not None and stored.prediction_columns is None


def test_both_catalogs_implement_the_protocol(catalog: Catalog) -> None:
    assert isinstance(catalog, (PostgresCatalog, DuckDBCatalog))
    assert isinstance(catalog, Catalog)
