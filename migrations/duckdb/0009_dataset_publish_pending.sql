-- The column of migrations/postgres/0009_dataset_publish_pending.sql (read it for what it means), in
-- DuckDB's dialect: a column cannot be added with NOT NULL, so the default fills existing rows first.
ALTER TABLE datasets ADD COLUMN publish_pending BOOLEAN DEFAULT false;
ALTER TABLE datasets ALTER COLUMN publish_pending SET NOT NULL;
