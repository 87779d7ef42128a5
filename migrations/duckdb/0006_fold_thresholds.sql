-- Each fold keeps the long/short thresholds its step took from its own train-period predictions, right
-- after training, so the run's `thresholds` asset copies them instead of predicting every fold's training
-- rows again. NULL for folds trained before this migration (the asset then derives them from the stored
-- model, as it always did) and for a fold whose thresholds could not be taken (the asset says why).
-- Same columns as migrations/postgres/0006_fold_thresholds.sql; DuckDB cannot add constraints to an
-- existing table, so the finite values and long >= short are checked where thresholds are recorded
-- (walkforward_thresholds keeps its constraints).
ALTER TABLE walkforward_folds ADD COLUMN long_threshold DOUBLE;
ALTER TABLE walkforward_folds ADD COLUMN short_threshold DOUBLE;
ALTER TABLE walkforward_folds ADD COLUMN threshold_rows BIGINT;
