"""The walkforward tables: runs, their folds (one attempt's window, status and result each) and the
per-fold thresholds that complete a run."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import fields
from itertools import pairwise
from typing import Any

from resources.catalog import datasets, job_requests
from resources.catalog.dialect import Session
from resources.catalog.rows import HEX64, record_from_row, require_time_zone, utc, utc_or_none, where
from trading_assets import naming
from trading_assets.records import (
    CatalogError,
    FoldResult,
    FoldThresholds,
    FoldWindow,
    NewWalkforwardRun,
    WalkforwardExtension,
    WalkforwardFoldRecord,
    WalkforwardPredictions,
    WalkforwardRunRecord,
)

# WalkforwardRunRecord's fields in order: every SELECT and RETURNING lists them so, for run_from_row.
_RUN_FIELDS = tuple(field.name for field in fields(WalkforwardRunRecord))
_RUN_OUTPUT = ", ".join(_RUN_FIELDS)
# A run has ended, for now, in these states; any other clears finished_at.
_RUN_ENDED = frozenset({"trained", "completed", "failed"})
_FOLD_STAMPS = ("train_start_ts", "train_end_ts", "test_start_ts", "test_end_ts")
_FOLD_WINDOW = ("train_ranges", "test_start_row", "test_end_row", *_FOLD_STAMPS)
# FoldResult's fields but its status, which is the fold's own status column once a result is stored.
_FOLD_RESULT = tuple(field.name for field in fields(FoldResult) if field.name != "status")
_FOLD_COLUMNS = (
    "run",
    "fold",
    *_FOLD_WINDOW,
    "dataset_version",
    "status",
    "attempts",
    *_FOLD_RESULT,
    "started_at",
    "finished_at",
    "updated_at",
)
_FOLD_OUTPUT = ", ".join(_FOLD_COLUMNS)
_THRESHOLD_FIELDS = tuple(field.name for field in fields(FoldThresholds))
_SELECT_RUN = f"SELECT {_RUN_OUTPUT} FROM walkforward_runs"
_FOLD_PROGRESS = "SELECT fold, status, attempts, message FROM walkforward_folds WHERE run = %s ORDER BY fold"


def register(db: Session, new: NewWalkforwardRun) -> WalkforwardRunRecord:
    """The steps of `Catalog.register_walkforward_run`, inside the caller's transaction and under the
    dataset's numbering lock, so the next number read here is still free at the INSERT."""
    dataset = new.dataset
    owner = f"walkforward run of dataset {dataset!r}"
    windows = new.windows
    if not windows:
        raise CatalogError(f"{owner} has no folds; give at least one window")
    numbers = [window.fold for window in windows]
    if numbers != list(range(len(windows))):
        raise CatalogError(f"{owner}: folds are numbered {numbers}; number them 0, 1, ... in order")
    fold_params = [_fold_window_params(f"fold {window.fold} of {owner}", window) for window in windows]
    _require_history(owner, new.rolling, new.history_sha256)
    db.lock_numbering("walkforward_runs", dataset)
    # Checked here, not left to foreign keys: DuckDB has none, and the message can say what to do.
    if db.one("SELECT 1 FROM datasets WHERE name = %s", [dataset]) is None:
        raise CatalogError(
            f"dataset {dataset!r} is not in the catalog; import its bars before registering walkforward runs"
        )
    found = db.one(
        "SELECT measurement, columns FROM indicator_sets WHERE dataset = %s AND version = %s",
        [dataset, new.indicator_version],
    )
    if found is None:
        raise CatalogError(
            f"dataset {dataset!r} has no indicator set version {new.indicator_version}; register it first"
        )
    measurement, columns = found
    features = new.features
    if unknown := [feature for feature in features if feature not in columns]:
        raise CatalogError(
            f"{owner}: features {unknown} are not columns of indicator set {measurement!r} ({list(columns)})"
        )
    if len(set(features)) != len(features):
        raise CatalogError(f"{owner}: features {list(features)} name a column twice")
    (number,) = db.one(
        "SELECT coalesce(max(number), 0) + 1 FROM walkforward_runs WHERE dataset = %s", [dataset]
    )
    try:
        name = naming.run_table(dataset, number)
    except naming.InvalidNameError as err:
        raise CatalogError(f"dataset {dataset!r} cannot have walkforward runs: {err}") from err
    # The status starts as 'registered' and the outputs stay NULL.
    values = {
        "name": name,
        "dataset": dataset,
        "number": number,
        "indicator_version": new.indicator_version,
        "measurement": measurement,
        "config": new.config,
        "config_sha256": new.config_sha256,
        "hyperparameters": new.hyperparameters,
        "target": new.target,
        "features": list(features),  # both drivers bind a list (not a tuple) as an array
        "dataset_version": new.dataset_version,
        "code_version": new.code_version,
        "fold_count": len(windows),
        "rolling": new.rolling,
        "history_sha256": new.history_sha256,
    }
    with db.refusing(f"walkforward run {name!r}"):
        row = db.one(
            f"INSERT INTO walkforward_runs ({', '.join(values)}, status) "
            f"VALUES ({', '.join(['%s'] * len(values))}, 'registered') RETURNING {_RUN_OUTPUT}",
            list(values.values()),
        )
    _insert_folds(db, name, new.dataset_version, windows, fold_params)
    if new.request_id is not None:
        job_requests.take(db, new.request_id, "walkforward", name)
    return run_from_row(row)


