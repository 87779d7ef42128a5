"""`trading-assets requests`: list job requests and where they stand."""

import argparse
import sys

from trading_assets import settings as cfg
from trading_assets.cli.tables import print_table, when
from trading_assets.records import JOB_STATUSES


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    requests = sub.add_parser("requests", help="list job requests and where they stand")
    requests.add_argument("--status", choices=JOB_STATUSES)
    requests.add_argument("--id", type=int, help="one request, with its runs and their links")
    requests.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        with cfg.catalog(cfg.Settings.from_env()).process_config_and_initialize_cm() as catalog:
            if args.id is not None:
                found = catalog.get_job_request(args.id)
                requests = [] if found is None else [found]
            else:
                requests = catalog.list_job_requests([args.status] if args.status else None)
            runs = {request.id: catalog.list_job_runs(request.id) for request in requests}
    except (RuntimeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print_table(
        "job requests",
        ("id", "kind", "by", "status", "target", "runs", "created (UTC)", "finished (UTC)", "message"),
        [
            (
                r.id,
                r.kind,
                r.requested_by,
                r.status,
                r.target,
                len(runs[r.id]),
                when(r.created_at),
                when(r.finished_at),
                r.message,
            )
            for r in requests
        ],
    )
    if args.id is not None:
        print_table(
            "runs",
            ("run", "job", "partition", "status", "started (UTC)", "finished (UTC)", "link"),
            [
                (
                    j.run_id,
                    j.job_name,
                    j.partition,
                    j.status,
                    when(j.started_at),
                    when(j.finished_at),
                    j.url,
                )
                for j in runs.get(args.id, [])
            ],
        )
    return 0
