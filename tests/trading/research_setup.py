"""The small research pipeline the live tests promote strategies from: dataset btc25 (3,000 one-minute
bars), indicator set btc25_1 and a completed 2-fold walkforward run btc25_run1. It is the soak's own
(`trading_assets.live.soak.research`), so the tests and the soak start from the same pipeline."""

from trading_assets.live.soak.research import BARS, RUN, SET, Research, build_research, open_research

__all__ = ["BARS", "RUN", "SET", "Research", "build_research", "open_research"]
