"""Indicator sets between compute and storage: register a spec, then compute it into `<dataset>_<version>`.

`register_set` gives a validated spec its version for a dataset (the same spec always gets the same
version; a changed spec gets the next one). `compute_into_store` computes a registered set from the bars
in the store, audits it for lookahead, and then writes its table:

- nothing, when the set uses future bars (the table keeps what it held);
- in full (table replaced) the first time, or when the bars before the old end changed, or when the
  code that computes the set changed;
- only the new rows when the dataset's bars are the old ones plus new bars at the end (a longer export):
  the engine resumes from the saved state with `history_bars` bars of history, and the rows written are
  bit for bit what a full recompute gives (checked on every update);
- nothing when nothing changed.

The `indicators` asset, `trading-assets demo` and tests call these, so every path behaves the same.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import pyarrow as pa

from resources.catalog import Catalog
from resources.timeseries import TIMESTAMP_COLUMN, TS_TYPE, TableSchema, TimeSeriesStore, utc_datetime
from trading_assets.compute.indicators import (
    BAR_INPUTS,
    REGISTRY,
    Registry,
    SetResult,
    SetSpec,
    SetState,
    Violation,
    bars_sha256,
    code_version,
    compute_set,
    extend_set,
    history_bars,
    lookahead_cuts,
    lookahead_violations,
    spec_from_json,
    warmup_violations,
)
from trading_assets.records import CatalogError, IndicatorOutputs, IndicatorSetRecord, NewIndicatorSet

Mode = Literal["full", "append", "unchanged", "refused"]


def table_schema(spec: SetSpec) -> TableSchema:
    """The time-series table of a set: one double column per output column (nulls in warm-up)."""
    return TableSchema(columns=tuple((name, "double") for name in spec.column_names), partition_by="MONTH")


def register_set(catalog: Catalog, dataset: str, spec: SetSpec) -> tuple[IndicatorSetRecord, bool]:
    """The catalog row of `spec` on `dataset` (and whether it is new); CatalogError if no such dataset."""
    return catalog.register_indicator_set(
        NewIndicatorSet(dataset, spec.name, spec.to_json(), spec.sha256, spec.column_names, spec.lookbacks)
    )


def read_bars(store: TimeSeriesStore, table: str) -> dict[str, np.ndarray]:
    """A dataset's bars as arrays: `ts` in UTC microseconds (int64) and float64 OHLCV."""
    data = store.read(table, columns=[TIMESTAMP_COLUMN, *BAR_INPUTS])
    bars = {TIMESTAMP_COLUMN: data.column(TIMESTAMP_COLUMN).cast(pa.int64()).to_numpy()}
    for name in BAR_INPUTS:
        bars[name] = data.column(name).to_numpy().astype(np.float64, copy=False)
    return bars


@dataclass(frozen=True)
class Computed:
    """What `compute_into_store` did, the set computed in full over all bars (what the checks compare
    with and the charts show), and the audits that ran before anything was written."""

    record: IndicatorSetRecord
    spec: SetSpec
    bars: dict[str, np.ndarray]
    values: dict[str, np.ndarray]
    state: SetState
    mode: Mode
    rows_written: int
    bars_sha256: str
    dataset_version: str
    code_version: str
    cuts: list[int]
    lookahead: list[Violation]
    warmup: list[Violation]
    seconds: float
    note: str | None = None


def compute_into_store(
    store: TimeSeriesStore,
    catalog: Catalog,
    dataset: str,
    version: int,
    registry: Registry = REGISTRY,
) -> Computed:
    """Compute registered set `version` of `dataset` and bring its table up to date.

    The lookahead audit runs before any write: a set whose values change when later bars are removed is
    never stored (mode "refused"), and the table keeps what it held. The catalog row is not updated here;
    the caller records the outcome with `record_outcome` once the checks have run.
    """
    started = time.perf_counter()
    record = catalog.get_indicator_set(dataset, version)
    if record is None:
        known = [r.version for r in catalog.list_indicator_sets(dataset)]
        raise CatalogError(
            f"indicator set version {version} of {dataset!r} is not registered (it has versions {known}); "
            "register a spec with the add_indicator_set job or a file in the sets folder"
        )
    dataset_record = catalog.get_dataset(dataset)
    if dataset_record is None:
        raise CatalogError(f"dataset {dataset!r} is not in the catalog; materialize its bars first")
    if dataset_record.publish_pending:
        raise CatalogError(
            f"dataset {dataset!r}: its latest import has not finished publishing its bars "
            "(the landing sensor completes it); try again"
        )
    spec = spec_from_json(record.spec, registry=registry)
    bars = read_bars(store, dataset_record.table_name)
    n = bars["close"].size
    code = code_version(spec)
    # The full computation is the reference every audit compares with; it costs a fraction of a write.
    full = compute_set(spec, bars)
    cuts = lookahead_cuts(n, spec)
    leaks = lookahead_violations(spec, bars, full.values, cuts)
    old = _resumable_rows(store, record, bars, code)
    note = None
    if leaks:
        mode, written = "refused", 0
    elif old == n:
        mode, written = "unchanged", 0
    elif old is not None and (tail := _tail(spec, bars, old, record.state or "", full)) is not None:
        store.write(record.measurement, to_arrow(bars["ts"][old:], tail), table_schema(spec))
        mode, written = "append", n - old
    else:
        if old is not None:
            note = "the incremental update differed from a full recompute; the table was recomputed in full"
        store.replace(record.measurement, to_arrow(bars["ts"], full.values), table_schema(spec))
        mode, written = "full", n
    return Computed(
        record=record,
        spec=spec,
        bars=bars,
        values=full.values,
        state=full.state,
        mode=mode,
        rows_written=written,
        bars_sha256=bars_sha256(bars),
        dataset_version=dataset_record.version,
        code_version=code,
        cuts=cuts,
        lookahead=leaks,
        warmup=warmup_violations(spec, full.values),
        seconds=time.perf_counter() - started,
        note=note,
    )


