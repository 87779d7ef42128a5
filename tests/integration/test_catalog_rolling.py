"""Rolling walkforward runs in both catalogs: the flag and history hash, extending a completed run with
folds, and refreshing its simulations. Postgres in a throwaway schema, DuckDB in a tmp file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest
from catalog_setup import bars, complete_run, minute, new_run, window, with_indicators

from resources.catalog import Catalog
from trading_assets.records import (
    CatalogError,
    NewSimulation,
    SimulationOutcome,
    SimulationRefresh,
    SimulationTrade,
    WalkforwardExtension,
    WalkforwardRunRecord,
)

HISTORY = "aa" * 32
LONGER = "bb" * 32


def register(catalog: Catalog, **changes: Any) -> WalkforwardRunRecord:
    """Register run btc_run<n> of two folds on the dataset's version now, rolling unless changed."""
    new = new_run(catalog, rolling=True, history_sha256=HISTORY)
    return catalog.register_walkforward_run(replace(new, **changes))


def reimport(catalog: Catalog) -> str:
    """Import btc again from other (longer) content; its new version."""
    return catalog.upsert_dataset(bars("btc", rows=2000, source_sha256="ef" * 32)).version


@pytest.fixture
def catalog(new_catalog: Callable[[], Catalog]) -> Catalog:
    """A catalog with dataset btc and its indicator set 1."""
    return with_indicators(new_catalog(), "btc")


@pytest.fixture
def completed(catalog: Catalog) -> WalkforwardRunRecord:
    """btc_run1, rolling, with both folds trained and its thresholds stored."""
    register(catalog)
    return complete_run(catalog, "btc_run1", range(2))


# Registration


def test_a_rolling_run_is_stored_with_its_history_hash(catalog: Catalog) -> None:
    stored = register(catalog)

    assert (stored.rolling, stored.history_sha256) == (True, HISTORY)
    assert catalog.get_walkforward_run("btc_run1") == stored


def test_a_run_is_not_rolling_by_default(catalog: Catalog) -> None:
    args = {"rolling": False, "history_sha256": None}

    stored = register(catalog, **args)

    assert (stored.rolling, stored.history_sha256) == (False, None)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"history_sha256": None}, "no history_sha256"),
        ({"history_sha256": "AA" * 32}, "not 64 lowercase hex digits"),
    ],
)
def test_a_rolling_run_without_a_valid_history_hash_is_refused(
    catalog: Catalog, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(CatalogError, match=message):
        register(catalog, **changes)

    assert catalog.list_walkforward_runs() == []


def test_every_fold_records_the_dataset_version_its_window_was_computed_on(catalog: Catalog) -> None:
    run = register(catalog)

    assert [fold.dataset_version for fold in catalog.list_walkforward_folds(run.name)] == [
        run.dataset_version
    ] * 2


# Extension


def test_extending_adds_pending_folds_on_the_new_version_and_sets_the_run_running(
    catalog: Catalog, completed: WalkforwardRunRecord
) -> None:
    version = reimport(catalog)
    before = catalog.list_walkforward_folds("btc_run1")

    extended = catalog.extend_walkforward_run(
        "btc_run1", WalkforwardExtension(version, LONGER, [window(2), window(3)])
    )

    assert (extended.fold_count, extended.dataset_version, extended.history_sha256) == (4, version, LONGER)
    assert (extended.status, extended.finished_at, extended.message) == ("running", None, None)
    # The predictions table still holds what it held: the run describes it until it is written again.
    assert extended.prediction_rows == completed.prediction_rows
    folds = catalog.list_walkforward_folds("btc_run1")
    assert folds[:2] == before
    assert [(f.window, f.status, f.attempts, f.dataset_version) for f in folds[2:]] == [
        (window(2), "pending", 0, version),
        (window(3), "pending", 0, version),
    ]
    assert [t.fold for t in catalog.list_walkforward_thresholds("btc_run1")] == [0, 1]
    assert catalog.get_walkforward_run("btc_run1") == extended


def test_an_extended_run_completes_again_once_its_new_folds_are_trained(
    catalog: Catalog, completed: WalkforwardRunRecord
) -> None:
    catalog.extend_walkforward_run("btc_run1", WalkforwardExtension(reimport(catalog), LONGER, [window(2)]))

    stored = complete_run(catalog, "btc_run1", range(2, 3))

    assert (stored.status, stored.fold_count) == ("completed", 3)
    assert [t.fold for t in catalog.list_walkforward_thresholds("btc_run1")] == [0, 1, 2]


def refuse_extension(catalog: Catalog, message: str, **changes: Any) -> None:
    """Extend btc_run1 with `changes` to the arguments and check it is refused with `message` and that
    neither the run nor its folds changed."""
    run, folds = catalog.get_walkforward_run("btc_run1"), catalog.list_walkforward_folds("btc_run1")
    args: dict[str, Any] = {
        "dataset_version": catalog.get_dataset("btc").version,  # type: ignore[union-attr]
        "history_sha256": LONGER,
        "windows": [window(2)],
    }
    with pytest.raises(CatalogError, match=message):
        catalog.extend_walkforward_run("btc_run1", WalkforwardExtension(**(args | changes)))
    after = catalog.get_walkforward_run("btc_run1")
    assert replace(after, updated_at=None) == replace(run, updated_at=None)  # type: ignore[arg-type]
    assert catalog.list_walkforward_folds("btc_run1") == folds


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"windows": []}, "no folds to add"),
        ({"windows": [window(3)]}, r"numbered \[3\], not \[2\]"),
        (
            {"windows": [replace(window(2), train_ranges=((20, 120),), test_start_row=130)]},
            "inside the run's last test window",
        ),
        ({"dataset_version": "ab" * 32}, "is not the version of dataset 'btc' now"),
        ({"history_sha256": "AB" * 32}, "not 64 lowercase hex digits"),
        ({"windows": [replace(window(2), train_start_ts=datetime(2024, 1, 1))]}, "has no time zone"),
    ],
)
def test_an_extension_that_cannot_be_right_is_refused_and_changes_nothing(
    catalog: Catalog, completed: WalkforwardRunRecord, changes: dict[str, Any], message: str
) -> None:
    reimport(catalog)
    refuse_extension(catalog, message, **changes)


