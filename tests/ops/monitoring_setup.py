"""What the monitoring tests share: the repository's monitoring files, Prometheus's binaries, two small
jobs whose runs succeed and fail, and the names of every metric the exporter and the live services export
(what rules and dashboards may query)."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import ccxt
import dagster as dg
from prometheus_client import CollectorRegistry

from trading_assets.live.executor import Executor, ExecutorConfig
from trading_assets.live.recorder import Recorder, RecorderConfig
from trading_assets.live.runner import StrategyRunner
from trading_assets.live.spool import Spool
from trading_assets.ops.metrics import OWN_METRICS, Metric
from trading_assets.ops.metrics_catalog import CatalogSource, SchemaSource
from trading_assets.ops.metrics_dagster import DagsterSource
from trading_assets.ops.metrics_gpu import GpuSource

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "deploy" / "monitoring"
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@dg.op
def train() -> None:
    time.sleep(0.05)


@dg.op
def diverge() -> None:
    raise RuntimeError("fold 3 diverged")


@dg.job
def training() -> None:
    train()


@dg.job
def broken() -> None:
    diverge()


# The names a PromQL expression gives the project's own metrics.
PROJECT_METRIC = re.compile(r"\b(?:trading|live)_[a-z0-9_]+\b")


def binary(name: str) -> str | None:
    """Prometheus's binaries come from Debian (`scripts/services.sh up` installs them)."""
    return shutil.which(name)


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def exporter_metrics() -> tuple[Metric, ...]:
    """Every metric the exporter exports, as its sources declare them."""
    declared = OWN_METRICS
    for source in (DagsterSource, CatalogSource, SchemaSource, GpuSource):
        declared += source.metrics
    return declared


def exporter_samples() -> set[str]:
    """The sample names the exporter's metrics have."""
    return {sample for metric in exporter_metrics() for sample in metric.samples}


def live_samples() -> set[str]:
    """The sample names of the live services' own /metrics, read from their registries as each service
    builds it (nothing is started: constructing a service only declares its metrics)."""
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created")}
    names: set[str] = set()
    with tempfile.TemporaryDirectory() as spool:
        registries = [CollectorRegistry() for _ in range(3)]
        Recorder(
            RecorderConfig(venue="binance", symbols=("BTC/USDT",)),
            ccxt.binance(),
            store=None,  # type: ignore[arg-type]
            registry=registries[0],
            spool=Spool(Path(spool)),
        )
        StrategyRunner(catalog=None, store=None, registry=registries[1])  # type: ignore[arg-type]
        Executor(ExecutorConfig("binance", "main", {}), None, None, None, registry=registries[2])  # type: ignore[arg-type]
        for registry in registries:
            for family in registry.collect():
                names |= {family.name + suffix for suffix in suffixes.get(family.type, ("",))}
    return names