def _tail(
    spec: SetSpec, bars: dict[str, np.ndarray], old: int, state_json: str, full: SetResult
) -> dict[str, np.ndarray] | None:
    """The new rows computed incrementally: from the saved state and `history_bars` bars before the old
    end. None if they are not bit for bit the full computation's (which the engine guarantees; checked on
    every update all the same, since the full computation is at hand)."""
    start = max(0, old - history_bars(spec))
    tail = extend_set(
        spec, {k: v[start:] for k, v in bars.items()}, old - start, SetState.from_json(state_json)
    )
    for name, values in tail.values.items():
        if not np.array_equal(values, full.values[name][old:], equal_nan=True):
            return None
    return tail.values if tail.state.to_json() == full.state.to_json() else None


def _resumable_rows(
    store: TimeSeriesStore, record: IndicatorSetRecord, bars: dict[str, np.ndarray], code: str
) -> int | None:
    """Rows of the stored table that can be kept (the update appends after them), or None: recompute all."""
    old = record.row_count
    if (
        not old
        or record.state is None
        or record.bars_sha256 is None
        or record.code_version != code
        or old > bars["close"].size
        or record.measurement not in store.list_tables()
    ):
        return None
    # The stored rows were computed from the first `old` bars; they still hold only if those are unchanged.
    return old if bars_sha256(bars, old) == record.bars_sha256 else None


def to_arrow(ts_us: np.ndarray, values: dict[str, np.ndarray]) -> pa.Table:
    """A table for the store: `ts` plus one column per output, NaN/inf stored as null (no value)."""
    columns = {TIMESTAMP_COLUMN: pa.array(ts_us, type=pa.int64()).cast(TS_TYPE)}
    for name, data in values.items():
        columns[name] = pa.array(data, type=pa.float64(), mask=~np.isfinite(data))
    return pa.table(columns)


def stored_values(
    store: TimeSeriesStore, table: str, spec: SetSpec, rows: int | None = None
) -> dict[str, np.ndarray]:
    """The set's columns as stored (nulls back to NaN), optionally only the first `rows` rows."""
    data = store.read(table, columns=list(spec.column_names))
    if rows is not None:
        data = data.slice(0, rows)
    return {
        name: data.column(name).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        for name in spec.column_names
    }


def record_outcome(catalog: Catalog, computed: Computed, failed: list[str]) -> IndicatorSetRecord:
    """Store the verdict and, when values were stored, what they are (rows, time range, hashes, resume
    state, code version). `failed` lists the failing checks' messages.

    A refused update leaves the row's outputs as they were (they still describe the stored table): a set
    that was ready stays ready for the bars it was computed from, one that had nothing stored is failed.
    """
    message = "; ".join(failed) or None
    record = computed.record
    if computed.mode == "refused":
        kept = IndicatorOutputs.of(record)
        status = "ready" if record.status == "ready" else "failed"
        outputs = replace(kept, status=status, message=f"update refused: {message}")
    else:
        ts = computed.bars[TIMESTAMP_COLUMN]
        outputs = IndicatorOutputs(
            status="failed" if failed else "ready",
            row_count=int(ts.size),
            first_ts=utc_datetime(ts[0]) if ts.size else None,
            last_ts=utc_datetime(ts[-1]) if ts.size else None,
            bars_sha256=computed.bars_sha256,
            dataset_version=computed.dataset_version,
            state=computed.state.to_json(),
            code_version=computed.code_version,
            message=message,
        )
    return catalog.record_indicator_output(record.dataset, record.version, outputs)
