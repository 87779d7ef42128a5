"""loadtests/limits.yaml read and checked: each scenario's load (users, spawn rate, seconds, wait) and its
limits (p95 latency, error rate), and the size of the streamed table. A wrong file is one LimitsError line
naming the file and the field."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# The scenarios, in the order they run (loadtests/scenarios/ has one module each).
SCENARIOS = ("api_jobs", "graphql_launch", "catalog_reads", "timeseries_stream", "live_fanout")
# The one scenario that writes as it measures: its writer's pace is part of its load.
WRITER = "live_fanout"
DEFAULT_FILE = Path(__file__).with_name("limits.yaml")


class LimitsError(ValueError):
    """The limits file cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class Scenario:
    name: str
    users: int
    spawn_rate: float
    seconds: float
    wait_s: tuple[float, float]
    p95_ms: float
    max_error_rate: float
    writes_per_s: float | None = None


@dataclass(frozen=True)
class Limits:
    stream_rows: int
    scenarios: dict[str, Scenario]


def load_limits(path: Path = DEFAULT_FILE, seconds: float | None = None) -> Limits:
    """The file's limits; `seconds`, when given, replaces every scenario's duration (a short CI run)."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise LimitsError(f"{path}: {err}") from None
    fields = _Fields(path)
    top = fields.mapping(data, "(top)", {"data", "scenarios"})
    data_section = fields.mapping(top.get("data"), "data", {"stream_rows"})
    stream_rows = fields.whole(data_section["stream_rows"], "data.stream_rows")
    listed = fields.mapping(top.get("scenarios"), "scenarios", set(SCENARIOS))
    scenarios = {name: fields.scenario(name, listed.get(name), seconds) for name in SCENARIOS}
    return Limits(stream_rows, scenarios)


class _Fields:
    def __init__(self, path: Path) -> None:
        self.path = path

    def refuse(self, field: str, problem: str) -> LimitsError:
        return LimitsError(f"{self.path}: {field}: {problem}")

    def mapping(self, value: Any, field: str, keys: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.refuse(field, "must be a mapping")
        unknown = sorted(set(value) - keys)
        if unknown:
            raise self.refuse(f"{field}.{unknown[0]}" if field != "(top)" else unknown[0], "unknown field")
        missing = sorted(keys - set(value))
        if missing:
            raise self.refuse(f"{field}.{missing[0]}" if field != "(top)" else missing[0], "missing")
        return value

    def number(self, value: Any, field: str, *, zero: bool = False, most: float = math.inf) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.refuse(field, f"must be a number, not {value!r}")
        if value < 0 or (value == 0 and not zero) or value > most:
            low = "at least 0" if zero else "above 0"
            raise self.refuse(field, f"must be {low}" + (f" and at most {most:g}" if most < math.inf else ""))
        return float(value)

    def whole(self, value: Any, field: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.refuse(field, f"must be a whole number of at least 1, not {value!r}")
        return value

    def scenario(self, name: str, value: Any, seconds: float | None) -> Scenario:
        keys = {"users", "spawn_rate", "seconds", "wait_s", "p95_ms", "max_error_rate"}
        entry = self.mapping(
            value, f"scenarios.{name}", keys | ({"writes_per_s"} if name == WRITER else set())
        )
        field = f"scenarios.{name}."
        wait = entry["wait_s"]
        if not isinstance(wait, list) or len(wait) != 2:
            raise self.refuse(field + "wait_s", "must be [low, high] in seconds")
        low, high = (self.number(w, field + "wait_s", zero=True) for w in wait)
        if low > high:
            raise self.refuse(field + "wait_s", "low is above high")
        return Scenario(
            name=name,
            users=self.whole(entry["users"], field + "users"),
            spawn_rate=self.number(entry["spawn_rate"], field + "spawn_rate"),
            seconds=seconds if seconds is not None else self.number(entry["seconds"], field + "seconds"),
            wait_s=(low, high),
            p95_ms=self.number(entry["p95_ms"], field + "p95_ms"),
            max_error_rate=self.number(entry["max_error_rate"], field + "max_error_rate", zero=True, most=1),
            writes_per_s=self.number(entry["writes_per_s"], field + "writes_per_s")
            if name == WRITER
            else None,
        )
