"""`trading-assets exporter`: the Prometheus exporter (docs/operations/monitoring.md), on loopback unless
told otherwise; each scrape of /metrics reads the Dagster instance, the catalog and this host's GPUs."""

import argparse
import sys
from datetime import timedelta

from trading_assets.cli.arguments import positive_seconds


def _sources(text: str) -> tuple[str, ...]:
    from trading_assets.ops.exporter import SOURCE_NAMES

    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in SOURCE_NAMES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"{text!r}: name some of {', '.join(SOURCE_NAMES)}")
    return names


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    exporter = sub.add_parser("exporter", help="serve Prometheus metrics of Dagster, the catalog and GPUs")
    exporter.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    exporter.add_argument("--port", type=int, default=9310, help="port (default 9310)")
    exporter.add_argument(
        "--sources",
        type=_sources,
        default="dagster,catalog,gpu",
        help="what to read, comma-separated (default dagster,catalog,gpu; a GPU host's own exporter: gpu)",
    )
    exporter.add_argument(
        "--window",
        type=positive_seconds,
        default=3600.0,
        help="seconds of finished runs the durations and failures are read over (default 3600)",
    )
    exporter.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import logging

    import uvicorn

    from trading_assets import settings as cfg
    from trading_assets.ops.exporter import app, registry, sources
    from trading_assets.ops.metrics import Build, Exporter
    from trading_assets.ops.metrics_dagster import DagsterLimits

    logging.basicConfig(level=logging.INFO, format="%(asctime)s exporter %(levelname)s %(message)s")
    # Dagster's storage migrations say what they check at every start.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    settings = cfg.Settings.from_env()
    with sources(settings, args.sources, DagsterLimits(window=timedelta(seconds=args.window))) as found:
        served = app(registry(Exporter(found, Build.of_this_process())))
        print(
            f"exporter on http://{args.host}:{args.port}/metrics ({', '.join(s.name for s in found)})",
            file=sys.stderr,
            flush=True,
        )
        uvicorn.run(served, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0
