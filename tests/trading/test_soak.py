"""The soak's shorter variant (CI): one simulated day of one-minute bars at 720x through the local venue,
the recorder, runner and executor under the supervisor, on a Postgres and a QuestDB of the soak's own, with
the seeded schedule's faults: stream drops, 5xx bursts, an ambiguous submit, partial fills, a rejection,
each service killed (SIGKILL or SIGTERM, drawn from the seed), QuestDB crashed for two simulated hours, a
Postgres restart. Every invariant of `trading_assets.live.soak.harness` must hold; `make soak` runs the
full week with both signals for every service, and `tests/trading/test_restarts.py` each kill alone."""

from __future__ import annotations

import os

import pytest

from trading_assets.live.soak.harness import Soak, SoakConfig


def test_a_faulted_day_loses_nothing_and_every_invariant_holds(tmp_path) -> None:  # type: ignore[no-untyped-def]
    if not os.environ.get("QUESTDB_JAR"):
        pytest.skip("QUESTDB_JAR not set: the soak runs a QuestDB of its own (scripts/services.sh up)")
    lines: list[str] = []
    config = SoakConfig(root=tmp_path / "soak", days=1, speed=720, seed=7, kills="one", keep=True)
    report = Soak(config, lines.append).run()
    text = report.text()
    print(text)  # the figures, in the test's output
    assert report.ok, f"{text}\nlogs in {tmp_path / 'soak'}"
    assert sum(r.fault.heavy for r in report.faults) == 5 and len(report.faults) == 14
