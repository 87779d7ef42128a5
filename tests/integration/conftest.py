"""Catalog fixtures, each test run once on Postgres (a throwaway schema) and once on DuckDB (a tmp file)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from resources.catalog import Catalog
from resources.duckdb_catalog import DuckDBCatalog
from resources.postgres_catalog import PostgresCatalog


@pytest.fixture(params=["postgres", "duckdb"])
def new_catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Catalog]]:
    """Makes catalogs on one database (a Postgres schema or a DuckDB file), each with its own connections."""
    made: list[PostgresCatalog] = []

    def make() -> Catalog:
        if request.param == "duckdb":
            return DuckDBCatalog(path=str(tmp_path / "catalog.duckdb"))
        settings: dict[str, Any] = request.getfixturevalue("pg_settings")
        schema: str = request.getfixturevalue("pg_schema_name")
        catalog = PostgresCatalog(**settings, schema_name=schema, pool_min_size=0, pool_max_size=1)
        made.append(catalog)
        return catalog

    yield make
    for catalog in made:
        catalog.close()


@pytest.fixture
def catalog(new_catalog: Callable[[], Catalog]) -> Catalog:
    """An empty catalog; the first call creates its tables."""
    return new_catalog()