def get(db: Session, name: str) -> WalkforwardRunRecord | None:
    row = db.one(f"{_SELECT_RUN} WHERE name = %s", [name])
    return None if row is None else run_from_row(row)


def list_runs(db: Session, dataset: str | None) -> list[WalkforwardRunRecord]:
    clause, params = where(dataset=dataset)
    return [run_from_row(row) for row in db.all(f"{_SELECT_RUN}{clause} ORDER BY dataset, number", params)]


def list_folds(db: Session, run: str) -> list[WalkforwardFoldRecord]:
    rows = db.all(f"SELECT {_FOLD_OUTPUT} FROM walkforward_folds WHERE run = %s ORDER BY fold", [run])
    return [fold_from_row(row) for row in rows]


def list_thresholds(db: Session, run: str) -> list[FoldThresholds]:
    rows = db.all(
        f"SELECT {', '.join(_THRESHOLD_FIELDS)} FROM walkforward_thresholds WHERE run = %s ORDER BY fold",
        [run],
    )
    return [FoldThresholds(*row) for row in rows]


def start_fold(db: Session, run: str, fold: int) -> WalkforwardFoldRecord:
    """The steps of `Catalog.start_walkforward_fold`, inside the caller's transaction."""
    _lock_run(db, run)
    cleared = ", ".join(f"{column} = NULL" for column in _FOLD_RESULT)
    row = db.one(
        f"UPDATE walkforward_folds SET status = 'running', attempts = attempts + 1, {cleared}, "
        "started_at = now(), finished_at = NULL, updated_at = now() "
        f"WHERE run = %s AND fold = %s RETURNING {_FOLD_OUTPUT}",
        [run, fold],
    )
    if row is None:
        raise CatalogError(f"walkforward run {run!r} has no fold {fold}")
    _fold_changed(db, run, fold)
    return fold_from_row(row)


def record_fold(db: Session, run: str, fold: int, result: FoldResult) -> WalkforwardFoldRecord:
    """The steps of `Catalog.record_walkforward_fold`, inside the caller's transaction.

    Also refuses a fold that was never started: a result belongs to an attempt, and `attempts` counts them.
    """
    owner = f"fold {fold} of walkforward run {run!r}"
    if result.status not in ("succeeded", "failed"):
        raise CatalogError(f"{owner}: result status {result.status!r} is neither 'succeeded' nor 'failed'")
    _lock_run(db, run)
    found = db.one("SELECT status FROM walkforward_folds WHERE run = %s AND fold = %s", [run, fold])
    if found is None:
        raise CatalogError(f"walkforward run {run!r} has no fold {fold}")
    if found[0] == "pending":
        raise CatalogError(f"{owner} was never started; start it before recording its result")
    updates = ", ".join(f"{column} = %s" for column in ("status", *_FOLD_RESULT))
    with db.refusing(owner):
        row = db.one(
            f"UPDATE walkforward_folds SET {updates}, finished_at = now(), updated_at = now() "
            f"WHERE run = %s AND fold = %s RETURNING {_FOLD_OUTPUT}",
            [result.status, *(getattr(result, column) for column in _FOLD_RESULT), run, fold],
        )
    _fold_changed(db, run, fold)
    return fold_from_row(row)


