"""Indicator set speed: the default set (sets/default.yaml) on 1M bars, side by side with TA-Lib and pandas.

    .venv/bin/python benchmarks/indicators.py [--rows 1000000] [--repeat 5]

Prints, for the same bars and the same indicators:
- numba warm: our engine after JIT (median of --repeat runs), on one core (NUMBA_NUM_THREADS=1);
- numba fresh process: `import` + first call in a new Python process, with numba's on-disk cache filled
  (what a new Dagster step process pays), and with an empty cache (the very first run after install);
- TA-Lib: its C functions for the indicators it has, plus numpy/pandas for the few it lacks;
- pandas: straightforward rolling/ewm formulas for everything.
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
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trading_assets.compute.demo_data import generate_bars  # noqa: E402
from trading_assets.compute.indicators import compute_set, default_spec  # noqa: E402


def bars_arrays(rows: int) -> dict[str, np.ndarray]:
    table = generate_bars(n_rows=rows, seed=1)
    return {name: table.column(name).to_numpy() for name in ("open", "high", "low", "close", "volume")}


def timed(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up (JIT, caches)
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


FRESH = """
import time
import numpy as np
bars = dict(np.load({path!r}))
started = time.perf_counter()
from trading_assets.compute.indicators import compute_set, default_spec
ready = time.perf_counter()
compute_set(default_spec(), bars)
done = time.perf_counter()
print(f"{{done - ready:.3f}} {{done - started:.3f}}")
"""


def fresh_process(bars_file: Path, cache_dir: str | None) -> tuple[float, float]:
    """(first call, imports + first call) in a new interpreter; numba's cache in `cache_dir` if given."""
    env = dict(os.environ, NUMBA_NUM_THREADS="1")
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    out = subprocess.run(
        [sys.executable, "-c", FRESH.format(path=str(bars_file))],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return float(out[0]), float(out[1])


def talib_set(b: dict[str, np.ndarray]) -> None:
    import talib

    h, low, c, v = (b[k] for k in ("high", "low", "close", "volume"))
    talib.SMA(c, 20), talib.SMA(c, 50), talib.EMA(c, 20), talib.WMA(c, 20), talib.RSI(c, 14)
    talib.MACD(c, 12, 26, 9)
    upper, middle, lower = talib.BBANDS(c, 20, 2.0, 2.0)
    _pctb, _bw = (c - lower) / (upper - lower), (upper - lower) / middle
    (
        talib.ATR(h, low, c, 14),
        talib.ADX(h, low, c, 14),
        talib.PLUS_DI(h, low, c, 14),
        talib.MINUS_DI(h, low, c, 14),
    )
    talib.STOCH(h, low, c, 14, 3, 0, 3, 0), talib.CCI(h, low, c, 20), talib.WILLR(h, low, c, 14)
    talib.OBV(c, v), talib.MFI(h, low, c, v, 14), talib.ROC(c, 10), talib.MOM(c, 10)
    # Not in TA-Lib: rolling VWAP, log returns, realised volatility, z-score (numpy/pandas).
    tp = pd.Series((h + low + c) / 3)
    vol = pd.Series(v)
    (tp * vol).rolling(20).sum() / vol.rolling(20).sum()
    lc = np.log(c)
    for n in (1, 5, 20):
        lc[n:] - lc[:-n]
    pd.Series(np.diff(lc, prepend=np.nan)).rolling(20).std()
    cs = pd.Series(c)
    (cs - cs.rolling(20).mean()) / cs.rolling(20).std(ddof=0)


def pandas_set(b: dict[str, np.ndarray]) -> None:
    h, low, c, v = (pd.Series(b[k]) for k in ("high", "low", "close", "volume"))
    c.rolling(20).mean(), c.rolling(50).mean(), c.ewm(span=20, adjust=False).mean()
    weights = np.arange(1, 21, dtype=float)
    pd.Series(np.convolve(c.to_numpy(), weights[::-1] / weights.sum(), mode="full")[: len(c)])
    delta = c.diff()
    gain = delta.clip(lower=0).ewm(alpha=1 / 14, adjust=False).mean()
    loss = (-delta.clip(upper=0)).ewm(alpha=1 / 14, adjust=False).mean()
    100 - 100 / (1 + gain / loss)
    line = c.ewm(span=12, adjust=False).mean() - c.ewm(span=26, adjust=False).mean()
    signal = line.ewm(span=9, adjust=False).mean()
    line - signal
    mid, sd = c.rolling(20).mean(), c.rolling(20).std(ddof=0)
    upper, lower = mid + 2 * sd, mid - 2 * sd
    (c - lower) / (upper - lower), (upper - lower) / mid
    prev = c.shift()
    tr = pd.concat([h - low, (h - prev).abs(), (low - prev).abs()], axis=1).max(axis=1)
    atr = tr.ewm(alpha=1 / 14, adjust=False).mean()
    up, down = h.diff(), -low.diff()
    plus = pd.Series(np.where((up > down) & (up > 0), up, 0.0)).ewm(alpha=1 / 14, adjust=False).mean() / atr
    minus = (
        pd.Series(np.where((down > up) & (down > 0), down, 0.0)).ewm(alpha=1 / 14, adjust=False).mean() / atr
    )
    (100 * (plus - minus).abs() / (plus + minus)).ewm(alpha=1 / 14, adjust=False).mean()
    hh, ll = h.rolling(14).max(), low.rolling(14).min()
    k = (100 * (c - ll) / (hh - ll)).rolling(3).mean()
    k.rolling(3).mean()
    tp = (h + low + c) / 3
    tp_mean = tp.rolling(20).mean()
    md = tp.rolling(20).apply(lambda w: np.abs(w - w.mean()).mean(), raw=True, engine="cython")
    (tp - tp_mean) / (0.015 * md)
    -100 * (hh - c) / (hh - ll)
    (np.sign(c.diff()).fillna(0) * v).cumsum()
    flow = tp * v
    pos = flow.where(tp.diff() > 0, 0.0).rolling(14).sum()
    neg = flow.where(tp.diff() < 0, 0.0).rolling(14).sum()
    100 * pos / (pos + neg)
    (tp * v).rolling(20).sum() / v.rolling(20).sum()
    100 * (c / c.shift(10) - 1), c - c.shift(10)
    lc = np.log(c)
    for n in (1, 5, 20):
        lc - lc.shift(n)
    lc.diff().rolling(20).std()
    (c - c.rolling(20).mean()) / c.rolling(20).std(ddof=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--skip-pandas", action="store_true", help="pandas' rolling CCI is slow (about a minute)"
    )
    args = parser.parse_args()
    spec = default_spec()
    bars = bars_arrays(args.rows)
    columns = len(spec.columns)
    print(
        f"default set: {len(spec.entries)} indicators, {columns} columns; {args.rows:,} bars; "
        f"one core used of {os.cpu_count()}, {platform.machine()}"
    )
    ours = timed(lambda: compute_set(spec, bars), args.repeat)
    with tempfile.TemporaryDirectory() as scratch:
        bars_file = Path(scratch) / "bars.npz"
        np.savez(bars_file, **bars)
        empty_cache = Path(scratch) / "numba_cache"
        cold_call, cold_total = fresh_process(bars_file, str(empty_cache))
        fresh_process(bars_file, None)  # fills the default cache (__pycache__ beside the kernels)
        warm_call, warm_total = fresh_process(bars_file, None)
    rows = [
        ("numba, warm (after JIT)", ours),
        ("numba, fresh process, cache filled: first call", warm_call),
        ("numba, fresh process, cache filled: imports + call", warm_total),
        ("numba, fresh process, empty cache: first call (JIT)", cold_call),
        ("numba, fresh process, empty cache: imports + call", cold_total),
    ]
    try:
        rows.append(
            ("TA-Lib (+ pandas for vwap/logret/rvol/zscore)", timed(lambda: talib_set(bars), args.repeat))
        )
    except ImportError:
        rows.append(("TA-Lib: not installed (pip install ta-lib)", float("nan")))
    if not args.skip_pandas:
        rows.append(("pandas rolling/ewm formulas", timed(lambda: pandas_set(bars), 1)))
    width = max(len(label) for label, _ in rows)
    for label, seconds in rows:
        rate = args.rows / seconds / 1e6 if seconds == seconds and seconds > 0 else float("nan")
        print(f"{label:<{width}}  {seconds:8.3f} s  {rate:8.2f} M bars/s")


if __name__ == "__main__":
    main()
