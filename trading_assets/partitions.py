"""Every PartitionsDefinition of the project, in one place.

Partition keys never contain ',' or '|' (Dagster uses them to join multi-partition keys); dataset keys are
validated by `naming.dataset_name`, which allows neither.
"""

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
