"""SQL text, row conversion and the multi-statement steps (indicator sets, walkforward runs, simulations)
that both catalogs share.

Both backends accept the same statements here; only the parameter placeholder differs (`%s` for
psycopg, `?` for DuckDB), so each function takes the dialect's placeholder. Steps that name the row a
database refused also take the driver's error classes for refused rows (constraint or data errors).
"""

from __future__ import annotations

import json
import math
import numbers
import operator
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import fields
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any, Protocol

from trading_assets import naming
from trading_assets.records import (
    EXIT_REASONS,
    CatalogError,
    DatasetRecord,
    FoldResult,
    FoldThresholds,
    FoldWindow,
    IndicatorOutputs,
    IndicatorSetRecord,
    SimulationRecord,
    SimulationTrade,
    WalkforwardFoldRecord,
    WalkforwardRunRecord,
    metrics_json,
)

# Columns the caller provides, in DatasetRecord's field order; the catalog sets the two timestamps.
_DATASET_INPUT = (
    "name",
    "source_file",
    "source_sha256",
    "bar_interval_s",
    "row_count",
    "first_ts",
    "last_ts",
    "table_name",
    "read_options",
    "publish_pending",
    "columns",  # last: dataset_params binds it as a list
)
_DATASET_OUTPUT = ", ".join((*_DATASET_INPUT, "created_at", "updated_at"))

LIST_DATASETS = f"SELECT {_DATASET_OUTPUT} FROM datasets ORDER BY name"


def get_dataset_sql(placeholder: str) -> str:
    """SELECT one dataset row by name."""
    return f"SELECT {_DATASET_OUTPUT} FROM datasets WHERE name = {placeholder}"


def upsert_dataset_sql(placeholder: str) -> str:
    """INSERT a dataset row, or UPDATE it by name keeping created_at; RETURNING the stored row."""
    updates = ", ".join(f"{column} = excluded.{column}" for column in _DATASET_INPUT[1:])
    return (
        f"INSERT INTO datasets ({', '.join(_DATASET_INPUT)}) "
        f"VALUES ({', '.join([placeholder] * len(_DATASET_INPUT))}) "
        f"ON CONFLICT (name) DO UPDATE SET {updates}, updated_at = now() "
        f"RETURNING {_DATASET_OUTPUT}"
    )


def dataset_params(record: DatasetRecord) -> list[Any]:
    """The parameters of `upsert_dataset_sql`; refuses naive timestamps, which no backend can place."""
    for field in ("first_ts", "last_ts"):
        _require_time_zone(f"dataset {record.name!r}", field, getattr(record, field))
    # Both drivers bind a list (not a tuple) as an array.
    return [getattr(record, column) for column in _DATASET_INPUT[:-1]] + [list(record.columns)]


def dataset_from_row(row: Sequence[Any]) -> DatasetRecord:
    """A DatasetRecord from a row in `_DATASET_OUTPUT` order, every timestamp in UTC."""
    (
        name,
        source_file,
        sha256,
        interval,
        row_count,
        first_ts,
        last_ts,
        table,
        options,
        publish_pending,
        columns,
        created,
        updated,
    ) = row
    return DatasetRecord(
        name=name,
        source_file=source_file,
        source_sha256=sha256,
        bar_interval_s=interval,
        row_count=row_count,
        first_ts=_utc(first_ts),
        last_ts=_utc(last_ts),
        table_name=table,
        read_options=options,
        publish_pending=publish_pending,
        columns=tuple(columns),
        created_at=_utc(created),
        updated_at=_utc(updated),
    )


def refused(record: DatasetRecord, err: Exception) -> CatalogError:
    """The error to raise when the database rejects a dataset row (constraint or data error)."""
    return CatalogError(f"dataset {record.name!r} refused by the catalog: {err}")


# IndicatorSetRecord's fields in order: every SELECT and RETURNING lists them so, for indicator_set_from_row.
_INDICATOR_SET_FIELDS = tuple(field.name for field in fields(IndicatorSetRecord))
_INDICATOR_SET_OUTPUT = ", ".join(_INDICATOR_SET_FIELDS)
# What registering writes; the outputs stay NULL and the status starts as 'registered'.
_INDICATOR_SET_INPUT = (
    "measurement",
    "dataset",
    "version",
    "label",
    "spec",
    "spec_sha256",
    "columns",
    "lookbacks",
)
# What record_indicator_output replaces: never the spec or what is derived from it.
_INDICATOR_OUTPUTS = (
    "status",
    "row_count",
    "first_ts",
    "last_ts",
    "bars_sha256",
    "dataset_version",
    "state",
    "code_version",
    "message",
)

LIST_INDICATOR_SETS = f"SELECT {_INDICATOR_SET_OUTPUT} FROM indicator_sets ORDER BY dataset, version"


class Cursor(Protocol):
    """What the registration steps read from `execute`: psycopg's cursor and DuckDB's connection qualify."""

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """A connection whose `execute` takes positional parameters (psycopg's and DuckDB's)."""

    def execute(self, query: str, params: Sequence[Any], /) -> Cursor: ...


def list_indicator_sets_of_sql(placeholder: str) -> str:
    """SELECT the indicator sets of one dataset, ordered by version."""
    return (
        f"SELECT {_INDICATOR_SET_OUTPUT} FROM indicator_sets WHERE dataset = {placeholder} ORDER BY version"
    )


def get_indicator_set_sql(placeholder: str) -> str:
    """SELECT one indicator set by dataset and version."""
    return (
        f"SELECT {_INDICATOR_SET_OUTPUT} FROM indicator_sets "
        f"WHERE dataset = {placeholder} AND version = {placeholder}"
    )


def get_indicator_set_by_measurement_sql(placeholder: str) -> str:
    """SELECT one indicator set by the name of its time-series table."""
    return f"SELECT {_INDICATOR_SET_OUTPUT} FROM indicator_sets WHERE measurement = {placeholder}"


