"""`trading-assets walkforward FILE.yaml`: a walkforward run in the foreground, without the daemon.

The same YAML as `trading-assets submit walkforward`, run through the jobs the walkforward sensor would
launch: `start_walkforward` (registers the run and records it as a request), one `train_folds` run per fold,
then `predict_walkforward`.
"""

import argparse
import sys
import time
from typing import Any

from trading_assets import settings as cfg
from trading_assets.cli.launcher import Launcher, Progress, failure, interrupted, metadata, register_from_file
from trading_assets.records import FoldResult

INTERRUPTED = "interrupted (Ctrl-C) in trading-assets walkforward"


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    walkforward = sub.add_parser(
        "walkforward", help="run a walkforward (YAML of the launchpad's config) in the foreground"
    )
    walkforward.add_argument("file", help="YAML with the config's fields, as for submit walkforward")
    walkforward.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    registration = register_from_file(
        "walkforward", args.file, "start_walkforward", "register_walkforward_run", "run"
    )
    if isinstance(registration, int):
        return registration
    launcher, _, registered = registration
    settings = cfg.Settings.from_env()
    name = registered.output_for_node("register_walkforward_run")
    with cfg.catalog(settings).process_config_and_initialize_cm() as catalog:
        try:
            return _train_and_predict(launcher, catalog, name, launcher.request_tags(registered))
        finally:
            launcher.settle_requests("walkforward", catalog)


def _train_and_predict(launcher: Launcher, catalog: Any, name: str, tags: dict[str, str]) -> int:
    from trading_assets.partitions import fold_key

    folds = catalog.list_walkforward_folds(name)
    print(f"walkforward {name}: {len(folds)} folds", flush=True)
    progress = Progress(len(folds), "fold")
    trained: list[dict[str, Any]] = []
    try:
        for fold in folds:
            started = time.perf_counter()
            result = launcher.execute(
                "train_folds", partition_key=fold_key(name, fold.window.fold), tags=tags
            )
            if interrupted(result):
                raise KeyboardInterrupt
            if not result.success:
                progress.stop()
                print(f"error: fold {fold.window.fold} of {name} failed: {failure(result)}", file=sys.stderr)
                return 1
            trained.append(metadata(result, "fold_models"))
            progress.step(_scores(trained[-1]), time.perf_counter() - started)
        result = launcher.execute("predict_walkforward", partition_key=name, tags=tags)
        if interrupted(result):
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        progress.stop()
        by_hand = "".join(
            f"; materialise the interrupted fold {number} (partition {number}|{name}, job train_folds) from "
            f"the UI"
            for number in _settle_interrupted(catalog, name)
        )
        print(
            f"interrupted: {len(trained)} of {len(folds)} folds of {name} trained. To resume, start the "
            f"daemon (make dev): its walkforward sensor trains the folds never started and assembles the "
            f"run once all are trained{by_hand}",
            file=sys.stderr,
        )
        return 130
    if not result.success:
        print(f"error: predict_walkforward of {name} failed: {failure(result)}", file=sys.stderr)
        return 1
    _print_table(catalog, name, trained, metadata(result, "predictions"))
    return 0


def _scores(meta: dict[str, Any]) -> str:
    """The fold's headline test metrics: IC and hit rate of a regression, accuracy and AUC of a classifier."""
    if "ic" in meta:
        return f"IC {meta['ic']:+.3f}, hit rate {meta['hit_rate']:.2f}"
    return f"accuracy {meta['accuracy']:.3f}, AUC {meta['auc']:.3f}"


def _settle_interrupted(catalog: Any, name: str) -> list[int]:
    """Record the fold whose training was interrupted as failed, with why: the catalog would otherwise show
    it running for ever (its step never got to record an outcome). The numbers of the folds recorded."""
    from trading_assets.walkforward.assets import INTERRUPTED as STEP_INTERRUPTED

    folds = catalog.list_walkforward_folds(name)
    running = [f.window.fold for f in folds if f.status == "running"]
    for number in running:
        catalog.record_walkforward_fold(name, number, FoldResult("failed", message=INTERRUPTED))
    # The step itself records the fold it was training when it is interrupted there.
    stopped = [
        f.window.fold
        for f in folds
        if f.status == "failed" and ((f.result and f.result.message) or "").startswith(STEP_INTERRUPTED)
    ]
    return sorted(running + stopped)


def _print_table(catalog: Any, name: str, trained: list[dict[str, Any]], predictions: dict[str, Any]) -> None:
    print(f"{'fold':>4}  {'test window':<41}  {'scores':<28}  {'rows':>7}  {'seconds':>7}  device")
    for meta in trained:
        print(
            f"{meta['fold']:>4}  {meta['test_window']:<41}  {_scores(meta):<28}  {meta['fit_rows']:>7}  "
            f"{meta['train_seconds']:>7.2f}  {meta['device']}"
        )
    record = catalog.get_walkforward_run(name)
    print(
        f"run            {name}  ({record.status}; predictions {predictions['dagster/table_name']}, "
        f"{predictions['dagster/row_count']} rows, {_overall(predictions)})"
    )


def _overall(predictions: dict[str, Any]) -> str:
    if "overall_ic" in predictions:
        return f"IC {predictions['overall_ic']:+.3f}, hit rate {predictions['overall_hit_rate']:.3f}"
    return ", ".join(f"{k[8:]} {v:.3f}" for k, v in predictions.items() if k.startswith("overall_"))
