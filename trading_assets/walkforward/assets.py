"""Walkforward assets: `fold_models` (one partition per fold of a run), `predictions`, `thresholds`.

Lineage runs bars -> indicators -> fold_models -> predictions -> thresholds. The fold dimension is shared
by all runs (GUIDE §3), so `predictions` declares its dependency on the run's row of fold cells for
lineage and reads the run's folds from the catalog; `fold_models` depends on `indicators` as a whole
(a run's partition key does not name its indicator set), and says exactly which set, dataset version and
hyperparameters it used in its metadata and in the catalog.
"""

import json
import time
import warnings
from collections.abc import Iterator
from datetime import datetime

import dagster as dg
import numpy as np

from resources.catalog import Catalog
from resources.compute import ComputeResource
from resources.timeseries import TimeSeriesStore
from trading_assets.compute import fold_metrics
from trading_assets.compute.charts import feature_importance_png, fold_metrics_png, predicted_vs_realised_png
from trading_assets.compute.walkforward import FoldOutcome, WalkforwardSpec
from trading_assets.indicators.assets import indicators
from trading_assets.metadata import dashboard_url, png_md
from trading_assets.partitions import fold_key, one_dimension, walkforward_folds, walkforward_runs
from trading_assets.records import FoldResult, WalkforwardFoldRecord
from trading_assets.walkforward import checks
from trading_assets.walkforward.service import (
    FoldPredictions,
    LoadedRun,
    RunError,
    derive_thresholds,
    kept_thresholds,
    load_run,
    models_version,
    predict_run,
    train_one,
    write_predictions,
)

FOLD_MODELS_KEY = dg.AssetKey("fold_models")
PREDICTIONS_KEY = dg.AssetKey("predictions")

# A run's predictions read every fold cell of its row (fold|run): the "run" dimension of fold_models.
FOLDS_OF_THE_RUN = one_dimension("run")