def record_indicator_output_sql(placeholder: str) -> str:
    """UPDATE the outputs of one indicator set (by dataset and version); RETURNING the stored row."""
    updates = ", ".join(f"{column} = {placeholder}" for column in _INDICATOR_OUTPUTS)
    return (
        f"UPDATE indicator_sets SET {updates}, updated_at = now() "
        f"WHERE dataset = {placeholder} AND version = {placeholder} "
        f"RETURNING {_INDICATOR_SET_OUTPUT}"
    )


def indicator_output_params(dataset: str, version: int, outputs: IndicatorOutputs) -> list[Any]:
    """The parameters of `record_indicator_output_sql`; refuses naive timestamps."""
    for field in ("first_ts", "last_ts"):
        if (value := getattr(outputs, field)) is not None:
            _require_time_zone(f"indicator set {dataset!r} version {version}", field, value)
    return [*(getattr(outputs, column) for column in _INDICATOR_OUTPUTS), dataset, version]


def register_indicator_set(
    con: Connection,
    placeholder: str,
    dataset: str,
    label: str,
    spec: str,
    spec_sha256: str,
    columns: Sequence[str],
    lookbacks: Sequence[int],
) -> tuple[IndicatorSetRecord, bool]:
    """The steps of `Catalog.register_indicator_set` on `con`; returns (record, created).

    The caller must serialise registrations for `dataset` until its transaction ends (Postgres: an
    advisory lock; DuckDB: the exclusive file lock), so the next version read here is still free at the
    INSERT and two callers registering one spec find each other's row instead of colliding.
    """
    if len(columns) != len(lookbacks):
        raise CatalogError(
            f"indicator set {label!r} of dataset {dataset!r}: {len(columns)} columns "
            f"but {len(lookbacks)} lookbacks; give one lookback per column"
        )
    p = placeholder
    # Checked here, not left to the foreign key: DuckDB has none, and the message can say what to do.
    if con.execute(f"SELECT 1 FROM datasets WHERE name = {p}", [dataset]).fetchone() is None:
        raise CatalogError(
            f"dataset {dataset!r} is not in the catalog; import its bars before registering indicator sets"
        )
    found = con.execute(
        f"SELECT {_INDICATOR_SET_OUTPUT} FROM indicator_sets WHERE dataset = {p} AND spec_sha256 = {p}",
        [dataset, spec_sha256],
    ).fetchone()
    if found is not None:
        existing = indicator_set_from_row(found)
        # The hash is the caller's: a different text under it is a bug that would silently reuse values.
        if existing.spec != spec:
            raise CatalogError(
                f"indicator set {existing.measurement!r} has spec_sha256 {spec_sha256} but a different spec"
            )
        return existing, False
    (version,) = con.execute(
        f"SELECT coalesce(max(version), 0) + 1 FROM indicator_sets WHERE dataset = {p}", [dataset]
    ).fetchone()
    try:
        measurement = naming.indicator_table(dataset, str(version))
    except naming.InvalidNameError as err:
        raise CatalogError(f"dataset {dataset!r} cannot have indicator sets: {err}") from err
    row = con.execute(
        f"INSERT INTO indicator_sets ({', '.join(_INDICATOR_SET_INPUT)}, status) "
        f"VALUES ({', '.join([p] * len(_INDICATOR_SET_INPUT))}, 'registered') "
        f"RETURNING {_INDICATOR_SET_OUTPUT}",
        # Both drivers bind a list (not a tuple) as an array.
        [measurement, dataset, version, label, spec, spec_sha256, list(columns), list(lookbacks)],
    ).fetchone()
    assert row is not None  # RETURNING always yields the row
    return indicator_set_from_row(row), True


def indicator_set_from_row(row: Sequence[Any]) -> IndicatorSetRecord:
    """An IndicatorSetRecord from a row in `_INDICATOR_SET_FIELDS` order, every timestamp in UTC."""
    values = dict(zip(_INDICATOR_SET_FIELDS, row, strict=True))
    values["columns"] = tuple(values["columns"])
    values["lookbacks"] = tuple(values["lookbacks"])
    for field in ("first_ts", "last_ts", "created_at", "updated_at"):
        if values[field] is not None:
            values[field] = _utc(values[field])
    return IndicatorSetRecord(**values)


def indicator_set_refused(what: str, err: Exception) -> CatalogError:
    """The error to raise when the database rejects an indicator-set row; `what` names the set."""
    return CatalogError(f"{what} refused by the catalog: {err}")


# The driver's errors for a row the database refuses: (psycopg|duckdb).IntegrityError and DataError.
Refusals = tuple[type[Exception], ...]

# WalkforwardRunRecord's fields in order: every SELECT and RETURNING lists them so, for
# walkforward_run_from_row.
_RUN_FIELDS = tuple(field.name for field in fields(WalkforwardRunRecord))
_RUN_OUTPUT = ", ".join(_RUN_FIELDS)
# What registering writes; the status starts as 'registered' and the outputs stay NULL.
_RUN_INPUT = (
    "name",
    "dataset",
    "number",
    "indicator_version",
    "measurement",
    "config",
    "config_sha256",
    "hyperparameters",
    "target",
    "features",
    "dataset_version",
    "code_version",
    "fold_count",
    "rolling",
    "history_sha256",
)
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

LIST_WALKFORWARD_RUNS = f"SELECT {_RUN_OUTPUT} FROM walkforward_runs ORDER BY dataset, number"


def get_walkforward_run_sql(placeholder: str) -> str:
    """SELECT one walkforward run by name."""
    return f"SELECT {_RUN_OUTPUT} FROM walkforward_runs WHERE name = {placeholder}"


def list_walkforward_runs_of_sql(placeholder: str) -> str:
    """SELECT the walkforward runs of one dataset, ordered by number."""
    return f"SELECT {_RUN_OUTPUT} FROM walkforward_runs WHERE dataset = {placeholder} ORDER BY number"


