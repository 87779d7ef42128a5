"""Health endpoints of a live service: `/healthz` (the loop runs), `/readyz` (ready to do its job, with
the reasons when not) and `/metrics` (Prometheus text), on a small app served in the service's own loop.

A supervisor restarts a service whose `/healthz` fails and holds traffic from one whose `/readyz` fails;
each service says what "ready" means for it (the recorder: connected and caught up; the executor:
reconciled).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


class Health:
    """What the endpoints report: a beat from the service's loop, and its readiness with reasons."""

    def __init__(self, service: str, registry: CollectorRegistry, stale_after_s: float = 30.0) -> None:
        self.service = service
        self.registry = registry
        self.stale_after_s = stale_after_s
        self._beat = time.monotonic()
        self._not_ready: Callable[[], list[str]] = lambda: ["starting"]

    def beat(self) -> None:
        """The service's loop is alive (called from it at least every `stale_after_s`)."""
        self._beat = time.monotonic()

    def readiness(self, not_ready: Callable[[], list[str]]) -> None:
        """Set how readiness is judged: the reasons the service is not ready (none: ready)."""
        self._not_ready = not_ready

    def alive(self) -> tuple[bool, float]:
        quiet = time.monotonic() - self._beat
        return quiet <= self.stale_after_s, quiet

    def app(self) -> Starlette:
        async def healthz(_: Request) -> JSONResponse:
            ok, quiet = self.alive()
            body = {"service": self.service, "alive": ok, "last_beat_s_ago": round(quiet, 3)}
            return JSONResponse(body, status_code=200 if ok else 503)

        async def readyz(_: Request) -> JSONResponse:
            ok, _quiet = self.alive()
            reasons = self._not_ready() + ([] if ok else ["the service loop is stuck"])
            body = {"service": self.service, "ready": not reasons, "reasons": reasons}
            return JSONResponse(body, status_code=200 if not reasons else 503)

        async def metrics(_: Request) -> Response:
            return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

        routes = [Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", metrics)]
        return Starlette(routes=routes)


@contextlib.asynccontextmanager
async def serving(health: Health, host: str, port: int):  # type: ignore[no-untyped-def]
    """Serve `health`'s endpoints in this loop for the `async with` block; `port` 0 picks a free one,
    yielded as the bound port."""
    config = uvicorn.Config(health.app(), host=host, port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # the bind failed: raise its error
            raise RuntimeError(f"{health.service}: the health server stopped before it started")
        await asyncio.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield bound
    finally:
        server.should_exit = True
        await task
