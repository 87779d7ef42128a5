"""Indicator sets in both catalogs: Postgres in a throwaway schema, DuckDB in a tmp file."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest
from catalog_setup import T0, bars, race

from resources import duckdb_file
from resources.catalog import Catalog
from resources.duckdb_catalog import DuckDBCatalog
from resources.postgres_catalog import PostgresCatalog
from trading_assets.records import CatalogError, IndicatorOutputs, IndicatorSetRecord, NewIndicatorSet


@pytest.fixture
def catalog(new_catalog: Callable[[], Catalog]) -> Catalog:
    """A catalog that knows the datasets btc and eth."""
    catalog = new_catalog()
    catalog.upsert_dataset(bars("btc"))
    catalog.upsert_dataset(bars("eth"))
    return catalog


def spec(label: str = "default", period: int = 14) -> tuple[str, str]:
    """A canonical spec JSON and its sha256; a different period makes a different spec."""
    text = json.dumps({"name": label, "indicators": [{"fn": "rsi", "n": period}]}, sort_keys=True)
    return text, hashlib.sha256(text.encode()).hexdigest()


def register(
    catalog: Catalog, name: str = "btc", label: str = "default", period: int = 14
) -> tuple[IndicatorSetRecord, bool]:
    text, sha = spec(label, period)
    return catalog.register_indicator_set(
        NewIndicatorSet(name, label, text, sha, [f"rsi_{period}"], [period])
    )


def record(catalog: Catalog, name: str = "btc", version: int = 1, **changes: Any) -> IndicatorSetRecord:
    """record_indicator_output with a ready set's outputs, `changes` applied."""
    outputs: dict[str, Any] = {
        "status": "ready",
        "row_count": 1440,
        "first_ts": T0,
        "last_ts": T0 + timedelta(minutes=1439),
        "bars_sha256": "cd" * 32,
        "dataset_version": "ef" * 32,
        "state": '{"rsi_14": [1.5, 2.5]}',
        "code_version": "abc123",
        "message": None,
    }
    return catalog.record_indicator_output(name, version, IndicatorOutputs(**(outputs | changes)))


def status_of(catalog: Catalog, name: str, version: int) -> str | None:
    """The stored status of a set, None if there is no such set."""
    stored = catalog.get_indicator_set(name, version)
    return None if stored is None else stored.status


def test_the_first_spec_gets_version_1_and_its_table(catalog: Catalog) -> None:
    text, sha = spec()

    stored, created = catalog.register_indicator_set(
        NewIndicatorSet("btc", "default", text, sha, ["rsi_14"], [14])
    )

    assert created
    assert replace(stored, created_at=None, updated_at=None) == IndicatorSetRecord(
        measurement="btc_1",
        dataset="btc",
        version=1,
        label="default",
        spec=text,
        spec_sha256=sha,
        columns=("rsi_14",),
        lookbacks=(14,),
        status="registered",
    )
    assert stored.created_at is not None and stored.created_at.tzinfo is UTC
    assert catalog.get_indicator_set("btc", 1) == stored


def test_a_second_spec_gets_the_next_version(catalog: Catalog) -> None:
    register(catalog, period=14)

    second, created = register(catalog, label="fast", period=7)

    assert created
    assert (second.version, second.measurement, second.label) == (2, "btc_2", "fast")


def test_the_identical_spec_returns_the_existing_row(catalog: Catalog) -> None:
    first, _ = register(catalog, period=14)
    register(catalog, period=7)

    again, created = register(catalog, period=14)

    assert not created
    assert again == first
    assert [s.version for s in catalog.list_indicator_sets("btc")] == [1, 2]


def test_a_known_hash_with_a_different_spec_text_is_refused(catalog: Catalog) -> None:
    register(catalog, period=14)
    _, sha = spec(period=14)

    with pytest.raises(CatalogError, match=r"'btc_1' has spec_sha256 [0-9a-f]{64} but a different spec"):
        catalog.register_indicator_set(
            NewIndicatorSet("btc", "default", '{"other": 1}', sha, ["rsi_14"], [14])
        )


def test_versions_are_numbered_per_dataset(catalog: Catalog) -> None:
    register(catalog, "btc", period=14)
    register(catalog, "btc", period=7)

    # The same spec on another dataset is another set, with that dataset's first version.
    eth, created = register(catalog, "eth", period=14)

    assert created
    assert (eth.version, eth.measurement) == (1, "eth_1")


def test_an_unknown_dataset_is_refused_by_name(catalog: Catalog) -> None:
    with pytest.raises(CatalogError, match="dataset 'sol' is not in the catalog"):
        register(catalog, "sol")
    assert catalog.list_indicator_sets() == []