# Where a fold step runs; each executor reads its own tag and ignores the other's. Celery: the `gpu` queue,
# which only GPU machines' workers consume (docs/deploy.md); every other step goes to dagster-celery's
# default queue, `dagster`. k8s: the step's pod holds one GPU on a GPU node (docs/operations/kubernetes.md),
# the node label and taint those of NVIDIA's GPU operator, as for the Helm chart's GPU workers.
GPU_QUEUE = "gpu"
GPU_POD = {
    "container_config": {"resources": {"requests": {"nvidia.com/gpu": 1}, "limits": {"nvidia.com/gpu": 1}}},
    "pod_spec_config": {
        "node_selector": {"nvidia.com/gpu.present": "true"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    },
}
GPU_STEP_TAGS = {"dagster-celery/queue": GPU_QUEUE, "dagster-k8s/config": GPU_POD}

# The tag that carries a materialisation's data version (what `MaterializeResult(data_version=...)` sets);
# a fold's cell is reported as its own event, which takes the version as this tag.
DATA_VERSION_TAG = "dagster/data_version"


def _loaded(store: TimeSeriesStore, catalog: Catalog, run: str) -> LoadedRun:
    try:
        return load_run(store, catalog, run)
    except (RunError, ValueError) as err:
        # Retrying cannot help: the run, its data or its config must change first.
        raise dg.Failure(description=str(err), allow_retries=False) from None


def _span(first: datetime, last: datetime) -> str:
    return f"{first:%Y-%m-%d %H:%M} .. {last:%Y-%m-%d %H:%M} UTC"


def _floats(values: dict[str, float]) -> dict[str, dg.MetadataValue]:
    return {name: dg.MetadataValue.float(float(value)) for name, value in values.items()}


def _cells(keys: list[str]) -> dict[str, list[int]]:
    """The fold numbers asked of each run, in order: a step materialises one cell (a fold from the UI) or
    many (a run's folds in one run, the walkforward sensor's way)."""
    asked: dict[str, list[int]] = {}
    for key in keys:
        dims = walkforward_folds.get_partition_key_from_str(str(key)).keys_by_dimension
        asked.setdefault(dims["run"], []).append(int(dims["fold"]))
    return {run: sorted(set(numbers)) for run, numbers in asked.items()}


def _fold_materialization(
    run: LoadedRun, number: int, outcome: FoldOutcome, stored: WalkforwardFoldRecord, device: str
) -> dg.AssetMaterialization:
    """The fold's cell materialised, with what trained it and how it scored; its data version is the
    model's hash (a CPU retrain with the same inputs gives the same bits, and the same version)."""
    result, window = stored.result, stored.window
    assert result is not None
    importance = sorted(outcome.importance.items(), key=lambda kv: -kv[1])
    return dg.AssetMaterialization(
        asset_key=FOLD_MODELS_KEY,
        partition=fold_key(run.record.name, number),
        metadata={
            "run": run.record.name,
            "fold": number,
            "indicators_partition": f"{run.record.dataset}|{run.record.indicator_version}",
            "measurement": run.record.measurement,
            "dataset_version": run.record.dataset_version,
            "hyperparameters": dg.MetadataValue.json(json.loads(run.record.hyperparameters)),
            "seed": run.spec.seed,
            "train_window": _span(window.train_start_ts, window.train_end_ts),
            "test_window": _span(window.test_start_ts, window.test_end_ts),
            "fit_rows": outcome.model.fit_rows,
            "validation_rows": outcome.model.validation_rows,
            "test_rows": int(outcome.test_rows.size),
            "dropped": dg.MetadataValue.json(outcome.dropped),
            "best_iteration": outcome.model.best_iteration,
            "device": device,
            "train_seconds": dg.MetadataValue.float(round(outcome.model.seconds, 3)),
            "model_path": dg.MetadataValue.path(str(result.model_path)),
            "model_sha256": str(result.model_sha256),
            **_floats(outcome.metrics),
            "top_features": dg.MetadataValue.md(
                "\n".join(f"- `{name}` {gain:.3f}" for name, gain in importance[:10])
            ),
            "attempt": stored.attempts,
        },
        tags={DATA_VERSION_TAG: str(result.model_sha256)[:16]},
    )


def fold_models(
    context: dg.AssetExecutionContext,
    timeseries: dg.ResourceParam[TimeSeriesStore],
    catalog: dg.ResourceParam[Catalog],
    compute: ComputeResource,
) -> Iterator[dg.AssetMaterialization]:
    failures: list[str] = []
    for run_name, numbers in _cells(context.partition_keys).items():
        registered = {f.window.fold for f in catalog.list_walkforward_folds(run_name)}
        # Cells of the shared fold dimension that this run does not have (or no such run) fail.
        strays = [n for n in numbers if n not in registered]
        if strays:
            have = f"folds 0..{len(registered) - 1}" if registered else "no folds (it is not registered)"
            which = f"fold {strays[0]} is" if len(strays) == 1 else f"folds {_numbers(strays)} are"
            failures.append(f"run {run_name!r} has {have}; {which} not among them")
        numbers = [n for n in numbers if n in registered]
        if not numbers:
            continue
        try:
            # Only the rows these folds train and test on: one read for all of them.
            run = load_run(timeseries, catalog, run_name, folds=numbers)
            device = compute.resolved_device()
        except Exception as err:
            # Every asked fold's attempt is recorded failed with the reason: the run's status says so,
            # and the sensor does not ask again.
            failed = FoldResult(status="failed", message=f"{type(err).__name__}: {err}")
            catalog.record_walkforward_folds(run_name, {}, start=numbers)
            catalog.record_walkforward_folds(run_name, dict.fromkeys(numbers, failed))
            if isinstance(err, RunError | ValueError):
                failures.append(f"{run_name}: {err}")
                continue
            raise
        for note in run.notes:
            context.log.warning(note)
        yield from _train_in_groups(context, run, numbers, catalog, compute, device, failures)
    if failures:
        # The folds that trained stay materialised; the failed cells show failed, and re-run alone.
        raise dg.Failure(description="; ".join(failures), allow_retries=False)


# A step records its folds in groups of about this many seconds of training: one catalog transaction
# records a group's results and starts the next group's attempts. Folds of a second or more go one at a
# time (each recorded, and the next started, in one transaction); light folds go several at once, so
# they do not pay two transactions (an open of the DuckDB file each, 20-40 ms) for a few ms of training.
GROUP_SECONDS = 0.5
# How the message of a fold whose step was interrupted (a cancelled run, Ctrl-C) begins.
INTERRUPTED = "interrupted"
# The most folds started together (all of them show running until their group is recorded).
MAX_GROUP = 16


def _train_in_groups(
    context: dg.AssetExecutionContext,
    run: LoadedRun,
    numbers: list[int],
    catalog: Catalog,
    compute: ComputeResource,
    device: str,
    failures: list[str],
) -> Iterator[dg.AssetMaterialization]:
    """Train `numbers` (folds of `run`) one after another; each is recorded (succeeded or failed) and
    materialised on its own, a group at a time. A fold that fails is recorded failed with the error and
    the others go on; an interrupt (a cancelled run, Ctrl-C) records the fold it stopped and the group's
    folds not reached as failed with why, then propagates."""
    name = run.record.name
    group, rest = numbers[:1], numbers[1:]  # the first fold alone: its time sizes the next groups
    catalog.record_walkforward_folds(name, {}, start=group)
    interrupt: BaseException | None = None
    while group:
        results: dict[int, FoldResult] = {}
        outcomes: dict[int, FoldOutcome] = {}
        began = time.monotonic()
        for i, number in enumerate(group):
            try:
                outcomes[number], results[number] = train_one(
                    run, number, device, compute.nthread, compute.model_path(name, number)
                )
            except Exception as err:  # recorded failed; the other folds go on
                results[number] = FoldResult(status="failed", message=f"{type(err).__name__}: {err}")
                context.log.error(f"{name} fold {number} failed: {type(err).__name__}: {err}")
                failures.append(f"{name} fold {number}: {type(err).__name__}: {err}")
            except BaseException as err:  # an interrupt: record what this group got to, then stop
                interrupt = err
                why = f"{INTERRUPTED} ({type(err).__name__})"
                results[number] = FoldResult(status="failed", message=f"{why} while it trained")
                for later in group[i + 1 :]:
                    results[later] = FoldResult(status="failed", message=f"{why} at fold {number}, before it")
                break
        per_fold = (time.monotonic() - began) / len(group)
        size = max(1, min(MAX_GROUP, int(GROUP_SECONDS / per_fold) if per_fold > 0 else MAX_GROUP))
        following, rest = ([], []) if interrupt else (rest[:size], rest[size:])
        recorded, _ = catalog.record_walkforward_folds(name, results, start=following)
        lines = [
            f"{name} fold {number}: {outcomes[number].model.fit_rows} rows fitted on {device} in "
            f"{outcomes[number].model.seconds:.2f}s, best iteration {outcomes[number].model.best_iteration}"
            for number in group
            if number in outcomes
        ]
        if lines:
            context.log.info("\n".join(lines))
        for stored in recorded:
            number = stored.window.fold
            if number in outcomes:
                yield _fold_materialization(run, number, outcomes[number], stored, device)
        if interrupt is not None:
            raise interrupt
        group = following


# BackfillPolicy is beta in dagster 1.13 (pinned in requirements.lock); its warning is silenced here only.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Parameter `backfill_policy` of function `asset`")
    fold_models = dg.asset(
        partitions_def=walkforward_folds,
        deps=[dg.AssetDep(indicators, partition_mapping=dg.AllPartitionMapping())],
        # A backfill of many folds is one run (the sensor asks for a run's folds that way), whose one step
        # reads the run's data once and trains the folds one after another; each fold is materialised (or
        # fails) on its own, as its cell's event, the moment it is done.
        backfill_policy=dg.BackfillPolicy.single_run(),
        output_required=False,
        pool="gpu",
        op_tags=GPU_STEP_TAGS,
        group_name="walkforward",
        kinds={"python", "xgboost"},
        description="One XGBoost model per fold of a walkforward run (partition fold|run), trained on the "
        "fold's training window and saved in the artifact folder; path, hash and test metrics go to the "
        "catalog. A run's folds train in one step, one after another, each materialised or failed on its "
        "own; steps share the `gpu` pool, so at most one per GPU trains at once.",
    )(fold_models)


def _numbers(numbers: list[int]) -> str:
    return ", ".join(map(str, numbers))


def _fold_table(run: LoadedRun) -> dg.MetadataValue:
    classifier = run.spec.target.kind == "classification"
    metrics = ("log_loss", "auc", "accuracy") if classifier else ("rmse", "ic", "rank_ic", "hit_rate", "r2")
    rows = []
    for fold in run.folds:
        result, window = fold.result, fold.window
        assert result is not None
        rows.append(
            dg.TableRecord(
                {
                    "fold": window.fold,
                    "train_start": f"{window.train_start_ts:%Y-%m-%d %H:%M}",
                    "test_start": f"{window.test_start_ts:%Y-%m-%d %H:%M}",
                    "test_end": f"{window.test_end_ts:%Y-%m-%d %H:%M}",
                    "train_rows": result.train_rows,
                    "test_rows": result.test_rows,
                    "best_iteration": result.best_iteration,
                    **{m: getattr(result, m) for m in metrics},
                    "device": result.device,
                    "seconds": round(result.train_seconds or 0.0, 2),
                }
            )
        )
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn("fold", "int"),
            dg.TableColumn("train_start", "string"),
            dg.TableColumn("test_start", "string"),
            dg.TableColumn("test_end", "string"),
            dg.TableColumn("train_rows", "int"),
            dg.TableColumn("test_rows", "int"),
            dg.TableColumn("best_iteration", "int"),
            *(dg.TableColumn(m, "float") for m in metrics),
            dg.TableColumn("device", "string"),
            dg.TableColumn("seconds", "float"),
        ]
    )
    return dg.MetadataValue.table(rows, schema=schema)