def list_walkforward_folds_sql(placeholder: str) -> str:
    """SELECT the folds of one run, ordered by fold number."""
    return f"SELECT {_FOLD_OUTPUT} FROM walkforward_folds WHERE run = {placeholder} ORDER BY fold"


def list_walkforward_thresholds_sql(placeholder: str) -> str:
    """SELECT the thresholds of one run, ordered by fold number."""
    return (
        f"SELECT {', '.join(_THRESHOLD_FIELDS)} FROM walkforward_thresholds "
        f"WHERE run = {placeholder} ORDER BY fold"
    )


def register_walkforward_run(
    con: Connection,
    placeholder: str,
    refusals: Refusals,
    dataset: str,
    indicator_version: int,
    config: str,
    config_sha256: str,
    hyperparameters: str,
    target: str,
    features: Sequence[str],
    dataset_version: str,
    code_version: str,
    windows: Sequence[FoldWindow],
    request_id: int | None = None,
    rolling: bool = False,
    history_sha256: str | None = None,
) -> WalkforwardRunRecord:
    """The steps of `Catalog.register_walkforward_run` on `con`, inside the caller's transaction.

    The caller must serialise registrations for `dataset` until its transaction ends (Postgres: an
    advisory lock; DuckDB: the exclusive file lock), so the next number read here is still free at the
    INSERT.
    """
    owner = f"walkforward run of dataset {dataset!r}"
    if not windows:
        raise CatalogError(f"{owner} has no folds; give at least one window")
    numbers = [window.fold for window in windows]
    if numbers != list(range(len(windows))):
        raise CatalogError(f"{owner}: folds are numbered {numbers}; number them 0, 1, ... in order")
    fold_params = [_fold_window_params(f"fold {window.fold} of {owner}", window) for window in windows]
    _require_history(owner, rolling, history_sha256)
    p = placeholder
    # Checked here, not left to foreign keys: DuckDB has none, and the message can say what to do.
    if con.execute(f"SELECT 1 FROM datasets WHERE name = {p}", [dataset]).fetchone() is None:
        raise CatalogError(
            f"dataset {dataset!r} is not in the catalog; import its bars before registering walkforward runs"
        )
    found = con.execute(
        f"SELECT measurement, columns FROM indicator_sets WHERE dataset = {p} AND version = {p}",
        [dataset, indicator_version],
    ).fetchone()
    if found is None:
        raise CatalogError(
            f"dataset {dataset!r} has no indicator set version {indicator_version}; register it first"
        )
    measurement, columns = found
    if unknown := [feature for feature in features if feature not in columns]:
        raise CatalogError(
            f"{owner}: features {unknown} are not columns of indicator set {measurement!r} ({list(columns)})"
        )
    if len(set(features)) != len(features):
        raise CatalogError(f"{owner}: features {list(features)} name a column twice")
    (number,) = con.execute(
        f"SELECT coalesce(max(number), 0) + 1 FROM walkforward_runs WHERE dataset = {p}", [dataset]
    ).fetchone()
    try:
        name = naming.run_table(dataset, number)
    except naming.InvalidNameError as err:
        raise CatalogError(f"dataset {dataset!r} cannot have walkforward runs: {err}") from err
    run_values = [
        name,
        dataset,
        number,
        indicator_version,
        measurement,
        config,
        config_sha256,
        hyperparameters,
        target,
        list(features),  # both drivers bind a list (not a tuple) as an array
        dataset_version,
        code_version,
        len(windows),
        rolling,
        history_sha256,
    ]
    with refusing(f"walkforward run {name!r}", refusals):
        row = con.execute(
            f"INSERT INTO walkforward_runs ({', '.join(_RUN_INPUT)}, status) "
            f"VALUES ({', '.join([p] * len(_RUN_INPUT))}, 'registered') RETURNING {_RUN_OUTPUT}",
            run_values,
        ).fetchone()
    _insert_folds(con, p, refusals, name, dataset_version, windows, fold_params)
    if request_id is not None:
        take_job_request(con, p, request_id, "walkforward", name)
    return walkforward_run_from_row(row)


def _insert_folds(
    con: Connection,
    placeholder: str,
    refusals: Refusals,
    run: str,
    dataset_version: str,
    windows: Sequence[FoldWindow],
    fold_params: Sequence[list[Any]],
) -> None:
    """Insert the folds `windows` of `run` (their `_fold_window_params`), pending, computed on
    `dataset_version`."""
    p = placeholder
    insert_fold = (
        f"INSERT INTO walkforward_folds (run, fold, {', '.join(_FOLD_WINDOW)}, dataset_version, status) "
        f"VALUES ({', '.join([p] * (3 + len(_FOLD_WINDOW)))}, 'pending')"
    )
    for window, params in zip(windows, fold_params, strict=True):
        with refusing(f"fold {window.fold} of walkforward run {run!r}", refusals):
            con.execute(insert_fold, [run, window.fold, *params, dataset_version])


def _require_history(owner: str, rolling: bool, history_sha256: str | None) -> None:
    """A rolling run needs the hash of the history its folds cover, and any hash is 64 hex digits (DuckDB
    cannot add these checks to its table: migration 0008)."""
    if rolling and history_sha256 is None:
        raise CatalogError(f"{owner} is rolling but has no history_sha256; give the hash of its history")
    if history_sha256 is not None and not _HEX64.fullmatch(history_sha256):
        raise CatalogError(f"{owner}: history_sha256 {history_sha256!r} is not 64 lowercase hex digits")


