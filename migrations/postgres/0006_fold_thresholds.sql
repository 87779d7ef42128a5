-- Each fold keeps the long/short thresholds its step took from its own train-period predictions, right
-- after training, so the run's `thresholds` asset copies them instead of predicting every fold's training
-- rows again. NULL for folds trained before this migration (the asset then derives them from the stored
-- model, as it always did) and for a fold whose thresholds could not be taken (the asset says why).
ALTER TABLE walkforward_folds
    ADD COLUMN long_threshold  DOUBLE PRECISION CONSTRAINT walkforward_folds_long_threshold_finite
                               CHECK (long_threshold > '-Infinity' AND long_threshold < 'Infinity'),
    ADD COLUMN short_threshold DOUBLE PRECISION CONSTRAINT walkforward_folds_short_threshold_finite
                               CHECK (short_threshold > '-Infinity' AND short_threshold < 'Infinity'),
    ADD COLUMN threshold_rows  BIGINT CONSTRAINT walkforward_folds_threshold_rows_non_negative
                               CHECK (threshold_rows >= 0),
    ADD CONSTRAINT walkforward_folds_long_above_short CHECK (long_threshold >= short_threshold);