def record_and_start(
    db: Session, run: str, results: Mapping[int, FoldResult], start: Sequence[int]
) -> tuple[list[WalkforwardFoldRecord], list[WalkforwardFoldRecord]]:
    """The steps of `Catalog.record_walkforward_folds`, inside the caller's transaction."""
    recorded = [record_fold(db, run, fold, result) for fold, result in results.items()]
    started = [start_fold(db, run, fold) for fold in start]
    return recorded, started


def record_predictions(db: Session, run: str, predictions: WalkforwardPredictions) -> WalkforwardRunRecord:
    """The one statement of `Catalog.record_walkforward_predictions`."""
    owner = f"walkforward run {run!r}"
    require_time_zone(owner, "first_ts", predictions.first_ts)
    require_time_zone(owner, "last_ts", predictions.last_ts)
    with db.refusing(owner):
        row = db.one(
            "UPDATE walkforward_runs SET prediction_columns = %s, prediction_rows = %s, first_ts = %s, "
            f"last_ts = %s, updated_at = now() WHERE name = %s RETURNING {_RUN_OUTPUT}",
            [
                list(predictions.columns),
                predictions.row_count,
                predictions.first_ts,
                predictions.last_ts,
                run,
            ],
        )
    if row is None:
        raise CatalogError(f"no walkforward run {run!r} in the catalog")
    return run_from_row(row)


def record_thresholds(db: Session, run: str, thresholds: Sequence[FoldThresholds]) -> WalkforwardRunRecord:
    """The steps of `Catalog.record_walkforward_thresholds`, inside the caller's transaction.

    The values themselves (finite, long >= short, source_rows >= 0) are the tables' constraints.
    """
    _lock_run(db, run)
    folds = db.all("SELECT fold, status FROM walkforward_folds WHERE run = %s ORDER BY fold", [run])
    if unfinished := [fold for fold, status in folds if status != "succeeded"]:
        raise CatalogError(
            f"walkforward run {run!r}: folds {unfinished} have not succeeded; "
            "thresholds need every fold trained"
        )
    given = sorted(threshold.fold for threshold in thresholds)
    if given != [fold for fold, _ in folds]:
        raise CatalogError(
            f"walkforward run {run!r} has folds 0..{len(folds) - 1} but thresholds were given for folds "
            f"{given}; give one per fold"
        )
    db.execute("DELETE FROM walkforward_thresholds WHERE run = %s", [run])
    insert = (
        f"INSERT INTO walkforward_thresholds (run, {', '.join(_THRESHOLD_FIELDS)}) "
        f"VALUES ({', '.join(['%s'] * (1 + len(_THRESHOLD_FIELDS)))})"
    )
    for threshold in sorted(thresholds, key=lambda threshold: threshold.fold):
        with db.refusing(f"thresholds of fold {threshold.fold} of walkforward run {run!r}"):
            db.execute(insert, [run, *(getattr(threshold, field) for field in _THRESHOLD_FIELDS)])
    row = db.one(
        "UPDATE walkforward_runs SET status = 'completed', message = NULL, finished_at = now(), "
        f"updated_at = now() WHERE name = %s RETURNING {_RUN_OUTPUT}",
        [run],
    )
    return run_from_row(row)


