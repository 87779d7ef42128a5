"""Each scenario's figures judged against its limits, and the table `make loadtest` prints."""

from __future__ import annotations

from dataclasses import dataclass, field

from loadtests.limits import Scenario


@dataclass(frozen=True)
class Result:
    """What the swarm measured of one scenario (loadtests/swarm.py writes it as JSON)."""

    name: str
    requests: int
    failures: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    # A few failure messages with their counts, and what the scenario's own end check found wrong.
    errors: dict[str, int] = field(default_factory=dict)
    check: str | None = None
    # CPU seconds each server used during the timed run (the webserver's with its code server's).
    cpu_s: dict[str, float] = field(default_factory=dict)


def error_rate(result: Result) -> float:
    return result.failures / result.requests if result.requests else 1.0


def problems(result: Result, limit: Scenario) -> list[str]:
    """Why the scenario missed its limits; empty when it passed."""
    found = []
    if result.requests == 0:
        found.append("no request was made")
    if result.p95_ms > limit.p95_ms:
        found.append(f"p95 {result.p95_ms:.0f} ms over {limit.p95_ms:.0f} ms")
    if result.requests and error_rate(result) > limit.max_error_rate:
        found.append(f"errors {error_rate(result):.2%} over {limit.max_error_rate:.2%}")
    if result.check:
        found.append(result.check)
    return found


COLUMNS = (
    "scenario",
    "users",
    "requests",
    "rps",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "errors",
    "limit",
    "result",
    "CPU s api/web",
)


def table(results: list[Result], limits: dict[str, Scenario]) -> str:
    """One row per scenario, then each failed scenario's reasons and sampled errors."""
    rows = [COLUMNS]
    notes = []
    for result in results:
        limit = limits[result.name]
        missed = problems(result, limit)
        rows.append(
            (
                result.name,
                str(limit.users),
                str(result.requests),
                f"{result.rps:.1f}",
                f"{result.p50_ms:.0f}",
                f"{result.p95_ms:.0f}",
                f"{result.p99_ms:.0f}",
                f"{result.failures} ({error_rate(result):.1%})",
                f"p95 <= {limit.p95_ms:.0f} ms, errors <= {limit.max_error_rate:.0%}",
                "FAIL" if missed else "pass",
                "/".join(f"{result.cpu_s.get(server, 0):.1f}" for server in ("api", "webserver")),
            )
        )
        if missed:
            notes.append(f"{result.name}: " + "; ".join(missed))
        notes += [f"  {count} x {message}" for message, count in result.errors.items()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(
            cell.ljust(w) if i in (0, 8) else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:], *notes])
