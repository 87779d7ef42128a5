"""Resources for definitions tests: DuckDB files in tmp_path and a throwaway Dagster instance.

The asset tests run on the embedded catalog (DuckDB). The catalog's SQL is one implementation whose every
operation tests/integration/test_catalog_*.py checks on both dialects, and
tests/live/test_production_profile.py runs the whole pipeline on Postgres (and QuestDB) against the embedded
default's outputs: running each asset test on both catalogs doubled this folder's CI time for no code path
the dialect changes. A module whose subject is the catalog coordinating runs and sensor ticks
(test_job_requests.py) runs on both:
`pytest.mark.parametrize("resources", ["duckdb", "postgres"], indirect=True)`."""

import dagster as dg
import pytest

from resources.compute import ComputeResource
from resources.duckdb_catalog import DuckDBCatalog
from resources.duckdb_store import DuckDBStore
from resources.landing import LandingFolder
from resources.postgres_catalog import PostgresCatalog
from resources.sets_folder import SetsFolder


@pytest.fixture
def resources(request, tmp_path) -> dict[str, object]:
    (tmp_path / "landing").mkdir()
    if getattr(request, "param", "duckdb") == "postgres":
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
