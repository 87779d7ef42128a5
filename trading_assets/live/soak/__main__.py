"""`python -m trading_assets.live.soak [--days 7] [--seed 7] [--speed 1440]` (what `make soak` runs): the
faulted replay of `harness.py`; prints the fault schedule's outcome, the figures and the invariants, and
exits 1 if any invariant fails (the soak's folder is then kept for a look at the services' logs)."""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
from pathlib import Path

from resources.local_servers import ServerError
from trading_assets.live.soak.harness import Soak, SoakConfig, SoakError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trading_assets.live.soak", description=__doc__)
    parser.add_argument("--days", type=float, default=7.0, help="simulated days replayed (default 7)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the fault schedule (default 7)")
    parser.add_argument("--speed", type=float, default=1440.0, help="simulated seconds per wall second")
    parser.add_argument(
        "--recover-s", type=float, default=30.0, help="wall seconds a fault's lag must clear in (default 30)"
    )
    parser.add_argument(
        "--spacing-s",
        type=float,
        default=20.0,
        help="wall seconds at least between heavy faults (default 20)",
    )
    parser.add_argument(
        "--kills",
        choices=("both", "one"),
        default="both",
        help="each service killed -9 and -15, or one of them",
    )
    parser.add_argument("--root", type=Path, help="the soak's folder (default: a new temporary one)")
    parser.add_argument(
        "--keep", action="store_true", help="keep the folder (logs, servers' data) after a pass"
    )
    args = parser.parse_args(argv)
    root = args.root or Path(tempfile.mkdtemp(prefix="soak-"))
    config = SoakConfig(
        root=root,
        days=args.days,
        seed=args.seed,
        speed=args.speed,
        recover_s=args.recover_s,
        spacing_s=args.spacing_s,
        kills=args.kills,
        keep=args.keep,
    )
    # SIGTERM as Ctrl-C: the soak's servers and services are stopped on the way out either way.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        report = Soak(config).run()
    except (SoakError, ServerError, ValueError) as err:
        print(f"soak: error: {err}\nsoak: logs in {root}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"soak: interrupted; logs in {root}", file=sys.stderr)
        return 130
    print(report.text())
    if not report.ok:
        print(f"soak: logs in {root}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
