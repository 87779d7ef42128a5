"""Trading simulations between compute and storage: register a sim, replay a run's predictions, store it.

A simulation replays one walkforward run's out-of-sample predictions (`<dataset>_run<n>`) over the
dataset's bars with the run's per-fold thresholds (or given ones) and a `SimConfig`. It is registered once
(`register_simulation`): its whole config, with `bars_per_year` inferred from the bars, and the thresholds
it will use, go to the catalog, so every later step re-runs it from the catalog and the stores alone.

`load_inputs` reads what the sim replays from the stores: the bars from the first to the last predicted
bar, the run's signal (predicted value, or probability of an up move for classifiers) on every bar it
predicted (NaN, so flat, on bars between test windows) and each bar's thresholds (its fold's).
`run_simulation` turns them into targets and simulates; `write_simulation` stores the per-bar series
in `<dataset>_sim<n>` and then the metrics and every trade in the catalog, in one transaction.

The `simulation` asset, its checks, `trading-assets demo` and the tests call these, so every path behaves
the same.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import sys
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from resources.catalog import Catalog
from resources.timeseries import TIMESTAMP_COLUMN, TS_TYPE, TableSchema, TimeSeriesStore, utc_datetime
from trading_assets.compute import simulator
from trading_assets.compute.simulator import SimConfig, SimResult, signals_from_predictions, simulate
from trading_assets.records import NewSimulation, SimulationOutcome, SimulationRecord, SimulationTrade
from trading_assets.walkforward.service import models_version

# Average Gregorian year, for bars_per_year.
YEAR_US = 365.2425 * 86400 * 1e6
SERIES_SCHEMA = TableSchema(
    columns=(
        ("target", "double"),
        ("position", "double"),
        ("cash", "double"),
        ("equity", "double"),
        ("drawdown", "double"),
    ),
    partition_by="MONTH",
)


class SimulationError(RuntimeError):
    """A simulation that cannot be registered or run as asked; the message says which and why."""


def code_version() -> str:
    """A hash of the simulator's source and of this module: what turns stored inputs into a sim."""
    digest = hashlib.sha256()
    for module in (simulator.config, simulator.engine, simulator.kernels, simulator.signals):
        digest.update(inspect.getsource(module).encode())
    digest.update(inspect.getsource(sys.modules[__name__]).encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class SimulationSpec:
    """What a simulation replays and how: the run, where thresholds come from, the dead zone, the rules."""

    run: str
    sim: SimConfig
    # "run": each bar takes its fold's thresholds from the catalog; "given": `long`/`short` for every bar.
    thresholds: Literal["run", "given"] = "run"
    long_threshold: float | None = None
    short_threshold: float | None = None
    dead_zone: Literal["flat", "hold"] = "flat"

    def __post_init__(self) -> None:
        if self.thresholds not in ("run", "given"):
            raise SimulationError(f"thresholds must be 'run' or 'given', got {self.thresholds!r}")
        given = (self.long_threshold, self.short_threshold)
        if self.thresholds == "given":
            if any(v is None or not np.isfinite(v) for v in given):
                raise SimulationError(
                    f"thresholds 'given' needs finite long_threshold and short_threshold, got {given}"
                )
            if self.short_threshold > self.long_threshold:  # type: ignore[operator]
                raise SimulationError(
                    f"short_threshold {self.short_threshold} is above long_threshold {self.long_threshold}"
                )
        elif given != (None, None):
            raise SimulationError(
                "long_threshold/short_threshold are only for thresholds 'given'; 'run' uses each fold's"
            )
        if self.dead_zone not in ("flat", "hold"):
            raise SimulationError(f"dead_zone must be 'flat' or 'hold', got {self.dead_zone!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "thresholds": self.thresholds,
            "long_threshold": self.long_threshold,
            "short_threshold": self.short_threshold,
            "dead_zone": self.dead_zone,
            "sim": self.sim.to_dict(),
        }

    def to_json(self) -> str:
        """Canonical JSON: what the catalog stores and the hash is taken of."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> SimulationSpec:
        data = json.loads(text)
        return cls(**{**data, "sim": SimConfig.from_dict(data["sim"])})

    def sha256(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()


def bars_per_year(ts_us: np.ndarray) -> float:
    """Bars per year as the bars are really spaced (sessions, weekends and gaps included): the number of
    bar intervals over the years they span."""
    if ts_us.size < 2 or ts_us[-1] <= ts_us[0]:
        raise SimulationError("at least two bars with distinct timestamps are needed to annualise")
    return float((ts_us.size - 1) / ((ts_us[-1] - ts_us[0]) / YEAR_US))


def run_thresholds(catalog: Catalog, run: str) -> dict[int, tuple[float, float]]:
    """Each fold's (long, short) thresholds as the catalog holds them; SimulationError if the run has none
    yet."""
    stored = catalog.list_walkforward_thresholds(run)
    if not stored:
        raise SimulationError(f"run {run} has no thresholds yet: materialise its thresholds first")
    return {t.fold: (t.long_threshold, t.short_threshold) for t in stored}


def thresholds_json(used: dict[int, tuple[float, float]]) -> str:
    """The thresholds a sim uses as its catalog row stores them: {"<fold>": [long, short]} in fold order."""
    return json.dumps({str(k): list(v) for k, v in sorted(used.items())})


def register_simulation(
    store: TimeSeriesStore,
    catalog: Catalog,
    spec: SimulationSpec,
    models_version: str,
    *,
    request_id: int | None = None,
) -> SimulationRecord:
    """Register a sim of `spec.run` as `<dataset>_sim<n>` (with `request_id`, as that job request's
    target, in the same transaction); its bars_per_year is inferred from the bars it will replay (whatever
    `spec.sim` says) and stored with the config. Nothing is registered on error."""
    run = catalog.get_walkforward_run(spec.run)
    if run is None:
        raise SimulationError(f"no walkforward run {spec.run!r} in the catalog")
    if run.prediction_rows is None:
        raise SimulationError(f"run {spec.run} has no predictions yet: materialise its predictions first")
    used = run_thresholds(catalog, spec.run) if spec.thresholds == "run" else {}
    inputs = load_inputs(store, catalog, spec, used)
    spec = replace(spec, sim=replace(spec.sim, bars_per_year=bars_per_year(inputs.ts_us)))
    new = NewSimulation(
        dataset=run.dataset,
        run=run.name,
        config=spec.to_json(),
        config_sha256=spec.sha256(),
        thresholds=thresholds_json(used),
        dataset_version=run.dataset_version,
        models_version=models_version,
        code_version=code_version(),
        request_id=request_id,
    )
    return catalog.register_simulation(new)


@dataclass(frozen=True, eq=False)
class SimInputs:
    """The bars a sim replays, the signal on each and each bar's thresholds (NaN: no prediction)."""

    ts_us: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    signal: np.ndarray
    fold: np.ndarray
    long_threshold: np.ndarray
    short_threshold: np.ndarray


def _floats(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


def load_inputs(
    store: TimeSeriesStore,
    catalog: Catalog,
    spec: SimulationSpec,
    fold_thresholds: dict[int, tuple[float, float]] | None,
) -> SimInputs:
    """What `spec` replays, read from the stores: the predictions table of its run, the bars from its
    first to its last prediction, and `fold_thresholds` (or the given ones) spread over each fold's bars;
    with `fold_thresholds` None, the thresholds are left NaN (a sweep sets its own)."""
    run = catalog.get_walkforward_run(spec.run)
    dataset = None if run is None else catalog.get_dataset(run.dataset)
    if run is None or dataset is None:
        raise SimulationError(f"run {spec.run!r} or its dataset is not in the catalog")
    if dataset.publish_pending:
        raise SimulationError(
            f"dataset {dataset.name!r}: its latest import has not finished publishing its bars "
            "(the landing sensor completes it); try again"
        )
    classifier = json.loads(run.target)["kind"] == "classification"
    predictions = store.read(run.name, columns=[TIMESTAMP_COLUMN, "fold", "prob" if classifier else "y_pred"])
    if predictions.num_rows == 0:
        raise SimulationError(f"{run.name}: the predictions table is empty")
    pred_ts = predictions.column(TIMESTAMP_COLUMN).cast(pa.int64()).to_numpy()
    bars = store.read(
        dataset.table_name,
        start=utc_datetime(pred_ts[0]),
        end=utc_datetime(pred_ts[-1] + 1),
        columns=[TIMESTAMP_COLUMN, "open", "high", "low", "close"],
    )
    ts = bars.column(TIMESTAMP_COLUMN).cast(pa.int64()).to_numpy()
    if ts.size == 0:
        raise SimulationError(
            f"{run.name}: {dataset.table_name} holds no bars from {utc_datetime(pred_ts[0])} to "
            f"{utc_datetime(pred_ts[-1])}"
        )
    at = np.searchsorted(ts, pred_ts)
    missing = (at >= ts.size) | (ts[np.minimum(at, ts.size - 1)] != pred_ts)
    if missing.any():
        raise SimulationError(
            f"{run.name}: the prediction at {utc_datetime(pred_ts[np.argmax(missing)])} has no bar in "
            f"{dataset.table_name}: the bars changed since the run; register a new run"
        )
    signal = np.full(ts.size, np.nan)
    signal[at] = _floats(predictions, "prob" if classifier else "y_pred")
    fold = np.full(ts.size, -1, dtype=np.int64)
    fold[at] = predictions.column("fold").to_numpy()
    long_at, short_at = np.full(ts.size, np.nan), np.full(ts.size, np.nan)
    if fold_thresholds is not None and spec.thresholds == "given":
        long_at[at], short_at[at] = spec.long_threshold, spec.short_threshold
    elif fold_thresholds is not None:
        for number in np.unique(fold[at]):
            if int(number) not in fold_thresholds:
                raise SimulationError(f"{run.name}: fold {number} has no thresholds")
            rows = fold == number
            long_at[rows], short_at[rows] = fold_thresholds[int(number)]
    return SimInputs(
        ts_us=ts,
        open=_floats(bars, "open"),
        high=_floats(bars, "high"),
        low=_floats(bars, "low"),
        close=_floats(bars, "close"),
        signal=signal,
        fold=fold,
        long_threshold=long_at,
        short_threshold=short_at,
    )


def run_simulation(inputs: SimInputs, spec: SimulationSpec) -> tuple[np.ndarray, SimResult]:
    """The targets the signal gives under the thresholds, and the simulation of them."""
    target = signals_from_predictions(
        inputs.signal, inputs.long_threshold, inputs.short_threshold, dead_zone=spec.dead_zone
    )
    return target, simulate(inputs.open, inputs.high, inputs.low, inputs.close, target, spec.sim)


def catalog_trades(inputs: SimInputs, result: SimResult) -> list[SimulationTrade]:
    """The sim's trades as catalog rows, with the timestamps of their entry and exit bars."""
    frame = result.trades
    ts = inputs.ts_us
    return [
        SimulationTrade(
            trade=number,
            entry_idx=int(row.entry_idx),
            exit_idx=int(row.exit_idx),
            entry_ts=utc_datetime(ts[row.entry_idx]),
            exit_ts=utc_datetime(ts[row.exit_idx]),
            side=int(row.side),
            size=float(row.size),
            entry_price=float(row.entry_price),
            exit_price=float(row.exit_price),
            pnl=float(row.pnl),
            return_pct=float(row.return_pct),
            fees=float(row.fees),
            bars_held=int(row.bars_held),
            exit_reason=str(row.exit_reason),
        )
        for number, row in enumerate(frame.itertuples(index=False))
    ]


def series_table(inputs: SimInputs, target: np.ndarray, result: SimResult) -> pa.Table:
    """The rows of `<dataset>_sim<n>`: per bar the target decided at its close, and the position (units),
    cash, equity and drawdown at its close."""
    return pa.table(
        {
            TIMESTAMP_COLUMN: pa.array(inputs.ts_us, type=pa.int64()).cast(TS_TYPE),
            "target": pa.array(target, type=pa.float64()),
            "position": pa.array(result.position, type=pa.float64()),
            "cash": pa.array(result.cash, type=pa.float64()),
            "equity": pa.array(result.equity, type=pa.float64()),
            "drawdown": pa.array(result.drawdown, type=pa.float64()),
        }
    )


def write_simulation(
    store: TimeSeriesStore,
    catalog: Catalog,
    record: SimulationRecord,
    inputs: SimInputs,
    target: np.ndarray,
    result: SimResult,
) -> SimulationRecord:
    """Replace the sim's series table, then record its metrics and every trade in one catalog
    transaction."""
    table = series_table(inputs, target, result)
    store.replace(record.name, table, SERIES_SCHEMA)
    outcome = SimulationOutcome(
        metrics=result.metrics,
        trades=catalog_trades(inputs, result),
        series_columns=SERIES_SCHEMA.column_names,
        row_count=table.num_rows,
        first_ts=utc_datetime(inputs.ts_us[0]),
        last_ts=utc_datetime(inputs.ts_us[-1]),
    )
    return catalog.record_simulation(record.name, outcome)


def replay(
    store: TimeSeriesStore, catalog: Catalog, record: SimulationRecord
) -> tuple[SimulationSpec, SimInputs, np.ndarray, SimResult]:
    """Run the registered sim `record` again from the catalog and the stores alone.

    SimulationError if its inputs changed since it was registered: a fold of its run retrained (other
    predictions than the thresholds were taken for) or its bars imported again; register a new sim."""
    folds = catalog.list_walkforward_folds(record.run)
    if models_version(folds) != record.models_version:
        raise SimulationError(
            f"{record.name}: the folds of {record.run} were trained again since the sim was registered "
            f"(models {models_version(folds)}, registered with {record.models_version}); register a new "
            "simulation of the run"
        )
    dataset = catalog.get_dataset(record.dataset)
    if dataset is None or dataset.version != record.dataset_version:
        raise SimulationError(
            f"{record.name}: the bars of {record.dataset!r} were imported again since the sim was "
            "registered; register a new simulation"
        )
    spec = SimulationSpec.from_json(record.config)
    stored = {int(k): (float(v[0]), float(v[1])) for k, v in json.loads(record.thresholds).items()}
    inputs = load_inputs(store, catalog, spec, stored)
    target, result = run_simulation(inputs, spec)
    return spec, inputs, target, result


def monthly_returns(
    ts_us: np.ndarray, equity: np.ndarray, initial_cash: float
) -> dict[str, dict[int, float]]:
    """Return of each calendar month (UTC) from the equity at the previous month's last close (the
    initial cash for the first), as {year: {month: return}}."""
    months = ts_us.astype("datetime64[us]").astype("datetime64[M]")
    last = np.flatnonzero(np.r_[months[1:] != months[:-1], True])
    out: dict[str, dict[int, float]] = {}
    previous = initial_cash
    for i in last:
        month = months[i].astype(object)
        out.setdefault(str(month.year), {})[month.month] = float(equity[i] / previous - 1)
        previous = float(equity[i])
    return out
