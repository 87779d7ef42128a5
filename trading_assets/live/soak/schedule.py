"""The soak's fault schedule: made from a seed alone, so a run is reproducible and a failure can be run
again with the same faults at the same bars.

Every day of the replay gets venue faults (stream drops, bursts of 5xx, an ambiguous submit, partial fills,
a rejection) at random bars. The heavy faults (each service killed once with SIGKILL and once with
SIGTERM, QuestDB crashed and down for two simulated hours, Postgres restarted) come in rounds, each heavy
fault once a round, far enough apart that one has recovered before the next begins; every run, however
short, has at least one round.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

SERVICES = ("recorder", "runner", "executor")
DAY_BARS = 1_440
QUESTDB_DOWN_BARS = 120
POSTGRES_DOWN_BARS = 5
# Bars after the start before the first fault (everything warmed up), and at the end without one (settling).
LEAD_BARS, TAIL_BARS = 30, 60
# Bars at least between the end of a heavy fault and the next one (the services recover in between), by
# default: the soak sets it from its clock's speed (a restart takes wall seconds, whatever the speed).
RECOVERY_BARS = 120


@dataclass(frozen=True)
class Fault:
    """One fault: at `bar` (bars since the replay's start), of `kind`, with its parameters."""

    bar: int
    kind: str
    params: dict = field(default_factory=dict, hash=False)
    # Bars the fault lasts (a server down); 0 for one that is done at once.
    lasts: int = 0

    @property
    def heavy(self) -> bool:
        return self.kind in ("kill", "questdb_down", "postgres_restart")

    def describe(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.kind}{' ' + extra if extra else ''}{f' for {self.lasts} bars' if self.lasts else ''}"


def schedule(seed: int, days: float, spacing_bars: int = RECOVERY_BARS, kills: str = "both") -> list[Fault]:
    """The faults of a `days`-long replay, ordered by bar; the same for the same arguments.

    The heavy faults come in rounds, as many whole rounds as the replay holds (at least one): in each, every
    heavy fault once in a shuffled order, each `spacing_bars` or more after the one before has ended (so
    the services recover in between), the spare bars shared out at random between the gaps. The venue
    faults come every day (each started one) at random bars of it. `kills`: "both" kills each service
    with SIGKILL and with SIGTERM each round; "one" with one of them, drawn (a shorter run's round)."""
    if kills not in ("both", "one"):
        raise ValueError(f"kills must be 'both' or 'one', not {kills!r}")
    rng = random.Random(seed)
    total = int(days * DAY_BARS)
    span = total - LEAD_BARS - TAIL_BARS
    signals = {s: ("KILL", "TERM") if kills == "both" else (rng.choice(("KILL", "TERM")),) for s in SERVICES}
    kinds: list[tuple[str, dict, int]] = [
        ("kill", {"service": s, "signal": sig}, 0) for s in SERVICES for sig in signals[s]
    ]
    kinds += [("questdb_down", {}, QUESTDB_DOWN_BARS), ("postgres_restart", {}, POSTGRES_DOWN_BARS)]
    needed = sum(lasts for *_, lasts in kinds) + spacing_bars * len(kinds)
    if span < needed:
        shortest = (needed + LEAD_BARS + TAIL_BARS) / DAY_BARS
        raise ValueError(
            f"days={days:g}: too short for every fault {spacing_bars} bars apart "
            f"(at least {shortest:.2f} days)"
        )
    rounds = span // needed
    per_round = span // rounds
    faults: list[Fault] = []
    for round_ in range(rounds):
        heavy = kinds[:]
        rng.shuffle(heavy)
        # The spare bars of the round, cut at random points into one extra gap before each heavy fault.
        cuts = sorted(rng.randrange(per_round - needed + 1) for _ in heavy)
        bar, previous_cut = LEAD_BARS + round_ * per_round, 0
        for (kind, params, lasts), cut in zip(heavy, cuts, strict=True):
            bar += cut - previous_cut
            previous_cut = cut
            faults.append(Fault(bar, kind, params, lasts))
            bar += lasts + spacing_bars
    for day in range(max(1, round(days))):
        first = LEAD_BARS + day * DAY_BARS
        last = min(first + DAY_BARS, total - TAIL_BARS)
        if last <= first:
            break

        def at(first: int = first, last: int = last) -> int:
            return rng.randrange(first, last)

        faults += [Fault(at(), "drop_streams") for _ in range(3)]
        faults += [Fault(at(), "server_errors", {"count": rng.randint(2, 6)}) for _ in range(2)]
        faults.append(Fault(at(), "ambiguous_submit", {"mode": rng.choice(["drop", "timeout"])}))
        faults += [
            Fault(at(), "partial_fill", {"share": round(rng.uniform(0.2, 0.8), 2), "rest": rest})
            for rest in ("later", "never")
        ]
        faults.append(
            Fault(at(), "reject", {"reason": rng.choice(["insufficient_funds", "invalid_quantity"])})
        )
    return sorted(faults, key=lambda f: (f.bar, f.kind))