def _mean_importance(folds: list[WalkforwardFoldRecord]) -> dict[str, float]:
    total: dict[str, float] = {}
    for fold in folds:
        assert fold.result is not None and fold.result.feature_importance is not None
        for name, gain in json.loads(fold.result.feature_importance).items():
            total[name] = total.get(name, 0.0) + gain / len(folds)
    return total


def predictions_metadata(run: LoadedRun, predictions: list[FoldPredictions], rows: int) -> dict[str, object]:
    classifier = run.spec.target.kind == "classification"
    y_true = np.concatenate([p.y_true for p in predictions])
    signal = np.concatenate([p.prob if classifier else p.y_pred for p in predictions])  # type: ignore[misc]
    overall = (
        fold_metrics.classification_metrics(y_true, signal)
        if classifier
        else fold_metrics.regression_metrics(y_true, signal)
    )
    results = [f.result for f in run.folds]
    ic_name, hit_name = ("auc", "accuracy") if classifier else ("ic", "hit_rate")
    ts = run.prepared.ts_us
    first = int(predictions[0].rows[0])
    last = int(predictions[-1].rows[-1])
    return {
        "dagster/row_count": rows,
        "dagster/table_name": run.record.name,
        "dagster/column_schema": dg.TableSchema(
            columns=[
                dg.TableColumn("ts", "timestamp (UTC, us)"),
                dg.TableColumn("fold", "long", description="the fold whose model predicted the bar"),
                dg.TableColumn("y_true", "double", description="realised target; null where not known yet"),
                dg.TableColumn("y_pred", "double", description="prediction (class 0/1 for classifiers)"),
                *(
                    [dg.TableColumn("prob", "double", description="probability of an up move")]
                    if classifier
                    else []
                ),
            ]
        ),
        "run": run.record.name,
        "dataset": run.record.dataset,
        "indicators_partition": f"{run.record.dataset}|{run.record.indicator_version}",
        "features": dg.MetadataValue.json(list(run.record.features)),
        "config": dg.MetadataValue.json(json.loads(run.record.config)),
        "config_sha256": run.record.config_sha256,
        "code_version": run.record.code_version,
        "first_ts": dg.MetadataValue.timestamp(float(ts[first]) / 1e6),
        "last_ts": dg.MetadataValue.timestamp(float(ts[last]) / 1e6),
        **{f"overall_{k}": v for k, v in _floats(overall).items()},
        "folds": _fold_table(run),
        "fold_metrics": png_md(
            "per-fold metrics",
            fold_metrics_png(
                [f.window.fold for f in run.folds],
                [float("nan") if getattr(r, ic_name) is None else getattr(r, ic_name) for r in results],
                [float("nan") if getattr(r, hit_name) is None else getattr(r, hit_name) for r in results],
                f"{run.record.name}: per-fold {ic_name} and {hit_name}",
                ic_label=ic_name if classifier else "IC",
                hit_label=hit_name.replace("_", " "),
                # AUC's chance level is 0.5: bars show the edge over it.
                ic_baseline=0.5 if classifier else 0.0,
            ),
        ),
        "predicted_vs_realised": png_md(
            "predicted vs realised",
            predicted_vs_realised_png(
                signal, y_true, f"{run.record.name}: predicted vs realised (test rows)"
            ),
        ),
        "feature_importance": png_md(
            "feature importance",
            feature_importance_png(_mean_importance(run.folds), f"{run.record.name}: mean gain over folds"),
        ),
    }


