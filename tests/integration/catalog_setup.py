"""What the catalog tests build on: minute bars, an indicator set on them, fold windows, a walkforward run
of them trained to completion, and catalogs raced against each other."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from resources.catalog import Catalog
from trading_assets.records import (
    DatasetRecord,
    FoldResult,
    FoldThresholds,
    FoldWindow,
    NewIndicatorSet,
    NewWalkforwardRun,
    WalkforwardRunRecord,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def minute(row: int) -> datetime:
    """The timestamp of bar `row` of the minute-bar datasets."""
    return T0 + timedelta(minutes=row)


def bars(name: str = "btc", rows: int = 1440, **changes: Any) -> DatasetRecord:
    """`rows` minute bars from T0 as dataset `name` (its table of the same name), with `changes` applied."""
    record = DatasetRecord(
        name=name,
        source_file=f"landing/{name}.csv",
        source_sha256="ab" * 32,
        bar_interval_s=60,
        row_count=rows,
        first_ts=T0,
        last_ts=minute(rows - 1),
        table_name=name,
        columns=("open", "high", "low", "close", "volume"),
    )
    return replace(record, **changes)


def window(fold: int) -> FoldWindow:
    """Fold `fold` of a sliding scheme: 100 training rows, a 5-row purge, 20 test rows, 20 rows per step."""
    train_start, test_start = 20 * fold, 105 + 20 * fold
    return FoldWindow(
        fold=fold,
        train_ranges=((train_start, train_start + 100),),
        test_start_row=test_start,
        test_end_row=test_start + 20,
        train_start_ts=minute(train_start),
        train_end_ts=minute(train_start + 99),
        test_start_ts=minute(test_start),
        test_end_ts=minute(test_start + 19),
    )


def with_indicators(catalog: Catalog, *datasets: str) -> Catalog:
    """`catalog` with each dataset (a day of minute bars) and its indicator set 1 (rsi_14, ema_20, macd)."""
    for name in datasets:
        catalog.upsert_dataset(bars(name))
        spec = f'{{"dataset": "{name}"}}'
        sha = hashlib.sha256(spec.encode()).hexdigest()
        catalog.register_indicator_set(
            NewIndicatorSet(name, "default", spec, sha, ["rsi_14", "ema_20", "macd"], [14, 20, 26])
        )
    return catalog


def new_run(catalog: Catalog, dataset: str = "btc", folds: int = 2, **changes: Any) -> NewWalkforwardRun:
    """A run of `folds` folds on rsi_14 of indicator set 1 of `dataset` as it is now, `changes` applied."""
    stored = catalog.get_dataset(dataset)
    assert stored is not None
    args: dict[str, Any] = {
        "dataset": dataset,
        "indicator_version": 1,
        "config": "{}",
        "config_sha256": "cd" * 32,
        "hyperparameters": "{}",
        "target": "{}",
        "features": ["rsi_14"],
        "dataset_version": stored.version,
        "code_version": "abc123",
        "windows": [window(fold) for fold in range(folds)],
    }
    return NewWalkforwardRun(**(args | changes))


def complete_run(catalog: Catalog, run: str, folds: range) -> WalkforwardRunRecord:
    """Train `folds` of `run` and store thresholds for every fold of the run."""
    for fold in folds:
        catalog.start_walkforward_fold(run, fold)
        catalog.record_walkforward_fold(run, fold, FoldResult("succeeded", model_sha256=f"{fold:02d}" * 32))
    count = len(catalog.list_walkforward_folds(run))
    return catalog.record_walkforward_thresholds(
        run, [FoldThresholds(fold, 0.5, -0.5, "{}", 95) for fold in range(count)]
    )


def race(catalogs: list[Catalog], call: Callable[[int, Catalog], Any]) -> list[Any]:
    """Call call(i, catalogs[i]) in one thread per catalog, all released at once; their results.

    Each catalog is used once first, so its start-up (pool, migration check) is not part of the race.
    """
    for catalog in catalogs:
        catalog.list_datasets()
    start = threading.Barrier(len(catalogs))
    results: list[Any] = []
    errors: list[BaseException] = []

    def run(i: int, catalog: Catalog) -> None:
        start.wait()
        try:
            results.append(call(i, catalog))
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=run, args=pair) for pair in enumerate(catalogs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return results
