"""The indicators room's jobs: register a set from the launchpad (typed config); compute one set of one
dataset (the indicator-sets sensor launches it)."""

import dagster as dg

from resources.catalog import Catalog
from trading_assets import naming
from trading_assets.compute.indicators import SpecError, parse_spec
from trading_assets.indicators.assets import indicators
from trading_assets.indicators.config import IndicatorSetConfig
from trading_assets.indicators.service import register_set
from trading_assets.metadata import job_tags
from trading_assets.partitions import indicator_versions
from trading_assets.records import CatalogError

ADD_INDICATOR_SET_JOB = "add_indicator_set"
MATERIALIZE_INDICATORS_JOB = "materialize_indicators"


@dg.op(
    description="Validates the set, gives it its version for the dataset in the catalog and registers the "
    "`indicators` partition dataset|version; the indicator_sets sensor then computes it.",
)
def register_indicator_set(
    context: dg.OpExecutionContext, config: IndicatorSetConfig, catalog: dg.ResourceParam[Catalog]
) -> dg.Output[str]:
    try:
        dataset = naming.dataset_name(config.dataset)
        spec = parse_spec(config.spec_data(), source="launchpad config")
        record, created = register_set(catalog, dataset, spec)
    except (SpecError, naming.InvalidNameError, CatalogError) as err:
        # A readable message in the UI; retrying the same config cannot succeed.
        raise dg.Failure(description=str(err), allow_retries=False) from None
    version = str(record.version)
    if not context.instance.has_dynamic_partition(indicator_versions.name, version):
        context.instance.add_dynamic_partitions(indicator_versions.name, [version])
    context.log.info(
        f"{record.measurement}: {'registered' if created else 'already registered'} "
        f"({len(record.columns)} columns, status {record.status})"
    )
    return dg.Output(
        record.measurement,
        metadata={
            "measurement": record.measurement,
            "partition": f"{dataset}|{version}",
            "created": created,
            "status": record.status,
            "columns": dg.MetadataValue.json(list(record.columns)),
        },
    )


@dg.job(
    name=ADD_INDICATOR_SET_JOB,
    description="Register an indicator set (typed config) for a dataset; the sensor computes it.",
    tags=job_tags("indicator_set"),
)
def add_indicator_set() -> None:
    register_indicator_set()


materialize_indicators_job = dg.define_asset_job(
    MATERIALIZE_INDICATORS_JOB,
    selection=dg.AssetSelection.assets(indicators),
    description="Compute one indicator set of one dataset (partition dataset|version) and run its checks.",
    tags=job_tags(),
)
