"""The Prometheus exporter's collector: at each scrape it asks every source (the Dagster instance, the
catalog and its schema, the GPUs) what it holds now; nothing is polled in the background.

A source that cannot be read (its database is down) costs only its own metrics: the scrape still answers,
with `trading_exporter_source_up{source=...}` 0 for it and one log line saying why. Each metric is declared
once as a `Metric` (name, type, help, labels): the families a scrape fills, what `describe()` tells the
registry, and the list docs/operations/monitoring.md documents.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Protocol

from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.metrics_core import Metric as Family
from prometheus_client.registry import Collector

log = logging.getLogger("trading_assets.ops.exporter")

# The buckets of every duration histogram (runs and steps), in seconds: from a fold's seconds to a day.
DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0)


@dataclass(frozen=True)
class Metric:
    """One metric the exporter exports: `kind` is gauge, histogram (a gauge histogram: the distribution of
    a window that moves, so its counts go down as well as up) or info."""

    name: str
    kind: str
    help: str
    labels: tuple[str, ...] = ()

    def family(self) -> Family:
        """An empty family of this metric, for a scrape to fill."""
        if self.kind == "gauge":
            return GaugeMetricFamily(self.name, self.help, labels=self.labels)
        if self.kind == "histogram":
            return GaugeHistogramMetricFamily(self.name, self.help, labels=self.labels)
        if self.kind == "info":
            # The family's name is without `_info`: prometheus_client appends it.
            return InfoMetricFamily(self.name.removesuffix("_info"), self.help, labels=self.labels)
        raise ValueError(f"{self.name}: unknown metric kind {self.kind!r}")

    @property
    def samples(self) -> tuple[str, ...]:
        """The names its samples have in the text format (what a PromQL query names)."""
        if self.kind == "histogram":
            return (f"{self.name}_bucket", f"{self.name}_gcount", f"{self.name}_gsum")
        return (self.name,)


def histogram(family: GaugeHistogramMetricFamily, labels: Sequence[str], values: Sequence[float]) -> None:
    """Add the distribution of `values` under `labels` to `family`, in DURATION_BUCKETS."""
    buckets = [(str(bound), float(sum(v <= bound for v in values))) for bound in DURATION_BUCKETS]
    buckets.append(("+Inf", float(len(values))))
    family.add_metric(list(labels), buckets, gsum_value=float(sum(values)))


class Source(Protocol):
    """Something the exporter reads at each scrape."""

    name: str
    metrics: tuple[Metric, ...]

    def collect(self, now: datetime) -> Iterable[Family]:
        """This source's families as of `now`; raises if it cannot be read (then none of them is used)."""
        ...


SOURCE_UP = Metric(
    "trading_exporter_source_up",
    "gauge",
    "1 when the source was read at this scrape, 0 when reading it failed (the exporter's log says why)",
    ("source",),
)
SOURCE_SECONDS = Metric(
    "trading_exporter_source_duration_seconds", "gauge", "How long reading the source took", ("source",)
)
BUILD_INFO = Metric(
    "trading_build_info",
    "info",
    "The exporter's build: the package version, Dagster's version and the git commit (unknown if not known)",
    ("version", "dagster_version", "commit"),
)
OWN_METRICS = (BUILD_INFO, SOURCE_UP, SOURCE_SECONDS)


@dataclass(frozen=True)
class Build:
    version: str
    dagster_version: str
    commit: str

    @classmethod
    def of_this_process(cls) -> Build:
        """The installed versions, and the commit from TRADING_GIT_COMMIT (an image sets it when built),
        else from the git checkout the code runs from, else `unknown`."""
        return cls(metadata.version("trading-assets"), metadata.version("dagster"), _commit())


def _commit() -> str:
    if commit := os.environ.get("TRADING_GIT_COMMIT", "").strip():
        return commit
    try:
        found = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return found.stdout.strip() if found.returncode == 0 else "unknown"


def one_line(err: BaseException) -> str:
    """An error as one log line: its type and its message with the line breaks folded."""
    text = " ".join(part.strip() for part in str(err).splitlines() if part.strip())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


class Exporter(Collector):
    """The collector of every source, registered on the exporter's registry. Scrapes take turns: two
    Prometheus servers scraping at once read each source once each, never interleaved."""

    def __init__(
        self,
        sources: Sequence[Source],
        build: Build,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.sources = tuple(sources)
        self.build = build
        self.clock = clock
        self._lock = threading.Lock()

    @property
    def metrics(self) -> tuple[Metric, ...]:
        return OWN_METRICS + tuple(m for source in self.sources for m in source.metrics)

    def describe(self) -> Iterable[Family]:
        # What the registry checks names with: without it, registering would read every source once.
        return [metric.family() for metric in self.metrics]

    def collect(self) -> Iterable[Family]:
        with self._lock:
            return list(self._collect())

    def _collect(self) -> Iterable[Family]:
        now = self.clock()
        info = BUILD_INFO.family()
        info.add_metric(
            [],
            {
                "version": self.build.version,
                "dagster_version": self.build.dagster_version,
                "commit": self.build.commit,
            },
        )
        yield info
        up, took = SOURCE_UP.family(), SOURCE_SECONDS.family()
        for source in self.sources:
            started = time.perf_counter()
            try:
                families = list(source.collect(now))
            except Exception as err:  # any failure of a source is its own: the others still answer
                log.warning("exporter: source %s not read: %s", source.name, one_line(err))
                up.add_metric([source.name], 0.0)
            else:
                yield from families
                up.add_metric([source.name], 1.0)
            took.add_metric([source.name], time.perf_counter() - started)
        yield up
        yield took