def start_walkforward_fold(con: Connection, placeholder: str, run: str, fold: int) -> WalkforwardFoldRecord:
    """The steps of `Catalog.start_walkforward_fold` on `con`, inside the caller's transaction."""
    p = placeholder
    _lock_run(con, p, run)
    cleared = ", ".join(f"{column} = NULL" for column in _FOLD_RESULT)
    row = con.execute(
        f"UPDATE walkforward_folds SET status = 'running', attempts = attempts + 1, {cleared}, "
        "started_at = now(), finished_at = NULL, updated_at = now() "
        f"WHERE run = {p} AND fold = {p} RETURNING {_FOLD_OUTPUT}",
        [run, fold],
    ).fetchone()
    if row is None:
        raise CatalogError(f"walkforward run {run!r} has no fold {fold}")
    _fold_changed(con, p, run, fold)
    return walkforward_fold_from_row(row)


def record_walkforward_fold(
    con: Connection, placeholder: str, refusals: Refusals, run: str, fold: int, result: FoldResult
) -> WalkforwardFoldRecord:
    """The steps of `Catalog.record_walkforward_fold` on `con`, inside the caller's transaction.

    Also refuses a fold that was never started: a result belongs to an attempt, and `attempts` counts them.
    """
    owner = f"fold {fold} of walkforward run {run!r}"
    if result.status not in ("succeeded", "failed"):
        raise CatalogError(f"{owner}: result status {result.status!r} is neither 'succeeded' nor 'failed'")
    p = placeholder
    _lock_run(con, p, run)
    found = con.execute(
        f"SELECT status FROM walkforward_folds WHERE run = {p} AND fold = {p}", [run, fold]
    ).fetchone()
    if found is None:
        raise CatalogError(f"walkforward run {run!r} has no fold {fold}")
    if found[0] == "pending":
        raise CatalogError(f"{owner} was never started; start it before recording its result")
    updates = ", ".join(f"{column} = {p}" for column in ("status", *_FOLD_RESULT))
    with refusing(owner, refusals):
        row = con.execute(
            f"UPDATE walkforward_folds SET {updates}, finished_at = now(), updated_at = now() "
            f"WHERE run = {p} AND fold = {p} RETURNING {_FOLD_OUTPUT}",
            [result.status, *(getattr(result, column) for column in _FOLD_RESULT), run, fold],
        ).fetchone()
    _fold_changed(con, p, run, fold)
    return walkforward_fold_from_row(row)


def record_walkforward_predictions(
    con: Connection,
    placeholder: str,
    refusals: Refusals,
    run: str,
    columns: Sequence[str],
    row_count: int,
    first_ts: datetime,
    last_ts: datetime,
) -> WalkforwardRunRecord:
    """The one statement of `Catalog.record_walkforward_predictions` on `con`."""
    owner = f"walkforward run {run!r}"
    _require_time_zone(owner, "first_ts", first_ts)
    _require_time_zone(owner, "last_ts", last_ts)
    p = placeholder
    with refusing(owner, refusals):
        row = con.execute(
            f"UPDATE walkforward_runs SET prediction_columns = {p}, prediction_rows = {p}, first_ts = {p}, "
            f"last_ts = {p}, updated_at = now() WHERE name = {p} RETURNING {_RUN_OUTPUT}",
            [list(columns), row_count, first_ts, last_ts, run],
        ).fetchone()
    if row is None:
        raise CatalogError(f"no walkforward run {run!r} in the catalog")
    return walkforward_run_from_row(row)


def record_walkforward_thresholds(
    con: Connection, placeholder: str, refusals: Refusals, run: str, thresholds: Sequence[FoldThresholds]
) -> WalkforwardRunRecord:
    """The steps of `Catalog.record_walkforward_thresholds` on `con`, inside the caller's transaction.

    The values themselves (finite, long >= short, source_rows >= 0) are the tables' constraints.
    """
    p = placeholder
    _lock_run(con, p, run)
    folds = con.execute(
        f"SELECT fold, status FROM walkforward_folds WHERE run = {p} ORDER BY fold", [run]
    ).fetchall()
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
    con.execute(f"DELETE FROM walkforward_thresholds WHERE run = {p}", [run])
    insert = (
        f"INSERT INTO walkforward_thresholds (run, {', '.join(_THRESHOLD_FIELDS)}) "
        f"VALUES ({', '.join([p] * (1 + len(_THRESHOLD_FIELDS)))})"
    )
    for threshold in sorted(thresholds, key=lambda threshold: threshold.fold):
        with refusing(f"thresholds of fold {threshold.fold} of walkforward run {run!r}", refusals):
            con.execute(insert, [run, *(getattr(threshold, field) for field in _THRESHOLD_FIELDS)])
    row = con.execute(
        "UPDATE walkforward_runs SET status = 'completed', message = NULL, finished_at = now(), "
        f"updated_at = now() WHERE name = {p} RETURNING {_RUN_OUTPUT}",
        [run],
    ).fetchone()
    return walkforward_run_from_row(row)


