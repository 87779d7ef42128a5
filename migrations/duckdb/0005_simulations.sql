-- Trading simulations: a completed walkforward run's predictions replayed through the simulator with a
-- config (thresholds, sizing, costs, stops), numbered per dataset (1, 2, ...), with the per-bar series
-- (ts, equity, position, cash, drawdown) in the time-series table `<dataset>_sim<n>` (the sim's name)
-- and every trade in simulation_trades.
-- Same tables and constraints as migrations/postgres/0005_simulations.sql, in DuckDB's dialect, except
-- the foreign keys: DuckDB rewrites a row whose list column is updated as delete + insert, so a key on
-- simulations would refuse record_simulation (it sets `series_columns`) once the sim has trades, as keys
-- to datasets and walkforward_runs would refuse re-imports and record_walkforward_predictions (see 0003,
-- 0004). The catalog checks that the dataset, run and simulation exist instead, under the exclusive file
-- lock that every writer holds; none of these rows is ever deleted, only trades, which nothing references.
CREATE TABLE simulations (
    name            VARCHAR     PRIMARY KEY,
    dataset         VARCHAR     NOT NULL,
    number          INTEGER     NOT NULL CONSTRAINT simulations_number_positive CHECK (number > 0),
    -- The walkforward run whose predictions are replayed (a run of the same dataset).
    run             VARCHAR     NOT NULL,
    -- The canonical JSON of the whole simulation config, so the sim can be repeated from the catalog alone.
    config          VARCHAR     NOT NULL,
    config_sha256   VARCHAR     NOT NULL CONSTRAINT simulations_config_sha256_hex
                                CHECK (regexp_full_match(config_sha256, '[0-9a-f]{64}')),
    -- JSON of the per-fold long/short thresholds the simulation used.
    thresholds      VARCHAR     NOT NULL,
    -- registered: never started; running: an attempt started; completed: metrics and trades stored;
    -- failed: the latest attempt failed (see message), and no metrics or trades are kept.
    status          VARCHAR     NOT NULL CONSTRAINT simulations_status
                                CHECK (status IN ('registered', 'running', 'completed', 'failed')),
    -- The dataset's version at registration (also the run's), and the caller's identifier of the fold
    -- models (prediction attempts) whose predictions were replayed.
    dataset_version VARCHAR     NOT NULL CONSTRAINT simulations_dataset_version_hex
                                CHECK (regexp_full_match(dataset_version, '[0-9a-f]{64}')),
    models_version  VARCHAR     NOT NULL CONSTRAINT simulations_models_version_not_empty
                                CHECK (models_version <> ''),
    code_version    VARCHAR     NOT NULL,
    -- The outputs below are set together when a sim completes and cleared when an attempt starts or
    -- fails. metrics is JSON {name: number} with sorted keys; NaN is stored as null and infinities as
    -- the strings "Infinity" and "-Infinity" (standard JSON, and each casts back with ::DOUBLE).
    metrics         VARCHAR,
    n_trades        INTEGER     CONSTRAINT simulations_n_trades_non_negative CHECK (n_trades >= 0),
    -- What the series table holds: at least one bar.
    row_count       BIGINT      CONSTRAINT simulations_row_count_positive CHECK (row_count > 0),
    first_ts        TIMESTAMPTZ,
    last_ts         TIMESTAMPTZ,
    series_columns  VARCHAR[]   CONSTRAINT simulations_series_columns_not_empty
                                CHECK (len(series_columns) > 0),
    -- Why the latest attempt failed.
    message         VARCHAR,
    -- When the latest attempt started (NULL if it was recorded without start_simulation) and ended.
    started_at      TIMESTAMPTZ,
    finished_at     TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT simulations_time_range CHECK (last_ts >= first_ts),
    CONSTRAINT simulations_outputs CHECK (
        (status = 'completed') = (metrics IS NOT NULL AND n_trades IS NOT NULL AND row_count IS NOT NULL
                                  AND first_ts IS NOT NULL AND last_ts IS NOT NULL
                                  AND series_columns IS NOT NULL)
    ),
    CONSTRAINT simulations_started CHECK (status <> 'running' OR started_at IS NOT NULL),
    CONSTRAINT simulations_finished CHECK ((finished_at IS NOT NULL) = (status IN ('completed', 'failed'))),
    CONSTRAINT simulations_dataset_number UNIQUE (dataset, number)
);

CREATE INDEX simulations_run ON simulations (run);

-- Every trade of a completed simulation, numbered 0, 1, ... in the order the simulator closed them.
-- Written only with the sim's outputs, in the same transaction, after deleting the previous attempt's.
CREATE TABLE simulation_trades (
    simulation   VARCHAR     NOT NULL,
    trade        INTEGER     NOT NULL CONSTRAINT simulation_trades_trade_non_negative CHECK (trade >= 0),
    -- Bar indices into the sim's series table (row positions, 0-based) and those bars' timestamps.
    entry_idx    BIGINT      NOT NULL CONSTRAINT simulation_trades_entry_idx_non_negative
                             CHECK (entry_idx >= 0),
    exit_idx     BIGINT      NOT NULL,
    entry_ts     TIMESTAMPTZ NOT NULL,
    exit_ts      TIMESTAMPTZ NOT NULL,
    -- +1 long, -1 short.
    side         SMALLINT    NOT NULL CONSTRAINT simulation_trades_side CHECK (side IN (1, -1)),
    -- NaN compares above every number (and Infinity) here, so the range checks also refuse NaN.
    size         DOUBLE      NOT NULL CONSTRAINT simulation_trades_size_positive
                             CHECK (size > 0 AND size < 'Infinity'::DOUBLE),
    entry_price  DOUBLE      NOT NULL CONSTRAINT simulation_trades_entry_price_positive
                             CHECK (entry_price > 0 AND entry_price < 'Infinity'::DOUBLE),
    exit_price   DOUBLE      NOT NULL CONSTRAINT simulation_trades_exit_price_positive
                             CHECK (exit_price > 0 AND exit_price < 'Infinity'::DOUBLE),
    pnl          DOUBLE      NOT NULL CONSTRAINT simulation_trades_pnl_finite
                             CHECK (pnl > '-Infinity'::DOUBLE AND pnl < 'Infinity'::DOUBLE),
    return_pct   DOUBLE      NOT NULL CONSTRAINT simulation_trades_return_pct_finite
                             CHECK (return_pct > '-Infinity'::DOUBLE AND return_pct < 'Infinity'::DOUBLE),
    fees         DOUBLE      NOT NULL CONSTRAINT simulation_trades_fees_non_negative
                             CHECK (fees >= 0 AND fees < 'Infinity'::DOUBLE),
    bars_held    BIGINT      NOT NULL CONSTRAINT simulation_trades_bars_held_non_negative
                             CHECK (bars_held >= 0),
    exit_reason  VARCHAR     NOT NULL CONSTRAINT simulation_trades_exit_reason
                             CHECK (exit_reason IN ('signal', 'stop_loss', 'take_profit', 'max_bars', 'end')),
    PRIMARY KEY (simulation, trade),
    CONSTRAINT simulation_trades_bars CHECK (exit_idx >= entry_idx),
    CONSTRAINT simulation_trades_time_range CHECK (exit_ts >= entry_ts)
);
