"""Simulator speed: one strategy on 1M bars, ours (numba) side by side with vectorbt, and a 1,000-cell sweep.

    .venv/bin/python benchmarks/simulate.py [--rows 1000000] [--repeat 5] [--skip-vectorbt-fresh]

The bars come from `generate_bars(seed=1)` (one-minute bars); the predictions are the 60-bar forward log
return plus as much AR(1) noise (phi 0.99, seed 7), so that the 0.7/0.3 quantile thresholds give tens of
thousands of trades, some of them flips from long to short. The config: fill at the next open, 1 unit per
trade, fee 1 bp, both directions. The last 60 predictions are NaN (no forward return), so the targets end
flat and vectorbt, which leaves a trade open at the end where we close it, sees the same trades.

vectorbt gets the same trades from `Portfolio.from_signals` as in tests/unit/test_simulator_peers.py: the
target decided at bar i's close becomes a long/short entry or exit signal at bar i + 1 priced at its open
(`price=open`), `size=1, size_type="amount"`, `fees=0.0001`. Both sides get numpy arrays (vectorbt its
pandas Series) prepared beforehand. Printed:

- warm: median of --repeat calls after a first one. Ours is `simulate` whole (input checks, the kernel,
  the trades DataFrame, the series and the metrics). vectorbt twice: `from_signals` + its trade records
  (the least that yields the trades, the ratio's reference), and that plus what `simulate` also returns
  (value, cash, assets and drawdown series and `stats()`). vectorbt's first calls in this process are
  printed apart; they load or compile its numba functions.
- fresh process: a new interpreter loads the bars from a temporary .npy file (not timed), then imports
  and makes the first call; "first call" is the call alone, "imports + call" adds the import, "process"
  is the whole subprocess as the parent sees it (interpreter start included). With numba's on-disk cache
  filled (median of --repeat processes), and once with NUMBA_CACHE_DIR pointing at an empty folder (every
  kernel compiled); vectorbt's the same way, once each.
- sweep: `sweep` over 40 long x 25 short thresholds (quantiles of the predictions), NUMBA_NUM_THREADS =
  cores, median of 3 calls after a first one (and the process CPU time of those calls, all threads: on a
  machine shared with other work the wall time grows, the CPU time much less); the best cell and its
  deflated Sharpe ratio.

The trades of both sides are compared field by field; the script exits with status 1 if they differ.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", str(os.cpu_count()))

import numpy as np
import pandas as pd
import vectorbt as vbt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trading_assets.compute.demo_data import generate_bars  # noqa: E402
from trading_assets.compute.simulator import SimConfig, signals_from_predictions, simulate, sweep  # noqa: E402

HORIZON = 60
CONFIG = SimConfig(
    fill="next_open",
    fee_bps=1.0,
    sizing="units",
    units=1.0,
    initial_cash=1e7,  # 1 unit of a ~100k price: the cash must outlast the losing streaks
    bars_per_year=365 * 24 * 60,
)
LONG_QUANTILE, SHORT_QUANTILE = 0.7, 0.3
SWEEP_LONG = np.linspace(0.55, 0.95, 40)
SWEEP_SHORT = np.linspace(0.05, 0.45, 25)
AIM_RATIO, AIM_BARS_PER_S, AIM_FRESH_S, AIM_SWEEP_S = 10.0, 100e6, 2.0, 2.0


def market(rows: int) -> tuple[np.ndarray, ...]:
    """open, high, low, close of the demo bars and the noisy forward-return predictions."""
    table = generate_bars(n_rows=rows, seed=1)
    open_, high, low, close = (table.column(name).to_numpy() for name in ("open", "high", "low", "close"))
    log_close = np.log(close)
    forward = np.full(rows, np.nan)
    forward[:-HORIZON] = log_close[HORIZON:] - log_close[:-HORIZON]
    # AR(1) noise z_t = 0.99 z_{t-1} + e_t is an exponential average of e with alpha 0.01, rescaled.
    shocks = np.random.default_rng(7).standard_normal(rows)
    noise = pd.Series(shocks).ewm(alpha=0.01, adjust=False).mean().to_numpy()
    pred = forward + np.nanstd(forward) * noise / noise.std()
    return open_, high, low, close, pred


def vectorbt_signals(target: np.ndarray) -> dict[str, np.ndarray]:
    """Long/short entries and exits at the bar that trades what the bar before decided."""
    during = np.r_[0.0, target[:-1]]
    before = np.r_[0.0, during[:-1]]
    return {
        "entries": (during > 0) & (before <= 0),
        "exits": (before > 0) & (during <= 0),
        "short_entries": (during < 0) & (before >= 0),
        "short_exits": (before < 0) & (during >= 0),
    }


def vectorbt_portfolio(close: pd.Series, open_: pd.Series, signals: dict[str, np.ndarray]) -> vbt.Portfolio:
    return vbt.Portfolio.from_signals(
        close,
        **signals,
        price=open_,
        size=CONFIG.units,
        size_type="amount",
        fees=CONFIG.fee_bps / 1e4,
        init_cash=CONFIG.initial_cash,
        freq="1min",
    )


def vectorbt_trades(close: pd.Series, open_: pd.Series, signals: dict[str, np.ndarray]) -> np.ndarray:
    return vectorbt_portfolio(close, open_, signals).trades.records


def vectorbt_everything(close: pd.Series, open_: pd.Series, signals: dict[str, np.ndarray]) -> tuple:
    """What `simulate` returns, vectorbt's way: trades, the four series and the statistics."""
    portfolio = vectorbt_portfolio(close, open_, signals)
    outputs = (portfolio.value, portfolio.cash, portfolio.assets, portfolio.drawdown, portfolio.stats)
    return portfolio.trades.records, [output() for output in outputs]


