-- Imported bars datasets: where each came from and which time-series table holds its bars.
-- Same table and constraints as migrations/postgres/0001_datasets.sql, in DuckDB's dialect.
CREATE TABLE datasets (
    name           VARCHAR     PRIMARY KEY,
    source_file    VARCHAR     NOT NULL,
    source_sha256  VARCHAR     NOT NULL CONSTRAINT datasets_sha256_hex CHECK (regexp_full_match(source_sha256, '[0-9a-f]{64}')),
    bar_interval_s BIGINT      NOT NULL CONSTRAINT datasets_interval_positive CHECK (bar_interval_s > 0),
    row_count      BIGINT      NOT NULL CONSTRAINT datasets_row_count_non_negative CHECK (row_count >= 0),
    first_ts       TIMESTAMPTZ NOT NULL,
    last_ts        TIMESTAMPTZ NOT NULL,
    table_name     VARCHAR     NOT NULL UNIQUE,
    columns        VARCHAR[]   NOT NULL CONSTRAINT datasets_columns_not_empty CHECK (len(columns) > 0),
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT datasets_time_range CHECK (last_ts >= first_ts)
);
