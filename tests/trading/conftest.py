"""Fixtures of the live tests; what they share beside fixtures lives in *_setup.py modules. The research
pipeline on the embedded default that they promote strategies from is tests/conftest.py's session fixture
`research`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
from restart_setup import Production, build_production, drop_production, need_questdb, open_production


@pytest.fixture(scope="session")
def production(
    built_once: Callable[..., AbstractContextManager[Any]], pg_conninfo: str
) -> Iterator[Production]:
    """The research pipeline on Postgres and QuestDB for the restart, disconnect and eviction tests, built
    once per test session (`built_once`: the pytest-xdist workers share its template database and QuestDB
    tables, and the last one done with them drops them): each test trades a copy of its database (Floor), on
    a symbol of its own. test_end_to_end and test_postgres_restart build their own (a dataset of their own, a
    private server)."""
    need_questdb()
    with built_once(
        "production",
        lambda root: build_production(root, pg_conninfo, "prod"),
        lambda root: open_production(root, pg_conninfo),
        drop_production,
    ) as made:
        yield made
