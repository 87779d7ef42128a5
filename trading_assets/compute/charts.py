"""Small PNG charts for asset metadata (rendered off-screen with matplotlib's Agg backend)."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def _pyplot() -> ModuleType:
    """matplotlib's pyplot on the Agg backend, imported by the first chart drawn: it takes most of a
    second, which a run that draws nothing (a fold step, a sensor's code server) does not pay."""
    import matplotlib

    matplotlib.use("Agg")  # no display on workers; must precede pyplot's import
    import matplotlib.pyplot as plt

    return plt


# A chart has at most this many x positions; each shows the min-max range of its bucket and its last close.
_MAX_POINTS = 1500

_PRICE_LINE = "#08519c"
_PRICE_ENVELOPE = "#9ecae1"
# Overlay lines, in the mapping's order; none is blue so they stand apart from the price.
_OVERLAY_COLORS = ("#e6550d", "#31a354", "#756bb1", "#d62728", "#636363", "#8c6d31")

# Histogram grid: panels per row, inches per row, and the most rows the figure grows for. 40 columns
# (10 rows) keep their full size; beyond that the panels shrink instead of the image growing without bound.
_HIST_NCOLS = 4
_HIST_ROW_IN = 1.6
_HIST_MAX_ROWS = 10
_HIST_BINS = 40
# Bins span these quantiles, so a single outlier does not squash the rest of the column into one bin.
_HIST_QUANTILES = (0.005, 0.995)
_HIST_COLORS = ("#3182bd", "#e6550d")


@dataclass(frozen=True)
class _Buckets:
    """Consecutive runs of `step` bars, so that a series of `n` bars has at most _MAX_POINTS x positions."""

    starts: np.ndarray
    step: int
    n: int

    @classmethod
    def of(cls, n: int) -> _Buckets:
        step = max(1, -(-n // _MAX_POINTS))
        return cls(np.arange(0, n, step), step, n)

    def x(self, ts_us: np.ndarray) -> np.ndarray:
        """The time of each bucket's first bar (epoch microseconds in, datetime64[s] out)."""
        return (ts_us[self.starts] // 1_000_000).astype("datetime64[s]")

    def last(self, values: np.ndarray) -> np.ndarray:
        """Each bucket's last value."""
        return values[np.minimum(self.starts + self.step - 1, self.n - 1)]

    def envelope(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Each bucket's (low, high); None when every bucket is one bar, with nothing to span."""
        if self.step == 1:
            return None
        return np.minimum.reduceat(values, self.starts), np.maximum.reduceat(values, self.starts)

    def last_finite(self, values: np.ndarray) -> np.ndarray:
        """Each bucket's last finite value, NaN for a bucket with none (an indicator's warm-up)."""
        if self.step == 1:
            return values
        # The index of each finite value, -1 elsewhere: a bucket's maximum is its last finite index, and
        # it lies before the bucket's start only when the bucket has no finite value at all.
        index = np.where(np.isfinite(values), np.arange(self.n), -1)
        last = np.maximum.reduceat(index, self.starts)
        return np.where(last >= self.starts, values[last], np.nan)


def _png(fig: Figure) -> bytes:
    """The figure as PNG bytes, without the matplotlib version stamp so equal charts give equal bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _draw_price(
    ax: Axes, ts_us: np.ndarray, close: np.ndarray, label: str | None = None
) -> tuple[_Buckets, np.ndarray]:
    """Draws the bucketed close price (low-high envelope and last close); returns the buckets and their x."""
    buckets = _Buckets.of(close.size)
    x = buckets.x(ts_us)
    envelope = buckets.envelope(close)
    if envelope is not None:
        ax.fill_between(x, *envelope, color=_PRICE_ENVELOPE, linewidth=0)
    ax.plot(x, buckets.last(close), color=_PRICE_LINE, linewidth=0.8, label=label)
    return buckets, x


def _finish_price_chart(fig: Figure, ax: Axes, title: str, title_loc: str = "center") -> bytes:
    """Title, ticks and layout shared by the price charts; returns the PNG."""
    ax.set_title(title, fontsize=9, loc=title_loc)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    return _png(fig)


def close_price_png(ts_us: np.ndarray, close: np.ndarray, title: str) -> bytes:
    """A 600x200 PNG of the close price; buckets of bars are drawn as their low-high envelope."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 2), dpi=100)
    try:
        _draw_price(ax, ts_us, close)
        return _finish_price_chart(fig, ax, title)
    finally:
        plt.close(fig)


def indicator_overlay_png(
    ts_us: np.ndarray, close: np.ndarray, overlays: Mapping[str, np.ndarray], title: str
) -> bytes:
    """A 600x250 PNG of the close price with indicator series (moving averages, bands) drawn over it.

    Long series are bucketed as in close_price_png. Each overlay is drawn at its bucket's last finite
    value: the price line is the bucket's last close, so price and overlay stay comparable at every x
    (a bucket mean would lag the price line by half a bucket and blur crossings). NaNs, such as an
    indicator's warm-up, leave gaps; an overlay that is all NaN keeps its legend entry and draws nothing.
    """
    plt = _pyplot()
    for name, values in overlays.items():
        if values.shape != close.shape:
            raise ValueError(f"overlay {name!r} has shape {values.shape}, close has {close.shape}")
    fig, ax = plt.subplots(figsize=(6, 2.5), dpi=100)
    try:
        buckets, x = _draw_price(ax, ts_us, close, label="close")
        for i, (name, values) in enumerate(overlays.items()):
            color = _OVERLAY_COLORS[i % len(_OVERLAY_COLORS)]
            ax.plot(x, buckets.last_finite(values), color=color, linewidth=0.9, label=name)
        # Above the axes, right of the title, so it never hides the data (loc="best" would also scan every
        # vertex, which is slow); the close line always gives the legend at least one entry.
        ax.legend(
            loc="lower right",
            bbox_to_anchor=(1, 1),
            ncols=1 + len(overlays),
            fontsize=7,
            frameon=False,
            borderaxespad=0.2,
            handlelength=1.5,
            columnspacing=1,
        )
        return _finish_price_chart(fig, ax, title, title_loc="left")
    finally:
        plt.close(fig)


@dataclass(frozen=True)
class _HistPanel:
    """One column's histogram, ready to draw: bin edges and one row of heights per part, or a note."""

    name: str
    edges: np.ndarray | None
    # One entry without a split (counts), two with one (each part's fraction of its finite values, so that
    # parts of different sizes compare).
    heights: tuple[np.ndarray, ...]
    note: str | None = None


def _bin_edges(finite: np.ndarray) -> np.ndarray | str:
    """Common bin edges for a column's finite values, or a note saying why there are none."""
    if finite.size == 0:
        return "no finite values"
    # Rounded outwards to values of the column, so a short column (under 200 values) keeps its min and max
    # and none of its values falls outside the bins.
    lo = float(np.quantile(finite, _HIST_QUANTILES[0], method="lower"))
    hi = float(np.quantile(finite, _HIST_QUANTILES[1], method="higher"))
    if lo == hi:
        # Nearly all values equal: fall back to the full range so the few others still show.
        lo, hi = float(finite.min()), float(finite.max())
        if lo == hi:
            return f"constant {lo:g}"
    return np.linspace(lo, hi, _HIST_BINS + 1)


def _histogram_panels(columns: Mapping[str, np.ndarray], split: int | None) -> list[_HistPanel]:
    """The data behind histogram_grid_png, one panel per column in the mapping's order.

    Values outside the bins (the outer 0.5% on each side) are left out rather than piled into the edge
    bins, which would draw a spike at both ends of every column.
    """
    panels = []
    for name, column in columns.items():
        values = np.asarray(column, dtype=np.float64)
        finite = values[np.isfinite(values)]
        edges = _bin_edges(finite)
        if isinstance(edges, str):
            panels.append(_HistPanel(name, None, (), edges))
            continue
        if split is None:
            panels.append(_HistPanel(name, edges, (np.histogram(finite, edges)[0].astype(np.float64),)))
            continue
        heights = []
        for part in (values[:split], values[split:]):
            part = part[np.isfinite(part)]
            counts = np.histogram(part, edges)[0].astype(np.float64)
            heights.append(counts / part.size if part.size else counts)
        panels.append(_HistPanel(name, edges, tuple(heights)))
    return panels


def histogram_grid_png(
    columns: Mapping[str, np.ndarray],
    split: int | None = None,
    labels: tuple[str, str] = ("first half", "second half"),
) -> bytes:
    """A PNG grid of small histograms, one per column (4 to a row), NaN and ±inf ignored.

    With `split`, each panel overlays rows [:split] and rows [split:] on common bins as fractions of
    each part, named by `labels` in one legend for the figure, so drift between the earlier and the
    later data shows. Bins: 40 over the column's 0.5%..99.5% quantile range. A column that is constant
    or has no finite value gets a note instead of bars.
    """
    plt = _pyplot()
    from matplotlib.patches import Patch

    panels = _histogram_panels(columns, split)
    nrows = max(1, math.ceil(len(panels) / _HIST_NCOLS))
    # Fixed margins in inches: room for the first row's titles, and for the legend row with a split.
    top_in = 0.55 if split is not None else 0.3
    bottom_in = 0.3  # the last row's tick labels
    height_in = top_in + bottom_in + _HIST_ROW_IN * min(nrows, _HIST_MAX_ROWS)
    fig, axes = plt.subplots(nrows, _HIST_NCOLS, figsize=(8, height_in), dpi=100, squeeze=False)
    try:
        # Placed by hand rather than with tight/constrained layout: those warn (errors under pytest) when
        # many panels squeeze, and a hand layout costs nothing to compute.
        fig.subplots_adjust(
            left=0.02,
            right=0.98,
            bottom=bottom_in / height_in,
            top=1 - top_in / height_in,
            wspace=0.12,
            hspace=0.6,
        )
        flat = axes.ravel()
        for ax, panel in zip(flat, panels, strict=False):
            _draw_panel(ax, panel)
        for ax in flat[len(panels) :]:
            ax.set_axis_off()
        if not panels:
            flat[0].text(
                0.5, 0.5, "no columns", transform=flat[0].transAxes, ha="center", va="center", fontsize=8
            )
        if split is not None:
            handles = [
                Patch(color=c, alpha=0.5, label=lab) for c, lab in zip(_HIST_COLORS, labels, strict=True)
            ]
            fig.legend(handles=handles, loc="upper center", ncols=2, fontsize=8, frameon=False)
        return _png(fig)
    finally:
        plt.close(fig)


def _draw_panel(ax: Axes, panel: _HistPanel) -> None:
    """One histogram panel: its parts as filled steps, or its note."""
    ax.set_title(panel.name, fontsize=8)
    ax.set_yticks([])  # the shape matters, not the counts; dropping them leaves room for the bars
    if panel.edges is None:
        ax.set_xticks([])
        ax.text(
            0.5, 0.5, panel.note, transform=ax.transAxes, ha="center", va="center", fontsize=7, color="gray"
        )
        return
    # A single step patch per part instead of ax.hist's 40 bar patches: same picture, far less to draw.
    alpha = 0.5 if len(panel.heights) > 1 else 0.8
    for heights, color in zip(panel.heights, _HIST_COLORS, strict=False):
        ax.stairs(heights, panel.edges, fill=True, color=color, alpha=alpha, linewidth=0)
    ax.set_xlim(panel.edges[0], panel.edges[-1])
    ax.locator_params(axis="x", nbins=4)
    ax.tick_params(labelsize=6)


# Walkforward charts: bars above their baseline are green, below it red; the fold axis names at most this many
# folds, so that long runs keep readable tick labels.
_ABOVE_COLOR = _OVERLAY_COLORS[1]
_BELOW_COLOR = _OVERLAY_COLORS[3]
_MAX_FOLD_TICKS = 24
# Feature names longer than this are cut, so that a long name does not squeeze the bars.
_MAX_NAME_CHARS = 40


def _above_legend(ax: Axes) -> None:
    """The axes' legend above its top right corner, beside a left-aligned title, off the data."""
    ax.legend(loc="lower right", bbox_to_anchor=(1, 1), ncols=2, fontsize=7, frameon=False, borderaxespad=0.2)


def _tight_png(fig: Figure) -> bytes:
    """The figure laid out to fit its labels, as PNG bytes."""
    fig.tight_layout()
    return _png(fig)


def _note(ax: Axes, text: str) -> None:
    """A grey note in the middle of empty axes."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=8, color="gray")


def fold_metrics_png(
    folds: Sequence[int],
    ic: Sequence[float],
    hit_rate: Sequence[float],
    title: str,
    ic_label: str = "IC",
    hit_label: str = "hit rate",
    ic_baseline: float = 0.0,
) -> bytes:
    """An 800x450 PNG of a walkforward run's scores per fold: IC bars above, hit rate below.

    IC bars rise or fall from `ic_baseline` (a solid line), green above it and red below, with the mean
    over the finite folds as a dashed line; the hit rate is a line over a dotted 0.5 (a coin flip). NaN
    scores leave gaps. A classification run passes AUC as `ic` and accuracy as `hit_rate`, names them with
    `ic_label` and `hit_label`, and may set `ic_baseline=0.5` so the bars show the AUC's edge over chance.
    """
    plt = _pyplot()
    ic_values = np.asarray(ic, dtype=np.float64)
    hit_values = np.asarray(hit_rate, dtype=np.float64)
    if not len(folds) == ic_values.size == hit_values.size:
        raise ValueError(
            f"folds, ic and hit_rate differ in length: {len(folds)}, {ic_values.size}, {hit_values.size}"
        )
    x = np.arange(len(folds))
    fig, (ic_ax, hit_ax) = plt.subplots(
        2, 1, sharex=True, figsize=(8, 4.5), dpi=100, gridspec_kw={"height_ratios": (3, 2)}
    )
    try:
        ic_ax.set_title(title, fontsize=9, loc="left")
        ic_ax.set_ylabel(ic_label, fontsize=8)
        hit_ax.set_ylabel(hit_label, fontsize=8)
        hit_ax.set_xlabel("fold", fontsize=8)
        for ax in (ic_ax, hit_ax):
            ax.tick_params(labelsize=7)
            ax.grid(axis="y", alpha=0.3)
        if not x.size:
            _note(ic_ax, "no folds")
            return _tight_png(fig)
        finite = np.isfinite(ic_values)
        colors = np.where(ic_values[finite] >= ic_baseline, _ABOVE_COLOR, _BELOW_COLOR)
        ic_ax.bar(x[finite], ic_values[finite] - ic_baseline, bottom=ic_baseline, color=colors, width=0.7)
        ic_ax.axhline(ic_baseline, color="black", linewidth=0.8)
        if finite.any():
            mean = ic_values[finite].mean()
            ic_ax.axhline(
                mean, color=_PRICE_LINE, linestyle="--", linewidth=1, label=f"mean {ic_label} {mean:.3g}"
            )
            _above_legend(ic_ax)
        # A line rather than bars: hit rates sit near 0.5, where bars from 0 would all look the same.
        hit_finite = hit_values[np.isfinite(hit_values)]
        hit_name = f"{hit_label} (mean {hit_finite.mean():.3g})" if hit_finite.size else hit_label
        hit_ax.plot(x, hit_values, "o-", color=_PRICE_LINE, markersize=3, linewidth=1, label=hit_name)
        hit_ax.axhline(0.5, color="gray", linestyle=":", linewidth=1, label="0.5")
        _above_legend(hit_ax)
        shown = x[:: math.ceil(x.size / _MAX_FOLD_TICKS)]
        hit_ax.set_xticks(shown, labels=[str(folds[i]) for i in shown])
        hit_ax.set_xlim(-0.6, x.size - 0.4)
        return _tight_png(fig)
    finally:
        plt.close(fig)


def _decile_means(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mean prediction and mean realised value in each predicted-value decile, lowest first.

    Decile edges are values of `pred` (quantiles rounded up), so no decile is empty; tied predictions
    share a decile, so heavy ties give fewer than ten points and a constant prediction gives one.
    """
    edges = np.unique(np.quantile(pred, np.linspace(0.1, 0.9, 9), method="higher"))
    # Decile j holds edges[j - 1] <= pred < edges[j]. An edge at the minimum would leave decile 0 empty;
    # every other edge is a value of pred, which its own decile holds.
    edges = edges[edges > pred.min()]
    decile = np.searchsorted(edges, pred, side="right")
    counts = np.bincount(decile)
    return np.bincount(decile, weights=pred) / counts, np.bincount(decile, weights=true) / counts


def _density_edges(finite: np.ndarray) -> np.ndarray:
    """_bin_edges for one axis of a density; a constant gets a unit-wide range around it (as np.histogram)."""
    edges = _bin_edges(finite)
    if isinstance(edges, str):
        return np.linspace(finite[0] - 0.5, finite[0] + 0.5, _HIST_BINS + 1)
    return edges


def predicted_vs_realised_png(y_pred: np.ndarray, y_true: np.ndarray, title: str) -> bytes:
    """An 800x450 PNG of realised against predicted values, for any number of rows.

    Left, the rows as a density (a 40x40 grid over each axis's 0.5%..99.5% quantile range, log colour
    scale) rather than as points, so millions of rows cost no more than a few, with the realised mean of
    each predicted-value decile (over all rows) drawn on it. Right, those decile means alone on their own
    scale: realised values are mostly noise, so on the density's scale a real edge looks flat, and here it
    shows as a line rising from left to right. Rows with NaN or ±inf in either input are ignored.
    """
    plt = _pyplot()
    from matplotlib.colors import LogNorm

    pred = np.asarray(y_pred, dtype=np.float64)
    true = np.asarray(y_true, dtype=np.float64)
    if pred.shape != true.shape:
        raise ValueError(f"y_pred has shape {pred.shape}, y_true has {true.shape}")
    keep = np.isfinite(pred) & np.isfinite(true)
    pred, true = pred[keep], true[keep]
    fig, (ax, means_ax) = plt.subplots(1, 2, figsize=(8, 4.5), dpi=100, gridspec_kw={"width_ratios": (3, 2)})
    try:
        ignored = keep.size - pred.size
        subtitle = f"{pred.size:,} rows" + (f", {ignored:,} with NaN ignored" if ignored else "")
        ax.set_title(f"{title}\n{subtitle}", fontsize=9, loc="left")
        means_ax.set_title("realised mean per predicted decile", fontsize=8, loc="left")
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("realised", fontsize=8)
        means_ax.set_xlabel("predicted (decile mean)", fontsize=8)
        means_ax.set_ylabel("realised (decile mean)", fontsize=8)
        for each in (ax, means_ax):
            each.tick_params(labelsize=7)
            each.grid(alpha=0.3)
        if not pred.size:
            _note(ax, "no rows")
            _note(means_ax, "no rows")
            return _tight_png(fig)
        counts, x_edges, y_edges = np.histogram2d(
            pred, true, bins=(_density_edges(pred), _density_edges(true))
        )
        # Empty cells stay white; the log scale keeps sparse tails visible next to a dense centre.
        mesh = ax.pcolormesh(x_edges, y_edges, np.ma.masked_equal(counts.T, 0), cmap="Blues", norm=LogNorm())
        colorbar = fig.colorbar(mesh, ax=ax, pad=0.02)
        colorbar.set_label("rows per cell", fontsize=8)
        colorbar.ax.tick_params(labelsize=7, which="both")
        mean_pred, mean_true = _decile_means(pred, true)
        for each in (ax, means_ax):
            each.plot(mean_pred, mean_true, "o-", color=_OVERLAY_COLORS[0], markersize=4, linewidth=1.2)
        means_ax.axhline(true.mean(), color="gray", linestyle=":", linewidth=1, label="mean of all rows")
        means_ax.legend(loc="upper left", fontsize=7, frameon=False)
        means_ax.locator_params(axis="x", nbins=4)  # the narrower panel: long tick labels would collide
        return _tight_png(fig)
    finally:
        plt.close(fig)


def _top_features(importance: Mapping[str, float], top: int) -> tuple[list[str], np.ndarray, int]:
    """The `top` most important features, largest first, their importances, and how many are left out.

    NaN importances rank last; equal importances keep the mapping's order.
    """
    ranked = sorted(importance.items(), key=lambda item: (math.isnan(item[1]), -item[1]))[:top]
    return (
        [name for name, _ in ranked],
        np.array([v for _, v in ranked], dtype=np.float64),
        len(importance) - len(ranked),
    )


def feature_importance_png(importance: Mapping[str, float], title: str, top: int = 20) -> bytes:
    """An 800-pixel-wide PNG of feature importances as horizontal bars, largest at the top.

    At most `top` features are drawn and the title says how many were left out; the figure grows with
    the number of bars. Negative importances (permutation importance can give them) are red bars to the
    left of zero. Names over 40 characters are cut.
    """
    plt = _pyplot()
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    names, values, left_out = _top_features(importance, top)
    fig, ax = plt.subplots(figsize=(8, 0.9 + 0.22 * max(1, len(names))), dpi=100)
    try:
        if left_out:
            title = f"{title}\ntop {len(names)} of {len(importance)} features, {left_out} left out"
        ax.set_title(title, fontsize=9, loc="left")
        ax.set_xlabel("importance", fontsize=8)
        ax.tick_params(labelsize=7)
        if not names:
            ax.set_yticks([])
            _note(ax, "no features")
            return _tight_png(fig)
        y = np.arange(len(names))
        bars = ax.barh(y, values, color=np.where(values < 0, _BELOW_COLOR, _PRICE_LINE), height=0.7)
        ax.bar_label(bars, fmt="%.3g", fontsize=6, padding=2)
        labels = [
            name if len(name) <= _MAX_NAME_CHARS else name[: _MAX_NAME_CHARS - 1] + "\u2026" for name in names
        ]
        ax.set_yticks(y, labels=labels)
        ax.invert_yaxis()
        ax.axvline(0, color="black", linewidth=0.8)
        ax.grid(axis="x", alpha=0.3)
        # Room beyond the longest bar for its value label.
        ax.margins(x=0.08)
        return _tight_png(fig)
    finally:
        plt.close(fig)


def equity_drawdown_png(ts_us: np.ndarray, equity: np.ndarray, drawdown: np.ndarray, title: str) -> bytes:
    """Equity (bucketed: each bucket's low-high range and last value) with the drawdown under it, in %."""
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(8, 4.2), dpi=100, sharex=True, gridspec_kw={"height_ratios": (3, 1.3)}
    )
    try:
        return _equity_drawdown(fig, top, bottom, ts_us, equity, drawdown, title)
    finally:
        plt.close(fig)


def _equity_drawdown(
    fig: Figure,
    top: Axes,
    bottom: Axes,
    ts_us: np.ndarray,
    equity: np.ndarray,
    drawdown: np.ndarray,
    title: str,
) -> bytes:
    buckets, x = _draw_price(top, ts_us, equity)
    top.set_ylabel("equity", fontsize=8)
    top.set_title(title, fontsize=9)
    depth = 100 * np.minimum.reduceat(drawdown, buckets.starts)
    bottom.fill_between(x, depth, 0, color="#de2d26", linewidth=0, step="post")
    bottom.set_ylabel("drawdown %", fontsize=8)
    bottom.set_ylim(min(float(depth.min()) * 1.1, -1e-9), 0)
    for ax in (top, bottom):
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3, linewidth=0.5)
    fig.autofmt_xdate()
    return _tight_png(fig)


def sweep_heatmap_png(
    long_thresholds: Sequence[float],
    short_thresholds: Sequence[float],
    values: np.ndarray,
    title: str,
    label: str = "Sharpe",
) -> bytes:
    """A metric over the long x short threshold grid (`values[i, j]` for long i, short j); NaN cells grey,
    the best cell outlined."""
    plt = _pyplot()
    values = np.asarray(values, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    try:
        return _heatmap(fig, ax, long_thresholds, short_thresholds, values, title, label)
    finally:
        plt.close(fig)


def _heatmap(
    fig: Figure,
    ax: Axes,
    long_thresholds: Sequence[float],
    short_thresholds: Sequence[float],
    values: np.ndarray,
    title: str,
    label: str,
) -> bytes:
    plt = _pyplot()
    finite = values[np.isfinite(values)]
    bound = float(np.abs(finite).max()) if finite.size else 1.0
    cmap = plt.get_cmap("RdYlGn").with_extremes(bad="#d9d9d9")
    image = ax.imshow(
        np.ma.masked_invalid(values), cmap=cmap, vmin=-bound, vmax=bound, origin="lower", aspect="auto"
    )
    fig.colorbar(image, ax=ax, label=label)
    ax.set_yticks(range(len(long_thresholds)), [f"{v:.3g}" for v in long_thresholds], fontsize=7)
    ax.set_xticks(
        range(len(short_thresholds)), [f"{v:.3g}" for v in short_thresholds], fontsize=7, rotation=45
    )
    ax.set_ylabel("long threshold", fontsize=8)
    ax.set_xlabel("short threshold", fontsize=8)
    if finite.size:
        i, j = np.unravel_index(
            int(np.nanargmax(np.where(np.isfinite(values), values, -np.inf))), values.shape
        )
        ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=1.5))
    ax.set_title(title, fontsize=9)
    return _tight_png(fig)
