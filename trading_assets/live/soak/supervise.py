"""`python -m trading_assets.live.soak.supervise SERVICES.json`: the soak's services under the project's
supervisor (`trading_assets.cli.live.Supervisor`, what `trading-assets live up` runs), from a JSON object
{"commands": {service: command line}, "health": {service: health URL}}. The soak kills the children; only
the supervisor brings them back."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from trading_assets.cli.live import Supervisor


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m trading_assets.live.soak.supervise SERVICES.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[0]).read_text())
    return Supervisor(spec["commands"], dict(os.environ), health=spec.get("health")).run()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
