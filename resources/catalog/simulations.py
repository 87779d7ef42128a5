"""The simulation tables: sims (a run's predictions replayed with a config, and the outcome) and their
trades."""

from __future__ import annotations

import json
import math
import numbers
import operator
from collections.abc import Sequence
from dataclasses import asdict, fields
from datetime import datetime
from typing import Any

from resources.catalog import datasets, job_requests
from resources.catalog.dialect import Session
from resources.catalog.rows import HEX64, record_from_row, require_time_zone, utc, where
from trading_assets import naming
from trading_assets.records import (
    EXIT_REASONS,
    CatalogError,
    NewSimulation,
    SimulationOutcome,
    SimulationRecord,
    SimulationRefresh,
    SimulationTrade,
    metrics_json,
)

# SimulationRecord's fields in order: every SELECT and RETURNING lists them so, for _from_row.
_FIELDS = tuple(field.name for field in fields(SimulationRecord))
_OUTPUT = ", ".join(_FIELDS)
# What a completed attempt sets, together, and starting or failing an attempt clears.
_OUTPUTS = ("metrics", "n_trades", "row_count", "first_ts", "last_ts", "series_columns")
# What refreshing a sim replaces: the columns named as SimulationRefresh's fields.
_REFRESHED = tuple(field.name for field in fields(SimulationRefresh))
_TRADE_FIELDS = tuple(field.name for field in fields(SimulationTrade))
# Float fields of a trade in TRADE_COLUMNS order, with the bound each must meet besides being finite.
_TRADE_FLOATS = (
    ("size", "> 0"),
    ("entry_price", "> 0"),
    ("exit_price", "> 0"),
    ("pnl", ""),
    ("return_pct", ""),
    ("fees", ">= 0"),
)
_DELETE_TRADES = "DELETE FROM simulation_trades WHERE simulation = %s"


def get(db: Session, name: str) -> SimulationRecord | None:
    row = db.one(f"SELECT {_OUTPUT} FROM simulations WHERE name = %s", [name])
    return None if row is None else _from_row(row)


def list_of(db: Session, dataset: str | None, run: str | None) -> list[SimulationRecord]:
    """The sims of `dataset` and of `run` (each filter only if given), ordered by dataset, number."""
    clause, params = where(dataset=dataset, run=run)
    rows = db.all(f"SELECT {_OUTPUT} FROM simulations{clause} ORDER BY dataset, number", params)
    return [_from_row(row) for row in rows]


def list_trades(db: Session, name: str) -> list[SimulationTrade]:
    rows = db.all(
        f"SELECT {', '.join(_TRADE_FIELDS)} FROM simulation_trades WHERE simulation = %s ORDER BY trade",
        [name],
    )
    return [_trade_from_row(row) for row in rows]


def register(db: Session, new: NewSimulation) -> SimulationRecord:
    """The steps of `Catalog.register_simulation`, inside the caller's transaction and under the dataset's
    numbering lock, so the next number read here is still free at the INSERT."""
    dataset, run = new.dataset, new.run
    owner = f"simulation of walkforward run {run!r}"
    for field, text in (("config", new.config), ("thresholds", new.thresholds)):
        try:
            json.loads(text)
        except (TypeError, ValueError) as err:
            raise CatalogError(f"{owner}: {field} is not JSON ({err})") from None
    for field, value in (("config_sha256", new.config_sha256), ("dataset_version", new.dataset_version)):
        if not (isinstance(value, str) and HEX64.fullmatch(value)):
            raise CatalogError(f"{owner}: {field} {value!r} is not 64 lowercase hex digits")
    if not new.models_version:
        raise CatalogError(f"{owner}: models_version is empty; say which fold models were replayed")
    db.lock_numbering("simulations", dataset)
    # Checked here, not left to foreign keys: DuckDB has none, and the message can say what to do.
    current = datasets.version(db, dataset)
    if current is None:
        raise CatalogError(
            f"dataset {dataset!r} is not in the catalog; import its bars before registering simulations"
        )
    found = db.one("SELECT dataset, status, dataset_version FROM walkforward_runs WHERE name = %s", [run])
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
    datasets.require_version(owner, dataset, new.dataset_version, current)
    (number,) = db.one("SELECT coalesce(max(number), 0) + 1 FROM simulations WHERE dataset = %s", [dataset])
    try:
        name = naming.sim_table(dataset, number)
    except naming.InvalidNameError as err:
        raise CatalogError(f"dataset {dataset!r} cannot have simulations: {err}") from err
    # The status starts as 'registered' and the outputs stay NULL.
    values = {"name": name, "number": number, **asdict(new)}
    del values["request_id"]  # not a column: the request takes the sim as its target below
    with db.refusing(f"simulation {name!r}"):
        row = db.one(
            f"INSERT INTO simulations ({', '.join(values)}, status) "
            f"VALUES ({', '.join(['%s'] * len(values))}, 'registered') RETURNING {_OUTPUT}",
            list(values.values()),
        )
    if new.request_id is not None:
        job_requests.take(db, new.request_id, "simulation", name)
    return _from_row(row)


