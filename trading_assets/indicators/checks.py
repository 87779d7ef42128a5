"""Checks on the `indicators` asset: no lookahead, NaNs only in warm-up, the store holds the computation.

They run inside the asset's step (declared as its check specs) on the full computation it has just made:
a separate check step would have to read the bars and recompute the whole set only to audit it. The
lookahead and warm-up audits run before anything is written (`compute_into_store`); `no_lookahead` is
blocking, and a set that fails it is not stored at all: its features must not feed a model.
"""

import dagster as dg
import numpy as np
import pyarrow as pa

from resources.timeseries import TimeSeriesStore
from trading_assets.compute.indicators import (
    Violation,
)
from trading_assets.indicators.service import Computed

NO_LOOKAHEAD = "no_lookahead"
WARMUP_ONLY_NANS = "warmup_only_nans"
MATCHES_STORE = "matches_store"
SAMPLE_ROWS = 500


def check_specs(asset_key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            NO_LOOKAHEAD,
            asset=asset_key,
            blocking=True,
            description="Recomputes the set on prefixes of the bars cut at several points; every value "
            "before a cut must be identical to the full computation, or the feature uses future bars.",
        ),
        dg.AssetCheckSpec(
            WARMUP_ONLY_NANS,
            asset=asset_key,
            description="Each column is NaN exactly inside its declared warm-up and finite after it.",
        ),
        dg.AssetCheckSpec(
            MATCHES_STORE,
            asset=asset_key,
            description="A random sample of rows re-read from the time-series store equals the computation.",
        ),
    ]


def _violations_md(found: list[Violation], ts_us: np.ndarray) -> str:
    lines = [
        f"- `{v.column}` first bad row {v.row} ({np.datetime64(int(ts_us[v.row]), 'us')} UTC): {v.detail}"
        for v in found[:20]
    ]
    return "\n".join(lines) or "none"


def no_lookahead(computed: Computed) -> dg.AssetCheckResult:
    found = computed.lookahead
    return dg.AssetCheckResult(
        check_name=NO_LOOKAHEAD,
        passed=not found,
        description=(
            f"{found[0].column} uses future bars: {found[0].detail}; nothing was written"
            if found
            else "no value depends on later bars"
        ),
        metadata={
            "cuts": dg.MetadataValue.json(computed.cuts),
            "columns_with_lookahead": dg.MetadataValue.json([v.column for v in found]),
            "first_bad_rows": dg.MetadataValue.md(_violations_md(found, computed.bars["ts"])),
        },
    )


def warmup_only_nans(computed: Computed) -> dg.AssetCheckResult:
    found = computed.warmup
    return dg.AssetCheckResult(
        check_name=WARMUP_ONLY_NANS,
        passed=not found,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"{found[0].column}: {found[0].detail}" if found else "NaN exactly in each warm-up",
        metadata={
            "columns_checked": len(computed.spec.columns),
            "violations": dg.MetadataValue.md(_violations_md(found, computed.bars["ts"])),
        },
    )


def sample_rows(rows: int, seed_hex: str, size: int = SAMPLE_ROWS) -> np.ndarray:
    """Sorted distinct rows: the first, the last and a random sample seeded by the bars' hash."""
    if rows == 0:
        return np.array([], dtype=np.int64)
    rng = np.random.default_rng(int(seed_hex[:16], 16))
    picked = rng.choice(rows, size=min(size, rows), replace=False)
    return np.unique(np.concatenate(([0, rows - 1], picked)))


def matches_store(computed: Computed, store: TimeSeriesStore) -> dg.AssetCheckResult:
    """Sampled stored rows against the full computation (also after an append, or when nothing was
    written: stored rows that were altered since show up here)."""
    if computed.mode == "refused":
        return dg.AssetCheckResult(
            check_name=MATCHES_STORE,
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description="not compared: nothing was written because the set failed no_lookahead",
        )
    names = list(computed.spec.column_names)
    rows = sample_rows(computed.bars["close"].size, computed.bars_sha256)
    problems: list[str] = []
    offset = 0
    for batch in store.iter_batches(computed.record.measurement, columns=["ts", *names]):
        inside = rows[(rows >= offset) & (rows < offset + batch.num_rows)]
        if inside.size:
            local = inside - offset
            ts = batch.column("ts").cast(pa.int64()).to_numpy()[local]
            if not np.array_equal(ts, computed.bars["ts"][inside]):
                problems.append(f"rows {inside[:5].tolist()}...: timestamps differ from the bars")
            for name in names:
                stored = batch.column(name).to_numpy(zero_copy_only=False)[local]
                expected = computed.values[name][inside]
                same = (stored == expected) | (np.isnan(stored) & ~np.isfinite(expected))
                if not same.all():
                    at = int(np.argmin(same))
                    got, want = float(stored[at]), float(expected[at])
                    problems.append(f"`{name}` row {int(inside[at])}: stored {got!r}, computed {want!r}")
        offset += batch.num_rows
    if offset != computed.bars["close"].size:
        problems.append(f"the store holds {offset} rows; the bars have {computed.bars['close'].size}")
    return dg.AssetCheckResult(
        check_name=MATCHES_STORE,
        passed=not problems,
        description=problems[0] if problems else f"{rows.size} sampled rows equal the computation",
        metadata={
            "rows_compared": int(rows.size),
            "mismatches": len(problems),
            "first_mismatches": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems[:10]) or "none"),
        },
    )
