"""Every PartitionsDefinition of the project, in one place.

Partition keys never contain ',' or '|' (Dagster uses them to join multi-partition keys); dataset keys are
validated by `naming.dataset_name`, which allows neither.
"""

import warnings

import dagster as dg

# One partition per dataset (file stem), registered by the landing sensor or `trading-assets demo`.
datasets = dg.DynamicPartitionsDefinition(name="datasets")

# Indicator-set versions (1, 2, ...), shared by all datasets: version numbers count per dataset, so the
# grid below has cells for pairs that were never registered (docs/dataflow.md explains why this mapping).
indicator_versions = dg.DynamicPartitionsDefinition(name="indicator_versions")

# One partition per indicator set of a dataset; keys join the dimensions alphabetically: "btc25|1".
indicator_sets = dg.MultiPartitionsDefinition({"dataset": datasets, "version": indicator_versions})


def indicator_set_key(dataset: str, version: int) -> dg.MultiPartitionKey:
    """The `indicators` partition of version `version` of `dataset`."""
    return dg.MultiPartitionKey({"dataset": dataset, "version": str(version)})


# One partition per walkforward run (`<dataset>_run<n>`), registered with the run.
walkforward_runs = dg.DynamicPartitionsDefinition(name="walkforward_runs")

# Fold numbers (0, 1, ...), shared by all runs like indicator versions: a run's folds are the cells of its
# row in the grid below; the cells of fold numbers it does not have fail fast (docs/dataflow.md).
fold_numbers = dg.DynamicPartitionsDefinition(name="fold_numbers")

# One partition per fold of a run, so a run's folds are a backfill; keys "3|btc25_run1" (fold|run).
walkforward_folds = dg.MultiPartitionsDefinition({"fold": fold_numbers, "run": walkforward_runs})


def fold_key(run: str, fold: int) -> dg.MultiPartitionKey:
    """The `fold_models` partition of fold `fold` of walkforward run `run`."""
    return dg.MultiPartitionKey({"fold": str(fold), "run": run})


def one_dimension(dimension: str) -> dg.MultiToSingleDimensionPartitionMapping:
    """Maps a multi-partition key to the partition named by its `dimension` (indicators btc25|1 -> bars
    btc25; fold models 3|btc25_run1 -> run btc25_run1). The mapping is beta in dagster 1.13 (pinned in
    requirements.lock) and the one the GUIDE checked; its warning is silenced here only."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Class `MultiToSingleDimensionPartitionMapping` is currently in beta"
        )
        return dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name=dimension)


# One partition per trading simulation (`<dataset>_sim<n>`), registered with the simulation.
simulations = dg.DynamicPartitionsDefinition(name="simulations")
