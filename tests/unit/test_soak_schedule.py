"""The soak's fault schedule: a seed gives the same faults at the same bars; every run has each heavy fault;
heavy faults never overlap and keep their spacing; a run too short for them says so."""

from __future__ import annotations

import itertools

import pytest

from trading_assets.live.soak.schedule import (
    DAY_BARS,
    LEAD_BARS,
    QUESTDB_DOWN_BARS,
    SERVICES,
    TAIL_BARS,
    schedule,
)


def _heavy(faults):  # type: ignore[no-untyped-def]
    return [f for f in faults if f.heavy]


def test_the_same_seed_gives_the_same_schedule_and_another_seed_another() -> None:
    assert schedule(7, 1, 120) == schedule(7, 1, 120)
    assert [(f.bar, f.kind) for f in schedule(7, 1, 120)] != [(f.bar, f.kind) for f in schedule(8, 1, 120)]


@pytest.mark.parametrize(("days", "spacing"), [(1, 120), (7, 240), (7, 120), (2.5, 60)])
def test_every_round_has_each_heavy_fault_apart_and_inside_the_run(days: float, spacing: int) -> None:
    faults = schedule(11, days, spacing)
    heavy = _heavy(faults)
    kinds = [(f.kind, f.params.get("service"), f.params.get("signal")) for f in heavy]
    one_round = {("kill", s, sig) for s in SERVICES for sig in ("KILL", "TERM")}
    one_round |= {("questdb_down", None, None), ("postgres_restart", None, None)}
    rounds = len(heavy) // len(one_round)
    assert rounds >= 1 and len(heavy) == rounds * len(one_round)
    assert {k: kinds.count(k) for k in one_round} == dict.fromkeys(one_round, rounds)
    for before, after in itertools.pairwise(heavy):
        assert after.bar >= before.bar + before.lasts + spacing, (before, after)
    total = int(days * DAY_BARS)
    assert all(f.bar >= LEAD_BARS and f.bar + f.lasts <= total - TAIL_BARS for f in faults)
    assert [f.bar for f in faults] == sorted(f.bar for f in faults)
    assert next(f for f in heavy if f.kind == "questdb_down").lasts == QUESTDB_DOWN_BARS == 120
    # Venue faults every day: three stream drops a day among them.
    assert sum(f.kind == "drop_streams" for f in faults) == 3 * max(1, round(days))


def test_a_run_too_short_for_every_heavy_fault_is_refused_with_the_shortest_length() -> None:
    with pytest.raises(
        ValueError, match=r"days=0.5: too short for every fault 240 bars apart \(at least 1\.4"
    ):
        schedule(7, 0.5, 240)


def test_one_kill_per_service_draws_the_signal_from_the_seed() -> None:
    kills = [f for f in schedule(7, 1, 240, "one") if f.kind == "kill"]
    assert sorted(f.params["service"] for f in kills) == sorted(SERVICES)
    assert {f.params["signal"] for f in kills} <= {"KILL", "TERM"}
    assert kills == [f for f in schedule(7, 1, 240, "one") if f.kind == "kill"]
    with pytest.raises(ValueError, match="kills must be 'both' or 'one'"):
        schedule(7, 1, 240, "all")