def test_only_a_completed_run_is_extended(catalog: Catalog) -> None:
    register(catalog)
    reimport(catalog)
    refuse_extension(catalog, "is 'registered'; extend a completed run")


def test_a_run_that_is_not_rolling_is_never_extended(catalog: Catalog) -> None:
    register(catalog, rolling=False, history_sha256=None)
    complete_run(catalog, "btc_run1", range(2))
    reimport(catalog)
    refuse_extension(catalog, "is not rolling")


def test_extending_an_unknown_run_is_refused(catalog: Catalog) -> None:
    with pytest.raises(CatalogError, match="no walkforward run 'btc_run9'"):
        catalog.extend_walkforward_run("btc_run9", WalkforwardExtension("ab" * 32, LONGER, [window(2)]))


# Refreshing a rolling run's simulations


def simulate(catalog: Catalog, run: WalkforwardRunRecord) -> str:
    """Register sim btc_sim1 of `run` and record a completed attempt with one trade; its name."""
    sim = catalog.register_simulation(
        NewSimulation(
            "btc",
            run.name,
            '{"fee_bps": 1}',
            "12" * 32,
            '{"0": [0.5, -0.5]}',
            run.dataset_version,
            "old",
            "sim1",
        )
    )
    catalog.start_simulation(sim.name)
    trade = SimulationTrade(0, 0, 1, minute(0), minute(1), 1, 1.0, 100.0, 101.0, 0.9, 0.009, 0.1, 1, "signal")
    catalog.record_simulation(
        sim.name, SimulationOutcome({"sharpe": 1.5}, [trade], ["equity"], 2, minute(0), minute(1))
    )
    return sim.name


def extended_and_completed(catalog: Catalog) -> str:
    """btc_run1 extended by fold 2 on the re-imported bars and completed again; the new dataset version."""
    version = reimport(catalog)
    catalog.extend_walkforward_run("btc_run1", WalkforwardExtension(version, LONGER, [window(2)]))
    complete_run(catalog, "btc_run1", range(2, 3))
    return version


