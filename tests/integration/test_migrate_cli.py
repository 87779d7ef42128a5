"""`trading-assets migrate`: an upgrade's migration step, on the embedded catalog and on Postgres (a schema of
the test's own), through the real CLI entry point."""

from __future__ import annotations

from typing import Any

import pytest

from resources.migrations import POSTGRES, discover_migrations
from resources.postgres_catalog import PostgresCatalog
from trading_assets.cli import main
from trading_assets.records import CatalogUnavailable

SHIPPED = [m.version for m in discover_migrations(POSTGRES)]


@pytest.fixture(params=["duckdb", "postgres"])
def profile(request: pytest.FixtureRequest, tmp_path, monkeypatch: pytest.MonkeyPatch) -> str:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TRADING_DATA_DIR", str(tmp_path))
    if request.param == "postgres":
        settings: dict[str, Any] = request.getfixturevalue("pg_settings")
        monkeypatch.setenv("TRADING_CATALOG", "postgres")
        monkeypatch.setenv("TRADING_CATALOG_SCHEMA", request.getfixturevalue("pg_schema_name"))
        for key, var in (
            ("host", "PGHOST"),
            ("port", "PGPORT"),
            ("user", "PGUSER"),
            ("dbname", "PGDATABASE"),
        ):
            monkeypatch.setenv(var, str(settings[key]))
        if settings["password"]:
            monkeypatch.setenv("PGPASSWORD", settings["password"])
    else:
        monkeypatch.setenv("TRADING_CATALOG", "duckdb")
    return request.param


def test_status_of_a_new_catalog_lists_every_migration_pending_and_exits_1(profile, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["migrate", "--status"]) == 1
    out = capsys.readouterr().out
    assert f"{profile} catalog: schema empty, pending {', '.join(SHIPPED)}" in out
    assert main(["migrate", "--status"]) == 1  # asking applied nothing


def test_migrate_applies_every_pending_migration_then_status_is_up_to_date(profile, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["migrate"]) == 0
    assert f"{profile} catalog: applied {', '.join(SHIPPED)}; schema {SHIPPED[-1]}" in capsys.readouterr().out
    assert main(["migrate", "--status"]) == 0
    assert main(["migrate"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"{profile} catalog: schema {SHIPPED[-1]}, up to date"


def test_an_unreachable_postgres_catalog_names_the_server_and_why_never_the_password() -> None:
    catalog = PostgresCatalog(
        host="127.0.0.1", port=1, user="u", password="stand-in-secret", dbname="d", pool_timeout_s=1
    )
    with pytest.raises(CatalogUnavailable) as failed:
        catalog.schema_status()
    message = str(failed.value)
    assert message.startswith("no Postgres connection within 1.0s: 127.0.0.1:1/d: connection")
    assert "refused" in message.lower() and "stand-in-secret" not in message and "\n" not in message
