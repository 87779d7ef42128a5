-- Walkforward runs: models trained fold by fold on one indicator set of a dataset, numbered per dataset
-- (1, 2, ...), with their predictions in the time-series table `<dataset>_run<n>` (the run's name).
-- A run's config never changes; its status is derived from its folds in the transaction that changes
-- one, so the run row always agrees with the fold rows.
-- The hashes are TEXT with a pattern check rather than CHAR(64), which would blank-pad short values.
CREATE TABLE walkforward_runs (
    name              TEXT        PRIMARY KEY,
    dataset           TEXT        NOT NULL REFERENCES datasets (name),
    number            INTEGER     NOT NULL CONSTRAINT walkforward_runs_number_positive CHECK (number > 0),
    indicator_version INTEGER     NOT NULL,
    -- The indicator set's table the features come from (`<dataset>_<indicator_version>`).
    measurement       TEXT        NOT NULL,
    -- The canonical JSON of the whole run config, so the run can be repeated from the catalog alone;
    -- hyperparameters and target are copies of parts of it, for queries.
    config            TEXT        NOT NULL,
    config_sha256     TEXT        NOT NULL CONSTRAINT walkforward_runs_config_sha256_hex
                                  CHECK (config_sha256 ~ '^[0-9a-f]{64}$'),
    hyperparameters   TEXT        NOT NULL,
    target            TEXT        NOT NULL,
    features          TEXT[]      NOT NULL CONSTRAINT walkforward_runs_features_not_empty
                                  CHECK (cardinality(features) > 0),
    -- The dataset's version when the run was registered: a dataset row that says otherwise was imported
    -- again since, and the run's predictions describe bars that are no longer stored.
    dataset_version   TEXT        NOT NULL CONSTRAINT walkforward_runs_dataset_version_hex
                                  CHECK (dataset_version ~ '^[0-9a-f]{64}$'),
    code_version      TEXT        NOT NULL,
    fold_count        INTEGER     NOT NULL CONSTRAINT walkforward_runs_fold_count_positive
                                  CHECK (fold_count > 0),
    -- registered: no fold started; running: some fold started and none failed; trained: every fold
    -- succeeded; completed: trained and thresholds stored; failed: some fold's latest attempt failed.
    status            TEXT        NOT NULL CONSTRAINT walkforward_runs_status
                                  CHECK (status IN ('registered', 'running', 'trained', 'completed',
                                                    'failed')),
    -- When the first fold started (kept across retries) and when the run last reached an end state.
    started_at        TIMESTAMPTZ,
    finished_at       TIMESTAMPTZ,
    -- What the predictions table holds; NULL until predictions are written.
    prediction_columns TEXT[]     CONSTRAINT walkforward_runs_prediction_columns_not_empty
                                  CHECK (cardinality(prediction_columns) > 0),
    prediction_rows   BIGINT      CONSTRAINT walkforward_runs_prediction_rows_non_negative
                                  CHECK (prediction_rows >= 0),
    first_ts          TIMESTAMPTZ,
    last_ts           TIMESTAMPTZ,
    -- The first failed fold's message, as 'fold <n>: <message>'.
    message           TEXT,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT walkforward_runs_time_range CHECK (last_ts >= first_ts),
    CONSTRAINT walkforward_runs_finished
        CHECK ((finished_at IS NOT NULL) = (status IN ('trained', 'completed', 'failed'))),
    CONSTRAINT walkforward_runs_dataset_number UNIQUE (dataset, number),
    CONSTRAINT walkforward_runs_indicator_set
        FOREIGN KEY (dataset, indicator_version) REFERENCES indicator_sets (dataset, version)
);

-- One row per fold of a run: its window and the latest attempt's state and outputs. A retry starts a
-- new attempt, which clears the previous outputs; `attempts` counts every start.
CREATE TABLE walkforward_folds (
    run             TEXT        NOT NULL REFERENCES walkforward_runs (name),
    fold            INTEGER     NOT NULL CONSTRAINT walkforward_folds_fold_non_negative CHECK (fold >= 0),
    -- Half-open row ranges of the training window as JSON [[start, end], ...]: several when an embargo
    -- cuts it. The test window is one half-open row range.
    train_ranges    TEXT        NOT NULL,
    test_start_row  BIGINT      NOT NULL CONSTRAINT walkforward_folds_test_start_non_negative
                                CHECK (test_start_row >= 0),
    test_end_row    BIGINT      NOT NULL,
    -- Timestamps of the first and last row of each window (inclusive).
    train_start_ts  TIMESTAMPTZ NOT NULL,
    train_end_ts    TIMESTAMPTZ NOT NULL,
    test_start_ts   TIMESTAMPTZ NOT NULL,
    test_end_ts     TIMESTAMPTZ NOT NULL,
    -- pending: never started; running: an attempt started; succeeded or failed: its result is stored.
    status          TEXT        NOT NULL CONSTRAINT walkforward_folds_status
                                CHECK (status IN ('pending', 'running', 'succeeded', 'failed')),
    attempts        INTEGER     NOT NULL DEFAULT 0 CONSTRAINT walkforward_folds_attempts_non_negative
                                CHECK (attempts >= 0),
    -- The latest attempt's result (FoldResult); NULL while pending or running.
    train_rows      BIGINT      CONSTRAINT walkforward_folds_train_rows_non_negative CHECK (train_rows >= 0),
    validation_rows BIGINT      CONSTRAINT walkforward_folds_validation_rows_non_negative
                                CHECK (validation_rows >= 0),
    test_rows       BIGINT      CONSTRAINT walkforward_folds_test_rows_non_negative CHECK (test_rows >= 0),
    -- Rows left out and why (warmup, no_target, not_finite), as JSON.
    dropped         TEXT,
    model_path      TEXT,
    model_sha256    TEXT        CONSTRAINT walkforward_folds_model_sha256_hex
                                CHECK (model_sha256 ~ '^[0-9a-f]{64}$'),
    best_iteration  INTEGER     CONSTRAINT walkforward_folds_best_iteration_non_negative
                                CHECK (best_iteration >= 0),
    device          TEXT,
    train_seconds   DOUBLE PRECISION CONSTRAINT walkforward_folds_train_seconds_non_negative
                                CHECK (train_seconds >= 0),
    -- Test-window metrics: regression fills rmse..hit_rate, classification log_loss..accuracy.
    rmse            DOUBLE PRECISION,
    mae             DOUBLE PRECISION,
    r2              DOUBLE PRECISION,
    ic              DOUBLE PRECISION,
    rank_ic         DOUBLE PRECISION,
    hit_rate        DOUBLE PRECISION,
    log_loss        DOUBLE PRECISION,
    auc             DOUBLE PRECISION,
    accuracy        DOUBLE PRECISION,
    -- JSON {feature: gain} over every feature of the run.
    feature_importance TEXT,
    message         TEXT,
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
    run             TEXT        NOT NULL,
    fold            INTEGER     NOT NULL,
    -- NaN compares above every number (and Infinity) here, so the range check also refuses NaN.
    long_threshold  DOUBLE PRECISION NOT NULL CONSTRAINT walkforward_thresholds_long_finite
                                CHECK (long_threshold > '-Infinity' AND long_threshold < 'Infinity'),
    short_threshold DOUBLE PRECISION NOT NULL CONSTRAINT walkforward_thresholds_short_finite
                                CHECK (short_threshold > '-Infinity' AND short_threshold < 'Infinity'),
    -- How they were derived, as JSON (source, quantiles, ...).
    rule            TEXT        NOT NULL,
    source_rows     BIGINT      NOT NULL CONSTRAINT walkforward_thresholds_source_rows_non_negative
                                CHECK (source_rows >= 0),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (run, fold),
    CONSTRAINT walkforward_thresholds_fold FOREIGN KEY (run, fold) REFERENCES walkforward_folds (run, fold),
    CONSTRAINT walkforward_thresholds_long_above_short CHECK (long_threshold >= short_threshold)
);
