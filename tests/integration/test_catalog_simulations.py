"""Simulations and their trades in both catalogs: Postgres in a throwaway schema, DuckDB in a tmp file."""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
from catalog_setup import bars, complete_run, minute, new_run, race, with_indicators

from resources.catalog import Catalog
from resources.duckdb_catalog import DuckDBCatalog
from resources.postgres_catalog import PostgresCatalog
from trading_assets.records import (
    CatalogError,
    NewSimulation,
    SimulationOutcome,
    SimulationRecord,
    SimulationTrade,
)

CONFIG = '{"costs": {"fee_bps": 5}, "run": "btc_run1", "sizing": {"units": 0.5}, "stop_loss_pct": 2.0}'
CONFIG_SHA256 = hashlib.sha256(CONFIG.encode()).hexdigest()
THRESHOLDS = '[{"fold": 0, "long": 0.5, "short": -0.5}, {"fold": 1, "long": 0.75, "short": -0.25}]'
SERIES = ("ts", "equity", "position", "cash", "drawdown")
# The series of the sims recorded here: 100 minute bars from T0.
ROWS = 100
METRICS = {"final_equity": 10_123.456789, "max_drawdown": -0.1 - 0.2, "n_bars": 100, "sharpe": 1 / 3}


def with_runs(catalog: Catalog, *datasets: str, complete: bool = True) -> Catalog:
    """`catalog` with each dataset, its indicator set 1 and walkforward run 1 of two folds, trained and
    with thresholds stored (completed) unless `complete` is False."""
    with_indicators(catalog, *datasets)
    for name in datasets:
        run = catalog.register_walkforward_run(new_run(catalog, name))
        if complete:
            complete_run(catalog, run.name, range(2))
    return catalog


def register(catalog: Catalog, dataset: str = "btc", **changes: Any) -> SimulationRecord:
    """Register a sim of `<dataset>_run1`, with `changes` to the arguments."""
    stored = catalog.get_dataset(dataset)
    args: dict[str, Any] = {
        "dataset": dataset,
        "run": f"{dataset}_run1",
        "config": CONFIG,
        "config_sha256": CONFIG_SHA256,
        "thresholds": THRESHOLDS,
        "dataset_version": stored.version if stored is not None else "ab" * 32,
        "models_version": "fold0:1,fold1:2",
        "code_version": "abc123",
    }
    return catalog.register_simulation(NewSimulation(**(args | changes)))


def trade(number: int, **changes: Any) -> SimulationTrade:
    """Trade `number`: in at bar 10n, out 4 bars later, long when even; floats that need every bit."""
    values: dict[str, Any] = {
        "trade": number,
        "entry_idx": 10 * number,
        "exit_idx": 10 * number + 4,
        "entry_ts": minute(10 * number),
        "exit_ts": minute(10 * number + 4),
        "side": 1 if number % 2 == 0 else -1,
        "size": 0.5,
        "entry_price": 100.1 + number / 3,
        "exit_price": 101.7,
        "pnl": 0.1 + 0.2,
        "return_pct": -1e-17,
        "fees": 0.05,
        "bars_held": 4,
        "exit_reason": "signal",
    }
    return SimulationTrade(**(values | changes))


def record(catalog: Catalog, trades: list[SimulationTrade], name: str = "btc_sim1", **changes: Any) -> Any:
    """Record `trades` as the outcome of sim `name`, with `changes` to the other arguments."""
    args: dict[str, Any] = {
        "metrics": METRICS,
        "trades": trades,
        "series_columns": SERIES,
        "row_count": ROWS,
        "first_ts": minute(0),
        "last_ts": minute(ROWS - 1),
    }
    return catalog.record_simulation(name, SimulationOutcome(**(args | changes)))


@pytest.fixture
def catalog(new_catalog: Callable[[], Catalog]) -> Catalog:
    """A catalog with datasets btc and eth, each with a completed walkforward run 1."""
    return with_runs(new_catalog(), "btc", "eth")


