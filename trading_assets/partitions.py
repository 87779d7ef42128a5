"""Every PartitionsDefinition of the project, in one place.

Partition keys never contain ',' or '|' (Dagster uses them to join multi-partition keys); dataset keys are
validated by `naming.dataset_name`, which allows neither.
"""

import dagster as dg

# One partition per dataset (file stem), registered by the landing sensor or `trading-assets demo`.
datasets = dg.DynamicPartitionsDefinition(name="datasets")
