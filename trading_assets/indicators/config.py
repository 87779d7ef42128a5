"""The typed config of an indicator set, as the add_indicator_set launchpad form takes it."""

import dagster as dg
from pydantic import Field


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