@pytest.fixture
def completed(catalog: Catalog) -> Catalog:
    """`catalog` with btc_sim1 registered and recorded with trades 0..2."""
    register(catalog)
    record(catalog, [trade(n) for n in range(3)])
    return catalog


# Registration


def test_the_first_simulation_of_a_dataset_is_number_1_named_after_it(catalog: Catalog) -> None:
    version = bars("btc").version

    stored = register(catalog)

    assert replace(stored, created_at=None, updated_at=None) == SimulationRecord(
        name="btc_sim1",
        dataset="btc",
        number=1,
        run="btc_run1",
        config=CONFIG,
        config_sha256=CONFIG_SHA256,
        thresholds=THRESHOLDS,
        status="registered",
        dataset_version=version,
        models_version="fold0:1,fold1:2",
        code_version="abc123",
    )
    assert stored.created_at is not None and stored.created_at.tzinfo is UTC
    assert stored.metric_values() is None
    assert catalog.get_simulation("btc_sim1") == stored


def test_simulations_are_numbered_per_dataset_and_listed_by_dataset_then_number(catalog: Catalog) -> None:
    register(catalog, "eth")
    register(catalog, "btc")

    second = register(catalog, "btc")

    assert (second.number, second.name) == (2, "btc_sim2")
    assert [sim.name for sim in catalog.list_simulations()] == ["btc_sim1", "btc_sim2", "eth_sim1"]
    assert [sim.name for sim in catalog.list_simulations("eth")] == ["eth_sim1"]
    assert [sim.name for sim in catalog.list_simulations(run="btc_run1")] == ["btc_sim1", "btc_sim2"]
    assert catalog.list_simulations("btc", "eth_run1") == []
    assert catalog.list_simulations("sol") == []


