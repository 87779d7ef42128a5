"""The one Definitions object of the code location: it gathers each room's assets, checks and jobs, the
sensors and the resources.

Backends come from environment variables (see trading_assets.settings): DuckDB files under
TRADING_DATA_DIR by default, Postgres and QuestDB when switched on.
"""

import dagster as dg

from sensors.indicator_sets import indicator_sets_sensor
from sensors.intake import job_request_intake_sensor
from sensors.job_requests import LIFECYCLE_SENSORS
from sensors.landing import landing_sensor
from sensors.schedules import landing_rescan_schedule, rolling_walkforward_schedule
from sensors.simulation import simulation_sensor
from sensors.walkforward import walkforward_sensor
from trading_assets import settings as cfg
from trading_assets.bars.assets import bars
from trading_assets.bars.checks import bars_match_source
from trading_assets.bars.jobs import ingest_bars_job
from trading_assets.compute.indicators import load_modules
from trading_assets.indicators.assets import indicators
from trading_assets.indicators.jobs import add_indicator_set, materialize_indicators_job
from trading_assets.live.assets import live_bars, live_bars_sensor, live_reconciliation
from trading_assets.live.checks import live_bars_lag
from trading_assets.live.jobs import promote_strategy, reconcile_live_day_job, reconcile_live_day_schedule
from trading_assets.ops.jobs import backup, backup_schedule
from trading_assets.requests.jobs import take_job_request
from trading_assets.rolling.jobs import roll_walkforward
from trading_assets.simulation.assets import simulation, simulation_comparison, simulation_sweep
from trading_assets.simulation.jobs import (
    compare_simulations_job,
    simulate_job,
    start_simulation,
    sweep_job,
)
from trading_assets.walkforward.assets import fold_models, predictions, thresholds
from trading_assets.walkforward.jobs import (
    predict_walkforward_job,
    start_walkforward,
    train_folds_job,
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
            live_bars,
            live_reconciliation,
        ],
        asset_checks=[bars_match_source, live_bars_lag],
        jobs=[
            ingest_bars_job,
            materialize_indicators_job,
            add_indicator_set,
            take_job_request,
            roll_walkforward,
            start_walkforward,
            train_folds_job,
            predict_walkforward_job,
            start_simulation,
            simulate_job,
            sweep_job,
            compare_simulations_job,
            promote_strategy,
            reconcile_live_day_job,
            backup,
        ],
        sensors=[
            landing_sensor,
            indicator_sets_sensor,
            job_request_intake_sensor,
            walkforward_sensor,
            simulation_sensor,
            live_bars_sensor,
            *LIFECYCLE_SENSORS,
        ],
        schedules=[
            rolling_walkforward_schedule,
            landing_rescan_schedule,
            reconcile_live_day_schedule,
            backup_schedule,
        ],
        resources={
            "timeseries": cfg.timeseries_store(settings),
            "catalog": cfg.catalog(settings),
            "landing": cfg.landing(settings),
            "sets_folder": cfg.sets_folder(settings),
            "compute": cfg.compute(settings),
            "live_accounts": cfg.live_accounts(settings),
        },
        executor=cfg.executor(settings),
    )


defs = build_definitions(cfg.Settings.from_env())
