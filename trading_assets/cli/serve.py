"""`trading-assets serve`: the HTTP API on uvicorn (loopback unless told otherwise)."""

import argparse
import sys


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    serve = sub.add_parser("serve", help="serve the HTTP API (/api/v1, OpenAPI at /api/v1/docs)")
    serve.add_argument("--host", help="address to bind (default TRADING_API_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default TRADING_API_PORT or 8000)")
    serve.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import copy
    from dataclasses import replace

    import uvicorn

    from trading_assets.api.app import create_app
    from trading_assets.api.settings import ApiConfigError, ApiSettings

    try:
        settings = ApiSettings.from_env()
    except ApiConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    settings = replace(settings, host=args.host or settings.host, port=args.port or settings.port)
    if settings.host not in ("127.0.0.1", "localhost", "::1") and settings.read_token is None:
        print(
            f"warning: serving on {settings.host} with no TRADING_API_READ_TOKEN: anyone who reaches the "
            "port reads the catalog and every table",
            file=sys.stderr,
        )
    writes = "on (bearer token)" if settings.write_token else "off (no TRADING_API_WRITE_TOKEN)"
    print(f"API on http://{settings.host}:{settings.port}/api/v1 (docs /api/v1/docs); writes {writes}")
    app = create_app(settings)
    # The app logs each request itself (method, path, status, latency, client: api.app.RequestLog) on
    # uvicorn's handler; uvicorn's own access line is off, as it would log query strings.
    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    log_config["loggers"]["trading_assets"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    uvicorn.run(
        app, host=settings.host, port=settings.port, log_level="info", access_log=False, log_config=log_config
    )
    return 0