def extend(db: Session, run: str, extension: WalkforwardExtension) -> WalkforwardRunRecord:
    """The steps of `Catalog.extend_walkforward_run`, inside the caller's transaction.

    That the existing folds' windows and history are unchanged is the caller's to establish (it has the
    bars); the run's row lock (Postgres) or the file lock (DuckDB) makes a second extension computed on
    the same state fail on the fold numbers instead of adding the folds twice.
    """
    owner = f"walkforward run {run!r}"
    windows, dataset_version = extension.windows, extension.dataset_version
    _lock_run(db, run)
    record = run_from_row(db.one(f"{_SELECT_RUN} WHERE name = %s", [run]))
    if not record.rolling:
        raise CatalogError(f"{owner} is not rolling: its folds stay as they were registered")
    if record.status != "completed":
        raise CatalogError(
            f"{owner} is {record.status!r}; extend a completed run (every fold trained, thresholds stored)"
        )
    if not windows:
        raise CatalogError(f"{owner}: no folds to add; give at least one window")
    numbers = [window.fold for window in windows]
    expected = list(range(record.fold_count, record.fold_count + len(windows)))
    if numbers != expected:
        raise CatalogError(
            f"{owner} has folds 0..{record.fold_count - 1}; the new folds are numbered {numbers}, "
            f"not {expected}"
        )
    fold_params = [_fold_window_params(f"fold {window.fold} of {owner}", window) for window in windows]
    _require_history(owner, True, extension.history_sha256)
    datasets.require_version(
        owner,
        record.dataset,
        dataset_version,
        datasets.version(db, record.dataset),
        "; compute the new folds on the bars as they are",
    )
    (last_end,) = db.one("SELECT max(test_end_row) FROM walkforward_folds WHERE run = %s", [run])
    if windows[0].test_start_row < last_end:
        raise CatalogError(
            f"{owner}: fold {windows[0].fold} tests from row {windows[0].test_start_row}, inside the run's "
            f"last test window (which ends at row {last_end}); test windows never overlap"
        )
    _insert_folds(db, run, dataset_version, windows, fold_params)
    folds = db.all(_FOLD_PROGRESS, [run])
    status, message = _run_progress(folds)
    row = db.one(
        "UPDATE walkforward_runs SET fold_count = %s, dataset_version = %s, history_sha256 = %s, "
        "status = %s, message = %s, finished_at = CASE WHEN %s THEN now() END, updated_at = now() "
        f"WHERE name = %s RETURNING {_RUN_OUTPUT}",
        [len(folds), dataset_version, extension.history_sha256, status, message, status in _RUN_ENDED, run],
    )
    return run_from_row(row)


def run_from_row(row: Sequence[Any]) -> WalkforwardRunRecord:
    return record_from_row(WalkforwardRunRecord, row)


def fold_from_row(row: Sequence[Any]) -> WalkforwardFoldRecord:
    """A WalkforwardFoldRecord from a row in `_FOLD_COLUMNS` order, every timestamp in UTC."""
    values = dict(zip(_FOLD_COLUMNS, row, strict=True))
    window = FoldWindow(
        fold=values["fold"],
        train_ranges=tuple((start, end) for start, end in json.loads(values["train_ranges"])),
        test_start_row=values["test_start_row"],
        test_end_row=values["test_end_row"],
        **{field: utc(values[field]) for field in _FOLD_STAMPS},
    )
    status = values["status"]
    # Pending and running folds have no result: starting an attempt clears the previous one's.
    result = None
    if status in ("succeeded", "failed"):
        result = FoldResult(status, **{column: values[column] for column in _FOLD_RESULT})
    return WalkforwardFoldRecord(
        run=values["run"],
        window=window,
        dataset_version=values["dataset_version"],
        status=status,
        attempts=values["attempts"],
        result=result,
        started_at=utc_or_none(values["started_at"]),
        finished_at=utc_or_none(values["finished_at"]),
        updated_at=utc_or_none(values["updated_at"]),
    )


def _insert_folds(
    db: Session,
    run: str,
    dataset_version: str,
    windows: Sequence[FoldWindow],
    fold_params: Sequence[list[Any]],
) -> None:
    """Insert the folds `windows` of `run` (their `_fold_window_params`), pending, computed on
    `dataset_version`."""
    insert_fold = (
        f"INSERT INTO walkforward_folds (run, fold, {', '.join(_FOLD_WINDOW)}, dataset_version, status) "
        f"VALUES ({', '.join(['%s'] * (3 + len(_FOLD_WINDOW)))}, 'pending')"
    )
    for window, params in zip(windows, fold_params, strict=True):
        with db.refusing(f"fold {window.fold} of walkforward run {run!r}"):
            db.execute(insert_fold, [run, window.fold, *params, dataset_version])


