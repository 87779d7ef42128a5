"""Small PNG charts for asset metadata (rendered off-screen with matplotlib's Agg backend)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # no display on workers; must precede pyplot's import
import matplotlib.pyplot as plt
import numpy as np

# A chart has at most this many x positions; each shows the min-max range of its bucket and its last close.
_MAX_POINTS = 1500


def close_price_png(ts_us: np.ndarray, close: np.ndarray, title: str) -> bytes:
    """A 600x200 PNG of the close price; buckets of bars are drawn as their low-high envelope."""
    n = close.size
    step = max(1, -(-n // _MAX_POINTS))
    edges = np.arange(0, n, step)
    x = (ts_us[edges] // 1_000_000).astype("datetime64[s]")
    fig, ax = plt.subplots(figsize=(6, 2), dpi=100)
    try:
        if step > 1:
            ax.fill_between(
                x,
                np.minimum.reduceat(close, edges),
                np.maximum.reduceat(close, edges),
                color="#9ecae1",
                linewidth=0,
            )
        ax.plot(x, close[np.minimum(edges + step - 1, n - 1)], color="#08519c", linewidth=0.8)
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        fig.autofmt_xdate()
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", metadata={"Software": None})
    finally:
        plt.close(fig)
    return buf.getvalue()