def once(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def warm(fn: Callable[[], object], repeat: int) -> float:
    """Median of `repeat` calls; the caller has made the first one."""
    return statistics.median(once(fn) for _ in range(repeat))


def compare_trades(ours: pd.DataFrame, theirs: pd.DataFrame) -> list[str]:
    """What differs between our trades and vectorbt's trade records (empty if nothing)."""
    if len(ours) != len(theirs):
        return [f"trade count {len(ours):,} vs {len(theirs):,}"]
    side = np.where(theirs["direction"].to_numpy() == 0, 1, -1)  # vectorbt: 0 long, 1 short
    exact = {"entry_idx": theirs["entry_idx"], "exit_idx": theirs["exit_idx"], "side": side}
    close = {
        "size": theirs["size"],
        "entry_price": theirs["entry_price"],
        "exit_price": theirs["exit_price"],
        "pnl": theirs["pnl"],
        "fees": theirs["entry_fees"] + theirs["exit_fees"],
    }
    problems = [name for name, values in exact.items() if not np.array_equal(ours[name], values)]
    problems += [name for name, values in close.items() if not np.allclose(ours[name], values, rtol=1e-9)]
    if (theirs["status"] != 1).any():
        problems.append("vectorbt left a trade open")
    return problems


# Run by a fresh interpreter (bars and targets loaded untimed): prints "first call" and "imports + call".
FRESH = """
import time
import numpy as np
o, h, lo, c, target = np.load({path!r})
started = time.perf_counter()
{imports}
ready = time.perf_counter()
{call}
done = time.perf_counter()
print(f"{{done - ready:.3f}} {{done - started:.3f}}")
"""
OURS_FRESH = {
    "imports": "from trading_assets.compute.simulator import SimConfig, simulate",
    "call": f"simulate(o, h, lo, c, target, SimConfig(**{CONFIG.to_dict()!r}))",
}
VECTORBT_FRESH = {
    "imports": "import pandas as pd\nimport vectorbt as vbt",
    "call": f"""during = np.r_[0.0, target[:-1]]
before = np.r_[0.0, during[:-1]]
vbt.Portfolio.from_signals(
    pd.Series(c), entries=(during > 0) & (before <= 0), exits=(before > 0) & (during <= 0),
    short_entries=(during < 0) & (before >= 0), short_exits=(before < 0) & (during >= 0),
    price=pd.Series(o), size={CONFIG.units}, size_type="amount", fees={CONFIG.fee_bps / 1e4},
    init_cash={CONFIG.initial_cash}, freq="1min",
).trades.records""",
}


def fresh_process(code: dict[str, str], data: Path, cache_dir: Path | None) -> tuple[float, float, float]:
    """(first call, imports + call, whole subprocess) in a new interpreter; numba's cache in `cache_dir`."""
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = str(cache_dir)
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", FRESH.format(path=str(data), **code)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return float(out[0]), float(out[1]), time.perf_counter() - started


def fresh_rows(
    name: str, code: dict[str, str], data: Path, scratch: Path, repeat: int
) -> list[tuple[str, tuple[float, float, float]]]:
    """Fresh-process figures with the cache filled (median of `repeat`) and with an empty one."""
    fresh_process(code, data, None)  # fills the default cache (__pycache__ beside the kernels)
    runs = [fresh_process(code, data, None) for _ in range(repeat)]
    filled = tuple(statistics.median(run[k] for run in runs) for k in range(3))
    empty = fresh_process(code, data, scratch / f"empty_cache_{name}")
    return [(f"{name}, cache filled (median of {repeat})", filled), (f"{name}, empty cache", empty)]


def aim(label: str, met: bool) -> str:
    return f"aim {label}: {'met' if met else 'NOT met'}"


def processor() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--skip-vectorbt-fresh",
        action="store_true",
        help="vectorbt's fresh processes take tens of seconds (its whole library compiles with no cache)",
    )
    args = parser.parse_args()
    print(
        f"{args.rows:,} bars; {os.cpu_count()} cores, {processor()}; NUMBA_NUM_THREADS "
        f"{os.environ['NUMBA_NUM_THREADS']}; python {platform.python_version()}, "
        + ", ".join(f"{name} {version(name)}" for name in ("numpy", "pandas", "numba", "vectorbt"))
    )
    open_, high, low, close, pred = market(args.rows)
    long_at, short_at = np.nanquantile(pred, [LONG_QUANTILE, SHORT_QUANTILE])
    target = signals_from_predictions(pred, long_at, short_at)
    signals = vectorbt_signals(target)
    close_series, open_series = pd.Series(close), pd.Series(open_)
    print(
        f"config: fill {CONFIG.fill}, {CONFIG.units:g} unit per trade, fee {CONFIG.fee_bps:g} bp, direction "
        f"{CONFIG.direction}; long at pred >= q{LONG_QUANTILE}, short at pred <= q{SHORT_QUANTILE}"
    )

    def ours() -> pd.DataFrame:
        return simulate(open_, high, low, close, target, CONFIG).trades

    first_ours = once(ours)
    first_trades = once(lambda: vectorbt_trades(close_series, open_series, signals))
    first_rest = once(lambda: vectorbt_everything(close_series, open_series, signals))
    trades = ours()
    problems = compare_trades(trades, pd.DataFrame(vectorbt_trades(close_series, open_series, signals)))
    flips = int((trades["exit_idx"].to_numpy()[:-1] == trades["entry_idx"].to_numpy()[1:]).sum())
    verdict = "identical" if not problems else "DIFFERENT: " + ", ".join(problems)
    print(
        f"trades: ours {len(trades):,} ({flips} flips), vectorbt's {verdict} "
        "(entry/exit bar, side, size; prices, pnl, fees to rtol 1e-9)"
    )

    ours_warm = warm(ours, args.repeat)
    trades_warm = warm(lambda: vectorbt_trades(close_series, open_series, signals), args.repeat)
    everything_warm = warm(lambda: vectorbt_everything(close_series, open_series, signals), args.repeat)
    print(f"\none simulation, warm: median of {args.repeat} calls after the first")
    rows = [
        ("ours: simulate (trades, series, metrics)", ours_warm),
        ("vectorbt: from_signals + trade records", trades_warm),
        ("vectorbt: + value/cash/assets/drawdown + stats()", everything_warm),
    ]
    width = max(len(label) for label, _ in rows)
    for label, seconds in rows:
        print(f"  {label:<{width}}  {seconds:7.3f} s  {args.rows / seconds / 1e6:6.1f} M bars/s")
    ratio = trades_warm / ours_warm
    print(
        f"  vectorbt from_signals + trades / ours: {ratio:.1f}x; with series + stats(): "
        f"{everything_warm / ours_warm:.1f}x"
    )
    print("first call in this process (numba functions loaded from the disk cache or compiled)")
    print(
        f"  ours {first_ours:.3f} s; vectorbt from_signals + trades {first_trades:.3f} s, "
        f"then series + stats() {first_rest:.3f} s"
    )

    print("\nfresh process: first call | imports + call | whole subprocess (interpreter start included)")
    with tempfile.TemporaryDirectory() as scratch:
        data = Path(scratch) / "bars.npy"
        np.save(data, np.stack([open_, high, low, close, target]))
        fresh = fresh_rows("ours", OURS_FRESH, data, Path(scratch), args.repeat)
        if not args.skip_vectorbt_fresh:
            fresh += fresh_rows("vectorbt from_signals + trades", VECTORBT_FRESH, data, Path(scratch), 1)
    width = max(len(label) for label, _ in fresh)
    for label, (call, imports_call, process) in fresh:
        print(f"  {label:<{width}}  {call:7.3f} s  {imports_call:7.3f} s  {process:7.3f} s")

    cells = SWEEP_LONG.size * SWEEP_SHORT.size
    long_levels = np.nanquantile(pred, SWEEP_LONG)
    short_levels = np.nanquantile(pred, SWEEP_SHORT)

    def grid() -> pd.DataFrame:
        return sweep(open_, high, low, close, pred, long_levels, short_levels, CONFIG)

    first_sweep = once(grid)
    table = grid()
    cpu_started = time.process_time()
    sweep_warm = warm(grid, 3)
    sweep_cpu = (time.process_time() - cpu_started) / 3
    best = table.attrs["best"]
    cell = table.iloc[best["row"]]
    long_q, short_q = SWEEP_LONG[best["row"] // SWEEP_SHORT.size], SWEEP_SHORT[best["row"] % SWEEP_SHORT.size]
    print(
        f"\nsweep: {SWEEP_LONG.size} long x {SWEEP_SHORT.size} short quantile thresholds = {cells:,} cells "
        f"over {args.rows:,} bars, {os.environ['NUMBA_NUM_THREADS']} threads"
    )
    print(
        f"  warm (median of 3) {sweep_warm:.2f} s = {sweep_warm / cells * 1e3:.2f} ms a cell "
        f"(CPU {sweep_cpu:.2f} s a call, all threads); first call {first_sweep:.2f} s"
    )
    print(
        f"  best cell: long >= {cell['long_threshold']:.6f} (q{long_q:.3f}), "
        f"short <= {cell['short_threshold']:.6f} (q{short_q:.3f}), "
        f"{int(cell['n_trades']):,} trades, Sharpe {best['sharpe']:.2f} (annualised), "
        f"deflated Sharpe ratio {best['deflated_sharpe_ratio']:.3f}"
    )

    fresh_filled = fresh[0][1]
    print()
    print(
        aim(f"ours >= {AIM_RATIO:g}x vectorbt from_signals + trades, warm ({ratio:.1f}x)", ratio >= AIM_RATIO)
    )
    bars_per_s = args.rows / ours_warm
    print(
        aim(
            f"ours >= {AIM_BARS_PER_S / 1e6:g}M bars/s, one thread ({bars_per_s / 1e6:.1f}M bars/s)",
            bars_per_s >= AIM_BARS_PER_S,
        )
    )
    for label, seconds in (("imports + first call", fresh_filled[1]), ("whole process", fresh_filled[2])):
        print(
            aim(
                f"fresh process, cache filled, {label} < {AIM_FRESH_S:g} s ({seconds:.2f} s)",
                seconds < AIM_FRESH_S,
            )
        )
    print(
        aim(
            f"sweep of {cells:,} cells <= {AIM_SWEEP_S:g} s on {os.environ['NUMBA_NUM_THREADS']} threads "
            f"({sweep_warm:.2f} s)",
            sweep_warm <= AIM_SWEEP_S,
        )
    )
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
