"""Fixtures of the operations tests: Prometheus's promtool, from Debian's prometheus package."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from monitoring_setup import binary


@pytest.fixture(scope="module")
def promtool(service_missing: Callable[[str], None]) -> str:
    found = binary("promtool")
    if found is None:
        service_missing("no promtool (Debian's prometheus package; `scripts/services.sh up` installs it)")
    return found  # type: ignore[return-value]