def test_a_dataset_whose_name_cannot_prefix_a_table_is_refused(catalog: Catalog) -> None:
    # The datasets table takes any name; indicator tables need one that naming accepts.
    catalog.upsert_dataset(bars("BTC"))

    with pytest.raises(CatalogError, match="dataset 'BTC' cannot have indicator sets"):
        register(catalog, "BTC")


def test_columns_and_lookbacks_of_different_lengths_are_refused(catalog: Catalog) -> None:
    text, sha = spec()

    with pytest.raises(CatalogError, match="2 columns but 1 lookbacks"):
        catalog.register_indicator_set(
            NewIndicatorSet("btc", "default", text, sha, ["rsi_14", "rsi_7"], [14])
        )
    assert catalog.list_indicator_sets() == []


@pytest.mark.parametrize(
    ("changes", "constraint"),
    [
        ({"spec_sha256": "AB" * 32}, "indicator_sets_spec_sha256_hex"),
        ({"spec_sha256": "ab" * 31}, "indicator_sets_spec_sha256_hex"),
        ({"columns": [], "lookbacks": []}, "indicator_sets_columns_not_empty"),
        ({"lookbacks": [-1]}, "indicator_sets_lookbacks_non_negative"),
    ],
    ids=["uppercase_sha", "short_sha", "no_columns", "negative_lookback"],
)
def test_a_set_breaking_a_constraint_is_refused_and_not_stored(
    catalog: Catalog, changes: dict[str, Any], constraint: str
) -> None:
    text, sha = spec()
    args: dict[str, Any] = {"spec_sha256": sha, "columns": ["rsi_14"], "lookbacks": [14]} | changes

    with pytest.raises(CatalogError, match="indicator set 'default' of dataset 'btc' refused") as refused:
        catalog.register_indicator_set(NewIndicatorSet("btc", "default", text, **args))
    # Postgres names the constraint; DuckDB quotes its expression.
    if isinstance(catalog, PostgresCatalog):
        assert constraint in str(refused.value)
    assert catalog.list_indicator_sets() == []


@pytest.mark.parametrize("clash", ["version", "spec_sha256"])
def test_the_table_itself_refuses_a_second_set_with_one_version_or_one_spec(
    catalog: Catalog, clash: str, request: pytest.FixtureRequest
) -> None:
    # The catalog never tries this (it looks up the spec and serialises versions); the constraints are
    # what is left if some other writer does.
    register(catalog)
    version, sha = (1, "ef" * 32) if clash == "version" else (2, spec()[1])
    insert = (
        "INSERT INTO indicator_sets (measurement, dataset, version, label, spec, spec_sha256, columns, "
        f"lookbacks, status) VALUES ('btc_x', 'btc', {version}, 'x', '{{}}', '{sha}', ARRAY['x'], ARRAY[0], "
        "'registered')"
    )

    with pytest.raises((psycopg.IntegrityError, duckdb.IntegrityError), match=r"(?i)duplicate key"):
        if isinstance(catalog, PostgresCatalog):
            conninfo: str = request.getfixturevalue("pg_conninfo")
            options = f"-c search_path={catalog.schema_name}"
            with psycopg.connect(conninfo, autocommit=True, options=options) as conn:
                conn.execute(insert)
        else:
            assert isinstance(catalog, DuckDBCatalog)
            with duckdb_file.connect(Path(catalog.path), write=True) as con:
                con.execute(insert)


def test_recorded_outputs_are_stored_and_read_back(catalog: Catalog) -> None:
    registered, _ = register(catalog)
    plus_two = timezone(timedelta(hours=2))

    stored = record(catalog, first_ts=datetime(2024, 1, 1, 2, tzinfo=plus_two))

    assert stored == catalog.get_indicator_set("btc", 1)
    assert (stored.status, stored.row_count, stored.bars_sha256) == ("ready", 1440, "cd" * 32)
    assert stored.dataset_version == "ef" * 32
    assert (stored.state, stored.code_version, stored.message) == ('{"rsi_14": [1.5, 2.5]}', "abc123", None)
    assert (stored.first_ts, stored.last_ts) == (T0, T0 + timedelta(minutes=1439))
    stamps = [stored.first_ts, stored.last_ts, stored.created_at, stored.updated_at]
    assert [ts.tzinfo if ts else None for ts in stamps] == [UTC] * 4
    # The spec and what comes from it are untouched; updated_at moves, created_at does not.
    unchanged = ("measurement", "version", "label", "spec", "spec_sha256", "columns", "lookbacks")
    assert all(getattr(stored, field) == getattr(registered, field) for field in unchanged)
    assert stored.created_at == registered.created_at
    assert stored.updated_at is not None and registered.updated_at is not None
    assert stored.updated_at > registered.updated_at


