"""The live services' catalog and store, as `trading-assets live ...` builds them: their credentials, given as
environment variables (dg.EnvVar, never in config), arrive as values the clients can use."""

from __future__ import annotations

import pytest

from trading_assets.cli.live import _resources


def test_the_live_services_resolve_the_catalog_and_store_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADING_CATALOG", "postgres")
    monkeypatch.setenv("PGPASSWORD", "stand-in-pg")
    monkeypatch.setenv("TRADING_TIMESERIES", "questdb")
    monkeypatch.setenv("QUESTDB_USER", "admin")
    monkeypatch.setenv("QUESTDB_PASSWORD", "stand-in-qdb")
    _, catalog, store = _resources()
    assert catalog.password == "stand-in-pg" and store.password == "stand-in-qdb"
