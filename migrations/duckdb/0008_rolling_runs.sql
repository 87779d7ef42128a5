-- Rolling walkforward runs: same columns as migrations/postgres/0008_rolling_runs.sql (read it for what
-- each means), in DuckDB's dialect. DuckDB cannot add constraints to an existing table, nor set NOT NULL on
-- a column updated in the same transaction, so the hash patterns, "a rolling run has a history hash" and
-- every fold having its dataset version are ensured where the catalog writes them (see 0006).
ALTER TABLE walkforward_runs ADD COLUMN rolling BOOLEAN DEFAULT false;
ALTER TABLE walkforward_runs ALTER COLUMN rolling SET NOT NULL;
ALTER TABLE walkforward_runs ADD COLUMN history_sha256 VARCHAR;

ALTER TABLE walkforward_folds ADD COLUMN dataset_version VARCHAR;
UPDATE walkforward_folds SET dataset_version = r.dataset_version FROM walkforward_runs AS r
    WHERE r.name = walkforward_folds.run;
