"""The one Definitions object of the code location: assets, checks, jobs, sensors and resources.

Backends come from environment variables (see trading_assets.settings): DuckDB files under
TRADING_DATA_DIR by default, Postgres and QuestDB when switched on.
"""

import dagster as dg

from sensors.indicator_sets import indicator_sets_sensor
from sensors.job_requests import LIFECYCLE_SENSORS
from sensors.landing import INGEST_JOB, landing_sensor
from sensors.schedules import landing_rescan_schedule, rolling_walkforward_schedule
from sensors.simulation import simulation_sensor
from sensors.walkforward import walkforward_sensor
from trading_assets import settings as cfg
from trading_assets.assets.bars import bars
from trading_assets.assets.indicators import indicators
from trading_assets.assets.simulation import simulation, simulation_comparison, simulation_sweep
from trading_assets.assets.walkforward import fold_models, predictions, thresholds
from trading_assets.checks.bars import bars_match_source
from trading_assets.compute.indicators import load_modules
from trading_assets.jobs import (
    MATERIALIZE_INDICATORS_JOB,
    add_indicator_set,
    compare_simulations_job,
    predict_walkforward_job,
    simulate_job,
    start_simulation,
    start_walkforward,
    sweep_job,
    train_folds_job,
)

ingest_bars_job = dg.define_asset_job(
    INGEST_JOB,
    selection=dg.AssetSelection.assets(bars),
    description="Import one dataset's export from the landing folder and check it against the source.",
)

materialize_indicators_job = dg.define_asset_job(
    MATERIALIZE_INDICATORS_JOB,
    selection=dg.AssetSelection.assets(indicators),
    description="Compute one indicator set of one dataset (partition dataset|version) and run its checks.",
)


def build_definitions(settings: cfg.Settings) -> dg.Definitions:
    # Users' own indicators must be registered before a set that uses them is validated or computed.
    load_modules(settings.indicator_modules)
    return dg.Definitions(
        assets=[
            bars,
            indicators,
            fold_models,
            predictions,
            thresholds,
            simulation,
            simulation_sweep,
            simulation_comparison,
        ],
        asset_checks=[bars_match_source],
        jobs=[
            ingest_bars_job,
            materialize_indicators_job,
            add_indicator_set,
            start_walkforward,
            train_folds_job,
            predict_walkforward_job,
            start_simulation,
            simulate_job,
            sweep_job,
            compare_simulations_job,
        ],
        sensors=[
            landing_sensor,
            indicator_sets_sensor,
            walkforward_sensor,
            simulation_sensor,
            *LIFECYCLE_SENSORS,
        ],
        schedules=[rolling_walkforward_schedule, landing_rescan_schedule],
        resources={
            "timeseries": cfg.timeseries_store(settings),
            "catalog": cfg.catalog(settings),
            "landing": cfg.landing(settings),
            "sets_folder": cfg.sets_folder(settings),
            "compute": cfg.compute(settings),
        },
        executor=cfg.executor(settings),
    )


defs = build_definitions(cfg.Settings.from_env())
