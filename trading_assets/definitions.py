"""The one Definitions object of the code location: assets, checks, jobs, sensors and resources.

Backends come from environment variables (see trading_assets.settings): DuckDB files under
TRADING_DATA_DIR by default, Postgres and QuestDB when switched on.
"""

import dagster as dg

from sensors.landing import INGEST_JOB, landing_sensor
from trading_assets import settings as cfg
from trading_assets.assets.bars import bars
from trading_assets.checks.bars import bars_match_source

ingest_bars_job = dg.define_asset_job(
    INGEST_JOB,
    selection=dg.AssetSelection.assets(bars),
    description="Import one dataset's export from the landing folder and check it against the source.",
)


def build_definitions(settings: cfg.Settings) -> dg.Definitions:
    return dg.Definitions(
        assets=[bars],
        asset_checks=[bars_match_source],
        jobs=[ingest_bars_job],
        sensors=[landing_sensor],
        resources={
            "timeseries": cfg.timeseries_store(settings),
            "catalog": cfg.catalog(settings),
            "landing": cfg.landing(settings),
        },
    )


defs = build_definitions(cfg.Settings.from_env())