def _require_history(owner: str, rolling: bool, history_sha256: str | None) -> None:
    """A rolling run needs the hash of the history its folds cover, and any hash is 64 hex digits (DuckDB
    cannot add these checks to its table: migration 0008)."""
    if rolling and history_sha256 is None:
        raise CatalogError(f"{owner} is rolling but has no history_sha256; give the hash of its history")
    if history_sha256 is not None and not HEX64.fullmatch(history_sha256):
        raise CatalogError(f"{owner}: history_sha256 {history_sha256!r} is not 64 lowercase hex digits")


def _fold_window_params(owner: str, window: FoldWindow) -> list[Any]:
    """The `_FOLD_WINDOW` values of one fold; refuses naive timestamps and malformed training ranges."""
    ranges = window.train_ranges
    # start_0 < end_0 <= start_1 < end_1 <= ... <= test_start_row: training rows come before the test.
    if not (
        ranges
        and ranges[0][0] >= 0
        and all(start < end for start, end in ranges)
        and all(before[1] <= after[0] for before, after in pairwise(ranges))
        and ranges[-1][1] <= window.test_start_row
    ):
        raise CatalogError(
            f"{owner}: train_ranges {[list(r) for r in ranges]} must be ascending, disjoint, non-empty "
            f"[start, end) row ranges ending by test_start_row {window.test_start_row}"
        )
    for field in _FOLD_STAMPS:
        require_time_zone(owner, field, getattr(window, field))
    ranges_json = json.dumps([[start, end] for start, end in ranges])
    stamps = [getattr(window, field) for field in _FOLD_STAMPS]
    return [ranges_json, window.test_start_row, window.test_end_row, *stamps]


def _lock_run(db: Session, run: str) -> None:
    """Touch the run's row, or refuse an unknown run. On Postgres the row stays locked until the
    transaction ends, so changes to one run's folds take turns and each derives the run's status from
    the others' committed folds (DuckDB's exclusive file lock already serialises writers)."""
    if db.one("UPDATE walkforward_runs SET updated_at = now() WHERE name = %s RETURNING name", [run]) is None:
        raise CatalogError(f"no walkforward run {run!r} in the catalog")


def _fold_changed(db: Session, run: str, fold: int) -> None:
    """After a fold's attempt or result changed: drop its thresholds, which belonged to its previous
    model, and derive the run's status, message, started_at and finished_at from its folds."""
    db.execute("DELETE FROM walkforward_thresholds WHERE run = %s AND fold = %s", [run, fold])
    status, message = _run_progress(db.all(_FOLD_PROGRESS, [run]))
    db.execute(
        "UPDATE walkforward_runs SET status = %s, message = %s, "
        # The first start of any fold, kept once set: a retry's later start does not move it.
        "started_at = coalesce(started_at, (SELECT min(started_at) FROM walkforward_folds WHERE run = %s)), "
        "finished_at = CASE WHEN %s THEN now() END, updated_at = now() WHERE name = %s",
        [status, message, run, status in _RUN_ENDED, run],
    )


def _run_progress(folds: Sequence[tuple[int, str, int, str | None]]) -> tuple[str, str | None]:
    """A run's (status, message) from its folds' (fold, status, attempts, message), in fold order.

    failed while any fold's latest attempt failed (message: the first such fold's), else trained when
    every fold succeeded, else running once any fold was started, else registered. Never "completed":
    only storing thresholds completes a run, and any later change to a fold undoes it.
    """
    failed = [(fold, message) for fold, status, _, message in folds if status == "failed"]
    if failed:
        fold, message = failed[0]
        return "failed", f"fold {fold}: {message or 'failed without a message'}"
    if all(status == "succeeded" for _, status, _, _ in folds):
        return "trained", None
    if any(attempts > 0 for _, _, attempts, _ in folds):
        return "running", None
    return "registered", None
