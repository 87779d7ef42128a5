"""`python -m trading_assets.cli`: the same as `trading-assets`."""

import sys

from trading_assets.cli import main

sys.exit(main())
