"""Resources for definitions tests: DuckDB files in tmp_path, and the catalog also in Postgres (a throwaway
schema), so every asset test runs on both catalogs; and a throwaway Dagster instance."""

import dagster as dg
import pytest

from resources.compute import ComputeResource
from resources.duckdb_catalog import DuckDBCatalog
from resources.duckdb_store import DuckDBStore
from resources.landing import LandingFolder
from resources.postgres_catalog import PostgresCatalog
from resources.sets_folder import SetsFolder


@pytest.fixture(params=["duckdb", "postgres"])
def resources(request, tmp_path) -> dict[str, object]:
    (tmp_path / "landing").mkdir()
    if request.param == "postgres":
        settings = request.getfixturevalue("pg_settings")
        catalog = PostgresCatalog(**settings, schema_name=request.getfixturevalue("pg_schema_name"))
    else:
        catalog = DuckDBCatalog(path=str(tmp_path / "catalog.duckdb"))
    yield {
        "timeseries": DuckDBStore(path=str(tmp_path / "timeseries.duckdb")),
        "catalog": catalog,
        "landing": LandingFolder(path=str(tmp_path / "landing")),
        "sets_folder": SetsFolder(path=str(tmp_path / "sets")),
        "compute": ComputeResource(device="cpu", artifacts_dir=str(tmp_path / "artifacts")),
    }
    if isinstance(catalog, PostgresCatalog):
        catalog.close()


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst
