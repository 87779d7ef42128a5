"""`trading-assets`: the command line.

trading-assets ingest FILE [--dataset NAME] [--tz ZONE] [--datetime-format FMT] [--calendar CAL] [--replace]
trading-assets demo [--rows N]
trading-assets demo-data --shape equity-daily|fx-hourly|crypto-minute [--rows N] [--seed S] [--out DIR]
trading-assets export TABLE [--start T] [--end T] [--columns a,b] [--format parquet|csv] [--out PATH]
trading-assets catalog [--dataset NAME]
trading-assets submit walkforward|simulation FILE.yaml [--requested-by NAME]
trading-assets walkforward FILE.yaml
trading-assets simulate FILE.yaml
trading-assets indicators FILE.yaml
trading-assets sweep RUN [FILE.yaml] [--top N]
trading-assets requests [--status S] [--id N]
trading-assets migrate [--status]
trading-assets serve [--host H] [--port P]
trading-assets exporter [--host H] [--port P] [--sources dagster,catalog,gpu] [--window S]
trading-assets venue --bars [SYMBOL=]SOURCE [--speed N] [--start T] [--host H] [--port P] [--balance A=N] ...
trading-assets live recorder|runner|executor|up|promote|start|stop|halt|resume|status ...
trading-assets backup [--out DIR] [--keep N]
trading-assets restore BACKUP [--force] [--no-verify]
trading-assets verify-backup BACKUP [--restore-check]

One module per command, each adding its parser (`add_parser`) and running it (`run`).
"""

import argparse
import logging
import sys

from trading_assets.cli import (
    backup,
    catalog,
    demo,
    demo_data,
    export,
    exporter,
    indicators,
    ingest,
    live,
    migrate,
    requests,
    serve,
    simulate,
    submit,
    sweep,
    venue,
    walkforward,
)

COMMANDS = (
    ingest,
    demo,
    demo_data,
    export,
    catalog,
    submit,
    indicators,
    walkforward,
    simulate,
    sweep,
    requests,
    serve,
    exporter,
    venue,
    live,
    migrate,
    backup,
)

# Commands that run until stopped.
SERVICES = {"serve", "venue", "live", "exporter"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trading-assets", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    args = parser.parse_args(argv)
    if args.command not in SERVICES:
        # The catalog's pool logs each failed connection attempt: a one-shot command prints the one error
        # line it ends with instead (which names the server and the reason). Services keep them in their log.
        logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    try:
        return args.run(args)
    except ValueError as err:  # e.g. TRADING_TIMESERIES=sqlite
        print(f"error: {err}", file=sys.stderr)
        return 2
