"""Fixtures of the live tests; what they share beside fixtures lives in *_setup.py modules. The research
pipeline on the embedded default that they promote strategies from is tests/conftest.py's session fixture
`research`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from restart_setup import Production
from restart_setup import production as build_production


@pytest.fixture(scope="session")
def production(tmp_path_factory: pytest.TempPathFactory, pg_conninfo: str) -> Iterator[Production]:
    """The research pipeline on Postgres and QuestDB for the restart, disconnect and eviction tests, built
    once per pytest process: each test trades a copy of its database (Floor), on a symbol of its own.
    test_end_to_end and test_postgres_restart build their own (a dataset of their own, a private server)."""
    yield from build_production(tmp_path_factory, pg_conninfo, "prod")
