"""The bars room's job: import one dataset's export from the landing folder (the landing sensor starts it)."""

import dagster as dg

from trading_assets.bars.assets import bars
from trading_assets.metadata import job_tags

INGEST_JOB = "ingest_bars"

ingest_bars_job = dg.define_asset_job(
    INGEST_JOB,
    selection=dg.AssetSelection.assets(bars),
    description="Import one dataset's export from the landing folder and check it against the source.",
    tags=job_tags(),
)