def extend_walkforward_run(
    con: Connection,
    placeholder: str,
    refusals: Refusals,
    run: str,
    dataset_version: str,
    history_sha256: str,
    windows: Sequence[FoldWindow],
) -> WalkforwardRunRecord:
    """The steps of `Catalog.extend_walkforward_run` on `con`, inside the caller's transaction.

    That the existing folds' windows and history are unchanged is the caller's to establish (it has the
    bars); the run's row lock (Postgres) or the file lock (DuckDB) makes a second extension computed on
    the same state fail on the fold numbers instead of adding the folds twice.
    """
    owner = f"walkforward run {run!r}"
    p = placeholder
    _lock_run(con, p, run)
    record = walkforward_run_from_row(
        con.execute(f"SELECT {_RUN_OUTPUT} FROM walkforward_runs WHERE name = {p}", [run]).fetchone()
    )
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
    _require_history(owner, True, history_sha256)
    found = con.execute(
        f"SELECT {_DATASET_OUTPUT} FROM datasets WHERE name = {p}", [record.dataset]
    ).fetchone()
    current = None if found is None else dataset_from_row(found).version
    if dataset_version != current:
        raise CatalogError(
            f"{owner}: dataset_version {dataset_version} is not the version of dataset {record.dataset!r} "
            f"now ({current}); compute the new folds on the bars as they are"
        )
    (last_end,) = con.execute(
        f"SELECT max(test_end_row) FROM walkforward_folds WHERE run = {p}", [run]
    ).fetchone()
    if windows[0].test_start_row < last_end:
        raise CatalogError(
            f"{owner}: fold {windows[0].fold} tests from row {windows[0].test_start_row}, inside the run's "
            f"last test window (which ends at row {last_end}); test windows never overlap"
        )
    _insert_folds(con, p, refusals, run, dataset_version, windows, fold_params)
    folds = con.execute(
        f"SELECT fold, status, attempts, message FROM walkforward_folds WHERE run = {p} ORDER BY fold", [run]
    ).fetchall()
    status, message = _run_progress(folds)
    row = con.execute(
        f"UPDATE walkforward_runs SET fold_count = {p}, dataset_version = {p}, history_sha256 = {p}, "
        f"status = {p}, message = {p}, finished_at = CASE WHEN {p} THEN now() END, updated_at = now() "
        f"WHERE name = {p} RETURNING {_RUN_OUTPUT}",
        [len(folds), dataset_version, history_sha256, status, message, status in _RUN_ENDED, run],
    ).fetchone()
    return walkforward_run_from_row(row)


def refresh_simulation(
    con: Connection,
    placeholder: str,
    refusals: Refusals,
    name: str,
    thresholds: str,
    dataset_version: str,
    models_version: str,
    code_version: str,
) -> SimulationRecord:
    """The steps of `Catalog.refresh_simulation` on `con`, inside the caller's transaction."""
    owner = f"simulation {name!r}"
    try:
        json.loads(thresholds)
    except (TypeError, ValueError) as err:
        raise CatalogError(f"{owner}: thresholds is not JSON ({err})") from None
    if not models_version:
        raise CatalogError(f"{owner}: models_version is empty; say which fold models are replayed")
    p = placeholder
    # First, so that on Postgres the row stays locked while it is checked and changed.
    found = con.execute(
        f"UPDATE simulations SET updated_at = now() WHERE name = {p} RETURNING status, dataset, run", [name]
    ).fetchone()
    if found is None:
        raise CatalogError(f"no simulation {name!r} in the catalog")
    status, dataset, run = found
    if status == "running":
        raise CatalogError(f"{owner}: an attempt is running; refresh it once it has ended")
    run_status, run_version = con.execute(
        f"SELECT status, dataset_version FROM walkforward_runs WHERE name = {p}", [run]
    ).fetchone()
    if run_status != "completed":
        raise CatalogError(f"{owner}: its walkforward run {run!r} is {run_status!r}, not completed")
    found = con.execute(f"SELECT {_DATASET_OUTPUT} FROM datasets WHERE name = {p}", [dataset]).fetchone()
    current = None if found is None else dataset_from_row(found).version
    if run_version != current:
        raise CatalogError(
            f"{owner}: its walkforward run {run!r} predicts version {run_version} of dataset {dataset!r}, "
            f"which is now {current}"
        )
    if dataset_version != current:
        raise CatalogError(
            f"{owner}: dataset_version {dataset_version} is not the version of dataset {dataset!r} now "
            f"({current})"
        )
    cleared = ", ".join(
        f"{column} = NULL" for column in (*_SIM_OUTPUTS, "message", "started_at", "finished_at")
    )
    with refusing(owner, refusals):
        row = con.execute(
            f"UPDATE simulations SET thresholds = {p}, dataset_version = {p}, models_version = {p}, "
            f"code_version = {p}, status = 'registered', {cleared}, updated_at = now() "
            f"WHERE name = {p} RETURNING {_SIM_OUTPUT}",
            [thresholds, dataset_version, models_version, code_version, name],
        ).fetchone()
    con.execute(f"DELETE FROM simulation_trades WHERE simulation = {p}", [name])
    return simulation_from_row(row)


def walkforward_run_from_row(row: Sequence[Any]) -> WalkforwardRunRecord:
    """A WalkforwardRunRecord from a row in `_RUN_FIELDS` order, every timestamp in UTC."""
    values = dict(zip(_RUN_FIELDS, row, strict=True))
    values["features"] = tuple(values["features"])
    if values["prediction_columns"] is not None:
        values["prediction_columns"] = tuple(values["prediction_columns"])
    for field in ("started_at", "finished_at", "first_ts", "last_ts", "created_at", "updated_at"):
        values[field] = utc_or_none(values[field])
    return WalkforwardRunRecord(**values)