def test_refreshing_a_sim_points_it_at_the_run_now_and_registers_it_again(
    catalog: Catalog, completed: WalkforwardRunRecord
) -> None:
    name = simulate(catalog, completed)
    before = catalog.get_simulation(name)
    version = extended_and_completed(catalog)
    thresholds = '{"0": [0.5, -0.5], "1": [0.5, -0.5], "2": [0.5, -0.5]}'

    refreshed = catalog.refresh_simulation(name, SimulationRefresh(thresholds, version, "new", "sim2"))

    assert (refreshed.status, refreshed.thresholds) == ("registered", thresholds)
    assert (refreshed.dataset_version, refreshed.models_version, refreshed.code_version) == (
        version,
        "new",
        "sim2",
    )
    assert (refreshed.metrics, refreshed.n_trades, refreshed.row_count, refreshed.series_columns) == (
        None,
    ) * 4
    assert (refreshed.started_at, refreshed.finished_at, refreshed.message) == (None, None, None)
    # The same sim: its name, number, config and registration time are kept.
    assert (refreshed.number, refreshed.config, refreshed.config_sha256, refreshed.created_at) == (
        before.number,  # type: ignore[union-attr]
        before.config,  # type: ignore[union-attr]
        before.config_sha256,  # type: ignore[union-attr]
        before.created_at,  # type: ignore[union-attr]
    )
    assert catalog.list_simulation_trades(name) == []
    assert catalog.get_simulation(name) == refreshed


def test_a_sim_whose_attempt_is_running_is_not_refreshed(
    catalog: Catalog, completed: WalkforwardRunRecord
) -> None:
    name = simulate(catalog, completed)
    version = extended_and_completed(catalog)
    catalog.start_simulation(name)

    with pytest.raises(CatalogError, match="an attempt is running"):
        catalog.refresh_simulation(name, SimulationRefresh("{}", version, "new", "sim2"))

    assert catalog.get_simulation(name).status == "running"  # type: ignore[union-attr]


def test_a_sim_is_not_refreshed_before_its_extended_run_has_completed(
    catalog: Catalog, completed: WalkforwardRunRecord
) -> None:
    name = simulate(catalog, completed)
    version = reimport(catalog)
    catalog.extend_walkforward_run("btc_run1", WalkforwardExtension(version, LONGER, [window(2)]))

    with pytest.raises(CatalogError, match="is 'running', not completed"):
        catalog.refresh_simulation(name, SimulationRefresh("{}", version, "new", "sim2"))

    assert catalog.get_simulation(name).status == "completed"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dataset_version": "ab" * 32}, "is not the version of dataset 'btc' now"),
        ({"thresholds": "{"}, "thresholds is not JSON"),
        ({"models_version": ""}, "models_version is empty"),
        ({"name": "btc_sim9"}, "no simulation 'btc_sim9'"),
    ],
)
def test_a_refresh_that_cannot_be_right_is_refused(
    catalog: Catalog, completed: WalkforwardRunRecord, changes: dict[str, Any], message: str
) -> None:
    name = simulate(catalog, completed)
    version = extended_and_completed(catalog)
    before = catalog.get_simulation(name)
    args: dict[str, Any] = {
        "name": name,
        "thresholds": "{}",
        "dataset_version": version,
        "models_version": "new",
        "code_version": "sim2",
    } | changes

    with pytest.raises(CatalogError, match=message):
        catalog.refresh_simulation(args.pop("name"), SimulationRefresh(**args))

    after = catalog.get_simulation(name)
    assert replace(after, updated_at=None) == replace(before, updated_at=None)  # type: ignore[arg-type]
    assert len(catalog.list_simulation_trades(name)) == 1


def test_a_sim_of_a_run_whose_bars_were_imported_again_since_is_not_refreshed(
    catalog: Catalog, completed: WalkforwardRunRecord
) -> None:
    name = simulate(catalog, completed)
    version = reimport(catalog)

    with pytest.raises(CatalogError, match="predicts version"):
        catalog.refresh_simulation(name, SimulationRefresh("{}", version, "new", "sim2"))
