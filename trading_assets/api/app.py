"""The API service: FastAPI on the catalog and the time-series store, versioned under /api/v1.

`create_app()` builds it from the environment (trading_assets.settings for the stores, api.settings for
where it listens, tokens and limits); tests pass their own catalog and store. Every error is JSON
(`Problem`): `detail` for people, `problems` naming each wrong field; no stack trace ever reaches a client
(the server logs it with an id that the response repeats).
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from resources.catalog import Catalog
from resources.timeseries import TimeSeriesStore
from trading_assets.api import live_routes, routes
from trading_assets.api.settings import ApiSettings

log = logging.getLogger("trading_assets.api")
# One line per request (RequestLog), apart from the errors so a deployment can route or silence it.
requests_log = logging.getLogger("trading_assets.api.requests")

API_PREFIX = "/api/v1"


def create_app(
    settings: ApiSettings | None = None,
    *,
    catalog: Catalog | None = None,
    store: TimeSeriesStore | None = None,
) -> FastAPI:
    """The app; the catalog and store default to the configured ones (TRADING_CATALOG, TRADING_TIMESERIES)."""
    settings = settings or ApiSettings.from_env()
    # The configured resources are held open for the server's life and torn down when it stops: the
    # Postgres catalog has a teardown (its pool), which process_config_and_initialize() refuses.
    resources = contextlib.ExitStack()
    if catalog is None or store is None:
        from trading_assets import settings as cfg

        configured = cfg.Settings.from_env()
        catalog = catalog or resources.enter_context(
            cfg.catalog(configured).process_config_and_initialize_cm()
        )
        store = store or resources.enter_context(
            cfg.timeseries_store(configured).process_config_and_initialize_cm()
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with resources:
            yield

    app = FastAPI(
        lifespan=lifespan,
        title="trading-assets",
        version="1",
        summary="Catalog, time series and jobs of the trading-assets platform",
        description="Reads need `Authorization: Bearer <token>` when TRADING_API_READ_TOKEN is set; writes "
        "always need TRADING_API_WRITE_TOKEN's value. Errors are `Problem` objects.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.catalog = catalog
    app.state.store = store
    app.include_router(routes.catalog_router, prefix=API_PREFIX, dependencies=[Depends(routes.require_read)])
    app.include_router(routes.series_router, prefix=API_PREFIX, dependencies=[Depends(routes.require_read)])
    app.include_router(routes.jobs_router, prefix=API_PREFIX)
    app.include_router(live_routes.router, prefix=API_PREFIX)
    _dashboard(app)
    _errors(app)
    # Outermost but the log: a body over the limit is refused before anything reads it.
    app.add_middleware(BodyLimit, max_body=settings.max_body)
    app.add_middleware(RequestLog)
    return app


STATIC = Path(__file__).with_name("static")


def _dashboard(app: FastAPI) -> None:
    """The dashboard: static pages (no build step, no CDN: uPlot is shipped under static/vendor) that read
    the same API as any other client."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/explore", include_in_schema=False)
    def explore_page() -> FileResponse:
        return FileResponse(STATIC / "explore.html")

    @app.get("/compare", include_in_schema=False)
    def compare_page() -> FileResponse:
        return FileResponse(STATIC / "compare.html")

    @app.get("/jobs", include_in_schema=False)
    def jobs_page() -> FileResponse:
        return FileResponse(STATIC / "jobs.html")

    @app.get("/live", include_in_schema=False)
    def live_page() -> FileResponse:
        return FileResponse(STATIC / "live.html")

    @app.get("/runs/{name}", include_in_schema=False)
    def run_page(name: str) -> FileResponse:
        return FileResponse(STATIC / "run.html")

    @app.get("/sims/{name}", include_in_schema=False)
    def simulation_page(name: str) -> FileResponse:
        return FileResponse(STATIC / "sim.html")


def _problem(status: int, detail: str, problems: list[dict[str, str]] | None = None, **headers: str) -> Any:
    return JSONResponse({"detail": detail, "problems": problems or []}, status_code=status, headers=headers)


def _errors(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Any:
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        problems = exc.detail.get("problems") if isinstance(exc.detail, dict) else None
        if isinstance(exc.detail, dict):
            detail = str(exc.detail.get("detail", detail))
        return _problem(exc.status_code, detail, problems, **(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Any:
        # loc is (where, *path): "query"/"path"/"header" and the parameter, or "body" and the field's path
        # ("(top)" for the body as a whole, as the job-request intake says it).
        problems = [{"field": _field(error["loc"]), "problem": error["msg"]} for error in exc.errors()]
        listed = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
        return _problem(422, f"invalid request: {listed}", problems)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> Any:
        # The client gets an id to quote; the log has the trace (no request headers, so no token).
        error_id = uuid.uuid4().hex[:12]
        log.error("error %s on %s %s", error_id, request.method, request.url.path, exc_info=exc)
        return _problem(500, f"internal error {error_id}: the server's log has the details")


def _field(loc: Any) -> str:
    path = ".".join(str(part) for part in loc[1:])
    if path:
        return path
    return "(top)" if not loc or loc[0] == "body" else str(loc[0])


class RequestLog:
    """Logs each HTTP request once answered, as one line: method, path, status, latency in ms and client,
    e.g. `GET /api/v1/datasets 200 3.1 ms 10.0.0.7:51234`. Never the query string (a client may put a secret
    there) nor a header (the bearer token is one). A request whose handling raised logs 500, what the
    client gets; a stream (the live events) logs when it ends."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def status_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, status_send)
        finally:
            client = scope.get("client")
            took_ms = (time.perf_counter() - started) * 1000
            who = f"{client[0]}:{client[1]}" if client else "-"
            requests_log.info("%s %s %d %.1f ms %s", scope["method"], scope["path"], status, took_ms, who)


class BodyLimit:
    """Refuses a request whose body is larger than `max_body` bytes with 413, whether it says its length
    (Content-Length) or streams it in chunks, before the app reads more than the limit."""

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _send_problem(send, 400, "Content-Length is not a number")
                    return
                if declared > self.max_body:
                    await _send_problem(send, 413, f"request body over {self.max_body} bytes")
                    return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    # FastAPI passes an HTTPException raised while it reads the body on to its handler.
                    raise StarletteHTTPException(413, f"request body over {self.max_body} bytes")
            return message

        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, tracking_send)
        except StarletteHTTPException as exc:  # read outside FastAPI's handlers
            if started or exc.status_code != 413:
                raise
            await _send_problem(send, 413, f"request body over {self.max_body} bytes")


async def _send_problem(send: Callable[[Message], Awaitable[None]], status: int, detail: str) -> None:
    import json

    body = json.dumps({"detail": detail, "problems": []}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