def refresh(db: Session, name: str, to: SimulationRefresh) -> SimulationRecord:
    """The steps of `Catalog.refresh_simulation`, inside the caller's transaction."""
    owner = f"simulation {name!r}"
    try:
        json.loads(to.thresholds)
    except (TypeError, ValueError) as err:
        raise CatalogError(f"{owner}: thresholds is not JSON ({err})") from None
    if not to.models_version:
        raise CatalogError(f"{owner}: models_version is empty; say which fold models are replayed")
    # First, so that on Postgres the row stays locked while it is checked and changed.
    found = db.one(
        "UPDATE simulations SET updated_at = now() WHERE name = %s RETURNING status, dataset, run", [name]
    )
    if found is None:
        raise CatalogError(f"no simulation {name!r} in the catalog")
    status, dataset, run = found
    if status == "running":
        raise CatalogError(f"{owner}: an attempt is running; refresh it once it has ended")
    run_status, run_version = db.one(
        "SELECT status, dataset_version FROM walkforward_runs WHERE name = %s", [run]
    )
    if run_status != "completed":
        raise CatalogError(f"{owner}: its walkforward run {run!r} is {run_status!r}, not completed")
    current = datasets.version(db, dataset)
    if run_version != current:
        raise CatalogError(
            f"{owner}: its walkforward run {run!r} predicts version {run_version} of dataset {dataset!r}, "
            f"which is now {current}"
        )
    datasets.require_version(owner, dataset, to.dataset_version, current)
    with db.refusing(owner):
        row = db.one(
            f"UPDATE simulations SET {', '.join(f'{column} = %s' for column in _REFRESHED)}, "
            f"status = 'registered', {_cleared('message', 'started_at', 'finished_at')}, "
            f"updated_at = now() WHERE name = %s RETURNING {_OUTPUT}",
            [*(getattr(to, column) for column in _REFRESHED), name],
        )
    db.execute(_DELETE_TRADES, [name])
    return _from_row(row)


def start(db: Session, name: str) -> SimulationRecord:
    """The steps of `Catalog.start_simulation`, inside the caller's transaction."""
    # First, so that on Postgres the row stays locked and attempts at one sim take turns.
    row = db.one(
        f"UPDATE simulations SET status = 'running', {_cleared('message', 'finished_at')}, "
        f"started_at = now(), updated_at = now() WHERE name = %s RETURNING {_OUTPUT}",
        [name],
    )
    return _trades_cleared(db, name, row)


def record(db: Session, name: str, outcome: SimulationOutcome) -> SimulationRecord:
    """The steps of `Catalog.record_simulation`, inside the caller's transaction: every value is checked
    before the first statement, and the trades are written after the previous attempt's are deleted."""
    owner = f"simulation {name!r}"
    first_ts, last_ts, row_count = outcome.first_ts, outcome.last_ts, outcome.row_count
    require_time_zone(owner, "first_ts", first_ts)
    require_time_zone(owner, "last_ts", last_ts)
    if last_ts < first_ts:
        raise CatalogError(f"{owner}: last_ts {last_ts} is before first_ts {first_ts}")
    if isinstance(row_count, bool) or not isinstance(row_count, int) or row_count < 1:
        raise CatalogError(f"{owner}: row_count {row_count!r} is not a positive integer")
    if not outcome.series_columns:
        raise CatalogError(f"{owner}: series_columns is empty; name the series table's columns")
    try:
        metrics_text = metrics_json(outcome.metrics)
    except CatalogError as err:
        raise CatalogError(f"{owner}: {err}") from None
    rows = [
        _trade_row(name, number, trade, row_count, first_ts, last_ts)
        for number, trade in enumerate(outcome.trades)
    ]
    outputs = [metrics_text, len(rows), row_count, first_ts, last_ts, list(outcome.series_columns)]
    updates = ", ".join(f"{column} = %s" for column in _OUTPUTS)
    # First, so that on Postgres the row stays locked and attempts at one sim take turns.
    with db.refusing(owner):
        row = db.one(
            f"UPDATE simulations SET status = 'completed', {updates}, message = NULL, finished_at = now(), "
            f"updated_at = now() WHERE name = %s RETURNING {_OUTPUT}",
            [*outputs, name],
        )
    result = _trades_cleared(db, name, row)
    if rows:
        with db.refusing(f"trades of {owner}"):
            db.insert_trades(rows)
    return result


def record_failure(db: Session, name: str, message: str) -> SimulationRecord:
    """The steps of `Catalog.record_simulation_failure`, inside the caller's transaction."""
    row = db.one(
        f"UPDATE simulations SET status = 'failed', {_cleared()}, message = %s, finished_at = now(), "
        f"updated_at = now() WHERE name = %s RETURNING {_OUTPUT}",
        [message, name],
    )
    return _trades_cleared(db, name, row)


def _cleared(*columns: str) -> str:
    """SET clauses that clear a completed attempt's outputs and `columns`."""
    return ", ".join(f"{column} = NULL" for column in (*_OUTPUTS, *columns))


def _trades_cleared(db: Session, name: str, row: Sequence[Any] | None) -> SimulationRecord:
    """After the UPDATE of sim `name` returned `row`: refuse an unknown sim, else delete its trades."""
    if row is None:
        raise CatalogError(f"no simulation {name!r} in the catalog")
    db.execute(_DELETE_TRADES, [name])
    return _from_row(row)


def _from_row(row: Sequence[Any]) -> SimulationRecord:
    return record_from_row(SimulationRecord, row)


def _trade_from_row(row: Sequence[Any]) -> SimulationTrade:
    """A SimulationTrade from a row in `_TRADE_FIELDS` order, its timestamps in UTC."""
    trade, entry_idx, exit_idx, entry_ts, exit_ts, *rest = row
    return SimulationTrade(trade, entry_idx, exit_idx, utc(entry_ts), utc(exit_ts), *rest)


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
