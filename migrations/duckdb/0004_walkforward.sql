-- Walkforward runs: models trained fold by fold on one indicator set of a dataset, numbered per dataset
-- (1, 2, ...), with their predictions in the time-series table `<dataset>_run<n>` (the run's name).
-- Same tables and constraints as migrations/postgres/0004_walkforward.sql, in DuckDB's dialect, except
-- the foreign keys: DuckDB rewrites a row whose list column is updated as delete + insert, so a key on
-- walkforward_runs would refuse record_walkforward_predictions (it sets `prediction_columns`) once the
-- run has folds, as a key to datasets would refuse re-imports (see 0003). The catalog checks that the
-- dataset, indicator set, run and fold exist instead, under the exclusive file lock that every writer
-- holds; none of these rows is ever deleted, only thresholds, which nothing references.
CREATE TABLE walkforward_runs (
    name              VARCHAR     PRIMARY KEY,
    dataset           VARCHAR     NOT NULL,
    number            INTEGER     NOT NULL CONSTRAINT walkforward_runs_number_positive CHECK (number > 0),
    indicator_version INTEGER     NOT NULL,
    -- The indicator set's table the features come from (`<dataset>_<indicator_version>`).
    measurement       VARCHAR     NOT NULL,
    -- The canonical JSON of the whole run config, so the run can be repeated from the catalog alone;
    -- hyperparameters and target are copies of parts of it, for queries.
    config            VARCHAR     NOT NULL,
    config_sha256     VARCHAR     NOT NULL CONSTRAINT walkforward_runs_config_sha256_hex
                                  CHECK (regexp_full_match(config_sha256, '[0-9a-f]{64}')),
    hyperparameters   VARCHAR     NOT NULL,
    target            VARCHAR     NOT NULL,
    features          VARCHAR[]   NOT NULL CONSTRAINT walkforward_runs_features_not_empty
                                  CHECK (len(features) > 0),
    -- The dataset's version when the run was registered: a dataset row that says otherwise was imported
    -- again since, and the run's predictions describe bars that are no longer stored.
    dataset_version   VARCHAR     NOT NULL CONSTRAINT walkforward_runs_dataset_version_hex
                                  CHECK (regexp_full_match(dataset_version, '[0-9a-f]{64}')),
    code_version      VARCHAR     NOT NULL,
    fold_count        INTEGER     NOT NULL CONSTRAINT walkforward_runs_fold_count_positive
                                  CHECK (fold_count > 0),
    -- registered: no fold started; running: some fold started and none failed; trained: every fold
    -- succeeded; completed: trained and thresholds stored; failed: some fold's latest attempt failed.
    status            VARCHAR     NOT NULL CONSTRAINT walkforward_runs_status
                                  CHECK (status IN ('registered', 'running', 'trained', 'completed',
                                                    'failed')),
    -- When the first fold started (kept across retries) and when the run last reached an end state.
    started_at        TIMESTAMPTZ,
    finished_at       TIMESTAMPTZ,
    -- What the predictions table holds; NULL until predictions are written.
    prediction_columns VARCHAR[]  CONSTRAINT walkforward_runs_prediction_columns_not_empty
                                  CHECK (len(prediction_columns) > 0),
    prediction_rows   BIGINT      CONSTRAINT walkforward_runs_prediction_rows_non_negative
                                  CHECK (prediction_rows >= 0),
    first_ts          TIMESTAMPTZ,
    last_ts           TIMESTAMPTZ,
    -- The first failed fold's message, as 'fold <n>: <message>'.
    message           VARCHAR,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT walkforward_runs_time_range CHECK (last_ts >= first_ts),
    CONSTRAINT walkforward_runs_finished
        CHECK ((finished_at IS NOT NULL) = (status IN ('trained', 'completed', 'failed'))),
    CONSTRAINT walkforward_runs_dataset_number UNIQUE (dataset, number)
);

-- One row per fold of a run: its window and the latest attempt's state and outputs. A retry starts a
-- new attempt, which clears the previous outputs; `attempts` counts every start.
CREATE TABLE walkforward_folds (
    run             VARCHAR     NOT NULL,
    fold            INTEGER     NOT NULL CONSTRAINT walkforward_folds_fold_non_negative CHECK (fold >= 0),
    -- Half-open row ranges of the training window as JSON [[start, end], ...]: several when an embargo
    -- cuts it. The test window is one half-open row range.
    train_ranges    VARCHAR     NOT NULL,
    test_start_row  BIGINT      NOT NULL CONSTRAINT walkforward_folds_test_start_non_negative
                                CHECK (test_start_row >= 0),
    test_end_row    BIGINT      NOT NULL,
    -- Timestamps of the first and last row of each window (inclusive).
    train_start_ts  TIMESTAMPTZ NOT NULL,
    train_end_ts    TIMESTAMPTZ NOT NULL,
    test_start_ts   TIMESTAMPTZ NOT NULL,
    test_end_ts     TIMESTAMPTZ NOT NULL,
    -- pending: never started; running: an attempt started; succeeded or failed: its result is stored.
    status          VARCHAR     NOT NULL CONSTRAINT walkforward_folds_status
                                CHECK (status IN ('pending', 'running', 'succeeded', 'failed')),
    attempts        INTEGER     NOT NULL DEFAULT 0 CONSTRAINT walkforward_folds_attempts_non_negative
                                CHECK (attempts >= 0),
    -- The latest attempt's result (FoldResult); NULL while pending or running.
    train_rows      BIGINT      CONSTRAINT walkforward_folds_train_rows_non_negative CHECK (train_rows >= 0),
    validation_rows BIGINT      CONSTRAINT walkforward_folds_validation_rows_non_negative
                                CHECK (validation_rows >= 0),
    test_rows       BIGINT      CONSTRAINT walkforward_folds_test_rows_non_negative CHECK (test_rows >= 0),
    -- Rows left out and why (warmup, no_target, not_finite), as JSON.
    dropped         VARCHAR,
    model_path      VARCHAR,
    model_sha256    VARCHAR     CONSTRAINT walkforward_folds_model_sha256_hex
                                CHECK (regexp_full_match(model_sha256, '[0-9a-f]{64}')),
    best_iteration  INTEGER     CONSTRAINT walkforward_folds_best_iteration_non_negative
                                CHECK (best_iteration >= 0),
    device          VARCHAR,
    train_seconds   DOUBLE      CONSTRAINT walkforward_folds_train_seconds_non_negative
                                CHECK (train_seconds >= 0),
    -- Test-window metrics: regression fills rmse..hit_rate, classification log_loss..accuracy.
    rmse            DOUBLE,
    mae             DOUBLE,
    r2              DOUBLE,
    ic              DOUBLE,
    rank_ic         DOUBLE,
    hit_rate        DOUBLE,
    log_loss        DOUBLE,
    auc             DOUBLE,
    accuracy        DOUBLE,
    -- JSON {feature: gain} over every feature of the run.
    feature_importance VARCHAR,
    message         VARCHAR,
    started_at      TIMESTAMPTZ,
    finished_at     TIMESTAMPTZ,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (run, fold),
    CONSTRAINT walkforward_folds_test_rows CHECK (test_end_row > test_start_row),
    CONSTRAINT walkforward_folds_train_range CHECK (train_end_ts >= train_start_ts),
    CONSTRAINT walkforward_folds_test_range CHECK (test_end_ts >= test_start_ts),
    -- Training on rows at or after the test window's start would leak the future into the model.
    CONSTRAINT walkforward_folds_train_before_test CHECK (train_end_ts < test_start_ts),
    CONSTRAINT walkforward_folds_attempted CHECK ((status = 'pending') = (attempts = 0)),
    CONSTRAINT walkforward_folds_finished
        CHECK ((finished_at IS NOT NULL) = (status IN ('succeeded', 'failed')))
);

-- Long/short entry thresholds per fold, derived from that fold's train-period predictions only. They
-- belong to the fold's model: a new attempt or result of the fold deletes them.
CREATE TABLE walkforward_thresholds (
    run             VARCHAR     NOT NULL,
    fold            INTEGER     NOT NULL,
    -- NaN compares above every number (and Infinity) here, so the range check also refuses NaN.
    long_threshold  DOUBLE      NOT NULL CONSTRAINT walkforward_thresholds_long_finite
                                CHECK (long_threshold > '-Infinity'::DOUBLE
                                       AND long_threshold < 'Infinity'::DOUBLE),
    short_threshold DOUBLE      NOT NULL CONSTRAINT walkforward_thresholds_short_finite
                                CHECK (short_threshold > '-Infinity'::DOUBLE
                                       AND short_threshold < 'Infinity'::DOUBLE),
    -- How they were derived, as JSON (source, quantiles, ...).
    rule            VARCHAR     NOT NULL,
    source_rows     BIGINT      NOT NULL CONSTRAINT walkforward_thresholds_source_rows_non_negative
                                CHECK (source_rows >= 0),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (run, fold),
    CONSTRAINT walkforward_thresholds_long_above_short CHECK (long_threshold >= short_threshold)
);
