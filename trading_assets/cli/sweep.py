"""`trading-assets sweep RUN [FILE.yaml]`: a threshold sweep of a walkforward run in the foreground.

The job the launchpad runs for it, `sweep_thresholds` (asset `simulation_sweep`, partition: the run), with
the same config: the file's fields, or the defaults without one. No sensor launches sweeps, so a daemon
alive on the same instance never runs it a second time. The sweep's cells run in one parallel kernel call,
so the progress is its start and its end; the command ends with the best cells and the best one's deflated
Sharpe ratio.
"""

import argparse
import math
import sys
import time
from typing import Any

from trading_assets import settings as cfg
from trading_assets.cli.launcher import Launcher, failure, interrupted, metadata

TOP = 10


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    sweep = sub.add_parser(
        "sweep", help="sweep thresholds (and stops) over a walkforward run's predictions, in the foreground"
    )
    sweep.add_argument("name", metavar="RUN", help="the walkforward run, e.g. btc25_run1")
    sweep.add_argument("file", nargs="?", help="YAML of the sweep's launchpad config (default: its defaults)")
    sweep.add_argument("--top", type=int, default=TOP, help=f"cells to print, best first (default {TOP})")
    sweep.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from trading_assets.cli.submit import read_yaml
    from trading_assets.partitions import walkforward_runs
    from trading_assets.requests.service import RequestInvalid, typed_config
    from trading_assets.simulation.assets import SweepConfig

    try:
        config = (
            SweepConfig()
            if args.file is None
            else typed_config(SweepConfig, read_yaml(args.file), args.file, "sweep")
        )
    except RequestInvalid as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    launcher = Launcher.for_settings(cfg.Settings.from_env(), log_level="CRITICAL")
    if not launcher.instance.has_dynamic_partition(walkforward_runs.name, args.name):
        print(
            f"error: there is no walkforward run {args.name!r} (trading-assets catalog lists them)",
            file=sys.stderr,
        )
        return 1
    stops = len(config.stop_loss_pcts) + len(config.take_profit_pcts) or 1
    grid = f"{len(config.long_quantiles)} long x {len(config.short_quantiles)} short quantiles"
    print(
        f"sweep {args.name}: {grid} x {stops} stop setting{'s' if stops > 1 else ''}, fee {config.fee_bps:g} "
        f"bps, fill {config.fill}",
        flush=True,
    )
    started = time.perf_counter()
    try:
        result = launcher.execute(
            "sweep_thresholds",
            partition_key=args.name,
            ops={"simulation_sweep": {"config": config.model_dump()}},
        )
        if interrupted(result):
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        print(
            f"interrupted: the sweep of {args.name} did not finish; it records nothing in the catalog, and a "
            f"sweep table is only replaced by a finished sweep. To resume, run this command again",
            file=sys.stderr,
        )
        return 130
    if not result.success:
        print(f"error: the sweep of {args.name} failed: {failure(result)}", file=sys.stderr)
        return 1
    meta = metadata(result, "simulation_sweep")
    asked = len(config.long_quantiles) * len(config.short_quantiles) * stops
    once = " (quantiles on the same prediction count once)" if meta["cells"] < asked else ""
    print(
        f"swept {meta['cells']} cells{once} in {time.perf_counter() - started:.1f}s: {meta['metrics_table']}"
    )
    _print_top(meta, args.top)
    return 0


def _print_top(meta: dict[str, Any], top: int) -> None:
    """The best cells by Sharpe ratio, then the best one's deflated Sharpe ratio."""
    import pandas as pd

    table = pd.read_parquet(meta["metrics_table"])
    stops = [c for c in ("stop_loss_pct", "take_profit_pct") if table[c].notna().any()]
    best = table.sort_values("sharpe", ascending=False, na_position="last").head(top)
    heads = {"stop_loss_pct": "stop loss", "take_profit_pct": "take profit"}
    print(
        f"{'long >=':>10}  {'short <=':>10}  {''.join(f'{heads[c]:>11}  ' for c in stops)}{'trades':>6}  "
        f"{'Sharpe':>6}  {'return':>8}  {'max DD':>7}  {'win rate':>8}"
    )
    for _, cell in best.iterrows():
        print(
            f"{cell['long_threshold']:>10.4g}  {cell['short_threshold']:>10.4g}  "
            f"{''.join(f'{_percent(cell[c]):>11}  ' for c in stops)}{int(cell['n_trades']):>6}  "
            f"{cell['sharpe']:>6.2f}  {cell['total_return']:>+8.2%}  {cell['max_drawdown']:>7.2%}  "
            f"{_percent(cell['win_rate']):>8}"
        )
    chosen = meta["best_cell"]
    if not chosen:
        print("best cell      none: no cell has a Sharpe ratio (no trades, or flat equity)")
        return
    trials = chosen["n_trials"]
    print(
        f"best cell      Sharpe {chosen['sharpe']:.2f}, deflated Sharpe ratio "
        f"{chosen['deflated_sharpe_ratio']:.3f} over {trials} trials"
    )
    print(f"               (the chance it beats the best of {trials} luck-only cells; 0.5 or below: luck)")


def _percent(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1%}"
