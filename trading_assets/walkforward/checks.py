"""Checks on a walkforward run's `predictions`: its folds are causal, its stored models reproduce it.

They run inside the predictions step (declared as its check specs), on the run it has just loaded:
- `folds_are_causal` (blocking) runs before the table is written, on the folds as the catalog holds them
  and the training rows the models were fitted on: a leaking run is never stored as predictions;
- `predictions_reproduce` runs after the write, on rows read back from the store: the data must give
  each fold the fitted, held-out and test rows its model was trained with; each fold's model, reloaded
  from the artifact folder (hash-checked against the catalog), must give the stored predictions bit for
  bit on a sample of its test rows; and, on the bars the run was registered on, the stored test rows
  must give the fold's metrics that the catalog recorded when the model was trained.
"""

import math

import dagster as dg
import numpy as np
import pyarrow as pa

from resources.timeseries import TIMESTAMP_COLUMN, TimeSeriesStore
from trading_assets.compute import fold_metrics, walkforward
from trading_assets.compute.folds import causality_problems
from trading_assets.walkforward.service import LoadedRun, RunError, fold_predictions

FOLDS_ARE_CAUSAL = "folds_are_causal"
PREDICTIONS_REPRODUCE = "predictions_reproduce"
SAMPLE_ROWS = 256


def check_specs(asset_key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            FOLDS_ARE_CAUSAL,
            asset=asset_key,
            blocking=True,
            description="For every fold: last training row + purge < test start, and no training label "
            "(which looks `horizon` bars ahead) reaches into the test window.",
        ),
        dg.AssetCheckSpec(
            PREDICTIONS_REPRODUCE,
            asset=asset_key,
            description="Each fold's stored model (hash-checked) re-predicts a sample of its test rows and "
            "must give the stored predictions bit for bit; the stored rows must give the fold's metrics "
            "recorded at training.",
        ),
    ]


def causality(run: LoadedRun) -> list[str]:
    """Problems of the run's folds as registered: windows, then the rows actually used for training."""
    folds = run.prepared.folds
    horizon = run.spec.target.horizon
    problems = causality_problems(folds, horizon, run.spec.folds.purge_bars)
    ts = run.prepared.ts_us
    for fold in folds:
        fit, validation, _ = walkforward.fold_rows(run.prepared, run.spec, fold.number)
        used = np.concatenate([fit, validation])
        if used.size and used.max() + horizon >= fold.test[0]:
            problems.append(
                f"fold {fold.number}: training row {used.max()} has a label reaching row "
                f"{used.max() + horizon}, at or past the test start {fold.test[0]}"
            )
        if used.size and ts[used.max()] >= ts[fold.test[0]]:
            problems.append(f"fold {fold.number}: a training row is not before the test window in time")
    return problems


def folds_are_causal(run: LoadedRun) -> dg.AssetCheckResult:
    problems = causality(run)
    return dg.AssetCheckResult(
        check_name=FOLDS_ARE_CAUSAL,
        passed=not problems,
        description="; ".join(problems[:10]) or f"{len(run.prepared.folds)} folds are causal",
        metadata={
            "folds": len(run.prepared.folds),
            "horizon": run.spec.target.horizon,
            "purge": run.spec.folds.purge_bars,
            "problems": len(problems),
        },
    )


def not_evaluated(check_name: str, why: str) -> dg.AssetCheckResult:
    """A check that could not run, failed with the reason: never a pass by default."""
    return dg.AssetCheckResult(check_name=check_name, passed=False, description=f"not evaluated: {why}")


def _column(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


def _same(a: float | None, b: float) -> bool:
    return (a is None and math.isnan(b)) or (a is not None and (a == b or (math.isnan(a) and math.isnan(b))))


def reproduce_problems(run: LoadedRun, store: TimeSeriesStore) -> tuple[list[str], int]:
    """Differences between the stored predictions and what the stored models give; and rows compared."""
    stored = store.read(run.record.name)
    ts = stored.column(TIMESTAMP_COLUMN).cast(pa.int64()).to_numpy()
    fold_of = stored.column("fold").to_numpy()
    classifier = run.spec.target.kind == "classification"
    problems: list[str] = []
    compared = 0
    # Test rows whose target was not known at training (the last bars then) have one once bars are
    # appended, so the recorded metrics are only comparable on the bars the run was registered on.
    for fold in run.folds:
        number = fold.window.fold
        assert fold.result is not None
        mine = np.flatnonzero(fold_of == number)
        fit_rows, validation_rows, test_rows = walkforward.fold_rows(run.prepared, run.spec, number)
        recorded = (fold.result.train_rows, fold.result.validation_rows, fold.result.test_rows)
        if recorded != (fit_rows.size, validation_rows.size, test_rows.size):
            problems.append(
                f"fold {number}: the data now gives {fit_rows.size} fitted, {validation_rows.size} held-out "
                f"and {test_rows.size} test rows; the model was trained with {recorded[0]}, {recorded[1]}, "
                f"{recorded[2]}"
            )
            continue
        if mine.size != test_rows.size or not np.array_equal(ts[mine], run.prepared.ts_us[test_rows]):
            problems.append(
                f"fold {number}: {mine.size} stored rows, expected its {test_rows.size} test rows"
            )
            continue
        # The same sample every time, so a failure can be reproduced.
        pick = np.random.default_rng(number).choice(
            mine.size, size=min(SAMPLE_ROWS, mine.size), replace=False
        )
        pick.sort()
        try:
            again = fold_predictions(run, fold, test_rows[pick])
        except RunError as err:
            problems.append(str(err))
            continue
        compared += pick.size
        columns = {"y_pred": again.y_pred, **({"prob": again.prob} if classifier else {})}
        for name, values in columns.items():
            diff = np.flatnonzero(_column(stored, name)[mine[pick]] != values)
            if diff.size:
                row = mine[pick][diff[0]]
                problems.append(
                    f"fold {number}: {name} at {np.datetime64(int(ts[row]), 'us')} UTC is stored as "
                    f"{_column(stored, name)[row]!r}, the model gives {values[diff[0]]!r} ({diff.size} of "
                    f"{pick.size} sampled rows differ)"
                )
        # Likewise per fold: the folds a rolling run had before it was extended were scored on the
        # shorter bars of its earlier dataset version.
        if run.dataset_changed or fold.dataset_version != run.record.dataset_version:
            continue
        y_true, signal = (
            _column(stored, "y_true")[mine],
            _column(stored, "prob" if classifier else "y_pred")[mine],
        )
        metrics = (
            fold_metrics.classification_metrics(y_true, signal)
            if classifier
            else fold_metrics.regression_metrics(y_true, signal)
        )
        for name, value in metrics.items():
            recorded = getattr(fold.result, name)
            if not _same(recorded, value):
                problems.append(
                    f"fold {number}: {name} from the stored rows is {value!r}, recorded {recorded!r}"
                )
    return problems, compared


def predictions_reproduce(run: LoadedRun, store: TimeSeriesStore) -> dg.AssetCheckResult:
    problems, compared = reproduce_problems(run, store)
    return dg.AssetCheckResult(
        check_name=PREDICTIONS_REPRODUCE,
        passed=not problems,
        description="; ".join(problems[:10])
        or f"{compared} sampled rows of {len(run.folds)} folds reproduce",
        metadata={"rows_compared": compared, "problems": len(problems)},
    )
