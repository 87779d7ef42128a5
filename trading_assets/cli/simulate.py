"""`trading-assets simulate FILE.yaml`: a trading simulation in the foreground, without the daemon.

The same YAML as `trading-assets submit simulation`, run through the jobs the simulation sensor would
launch: `start_simulation` (registers the sim and records it as a request), then `simulate`.
"""

import argparse
import sys
import time
from typing import Any

from trading_assets import settings as cfg
from trading_assets.cli.launcher import Launcher, failure, interrupted, metadata, register_from_file

INTERRUPTED = "interrupted (Ctrl-C) in trading-assets simulate"


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    simulate = sub.add_parser(
        "simulate", help="run a trading simulation (YAML of the launchpad's config) in the foreground"
    )
    simulate.add_argument("file", help="YAML with the config's fields, as for submit simulation")
    simulate.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    registration = register_from_file(
        "simulation", args.file, "start_simulation", "register_simulation_op", "simulation"
    )
    if isinstance(registration, int):
        return registration
    launcher, config, registered = registration
    settings = cfg.Settings.from_env()
    name = registered.output_for_node("register_simulation_op")
    print(f"simulation {name}: replaying {config.run}", flush=True)
    with cfg.catalog(settings).process_config_and_initialize_cm() as catalog:
        try:
            return _simulate(launcher, catalog, name, registered, started)
        finally:
            launcher.settle_requests("simulation", catalog)


def _simulate(launcher: Launcher, catalog: Any, name: str, registered: Any, started: float) -> int:
    try:
        result = launcher.execute("simulate", partition_key=name, tags=launcher.request_tags(registered))
        if interrupted(result):
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        _settle_interrupted(catalog, name)
        print(
            f"interrupted: {name} did not finish. To resume, materialise its partition of `simulation` "
            f"(job simulate) from the UI (make dev); or run this command again for a new simulation",
            file=sys.stderr,
        )
        return 130
    if not result.success:
        print(f"error: the simulate run of {name} failed: {failure(result)}", file=sys.stderr)
        return 1
    meta = metadata(result, "simulation")
    print_metrics(name, catalog.get_simulation(name).run, meta, time.perf_counter() - started)
    return 0


def _settle_interrupted(catalog: Any, name: str) -> None:
    """Record the interrupted attempt as failed: the catalog would otherwise show it running for ever, and
    refuse to refresh the sim while it does."""
    record = catalog.get_simulation(name)
    if record is not None and record.status == "running":
        catalog.record_simulation_failure(name, INTERRUPTED)


def print_metrics(name: str, run: str, meta: dict[str, Any], seconds: float) -> None:
    """The sim's materialisation metadata `meta` as lines for people: returns, risk, trades."""
    print(f"simulation     {name}  (run {run}, {meta['dagster/row_count']} bars, {seconds:.1f}s)")
    print(
        f"metrics        total return {meta['total_return']:+.2%}, CAGR {meta['cagr']:+.2%}, Sharpe "
        f"{meta['sharpe']:.2f}, Sortino {meta['sortino']:.2f}, max drawdown {meta['max_drawdown']:.2%}"
    )
    print(
        f"               {meta['n_trades']} trades, win rate {meta['win_rate']:.1%}, profit factor "
        f"{meta['profit_factor']:.2f}, exposure {meta['exposure']:.1%}, SQN {meta['sqn']:.2f}"
    )