@dg.asset(
    partitions_def=walkforward_runs,
    deps=[dg.AssetDep(fold_models, partition_mapping=FOLDS_OF_THE_RUN)],
    check_specs=checks.check_specs(PREDICTIONS_KEY),
    # A run whose folds are not causal yields its checks but no materialisation.
    output_required=False,
    group_name="walkforward",
    kinds={"python", "xgboost"},
    description="A walkforward run's out-of-sample predictions (partition <dataset>_run<n>): every fold's "
    "stored model predicts its test window into the table <dataset>_run<n> (ts, fold, y_true, y_pred, prob "
    "for classifiers).",
)
def predictions(
    context: dg.AssetExecutionContext,
    timeseries: dg.ResourceParam[TimeSeriesStore],
    catalog: dg.ResourceParam[Catalog],
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    run = _loaded(timeseries, catalog, context.partition_key)
    for note in run.notes:
        context.log.warning(note)
    causal = checks.folds_are_causal(run)
    if not causal.passed:
        # Nothing is written and nothing materialised: a leaking run must not feed simulations. The
        # blocking check fails the step.
        context.log.error(f"{run.record.name}: {causal.description}")
        yield causal
        yield checks.not_evaluated(
            checks.PREDICTIONS_REPRODUCE, "nothing was written: folds_are_causal failed"
        )
        return
    try:
        folds = predict_run(run)
    except RunError as err:
        raise dg.Failure(description=str(err), allow_retries=False) from None
    table, _ = write_predictions(timeseries, catalog, run, folds)
    context.log.info(f"{run.record.name}: {table.num_rows} predictions of {len(folds)} folds written")
    yield dg.MaterializeResult(
        metadata={
            **predictions_metadata(run, folds, table.num_rows),
            "dashboard": dashboard_url(f"/runs/{run.record.name}"),
        },
        data_version=dg.DataVersion(models_version(run.folds)),
    )
    yield causal
    yield checks.predictions_reproduce(run, timeseries)


@dg.asset(
    partitions_def=walkforward_runs,
    deps=[predictions, dg.AssetDep(fold_models, partition_mapping=FOLDS_OF_THE_RUN)],
    group_name="walkforward",
    kinds={"python"},
    description="Long/short entry thresholds per fold of a run, each from that fold's own train-period "
    "predictions (quantiles), never from test data; stored in the catalog. Marks the run completed.",
)
def thresholds(
    context: dg.AssetExecutionContext,
    timeseries: dg.ResourceParam[TimeSeriesStore],
    catalog: dg.ResourceParam[Catalog],
) -> dg.MaterializeResult:
    name = context.partition_key
    found = catalog.get_walkforward_run(name)
    if found is None or found.prediction_rows is None:
        raise dg.Failure(
            description=f"run {name} has no predictions yet: materialise predictions first",
            allow_retries=False,
        )
    # Each fold step kept its thresholds; folds trained before they did get them from their stored
    # models' predictions on their train periods (the data is loaded only then).
    derived = kept_thresholds(found, catalog.list_walkforward_folds(name))
    source = "kept by the fold steps"
    if derived is None:
        source = "derived from the stored models"
        try:
            derived = derive_thresholds(_loaded(timeseries, catalog, name))
        except (RunError, ValueError) as err:
            raise dg.Failure(description=str(err), allow_retries=False) from None
    record = catalog.record_walkforward_thresholds(name, derived)
    context.log.info(f"{name}: thresholds of {len(derived)} folds ({source}) stored; run {record.status}")
    rule = WalkforwardSpec.from_json(record.config).thresholds
    rows = [
        dg.TableRecord(
            {
                "fold": t.fold,
                "long_threshold": t.long_threshold,
                "short_threshold": t.short_threshold,
                "source_rows": t.source_rows,
            }
        )
        for t in derived
    ]
    return dg.MaterializeResult(
        metadata={
            "run": name,
            "rule": dg.MetadataValue.json(rule.to_dict()),
            "source": source,
            "status": record.status,
            "thresholds": dg.MetadataValue.table(
                rows,
                schema=dg.TableSchema(
                    columns=[
                        dg.TableColumn("fold", "int"),
                        dg.TableColumn("long_threshold", "float"),
                        dg.TableColumn("short_threshold", "float"),
                        dg.TableColumn("source_rows", "int"),
                    ]
                ),
            ),
        }
    )
