"""Both catalogs against real databases: Postgres in a throwaway schema, DuckDB in a tmp file."""

from __future__ import annotations

import inspect
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import dagster as dg
import psycopg
import pytest
from catalog_setup import bars
from psycopg import sql

from resources.catalog import Catalog
from resources.duckdb_catalog import DuckDBCatalog
from resources.migrations import DUCKDB, POSTGRES, discover_migrations
from resources.postgres_catalog import PostgresCatalog
from trading_assets.records import CatalogError, DatasetRecord

BTC = bars("btc")


@pytest.fixture
def pg_catalog(pg_settings: dict[str, Any], pg_schema_name: str) -> Iterator[PostgresCatalog]:
    """A PostgresCatalog in a schema that does not exist yet; the catalog creates it."""
    catalog = PostgresCatalog(**pg_settings, schema_name=pg_schema_name, pool_min_size=0, pool_max_size=1)
    yield catalog
    catalog.close()


def without_timestamps(record: DatasetRecord) -> DatasetRecord:
    return replace(record, created_at=None, updated_at=None)


@pytest.mark.parametrize("resource", [DuckDBCatalog, PostgresCatalog])
def test_a_catalog_resource_adds_only_its_settings_and_dialect(resource: type[Catalog]) -> None:
    """Every catalog call is written once, in Catalog; Postgres also opens and closes its pool."""
    written = {
        name
        for name, value in vars(resource).items()
        if inspect.isfunction(value) and value.__module__ == resource.__module__
    }

    assert issubclass(resource, Catalog)
    assert written - {"close", "teardown_after_execution"} == {"_dialect"}


def test_upsert_returns_the_stored_row_and_get_reads_it_back(catalog: Catalog) -> None:
    stored = catalog.upsert_dataset(BTC)

    assert without_timestamps(stored) == BTC
    assert catalog.get_dataset("btc") == stored


def test_every_timestamp_comes_back_as_utc(catalog: Catalog) -> None:
    plus_two = timezone(timedelta(hours=2))
    record = replace(
        BTC, first_ts=datetime(2024, 1, 1, 2, tzinfo=plus_two), last_ts=datetime(2024, 1, 2, tzinfo=UTC)
    )

    stored = catalog.get_dataset(catalog.upsert_dataset(record).name)

    assert stored is not None
    assert stored.first_ts == datetime(2024, 1, 1, 0, tzinfo=UTC)
    stamps = [stored.first_ts, stored.last_ts, stored.created_at, stored.updated_at]
    assert [ts.tzinfo if ts else None for ts in stamps] == [UTC] * 4


def test_a_second_upsert_updates_the_row_and_keeps_created_at(catalog: Catalog) -> None:
    first = catalog.upsert_dataset(BTC)
    second = catalog.upsert_dataset(
        replace(BTC, row_count=2880, last_ts=datetime(2024, 1, 2, 23, 59, tzinfo=UTC))
    )

    assert catalog.get_dataset("btc") == second
    assert (second.row_count, second.last_ts) == (2880, datetime(2024, 1, 2, 23, 59, tzinfo=UTC))
    assert second.created_at == first.created_at
    assert second.updated_at is not None and first.updated_at is not None
    assert second.updated_at > first.updated_at


def test_get_of_an_unknown_name_is_none(catalog: Catalog) -> None:
    assert catalog.get_dataset("nothing") is None


def test_list_is_ordered_by_name(catalog: Catalog) -> None:
    for name in ("sol", "btc", "eth"):
        catalog.upsert_dataset(bars(name))

    assert [record.name for record in catalog.list_datasets()] == ["btc", "eth", "sol"]


@pytest.mark.parametrize(
    "changes",
    [
        {"row_count": -1},
        {"bar_interval_s": 0},
        {"last_ts": BTC.first_ts - timedelta(seconds=1)},
        {"source_sha256": "AB" * 32},
        {"source_sha256": "ab" * 31},
        {"columns": ()},
        {"table_name": "btc"},
    ],
    ids=[
        "negative_rows",
        "zero_interval",
        "reversed_range",
        "uppercase_sha",
        "short_sha",
        "no_columns",
        "table_taken",
    ],
)
def test_a_row_breaking_a_constraint_is_refused_and_not_stored(
    catalog: Catalog, changes: dict[str, Any]
) -> None:
    catalog.upsert_dataset(BTC)

    with pytest.raises(CatalogError, match="'eth' refused by the catalog"):
        catalog.upsert_dataset(replace(bars("eth"), **changes))
    assert catalog.get_dataset("eth") is None


def test_a_naive_timestamp_is_refused(catalog: Catalog) -> None:
    with pytest.raises(CatalogError, match="first_ts 2024-01-01 00:00:00 has no time zone"):
        catalog.upsert_dataset(replace(BTC, first_ts=datetime(2024, 1, 1)))


def test_migrate_twice_applies_nothing_the_second_time(catalog: Catalog) -> None:
    dialect = POSTGRES if isinstance(catalog, PostgresCatalog) else DUCKDB

    assert catalog.migrate() == [m.version for m in discover_migrations(dialect)]
    assert catalog.migrate() == []


def test_postgres_catalog_creates_its_schema_and_tables_there(
    pg_catalog: PostgresCatalog, pg_admin: psycopg.Connection
) -> None:
    pg_catalog.upsert_dataset(BTC)

    table = sql.Identifier(pg_catalog.schema_name, "datasets")
    found = pg_admin.execute(sql.SQL("SELECT name FROM {}").format(table)).fetchall()
    assert found == [("btc",)]


def test_postgres_catalog_refuses_a_schema_name_that_is_not_an_identifier(
    pg_settings: dict[str, Any],
) -> None:
    catalog = PostgresCatalog(**pg_settings, schema_name="x; DROP TABLE datasets")

    with pytest.raises(CatalogError, match="is not a lowercase identifier"):
        catalog.list_datasets()


def test_postgres_catalog_retries_on_a_connection_the_server_closed(
    pg_catalog: PostgresCatalog, pg_admin: psycopg.Connection
) -> None:
    pg_catalog.upsert_dataset(BTC)
    # Only the catalog's one pooled connection carries its application name.
    killed = pg_admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
        [f"trading_assets catalog {pg_catalog.schema_name}"],
    ).fetchall()
    assert killed == [(True,)]
    wait_until_gone(pg_admin, pg_catalog.schema_name)

    assert pg_catalog.get_dataset("btc") is not None


def test_postgres_catalog_closes_its_pool_after_a_run(
    pg_catalog: PostgresCatalog, pg_admin: psycopg.Connection
) -> None:
    @dg.asset
    def count_datasets(catalog: PostgresCatalog) -> int:
        return len(catalog.list_datasets())

    assert dg.materialize([count_datasets], resources={"catalog": pg_catalog}).success
    wait_until_gone(pg_admin, pg_catalog.schema_name)


def wait_until_gone(admin: psycopg.Connection, schema: str, timeout_s: float = 5.0) -> None:
    """Wait until the server lists no session of the catalog in `schema`; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
    while admin.execute(query, [f"trading_assets catalog {schema}"]).fetchone() != (0,):
        assert time.monotonic() < deadline, f"catalog sessions of {schema} still open after {timeout_s}s"
        time.sleep(0.05)
