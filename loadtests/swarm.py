"""The load generator: locust as a library in a process of its own (importing locust patches the process
for gevent), running the plan's scenarios one after another and writing each one's figures as JSON.

    python -m loadtests.swarm PLAN.json RESULTS.json

The plan is what loadtests/run.py writes: the target (URLs, names; the API's write token comes in
LOADTEST_WRITE_TOKEN) and each scenario's load from limits.yaml. Progress goes to stderr every few seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import gevent

# Importing locust monkey-patches sockets and threads: before the scenarios import requests or psycopg.
from locust.env import Environment

from loadtests.report import Result
from loadtests.scenarios import api_jobs, catalog_reads, graphql_launch, live_fanout, timeseries_stream
from loadtests.stack import TOKEN_ENV

SCENARIOS = {
    "api_jobs": api_jobs,
    "graphql_launch": graphql_launch,
    "catalog_reads": catalog_reads,
    "timeseries_stream": timeseries_stream,
    "live_fanout": live_fanout,
}
PROGRESS_S = 5.0
# The longest a user may take to finish its request once the scenario's time is up.
STOP_S = 60.0
# Each scenario first runs this long untimed: a server's first requests load what it loads lazily (the
# webserver's first launches of a job are much slower than its later ones).
WARM_S = 2.0


def run_scenario(spec: dict[str, Any], target: dict[str, Any]) -> Result:
    module = SCENARIOS[spec["name"]]
    options = argparse.Namespace(**target, **spec, write_token=os.environ[TOKEN_ENV])
    _swarm(module, options, WARM_S, progress=False)
    queued = module.queue(options) if hasattr(module, "queue") else None
    cpu = {server: _cpu_seconds(pid) for server, pid in target["pids"].items()}
    env = _swarm(module, options, spec["seconds"], progress=True)
    cpu = {server: _cpu_seconds(pid) - cpu[server] for server, pid in target["pids"].items()}
    total, runner = env.stats.total, env.runner
    errors = {f"{e.method} {e.name}: {e.error}": e.occurrences for e in env.stats.errors.values()}
    # A task that raised (the live writer losing its catalog) is an error of the scenario too.
    errors |= {f"exception: {e['msg']}": e["count"] for e in runner.exceptions.values()}
    return Result(
        name=spec["name"],
        requests=total.num_requests,
        failures=total.num_failures + sum(e["count"] for e in runner.exceptions.values()),
        rps=total.total_rps,
        p50_ms=_percentile(total, 0.50),
        p95_ms=_percentile(total, 0.95),
        p99_ms=_percentile(total, 0.99),
        errors=dict(sorted(errors.items(), key=lambda item: -item[1])[:5]),
        check=None if queued is None else _queue_check(module, options, env, queued),
        cpu_s=cpu,
    )


def _swarm(module: Any, options: argparse.Namespace, seconds: float, progress: bool) -> Environment:
    """The scenario's users for `seconds`; its environment (stats, runner) once every user stopped."""
    # At the end each user finishes the request it is in (counted, and done before the queue is counted)
    # rather than being killed in it; a user waiting between requests stops at once.
    env = Environment(
        user_classes=module.USERS, host=module.host(options), parsed_options=options, stop_timeout=STOP_S
    )
    runner = env.create_local_runner()
    started = time.time()
    options.ends_at = started + seconds
    # Users with a fixed count (the live writer) come on top of the scenario's clients.
    fixed = sum(getattr(user, "fixed_count", 0) for user in module.USERS)
    runner.start(options.users + fixed, spawn_rate=options.spawn_rate)
    printer = gevent.spawn(_progress, env, options, started) if progress else None
    gevent.spawn_later(seconds, runner.quit)
    runner.greenlet.join()
    if printer is not None:
        printer.kill()
    return env


def _queue_check(
    module: Any, options: argparse.Namespace, env: Environment, before: tuple[int, ...]
) -> str | None:
    """Whether each of the module's queue counts grew by exactly the submissions the scenario had accepted."""
    entry = env.stats.get(module.NAME, "POST")
    accepted = entry.num_requests - entry.num_failures
    grown = tuple(after - first for after, first in zip(module.queue(options), before, strict=True))
    if all(count == accepted for count in grown):
        return None
    return f"{module.QUEUE} grew by {', '.join(map(str, grown))} while {accepted} were accepted"


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process and its living descendants, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    # utime and stime are the 14th and 15th fields of stat, counted from the pid.
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(_cpu_seconds(int(child)) for child in children)


def _percentile(entry: Any, share: float) -> float:
    return float(entry.get_response_time_percentile(share) or 0) if entry.num_requests else 0.0


def _progress(env: Environment, options: argparse.Namespace, started: float) -> None:
    while True:
        gevent.sleep(PROGRESS_S)
        total = env.stats.total
        print(
            f"  {options.name:<18} {time.time() - started:4.0f}/{options.seconds:.0f} s  "
            f"users {env.runner.user_count:>3}  requests {total.num_requests:>6}  "
            f"errors {total.num_failures:>4}  p95 {_percentile(total, 0.95):6.0f} ms",
            file=sys.stderr,
            flush=True,
        )


def main(argv: list[str]) -> int:
    plan = json.loads(Path(argv[0]).read_text())
    results = []
    for spec in plan["scenarios"]:
        print(
            f"{spec['name']}: {spec['users']} users for {spec['seconds']:.0f} s", file=sys.stderr, flush=True
        )
        results.append(asdict(run_scenario(spec, plan["target"])))
    Path(argv[1]).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
