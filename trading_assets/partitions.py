"""Every PartitionsDefinition of the project, in one place.

Partition keys never contain ',' or '|' (Dagster uses them to join multi-partition keys); dataset keys are
validated by `naming.dataset_name`, which allows neither.
"""

import dagster as dg

# One partition per imported dataset (file stem), registered by the landing sensor or the CLI.
datasets = dg.DynamicPartitionsDefinition(name="datasets")
