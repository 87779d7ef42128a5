"""Rolling walkforward runs: the next folds when the dataset has gained bars, then fresh simulations.

A run registered with `rolling` keeps its folds, models and thresholds as they are, and gets more folds
when its dataset has been imported again with more bars (`extend_run`):

1. the indicator set the run reads must have been computed on the new bars (the indicator_sets sensor
   appends the new rows after a re-import); until then the run waits;
2. the run's folds are computed again with its stored spec on the bars as they are now: every fold it
   has must come out with the same rows and timestamps, and the bars (timestamps, OHLCV) and feature
   values of every row up to the end of its last test window must hash to what they did when the folds
   were computed (`history_sha256`); otherwise the run is refused, and left as it is;
3. the whole test windows after its last one become new folds, added in one catalog transaction that
   also moves the run to the new dataset version and back to "running". The walkforward sensor then
   trains them and assembles the run's predictions and thresholds again.

Once the extended run has completed, `refresh_simulations` points its finished simulations at it again
(thresholds, dataset and models versions) and marks them registered, so the simulation sensor re-runs
them. Both are decisions on the catalog's state, so calling them again changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from resources.catalog import Catalog
from resources.timeseries import TimeSeriesStore
from trading_assets.compute.walkforward import WalkforwardSpec
from trading_assets.records import (
    CatalogError,
    DatasetRecord,
    FoldWindow,
    SimulationRecord,
    SimulationRefresh,
    WalkforwardExtension,
    WalkforwardRunRecord,
)
from trading_assets.simulation import service as simulations
from trading_assets.simulation.service import SimulationSpec, run_thresholds, thresholds_json
from trading_assets.walkforward.service import (
    RunError,
    fold_windows,
    history_sha256,
    models_version,
    prepare_again,
)

# extended: new folds were added; unchanged: nothing to add (the same bars, or no whole test window
# more); waiting: the run or its indicators are not ready for it yet; refused: the history changed.
Outcome = Literal["extended", "unchanged", "waiting", "refused"]


@dataclass(frozen=True)
class Extension:
    """What `extend_run` decided for one run, and why, in words for a log."""

    run: str
    outcome: Outcome
    message: str
    # The run as extended (outcome "extended"), else None.
    record: WalkforwardRunRecord | None = None


def nothing_to_roll(catalog: Catalog, run: WalkforwardRunRecord) -> str | None:
    """Why rolling `run` (`extend_run`, then `refresh_simulations`) would change nothing, judged on catalog
    rows alone, without reading bars or hashing; None when it might: its dataset holds other bars than its
    folds were computed on and they can be read now, or a finished simulation replays other models or bars
    than it has now."""
    decided = _decided_on_catalog(catalog, run)
    if not isinstance(decided, Extension):
        return None
    _, stale = _stale_simulations(catalog, run)
    return None if stale else decided.message


def extend_run(store: TimeSeriesStore, catalog: Catalog, run: WalkforwardRunRecord) -> Extension:
    """Add the folds the dataset now has bars for to the rolling run `run`, if its history is unchanged."""
    name = run.name
    dataset = _decided_on_catalog(catalog, run)
    if isinstance(dataset, Extension):
        return dataset
    try:
        prepared, version = prepare_again(store, catalog, run)
    except (RunError, ValueError) as err:
        return _decided(run, "refused", f"its folds cannot be computed on the bars now: {err}")
    if version != dataset.version:
        return _decided(run, "waiting", f"{run.dataset!r} was imported again while it was read")
    registered = [fold.window for fold in catalog.list_walkforward_folds(name)]
    now = fold_windows(prepared, prepared.folds)
    for position, before in enumerate(registered):
        after = now[position] if position < len(now) else None
        if after != before:
            given = "no such fold" if after is None else _described(after)
            return _decided(
                run,
                "refused",
                f"fold {before.fold} no longer has its window on the bars of {run.dataset!r} (registered "
                f"{_described(before)}; the bars now give {given}); its history changed, register a new run",
            )
    new = now[len(registered) :]
    if not new:
        return _decided(
            run,
            "unchanged",
            f"{prepared.ts_us.size} bars of {run.dataset!r} hold no whole test window after fold "
            f"{registered[-1].fold} yet",
        )
    end = registered[-1].test_end_row
    if history_sha256(store, catalog, run.dataset, prepared, end) != run.history_sha256:
        return _decided(
            run,
            "refused",
            f"the bars or feature values of the first {end} rows of {run.dataset!r} (to "
            f"{registered[-1].test_end_ts:%Y-%m-%d %H:%M} UTC) differ from those its folds were computed on; "
            "register a new run",
        )
    history = history_sha256(store, catalog, run.dataset, prepared, new[-1].test_end_row)
    try:
        record = catalog.extend_walkforward_run(name, WalkforwardExtension(dataset.version, history, new))
    except CatalogError as err:
        # The run or the dataset changed since they were read (a fold retrained, another import).
        return _decided(run, "waiting", f"not extended this time: {err}")
    return Extension(
        name,
        "extended",
        f"{name}: added folds {new[0].fold}..{new[-1].fold} (tests to {new[-1].test_end_ts:%Y-%m-%d %H:%M} "
        "UTC); the walkforward sensor trains them",
        record,
    )


def _decided_on_catalog(catalog: Catalog, run: WalkforwardRunRecord) -> Extension | DatasetRecord:
    """What `extend_run` decides on catalog rows alone, or the dataset whose new bars only reading them can
    judge."""
    if not run.rolling:
        return _decided(run, "unchanged", "not a rolling run; its folds stay as registered")
    if run.status != "completed":
        return _decided(run, "waiting", f"{run.status}; it is extended once it has completed")
    most = WalkforwardSpec.from_json(run.config).folds.max_folds
    if most is not None and run.fold_count >= most:
        return _decided(run, "unchanged", f"has the {most} folds its max_folds allows")
    dataset = catalog.get_dataset(run.dataset)
    if dataset is None:
        return _decided(run, "refused", f"its dataset {run.dataset!r} is not in the catalog")
    if dataset.publish_pending:
        return _decided(
            run, "waiting", f"the latest import of {run.dataset!r} has not finished publishing its bars"
        )
    if dataset.version == run.dataset_version:
        return _decided(run, "unchanged", f"{run.dataset!r} holds the bars the run was computed on")
    partition = f"{run.dataset}|{run.indicator_version}"
    indicators = catalog.get_indicator_set(run.dataset, run.indicator_version)
    if indicators is None or indicators.status != "ready" or indicators.dataset_version != dataset.version:
        state = "missing" if indicators is None else indicators.status
        return _decided(
            run,
            "waiting",
            f"{run.dataset!r} was imported again; indicators {partition} ({state}) are not computed on its "
            "new bars yet (the indicator_sets sensor recomputes them)",
        )
    if run.history_sha256 is None:
        return _decided(run, "refused", "registered before rolling runs kept the hash of their history")
    return dataset


def _decided(run: WalkforwardRunRecord, outcome: Outcome, message: str) -> Extension:
    return Extension(run.name, outcome, f"{run.name}: {message}")


def _described(window: FoldWindow) -> str:
    return (
        f"rows {window.train_ranges[0][0]}..{window.test_end_row - 1}, tests "
        f"{window.test_start_ts:%Y-%m-%d %H:%M}..{window.test_end_ts:%Y-%m-%d %H:%M} UTC"
    )


def refresh_simulations(catalog: Catalog, run: WalkforwardRunRecord) -> list[SimulationRecord]:
    """Point the finished sims of the completed run `run` that replay other models or bars than it has
    now at its current thresholds and versions, and mark them registered again (in the catalog, one
    transaction each). Sims still registered or running are left alone: a registered one that replays
    stale models fails, and is refreshed then."""
    current, stale = _stale_simulations(catalog, run)
    refreshed = []
    for sim in stale:
        spec = SimulationSpec.from_json(sim.config)
        used = run_thresholds(catalog, run.name) if spec.thresholds == "run" else {}
        try:
            refreshed.append(
                catalog.refresh_simulation(
                    sim.name,
                    SimulationRefresh(
                        thresholds_json(used), run.dataset_version, current, simulations.code_version()
                    ),
                )
            )
        except CatalogError:
            continue  # an attempt started, or the run changed, since they were read: a later call retries
    return refreshed


def _stale_simulations(catalog: Catalog, run: WalkforwardRunRecord) -> tuple[str, list[SimulationRecord]]:
    """The models version of the run `run` and its finished sims that replay other models or bars than it
    has now; none while it is not completed."""
    if run.status != "completed":
        return "", []
    current = models_version(catalog.list_walkforward_folds(run.name))
    now = (current, run.dataset_version)
    sims = catalog.list_simulations(run=run.name)
    return current, [
        sim
        for sim in sims
        if sim.status in ("completed", "failed") and (sim.models_version, sim.dataset_version) != now
    ]
