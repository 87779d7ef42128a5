"""`make loadtest`: every scenario against the platform on loopback, figures against limits.yaml.

    python -m loadtests.run                      # the limits' durations (20 s each)
    python -m loadtests.run --seconds 3 --rows 20000 --only catalog_reads live_fanout
    python -m loadtests.run --only live_fanout --users 50   # where it breaks: more users than the limits'
    python -m loadtests.run --json report.json   # the figures as JSON too

Needs the project's servers (`scripts/services.sh up`: Postgres and QuestDB on loopback); builds its data on
them in fresh databases and tables, dropped afterwards. Prints progress while it runs, then one row per
scenario (requests, rps, p50, p95, p99, errors, the limit, pass or FAIL). Exit status: 0 when every scenario
is within its limits, 1 when one is not, 2 when it could not run (a wrong limits file, a server down).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

from loadtests.limits import DEFAULT_FILE, SCENARIOS, LimitsError, load_limits
from loadtests.report import Result, problems, table


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m loadtests.run", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--limits", type=Path, default=DEFAULT_FILE, help="the limits file (loadtests/limits.yaml)"
    )
    parser.add_argument(
        "--seconds", type=float, help="run every scenario this long instead of its own duration"
    )
    parser.add_argument(
        "--rows", type=int, help="bars in the streamed table instead of the file's stream_rows"
    )
    parser.add_argument("--users", type=int, help="run the chosen scenarios with this many users (a probe)")
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, help="run these scenarios only")
    parser.add_argument("--json", type=Path, help="also write the figures and verdicts to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.seconds is not None and args.seconds <= 0:
        say("error: --seconds must be above 0")
        return 2
    for flag in ("users", "rows"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            say(f"error: --{flag} must be at least 1")
            return 2
    try:
        limits = load_limits(args.limits, args.seconds)
    except LimitsError as err:
        say(f"error: {err}")
        return 2
    from loadtests.stack import ROOT, StackError, stack

    chosen = [limits.scenarios[name] for name in SCENARIOS if not args.only or name in args.only]
    if args.users:
        chosen = [replace(scenario, users=args.users) for scenario in chosen]
    ran = {scenario.name: scenario for scenario in chosen}
    started = time.monotonic()
    try:
        with stack(args.rows or limits.stream_rows, say) as target, tempfile.TemporaryDirectory() as work:
            plan = Path(work, "plan.json")
            plan.write_text(json.dumps({"target": asdict(target), "scenarios": [asdict(s) for s in chosen]}))
            out = Path(work, "results.json")
            swarm = subprocess.run([sys.executable, "-m", "loadtests.swarm", str(plan), str(out)], cwd=ROOT)
            if swarm.returncode != 0:
                say(f"error: the load generator exited with status {swarm.returncode}")
                return 2
            results = [Result(**entry) for entry in json.loads(out.read_text())]
    except StackError as err:
        say(f"error: {err}")
        return 2
    print(table(results, ran))
    failed = [r.name for r in results if problems(r, ran[r.name])]
    took = time.monotonic() - started
    print(f"{len(results) - len(failed)} of {len(results)} scenarios within their limits ({took:.0f} s)")
    if args.json:
        verdicts = [
            asdict(r) | {"limit": asdict(ran[r.name]), "passed": r.name not in failed} for r in results
        ]
        args.json.write_text(json.dumps(verdicts, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