def test_an_unknown_simulation_is_none_and_has_no_trades(catalog: Catalog) -> None:
    register(catalog)

    assert catalog.get_simulation("btc_sim2") is None
    assert catalog.list_simulation_trades("btc_sim2") == []
    assert catalog.list_simulation_trades("btc_sim1") == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dataset": "sol", "run": "btc_run1"}, "dataset 'sol' is not in the catalog"),
        ({"run": "btc_run2"}, "no walkforward run 'btc_run2' in the catalog"),
        ({"run": "eth_run1"}, "walkforward run 'eth_run1' belongs to dataset 'eth', not 'btc'"),
        ({"config": "{'a': 1}"}, "simulation of walkforward run 'btc_run1': config is not JSON"),
        ({"thresholds": ""}, "thresholds is not JSON"),
        ({"config_sha256": CONFIG_SHA256.upper()}, "config_sha256 '[0-9A-F]{64}' is not 64 lowercase hex"),
        ({"dataset_version": "ab" * 31}, "dataset_version '(ab){31}' is not 64 lowercase hex digits"),
        ({"dataset_version": "00" * 32}, "dataset_version 0{64} is not the version of dataset 'btc' now"),
        ({"models_version": ""}, "models_version is empty"),
    ],
    ids=[
        "unknown_dataset",
        "unknown_run",
        "run_of_another_dataset",
        "config_not_json",
        "thresholds_not_json",
        "uppercase_config_sha256",
        "short_dataset_version",
        "not_the_dataset_version",
        "empty_models_version",
    ],
)
def test_a_registration_that_cannot_work_is_refused_and_writes_nothing(
    catalog: Catalog, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(CatalogError, match=message):
        register(catalog, **changes)

    assert catalog.list_simulations() == []


def test_a_run_that_is_not_completed_cannot_be_simulated(new_catalog: Callable[[], Catalog]) -> None:
    catalog = with_runs(new_catalog(), "btc", complete=False)

    with pytest.raises(
        CatalogError, match="walkforward run 'btc_run1' is 'registered'; simulate a completed"
    ):
        register(catalog)


def test_a_run_of_bars_imported_again_since_cannot_be_simulated(catalog: Catalog) -> None:
    reimported = catalog.upsert_dataset(bars("btc", source_sha256="ee" * 32))

    with pytest.raises(CatalogError, match=r"walkforward run 'btc_run1' predicts version .* imported again"):
        register(catalog, dataset_version=reimported.version)


def test_concurrent_registrations_get_numbers_1_to_n(new_catalog: Callable[[], Catalog]) -> None:
    with_runs(new_catalog(), "btc")
    # One catalog per thread: separate pools (Postgres) or connections (DuckDB), as in step processes.
    catalogs = [new_catalog() for _ in range(6)]

    registered = race(catalogs, lambda _, each: register(each))

    assert sorted(sim.number for sim in registered) == [1, 2, 3, 4, 5, 6]
    assert [sim.name for sim in catalogs[0].list_simulations()] == [f"btc_sim{n}" for n in range(1, 7)]


# Recording outcomes


def test_a_recorded_simulation_is_completed_with_its_outputs_and_every_trade_exactly(
    catalog: Catalog,
) -> None:
    register(catalog)
    plus_two = timezone(timedelta(hours=2))
    # Timestamps in another zone come back as the same instants in UTC.
    trades = [trade(0, entry_ts=minute(0).astimezone(plus_two)), trade(1), trade(2, exit_reason="stop_loss")]

    stored = record(catalog, trades, first_ts=minute(0).astimezone(plus_two))

    assert (stored.status, stored.message, stored.n_trades) == ("completed", None, 3)
    assert (stored.row_count, stored.first_ts, stored.last_ts) == (ROWS, minute(0), minute(ROWS - 1))
    assert stored.series_columns == SERIES
    assert stored.metric_values() == METRICS
    assert stored.finished_at is not None and stored.finished_at.tzinfo is UTC
    assert catalog.get_simulation("btc_sim1") == stored
    listed = catalog.list_simulation_trades("btc_sim1")
    assert listed == [trade(0), trade(1), trade(2, exit_reason="stop_loss")]
    assert all(t.entry_ts.tzinfo is UTC and t.exit_ts.tzinfo is UTC for t in listed)
    assert (listed[1].pnl, listed[1].return_pct) == (0.30000000000000004, -1e-17)


def test_a_simulation_without_trades_is_completed_with_none(catalog: Catalog) -> None:
    register(catalog)

    stored = record(catalog, [])

    assert (stored.status, stored.n_trades) == ("completed", 0)
    assert catalog.list_simulation_trades("btc_sim1") == []


def test_nan_and_infinite_metrics_round_trip_through_standard_json(catalog: Catalog) -> None:
    register(catalog)
    metrics = {"profit_factor": math.inf, "sharpe": math.nan, "sortino": -math.inf, "trades": 0, "cagr": 0.0}

    stored = record(catalog, [], metrics=metrics)

    assert stored.metrics == (
        '{"cagr": 0.0, "profit_factor": "Infinity", "sharpe": null, "sortino": "-Infinity", "trades": 0}'
    )
    values = stored.metric_values()
    assert values is not None
    assert math.isnan(values.pop("sharpe"))
    assert values == {"cagr": 0.0, "profit_factor": math.inf, "sortino": -math.inf, "trades": 0}
    assert isinstance(values["trades"], int)


def test_numpy_scalars_from_the_simulator_are_stored_as_plain_numbers(catalog: Catalog) -> None:
    register(catalog)
    from_arrays = trade(
        0,
        entry_idx=np.int64(0),
        exit_idx=np.int64(4),
        side=np.int8(1),
        size=np.float32(0.5),
        fees=np.float64(0.05),
    )

    record(catalog, [from_arrays], metrics={"sharpe": np.float64(1.25), "n": np.int64(3)})

    assert catalog.list_simulation_trades("btc_sim1") == [trade(0)]
    stored = catalog.get_simulation("btc_sim1")
    assert stored is not None and stored.metric_values() == {"n": 3, "sharpe": 1.25}


def test_recording_again_replaces_every_trade_and_output(completed: Catalog) -> None:
    rerun = record(completed, [trade(0, exit_reason="end")], metrics={"sharpe": 2.0}, row_count=50)

    assert (rerun.n_trades, rerun.row_count, rerun.metric_values()) == (1, 50, {"sharpe": 2.0})
    assert completed.list_simulation_trades("btc_sim1") == [trade(0, exit_reason="end")]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"trade": 2}, r"trade 1 of simulation 'btc_sim1': trade 2 is out of order"),
        ({"entry_idx": -1}, r"trade 1 .*: entry_idx -1 is not a bar of the series \(0\.\.99\)"),
        ({"exit_idx": 9}, "exit_idx 9 is not a bar from entry_idx 10 to 99"),
        ({"exit_idx": 100}, "exit_idx 100 is not a bar from entry_idx 10 to 99"),
        ({"entry_idx": 1.0}, "entry_idx 1.0 is not an integer"),
        ({"entry_ts": datetime(2024, 1, 1, 0, 10)}, "entry_ts .* has no time zone"),
        ({"entry_ts": minute(-1)}, "entry_ts 2023-12-31 23:59:00[+]00:00 is outside the series"),
        ({"exit_ts": minute(9)}, "exit_ts .* is not from entry_ts"),
        ({"exit_ts": minute(100)}, "exit_ts .* is not from entry_ts .* to the series' end"),
        ({"side": 0}, "side 0 is neither 1 [(]long[)] nor -1 [(]short[)]"),
        ({"size": 0.0}, "size 0.0 is not a finite number > 0"),
        ({"size": "1"}, "size '1' is not a number"),
        ({"entry_price": -1.0}, "entry_price -1.0 is not a finite number > 0"),
        ({"exit_price": math.inf}, "exit_price inf is not a finite number > 0"),
        ({"pnl": math.nan}, "pnl nan is not a finite number"),
        ({"return_pct": None}, "return_pct None is not a number"),
        ({"fees": -0.01}, "fees -0.01 is not a finite number >= 0"),
        ({"bars_held": -1}, "bars_held -1 is negative"),
        ({"exit_reason": "timeout"}, "exit_reason 'timeout' is not one of signal, stop_loss, take_profit"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_a_bad_trade_is_refused_by_name_and_leaves_the_previous_outcome_untouched(
    completed: Catalog, changes: dict[str, Any], message: str
) -> None:
    before = completed.get_simulation("btc_sim1")
    # Trade 0 comes before the bad one and trade 2 after it: none of them may be written.
    replacing = [trade(0, pnl=9.0), trade(1, **changes), trade(2, pnl=9.0)]

    with pytest.raises(CatalogError, match=message):
        record(completed, replacing, metrics={"sharpe": 9.0})

    assert completed.get_simulation("btc_sim1") == before
    assert completed.list_simulation_trades("btc_sim1") == [trade(n) for n in range(3)]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "btc_sim2"}, "no simulation 'btc_sim2' in the catalog"),
        (
            {"first_ts": datetime(2024, 1, 1)},
            "simulation 'btc_sim1': first_ts 2024-01-01 00:00:00 has no time",
        ),
        ({"last_ts": minute(-1)}, "last_ts 2023-12-31 23:59:00[+]00:00 is before first_ts"),
        ({"row_count": 0}, "row_count 0 is not a positive integer"),
        ({"series_columns": []}, "series_columns is empty"),
        ({"metrics": {"sharpe": "high"}}, "simulation 'btc_sim1': metric 'sharpe' is 'high'; give an int or"),
        ({"metrics": {"": 1.0}}, "metric name '' is not a non-empty string"),
        ({"metrics": {"ok": True}}, "metric 'ok' is True"),
    ],
    ids=[
        "unknown_sim",
        "naive",
        "reversed_range",
        "no_rows",
        "no_columns",
        "metric_not_a_number",
        "empty_metric_name",
        "bool_metric",
    ],
)
def test_an_outcome_that_cannot_be_right_is_refused_and_changes_nothing(
    completed: Catalog, changes: dict[str, Any], message: str
) -> None:
    before = completed.get_simulation("btc_sim1")

    with pytest.raises(CatalogError, match=message):
        record(completed, [trade(0)], **changes)

    assert completed.get_simulation("btc_sim1") == before
    assert len(completed.list_simulation_trades("btc_sim1")) == 3


