"""The exporter's process: its sources built from the settings, and its HTTP endpoints, `/metrics` (the
Prometheus text format, read from the sources at each request) and `/healthz` (the process answers; it
reads nothing)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from trading_assets import settings as cfg
from trading_assets.ops.metrics import Exporter, Source
from trading_assets.ops.metrics_catalog import CatalogSource, SchemaSource
from trading_assets.ops.metrics_dagster import DagsterLimits, DagsterSource
from trading_assets.ops.metrics_gpu import GpuSource

DEFAULT_PORT = 9310
# What each --sources name switches on: a GPU host's own exporter reads only its GPUs.
SOURCE_NAMES = ("dagster", "catalog", "gpu")
# A scrape waits this long for a Postgres catalog that does not answer (Prometheus gives up after 10 s).
CATALOG_TIMEOUT_S = 3.0


def catalog_for_exporter(settings: cfg.Settings) -> Any:
    """The configured catalog, read only (never migrated by the exporter) and quick to give up: one try,
    a short wait for a connection, no connection kept open while Prometheus is not asking."""
    resource = cfg.catalog(settings)
    update: dict[str, Any] = {"auto_migrate": False}
    if settings.catalog == "postgres":
        update |= {"pool_timeout_s": CATALOG_TIMEOUT_S, "retry_attempts": 1, "pool_min_size": 0}
    return resource.model_copy(update=update)


@contextlib.contextmanager
def sources(
    settings: cfg.Settings, wanted: Sequence[str] = SOURCE_NAMES, limits: DagsterLimits | None = None
) -> Iterator[list[Source]]:
    """The sources named in `wanted`, open for the `with` block (the catalog's pool closes after it)."""
    found: list[Source] = []
    with contextlib.ExitStack() as stack:
        if "dagster" in wanted:
            found.append(DagsterSource(settings.dagster_home, limits or DagsterLimits()))
        if "catalog" in wanted:
            catalog = stack.enter_context(catalog_for_exporter(settings).process_config_and_initialize_cm())
            found += [CatalogSource(catalog), SchemaSource(catalog)]
        if "gpu" in wanted:
            found.append(GpuSource())
        yield found


def registry(exporter: Exporter) -> CollectorRegistry:
    """The exporter's registry: its sources, and the process's own figures (memory, CPU, open files)."""
    registry = CollectorRegistry()
    registry.register(exporter)
    ProcessCollector(registry=registry)
    return registry


def app(registry: CollectorRegistry) -> Starlette:
    def metrics(_: Request) -> Response:
        # A plain function: Starlette runs it in a worker thread, so the sources' blocking reads never hold
        # up the event loop (and /healthz answers during a slow scrape).
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"service": "exporter", "alive": True})

    return Starlette(routes=[Route("/metrics", metrics), Route("/healthz", healthz)])
