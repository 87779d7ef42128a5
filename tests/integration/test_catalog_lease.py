"""One executor per venue account: the catalog's lease (migrations/*/0012_executor_leases.sql) on both
catalogs (Postgres in a throwaway schema, DuckDB in a tmp file). Racing holders, in threads and in processes
of their own, get exactly one grant; a lease is extended by its holder, taken over only once it has lapsed,
and released only by its holder."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from catalog_setup import race

from resources.catalog import Catalog
from resources.duckdb_catalog import DuckDBCatalog
from resources.postgres_catalog import PostgresCatalog
from trading_assets.records import CatalogError, LeaseGrant

VENUE, ACCOUNT = "binance", "main"
TTL_S = 60.0


def test_the_first_holder_is_granted_and_a_second_is_told_who_holds_it_until_when(catalog: Catalog) -> None:
    first = catalog.acquire_executor_lease(VENUE, ACCOUNT, "host-a:101", TTL_S)
    second = catalog.acquire_executor_lease(VENUE, ACCOUNT, "host-b:202", TTL_S)

    assert first.granted and first.lease is not None
    assert first.lease.holder == "host-a:101" and not first.lease.expired
    assert 59 <= (first.lease.expires_at - first.lease.acquired_at).total_seconds() <= 61
    assert not second.granted
    assert second.lease == first.lease
    assert catalog.get_executor_lease(VENUE, ACCOUNT) == first.lease


def test_leases_of_other_accounts_are_independent(catalog: Catalog) -> None:
    assert catalog.acquire_executor_lease(VENUE, ACCOUNT, "a", TTL_S).granted
    assert catalog.acquire_executor_lease(VENUE, "other", "b", TTL_S).granted
    assert catalog.acquire_executor_lease("kraken", ACCOUNT, "c", TTL_S).granted


def test_the_holder_extends_its_lease_by_acquiring_or_renewing(catalog: Catalog) -> None:
    first = catalog.acquire_executor_lease(VENUE, ACCOUNT, "a", 5.0)
    again = catalog.acquire_executor_lease(VENUE, ACCOUNT, "a", TTL_S)
    renewed = catalog.renew_executor_lease(VENUE, ACCOUNT, "a", 2 * TTL_S)

    assert again.granted and renewed.granted
    assert first.lease and again.lease and renewed.lease
    # One tenure: the time it was taken stays, the expiry moves.
    assert again.lease.acquired_at == renewed.lease.acquired_at == first.lease.acquired_at
    assert first.lease.expires_at < again.lease.expires_at < renewed.lease.expires_at


def test_a_lapsed_lease_is_taken_over_and_its_old_holder_cannot_renew_it(catalog: Catalog) -> None:
    catalog.acquire_executor_lease(VENUE, ACCOUNT, "frozen", 0.2)
    time.sleep(0.5)
    assert catalog.get_executor_lease(VENUE, ACCOUNT).expired  # type: ignore[union-attr]

    taken = catalog.acquire_executor_lease(VENUE, ACCOUNT, "successor", TTL_S)
    late = catalog.renew_executor_lease(VENUE, ACCOUNT, "frozen", TTL_S)

    assert taken.granted and taken.lease and taken.lease.holder == "successor"
    assert late == LeaseGrant(False, taken.lease)


def test_a_holder_late_to_renew_keeps_its_lease_when_nobody_took_it(catalog: Catalog) -> None:
    catalog.acquire_executor_lease(VENUE, ACCOUNT, "slow", 0.2)
    time.sleep(0.5)

    renewed = catalog.renew_executor_lease(VENUE, ACCOUNT, "slow", TTL_S)

    assert renewed.granted and renewed.lease and not renewed.lease.expired


def test_only_the_holder_releases_and_a_released_lease_is_free(catalog: Catalog) -> None:
    catalog.acquire_executor_lease(VENUE, ACCOUNT, "a", TTL_S)

    assert catalog.release_executor_lease(VENUE, ACCOUNT, "b") is False
    assert catalog.get_executor_lease(VENUE, ACCOUNT).holder == "a"  # type: ignore[union-attr]
    assert catalog.release_executor_lease(VENUE, ACCOUNT, "a") is True
    assert catalog.get_executor_lease(VENUE, ACCOUNT) is None
    # Released: renewing does not take it back, acquiring does.
    assert catalog.renew_executor_lease(VENUE, ACCOUNT, "a", TTL_S) == LeaseGrant(False, None)
    assert catalog.acquire_executor_lease(VENUE, ACCOUNT, "b", TTL_S).granted


@pytest.mark.parametrize(
    ("holder", "ttl_s", "message"),
    [
        ("", TTL_S, "lease of binance/main: the holder must be named"),
        ("a", 0.0, "lease of binance/main: ttl_s must be a number of seconds >= 0.001, not 0.0"),
        ("a", float("nan"), "lease of binance/main: ttl_s must be a number of seconds >= 0.001, not nan"),
    ],
)
def test_a_lease_needs_a_holder_and_a_positive_time(
    catalog: Catalog, holder: str, ttl_s: float, message: str
) -> None:
    with pytest.raises(CatalogError) as refused:
        catalog.acquire_executor_lease(VENUE, ACCOUNT, holder, ttl_s)
    assert str(refused.value) == message
    assert catalog.get_executor_lease(VENUE, ACCOUNT) is None


def test_of_holders_racing_in_threads_exactly_one_is_granted(new_catalog: Callable[[], Catalog]) -> None:
    catalogs = [new_catalog() for _ in range(6)]

    grants = race(catalogs, lambda i, c: c.acquire_executor_lease(VENUE, ACCOUNT, f"holder-{i}", TTL_S))

    winners = [g.lease.holder for g in grants if g.granted]
    assert len(winners) == 1
    assert all(g.lease is not None and g.lease.holder == winners[0] for g in grants)


def _contend(spec: tuple[str, dict[str, Any]], holder: str, start: Any, out: Any) -> None:
    """In a process of its own: a catalog of its own, then the lease, once every contender is ready."""
    kind, fields = spec
    catalog: Catalog = DuckDBCatalog(**fields) if kind == "duckdb" else PostgresCatalog(**fields)
    catalog.get_executor_lease(VENUE, ACCOUNT)  # connected and migrated before the race
    start.wait()
    grant = catalog.acquire_executor_lease(VENUE, ACCOUNT, holder, TTL_S)
    out.put((holder, grant.granted, grant.lease.holder if grant.lease else None))


@pytest.fixture(params=["postgres", "duckdb"])
def catalog_spec(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    """How a process of its own builds a catalog on the test's database."""
    if request.param == "duckdb":
        return "duckdb", {"path": str(tmp_path / "catalog.duckdb")}
    settings = request.getfixturevalue("pg_settings")
    schema = request.getfixturevalue("pg_schema_name")
    return "postgres", {**settings, "schema_name": schema, "pool_min_size": 0, "pool_max_size": 1}


def test_of_executors_racing_in_processes_exactly_one_is_granted(
    catalog_spec: tuple[str, dict[str, Any]],
) -> None:
    context = multiprocessing.get_context("spawn")
    start, out = context.Barrier(3), context.Queue()
    processes = [
        context.Process(target=_contend, args=(catalog_spec, f"executor-{i}", start, out)) for i in range(3)
    ]
    for process in processes:
        process.start()
    results = [out.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(30)
        assert process.exitcode == 0

    winners = [holder for holder, granted, _ in results if granted]
    assert len(winners) == 1
    assert {seen for _, _, seen in results} == {winners[0]}