def walkforward_fold_from_row(row: Sequence[Any]) -> WalkforwardFoldRecord:
    """A WalkforwardFoldRecord from a row in `_FOLD_COLUMNS` order, every timestamp in UTC."""
    values = dict(zip(_FOLD_COLUMNS, row, strict=True))
    window = FoldWindow(
        fold=values["fold"],
        train_ranges=tuple((start, end) for start, end in json.loads(values["train_ranges"])),
        test_start_row=values["test_start_row"],
        test_end_row=values["test_end_row"],
        **{field: _utc(values[field]) for field in _FOLD_STAMPS},
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


def fold_thresholds_from_row(row: Sequence[Any]) -> FoldThresholds:
    """FoldThresholds from a row in `_THRESHOLD_FIELDS` order."""
    return FoldThresholds(*row)


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
        _require_time_zone(owner, field, getattr(window, field))
    ranges_json = json.dumps([[start, end] for start, end in ranges])
    stamps = [getattr(window, field) for field in _FOLD_STAMPS]
    return [ranges_json, window.test_start_row, window.test_end_row, *stamps]


def _lock_run(con: Connection, placeholder: str, run: str) -> None:
    """Touch the run's row, or refuse an unknown run. On Postgres the row stays locked until the
    transaction ends, so changes to one run's folds take turns and each derives the run's status from
    the others' committed folds (DuckDB's exclusive file lock already serialises writers)."""
    touched = con.execute(
        f"UPDATE walkforward_runs SET updated_at = now() WHERE name = {placeholder} RETURNING name", [run]
    ).fetchone()
    if touched is None:
        raise CatalogError(f"no walkforward run {run!r} in the catalog")


def _fold_changed(con: Connection, placeholder: str, run: str, fold: int) -> None:
    """After a fold's attempt or result changed: drop its thresholds, which belonged to its previous
    model, and derive the run's status, message, started_at and finished_at from its folds."""
    p = placeholder
    con.execute(f"DELETE FROM walkforward_thresholds WHERE run = {p} AND fold = {p}", [run, fold])
    folds = con.execute(
        f"SELECT fold, status, attempts, message FROM walkforward_folds WHERE run = {p} ORDER BY fold", [run]
    ).fetchall()
    status, message = _run_progress(folds)
    con.execute(
        f"UPDATE walkforward_runs SET status = {p}, message = {p}, "
        # The first start of any fold, kept once set: a retry's later start does not move it.
        "started_at = coalesce(started_at, "
        f"(SELECT min(started_at) FROM walkforward_folds WHERE run = {p})), "
        f"finished_at = CASE WHEN {p} THEN now() END, updated_at = now() WHERE name = {p}",
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


# SimulationRecord's fields in order: every SELECT and RETURNING lists them so, for simulation_from_row.
_SIM_FIELDS = tuple(field.name for field in fields(SimulationRecord))
_SIM_OUTPUT = ", ".join(_SIM_FIELDS)
# What registering writes; the status starts as 'registered' and the outputs stay NULL.
_SIM_INPUT = (
    "name",
    "dataset",
    "number",
    "run",
    "config",
    "config_sha256",
    "thresholds",
    "dataset_version",
    "models_version",
    "code_version",
)
# What a completed attempt sets, together, and starting or failing an attempt clears.
_SIM_OUTPUTS = ("metrics", "n_trades", "row_count", "first_ts", "last_ts", "series_columns")
_TRADE_FIELDS = tuple(field.name for field in fields(SimulationTrade))
# simulation_trades' columns in table order: the sim's name, then SimulationTrade's fields. The rows
# handed to a backend's bulk insert (`InsertTrades`) are tuples in this order.
TRADE_COLUMNS = ("simulation", *_TRADE_FIELDS)
# A backend's bulk insert of simulation_trades rows, on the connection of the caller's transaction.
InsertTrades = Callable[[Sequence[tuple[Any, ...]]], None]
_HEX64 = re.compile(r"[0-9a-f]{64}")
# Float fields of a trade in TRADE_COLUMNS order, with the bound each must meet besides being finite.
_TRADE_FLOATS = (
    ("size", "> 0"),
    ("entry_price", "> 0"),
    ("exit_price", "> 0"),
    ("pnl", ""),
    ("return_pct", ""),
    ("fees", ">= 0"),
)


def get_simulation_sql(placeholder: str) -> str:
    """SELECT one simulation by name."""
    return f"SELECT {_SIM_OUTPUT} FROM simulations WHERE name = {placeholder}"


def list_simulation_trades_sql(placeholder: str) -> str:
    """SELECT the trades of one simulation (TRADE_COLUMNS but the name), ordered by trade number."""
    return (
        f"SELECT {', '.join(_TRADE_FIELDS)} FROM simulation_trades "
        f"WHERE simulation = {placeholder} ORDER BY trade"
    )


def list_simulations(
    con: Connection, placeholder: str, dataset: str | None, run: str | None
) -> list[SimulationRecord]:
    """The sims of `dataset` and of `run` (each filter only if given), ordered by dataset, number."""
    filters = [(column, value) for column, value in (("dataset", dataset), ("run", run)) if value is not None]
    where = " AND ".join(f"{column} = {placeholder}" for column, _ in filters)
    rows = con.execute(
        f"SELECT {_SIM_OUTPUT} FROM simulations {'WHERE ' + where if where else ''} ORDER BY dataset, number",
        [value for _, value in filters],
    ).fetchall()
    return [simulation_from_row(row) for row in rows]


def register_simulation(
    con: Connection,
    placeholder: str,
    refusals: Refusals,
    dataset: str,
    run: str,
    config: str,
    config_sha256: str,
    thresholds: str,
    dataset_version: str,
    models_version: str,
    code_version: str,
    request_id: int | None = None,
) -> SimulationRecord:
    """The steps of `Catalog.register_simulation` on `con`, inside the caller's transaction.

    The caller must serialise registrations for `dataset` until its transaction ends (Postgres: an
    advisory lock; DuckDB: the exclusive file lock), so the next number read here is still free at the
    INSERT.
    """
    owner = f"simulation of walkforward run {run!r}"
    for field, text in (("config", config), ("thresholds", thresholds)):
        try:
            json.loads(text)
        except (TypeError, ValueError) as err:
            raise CatalogError(f"{owner}: {field} is not JSON ({err})") from None
    for field, value in (("config_sha256", config_sha256), ("dataset_version", dataset_version)):
        if not (isinstance(value, str) and _HEX64.fullmatch(value)):
            raise CatalogError(f"{owner}: {field} {value!r} is not 64 lowercase hex digits")
    if not models_version:
        raise CatalogError(f"{owner}: models_version is empty; say which fold models were replayed")
    p = placeholder
    # Checked here, not left to foreign keys: DuckDB has none, and the message can say what to do.
    found = con.execute(f"SELECT {_DATASET_OUTPUT} FROM datasets WHERE name = {p}", [dataset]).fetchone()
    if found is None:
        raise CatalogError(
            f"dataset {dataset!r} is not in the catalog; import its bars before registering simulations"
        )
    current = dataset_from_row(found).version
    found = con.execute(
        f"SELECT dataset, status, dataset_version FROM walkforward_runs WHERE name = {p}", [run]
    ).fetchone()
    if found is None:
        raise CatalogError(f"no walkforward run {run!r} in the catalog")
    run_dataset, run_status, run_version = found
    if run_dataset != dataset:
        raise CatalogError(f"walkforward run {run!r} belongs to dataset {run_dataset!r}, not {dataset!r}")
    if run_status != "completed":
        raise CatalogError(
            f"walkforward run {run!r} is {run_status!r}; simulate a completed run "
            "(every fold trained, thresholds stored)"
        )
    # The replayed predictions, the bars the simulator reads and the sim must all be of one import.
    if run_version != current:
        raise CatalogError(
            f"walkforward run {run!r} predicts version {run_version} of dataset {dataset!r}, which was "
            f"imported again since (now {current}); simulate a run of the current bars"
        )
    if dataset_version != current:
        raise CatalogError(
            f"{owner}: dataset_version {dataset_version} is not the version of dataset {dataset!r} "
            f"now ({current})"
        )
    (number,) = con.execute(
        f"SELECT coalesce(max(number), 0) + 1 FROM simulations WHERE dataset = {p}", [dataset]
    ).fetchone()
    try:
        name = naming.sim_table(dataset, number)
    except naming.InvalidNameError as err:
        raise CatalogError(f"dataset {dataset!r} cannot have simulations: {err}") from err
    values = [
        name,
        dataset,
        number,
        run,
        config,
        config_sha256,
        thresholds,
        dataset_version,
        models_version,
        code_version,
    ]
    with refusing(f"simulation {name!r}", refusals):
        row = con.execute(
            f"INSERT INTO simulations ({', '.join(_SIM_INPUT)}, status) "
            f"VALUES ({', '.join([p] * len(_SIM_INPUT))}, 'registered') RETURNING {_SIM_OUTPUT}",
            values,
        ).fetchone()
    if request_id is not None:
        take_job_request(con, p, request_id, "simulation", name)
    return simulation_from_row(row)


def take_job_request(con: Connection, p: str, request_id: int, kind: str, target: str) -> None:
    """Give a QUEUED job request not yet taken its registered target; CatalogError (rolling the
    registration back) if it is not one, so a request never gets two runs or sims."""
    row = con.execute(
        f"UPDATE job_requests SET target = {p}, updated_at = now() "
        f"WHERE id = {p} AND kind = {p} AND status = 'QUEUED' AND target IS NULL RETURNING id",
        [target, request_id, kind],
    ).fetchone()
    if row is None:
        found = con.execute(
            f"SELECT kind, status, target FROM job_requests WHERE id = {p}", [request_id]
        ).fetchone()
        state = "does not exist" if found is None else "is {}, {}, target {}".format(*found)
        raise CatalogError(f"job request {request_id} cannot take {kind} {target!r}: it {state}")


def start_simulation(con: Connection, placeholder: str, name: str) -> SimulationRecord:
    """The steps of `Catalog.start_simulation` on `con`, inside the caller's transaction."""
    p = placeholder
    cleared = ", ".join(f"{column} = NULL" for column in (*_SIM_OUTPUTS, "message", "finished_at"))
    # First, so that on Postgres the row stays locked and attempts at one sim take turns.
    row = con.execute(
        f"UPDATE simulations SET status = 'running', {cleared}, started_at = now(), updated_at = now() "
        f"WHERE name = {p} RETURNING {_SIM_OUTPUT}",
        [name],
    ).fetchone()
    if row is None:
        raise CatalogError(f"no simulation {name!r} in the catalog")
    con.execute(f"DELETE FROM simulation_trades WHERE simulation = {p}", [name])
    return simulation_from_row(row)


def record_simulation(
    con: Connection,
    placeholder: str,
    refusals: Refusals,
    insert_trades: InsertTrades,
    name: str,
    metrics: Mapping[str, float | int],
    trades: Sequence[SimulationTrade],
    series_columns: Sequence[str],
    row_count: int,
    first_ts: datetime,
    last_ts: datetime,
) -> SimulationRecord:
    """The steps of `Catalog.record_simulation` on `con`, inside the caller's transaction.

    Every argument is checked before the first statement; `insert_trades` writes the rows after the
    previous attempt's trades are deleted.
    """
    owner = f"simulation {name!r}"
    _require_time_zone(owner, "first_ts", first_ts)
    _require_time_zone(owner, "last_ts", last_ts)
    if last_ts < first_ts:
        raise CatalogError(f"{owner}: last_ts {last_ts} is before first_ts {first_ts}")
    if isinstance(row_count, bool) or not isinstance(row_count, int) or row_count < 1:
        raise CatalogError(f"{owner}: row_count {row_count!r} is not a positive integer")
    if not series_columns:
        raise CatalogError(f"{owner}: series_columns is empty; name the series table's columns")
    try:
        metrics_text = metrics_json(metrics)
    except CatalogError as err:
        raise CatalogError(f"{owner}: {err}") from None
    rows = [
        _trade_row(name, number, trade, row_count, first_ts, last_ts) for number, trade in enumerate(trades)
    ]
    p = placeholder
    outputs = [metrics_text, len(rows), row_count, first_ts, last_ts, list(series_columns)]
    updates = ", ".join(f"{column} = {p}" for column in _SIM_OUTPUTS)
    # First, so that on Postgres the row stays locked and attempts at one sim take turns.
    with refusing(owner, refusals):
        row = con.execute(
            f"UPDATE simulations SET status = 'completed', {updates}, message = NULL, finished_at = now(), "
            f"updated_at = now() WHERE name = {p} RETURNING {_SIM_OUTPUT}",
            [*outputs, name],
        ).fetchone()
    if row is None:
        raise CatalogError(f"no simulation {name!r} in the catalog")
    con.execute(f"DELETE FROM simulation_trades WHERE simulation = {p}", [name])
    if rows:
        with refusing(f"trades of {owner}", refusals):
            insert_trades(rows)
    return simulation_from_row(row)


def record_simulation_failure(con: Connection, placeholder: str, name: str, message: str) -> SimulationRecord:
    """The steps of `Catalog.record_simulation_failure` on `con`, inside the caller's transaction."""
    p = placeholder
    cleared = ", ".join(f"{column} = NULL" for column in _SIM_OUTPUTS)
    row = con.execute(
        f"UPDATE simulations SET status = 'failed', {cleared}, message = {p}, finished_at = now(), "
        f"updated_at = now() WHERE name = {p} RETURNING {_SIM_OUTPUT}",
        [message, name],
    ).fetchone()
    if row is None:
        raise CatalogError(f"no simulation {name!r} in the catalog")
    con.execute(f"DELETE FROM simulation_trades WHERE simulation = {p}", [name])
    return simulation_from_row(row)


def simulation_from_row(row: Sequence[Any]) -> SimulationRecord:
    """A SimulationRecord from a row in `_SIM_FIELDS` order, every timestamp in UTC."""
    values = dict(zip(_SIM_FIELDS, row, strict=True))
    if values["series_columns"] is not None:
        values["series_columns"] = tuple(values["series_columns"])
    for field in ("first_ts", "last_ts", "started_at", "finished_at", "created_at", "updated_at"):
        values[field] = utc_or_none(values[field])
    return SimulationRecord(**values)


def simulation_trade_from_row(row: Sequence[Any]) -> SimulationTrade:
    """A SimulationTrade from a row in `_TRADE_FIELDS` order, its timestamps in UTC."""
    trade, entry_idx, exit_idx, entry_ts, exit_ts, *rest = row
    return SimulationTrade(trade, entry_idx, exit_idx, _utc(entry_ts), _utc(exit_ts), *rest)


def _trade_row(
    name: str, number: int, trade: SimulationTrade, row_count: int, first_ts: datetime, last_ts: datetime
) -> tuple[Any, ...]:
    """Trade `number` of sim `name` as a TRADE_COLUMNS row of plain ints and floats (numpy scalars are
    converted); CatalogError naming the trade and field if it cannot be right. Runs once per trade of
    sims with 10^5 of them: the messages are built only for a refusal."""

    def refused(field: str, value: object, rule: str) -> CatalogError:
        shown = repr(value) if value is None or isinstance(value, str) else value
        return CatalogError(f"trade {number} of simulation {name!r}: {field} {shown} {rule}")

    integers = []
    for field in ("trade", "entry_idx", "exit_idx", "side", "bars_held"):
        value = getattr(trade, field)
        try:
            integers.append(operator.index(value))
        except TypeError:
            raise refused(field, value, "is not an integer") from None
    trade_number, entry_idx, exit_idx, side, bars_held = integers
    if trade_number != number:
        raise refused("trade", trade_number, "is out of order; number the trades 0, 1, ... as given")
    if not 0 <= entry_idx < row_count:
        raise refused("entry_idx", entry_idx, f"is not a bar of the series (0..{row_count - 1})")
    if not entry_idx <= exit_idx < row_count:
        raise refused("exit_idx", exit_idx, f"is not a bar from entry_idx {entry_idx} to {row_count - 1}")
    if side not in (1, -1):
        raise refused("side", side, "is neither 1 (long) nor -1 (short)")
    if bars_held < 0:
        raise refused("bars_held", bars_held, "is negative")
    entry_ts, exit_ts = trade.entry_ts, trade.exit_ts
    for field, stamp in (("entry_ts", entry_ts), ("exit_ts", exit_ts)):
        if stamp.tzinfo is None or stamp.utcoffset() is None:
            raise refused(field, stamp, "has no time zone; pass UTC")
    if not first_ts <= entry_ts <= last_ts:
        raise refused("entry_ts", entry_ts, f"is outside the series ({first_ts} to {last_ts})")
    if not entry_ts <= exit_ts <= last_ts:
        raise refused("exit_ts", exit_ts, f"is not from entry_ts {entry_ts} to the series' end {last_ts}")
    floats = []
    for field, bound in _TRADE_FLOATS:
        value = getattr(trade, field)
        # numbers.Real takes numpy's scalars too; a string, None or a Decimal is a caller's bug.
        if type(value) is not float and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
            raise refused(field, value, "is not a number")
        value = float(value)
        if not (math.isfinite(value) and (value > 0 if bound == "> 0" else value >= 0 if bound else True)):
            raise refused(field, value, f"is not a finite number{' ' + bound if bound else ''}")
        floats.append(value)
    if trade.exit_reason not in EXIT_REASONS:
        raise refused("exit_reason", trade.exit_reason, f"is not one of {', '.join(EXIT_REASONS)}")
    return (name, number, entry_idx, exit_idx, entry_ts, exit_ts, side, *floats, bars_held, trade.exit_reason)


@contextmanager
def refusing(owner: str, refusals: Refusals) -> Iterator[None]:
    """Turn the database refusing a row of `owner` into a CatalogError that names it."""
    try:
        yield
    except refusals as err:
        raise CatalogError(f"{owner} refused by the catalog: {err}") from err


def _require_time_zone(owner: str, field: str, value: datetime) -> None:
    # A naive timestamp would be read in the session's zone, which no caller can be sure of.
    if value.tzinfo is None or value.utcoffset() is None:
        raise CatalogError(f"{owner}: {field} {value} has no time zone; pass UTC")


def _utc(value: datetime) -> datetime:
    # Drivers return the session zone's tzinfo (zoneinfo, pytz); one tzinfo keeps records comparable.
    return value.astimezone(UTC)


def utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else _utc(value)
