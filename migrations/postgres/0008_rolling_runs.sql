-- Rolling walkforward runs: the rolling_walkforward schedule extends a run marked `rolling` with the next
-- folds when its dataset has gained bars for another whole test window, and only when the bars and feature
-- values under its folds are unchanged. `history_sha256` is the SHA-256 of those bars (timestamps and
-- OHLCV) and of the run's feature columns, rows 0 up to the end of its last test window, taken when the
-- folds were computed (registration or extension); NULL for runs registered before this migration.
ALTER TABLE walkforward_runs
    ADD COLUMN rolling        BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN history_sha256 TEXT CONSTRAINT walkforward_runs_history_sha256_hex
                              CHECK (history_sha256 ~ '^[0-9a-f]{64}$'),
    ADD CONSTRAINT walkforward_runs_rolling_history CHECK (NOT rolling OR history_sha256 IS NOT NULL);

-- The dataset version each fold's window was computed on: the run's at registration, the newer one for
-- folds added by an extension. The predictions_reproduce check compares a fold's recorded test metrics
-- only while its fold was computed on the run's bars (an extension makes targets known that were not
-- when the earlier folds were scored).
ALTER TABLE walkforward_folds ADD COLUMN dataset_version TEXT;
UPDATE walkforward_folds AS f SET dataset_version = r.dataset_version FROM walkforward_runs AS r
    WHERE r.name = f.run;
ALTER TABLE walkforward_folds
    ALTER COLUMN dataset_version SET NOT NULL,
    ADD CONSTRAINT walkforward_folds_dataset_version_hex CHECK (dataset_version ~ '^[0-9a-f]{64}$');
