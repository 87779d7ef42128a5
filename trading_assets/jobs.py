"""Jobs a person launches from the UI besides materialising assets: registering an indicator set.

Asset jobs (`ingest_bars`, `materialize_indicators`) are defined with their assets in definitions.py.
"""

import dagster as dg
from pydantic import Field

from resources.catalog import Catalog, CatalogError
from trading_assets import naming
from trading_assets.compute.indicators import SpecError, parse_spec
from trading_assets.indicator_sets import register_set
from trading_assets.partitions import indicator_versions

ADD_INDICATOR_SET_JOB = "add_indicator_set"
MATERIALIZE_INDICATORS_JOB = "materialize_indicators"


class IndicatorEntryConfig(dg.Config):
    """One indicator of the set."""

    indicator: str = Field(
        description="Indicator name, e.g. rsi, macd, bbands (docs/indicators.md lists them)."
    )
    params: dict[str, float] = Field(
        default_factory=dict,
        description="Parameters by name, e.g. {n: 14}; omitted ones take their defaults.",
    )
    column: str = Field(
        default="",
        description="Output column; for several outputs the prefix (macd -> macd_line, ...). "
        "Default: the indicator's name.",
    )
    outputs: list[str] = Field(default_factory=list, description="Outputs to keep (default: all).")


class IndicatorSetConfig(dg.Config):
    """An indicator set to apply to a dataset. It gets the dataset's next version (or, if the same set was
    registered before, that version) and is computed by the indicator_sets sensor within a minute."""

    dataset: str = Field(description="Dataset (bars partition) to compute the set on, e.g. btc25.")
    name: str = Field(default="custom", description="A label for the set, shown in the catalog and the UI.")
    indicators: list[IndicatorEntryConfig] = Field(description="The indicators, in column order.")

    def spec_data(self) -> dict[str, object]:
        entries = []
        for item in self.indicators:
            entry: dict[str, object] = {"indicator": item.indicator, "params": dict(item.params)}
            if item.column:
                entry["column"] = item.column
            if item.outputs:
                entry["outputs"] = list(item.outputs)
            entries.append(entry)
        return {"name": self.name, "indicators": entries}


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
    tags={"trading/kind": "indicator_set"},
)
def add_indicator_set() -> None:
    register_indicator_set()
