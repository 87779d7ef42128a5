"""Fixtures of the live tests; what they share beside fixtures lives in *_setup.py modules."""

from __future__ import annotations

import pytest
from research_setup import Research, build_research


@pytest.fixture(scope="package")
def research(tmp_path_factory: pytest.TempPathFactory) -> Research:
    return build_research(tmp_path_factory.mktemp("research"))