def test_fifty_thousand_trades_are_stored_in_one_call(catalog: Catalog) -> None:
    register(catalog)
    many = [trade(n, exit_idx=10 * n) for n in range(50_000)]
    rows, last = 10 * 50_000, minute(10 * 50_000 - 1)

    started = time.perf_counter()
    stored = record(catalog, many, row_count=rows, last_ts=last)
    seconds = time.perf_counter() - started

    assert stored.n_trades == 50_000
    assert catalog.list_simulation_trades("btc_sim1") == many
    # Typically well under a second; the bound only catches a per-row round trip sneaking back in.
    assert seconds < 10


# Attempts and failures


def test_starting_an_attempt_clears_the_previous_outcome(completed: Catalog) -> None:
    started = completed.start_simulation("btc_sim1")

    assert (started.status, started.metrics, started.n_trades, started.series_columns) == (
        "running",
        None,
        None,
        None,
    )
    assert (started.finished_at, started.message) == (None, None)
    assert started.started_at is not None and started.started_at.tzinfo is UTC
    assert completed.list_simulation_trades("btc_sim1") == []
    finished = record(completed, [trade(0)])
    assert finished.started_at == started.started_at
    assert finished.finished_at is not None and finished.finished_at >= started.started_at


def test_a_failure_is_stored_with_its_message_and_keeps_no_trades(completed: Catalog) -> None:
    failed = completed.record_simulation_failure("btc_sim1", "predictions table btc_run1 is empty")

    assert (failed.status, failed.message) == ("failed", "predictions table btc_run1 is empty")
    assert (failed.metrics, failed.n_trades, failed.row_count, failed.first_ts) == (None, None, None, None)
    assert failed.finished_at is not None
    assert completed.get_simulation("btc_sim1") == failed
    assert completed.list_simulation_trades("btc_sim1") == []


def test_a_failed_simulation_recorded_again_is_completed_without_its_message(completed: Catalog) -> None:
    completed.record_simulation_failure("btc_sim1", "out of memory")

    stored = record(completed, [trade(0)])

    assert (stored.status, stored.message, stored.n_trades) == ("completed", None, 1)


def test_starting_or_failing_an_unknown_simulation_is_refused(catalog: Catalog) -> None:
    with pytest.raises(CatalogError, match="no simulation 'btc_sim1' in the catalog"):
        catalog.start_simulation("btc_sim1")
    with pytest.raises(CatalogError, match="no simulation 'btc_sim1' in the catalog"):
        catalog.record_simulation_failure("btc_sim1", "boom")


def test_the_stored_metrics_are_standard_json(completed: Catalog) -> None:
    stored = completed.get_simulation("btc_sim1")
    assert stored is not None and stored.metrics is not None

    def refuse(constant: str) -> None:
        raise AssertionError(f"non-standard JSON constant {constant}")

    assert json.loads(stored.metrics, parse_constant=refuse) == METRICS


def test_both_catalogs_implement_the_protocol(catalog: Catalog) -> None:
    assert isinstance(catalog, (PostgresCatalog, DuckDBCatalog))
    assert isinstance(catalog, Catalog)