def test_recording_again_replaces_every_output(catalog: Catalog) -> None:
    register(catalog)
    record(catalog)

    failed = record(
        catalog,
        status="failed",
        row_count=None,
        first_ts=None,
        last_ts=None,
        bars_sha256=None,
        state=None,
        code_version=None,
        message="no bars",
    )

    assert (failed.status, failed.message) == ("failed", "no bars")
    outputs = (failed.row_count, failed.first_ts, failed.last_ts, failed.bars_sha256, failed.state)
    assert outputs == (None,) * 5
    assert catalog.get_indicator_set("btc", 1) == failed


def test_recording_for_a_missing_set_is_refused(catalog: Catalog) -> None:
    register(catalog)

    with pytest.raises(CatalogError, match="no indicator set version 2 of dataset 'btc'"):
        record(catalog, version=2)
    with pytest.raises(CatalogError, match="no indicator set version 1 of dataset 'eth'"):
        record(catalog, "eth")


@pytest.mark.parametrize("field", ["first_ts", "last_ts"])
def test_a_naive_output_timestamp_is_refused(catalog: Catalog, field: str) -> None:
    register(catalog)

    with pytest.raises(CatalogError, match=f"{field} 2024-01-01 00:00:00 has no time zone; pass UTC"):
        record(catalog, **{field: datetime(2024, 1, 1)})
    assert status_of(catalog, "btc", 1) == "registered"


@pytest.mark.parametrize(
    ("changes", "constraint"),
    [
        ({"status": "done"}, "indicator_sets_status"),
        ({"row_count": -1}, "indicator_sets_row_count_non_negative"),
        ({"last_ts": T0 - timedelta(minutes=1)}, "indicator_sets_time_range"),
    ],
    ids=["unknown_status", "negative_rows", "reversed_range"],
)
def test_outputs_breaking_a_constraint_are_refused_and_not_stored(
    catalog: Catalog, changes: dict[str, Any], constraint: str
) -> None:
    register(catalog)

    with pytest.raises(CatalogError, match="indicator set 'btc' version 1 refused") as refused:
        record(catalog, **changes)
    if isinstance(catalog, PostgresCatalog):
        assert constraint in str(refused.value)
    assert status_of(catalog, "btc", 1) == "registered"


def test_list_is_ordered_by_dataset_then_version_and_filters_by_dataset(catalog: Catalog) -> None:
    register(catalog, "eth", period=14)
    for period in (14, 7, 21):
        register(catalog, "btc", period=period)
    register(catalog, "eth", period=7)

    listed = [(s.dataset, s.version) for s in catalog.list_indicator_sets()]
    assert listed == [("btc", 1), ("btc", 2), ("btc", 3), ("eth", 1), ("eth", 2)]
    assert [s.measurement for s in catalog.list_indicator_sets("eth")] == ["eth_1", "eth_2"]
    assert catalog.list_indicator_sets("sol") == []


def test_get_finds_a_set_by_measurement_and_is_none_for_unknown_ones(catalog: Catalog) -> None:
    register(catalog, "btc", period=14)
    eth, _ = register(catalog, "eth", period=14)

    assert catalog.get_indicator_set_by_measurement("eth_1") == eth
    assert catalog.get_indicator_set_by_measurement("eth_2") is None
    assert catalog.get_indicator_set("eth", 2) is None


def test_a_dataset_with_indicator_sets_can_still_be_reimported(catalog: Catalog) -> None:
    # DuckDB rewrites a row whose list column changes as delete + insert, which a foreign key refuses.
    register(catalog)

    reimported = catalog.upsert_dataset(bars("btc", row_count=2880, columns=("open", "close")))

    assert reimported.columns == ("open", "close")
    assert catalog.get_indicator_set("btc", 1) is not None


def test_concurrent_registrations_of_different_specs_get_versions_1_to_n(
    new_catalog: Callable[[], Catalog],
) -> None:
    new_catalog().upsert_dataset(bars("btc"))
    # One catalog per thread: separate pools (Postgres) or connections (DuckDB), as in step processes.
    catalogs = [new_catalog() for _ in range(8)]

    registered = race(catalogs, lambda i, catalog: register(catalog, period=i + 2))

    assert sorted(s.version for s, _ in registered) == list(range(1, 9))
    assert all(created for _, created in registered)
    # Every spec got its own row, and each measurement follows its version.
    stored = catalogs[0].list_indicator_sets("btc")
    assert sorted(s.lookbacks[0] for s in stored) == list(range(2, 10))
    assert [s.measurement for s in stored] == [f"btc_{v}" for v in range(1, 9)]


def test_concurrent_registrations_of_one_spec_create_one_set(new_catalog: Callable[[], Catalog]) -> None:
    new_catalog().upsert_dataset(bars("btc"))
    catalogs = [new_catalog() for _ in range(4)]

    registered = race(catalogs, lambda _, catalog: register(catalog))

    assert sorted(created for _, created in registered) == [False, False, False, True]
    assert {s for s, _ in registered} == {catalogs[0].get_indicator_set("btc", 1)}
