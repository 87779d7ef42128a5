"""`trading-assets demo-data --shape S`: a sample export of another shape and its sidecar."""

import argparse
import sys
import time
from pathlib import Path

from trading_assets import settings as cfg


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    demo_data = sub.add_parser(
        "demo-data",
        help="write a sample export of another shape (daily equity, hourly FX, crypto minutes) and its "
        "sidecar naming its trading calendar",
    )
    demo_data.add_argument("--shape", choices=("equity-daily", "fx-hourly", "crypto-minute"), required=True)
    demo_data.add_argument("--rows", type=int, help="the first N bars (default: the shape's whole span)")
    demo_data.add_argument("--seed", type=int, default=25)
    demo_data.add_argument("--out", help="folder (default: the landing folder, so `make dev` imports it)")
    demo_data.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from trading_assets.compute.demo_data import SHAPES, shape_bars, write_shape

    shape = SHAPES[args.shape]
    if args.rows is not None and args.rows < 2:
        print("error: --rows must be at least 2", file=sys.stderr)
        return 2
    folder = Path(args.out) if args.out else cfg.Settings.from_env().landing_dir
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    bars = shape_bars(shape, args.rows, args.seed)
    export = write_shape(shape, folder, bars)
    first, last = bars["ts"][0].as_py(), bars["ts"][-1].as_py()
    print(
        f"{export}: {bars.num_rows} bars {first:%Y-%m-%d %H:%M} .. {last:%Y-%m-%d %H:%M} UTC, "
        f"shape {args.shape}; calendar {shape.calendar} in {shape.dataset}.json "
        f"({time.perf_counter() - started:.1f}s)"
    )
    return 0
