-- Imported bars datasets: where each came from and which time-series table holds its bars.
-- The sha256 is TEXT with a pattern check rather than CHAR(64), which would blank-pad short values.
CREATE TABLE datasets (
    name           TEXT        PRIMARY KEY,
    source_file    TEXT        NOT NULL,
    source_sha256  TEXT        NOT NULL CONSTRAINT datasets_sha256_hex CHECK (source_sha256 ~ '^[0-9a-f]{64}$'),
    bar_interval_s BIGINT      NOT NULL CONSTRAINT datasets_interval_positive CHECK (bar_interval_s > 0),
    row_count      BIGINT      NOT NULL CONSTRAINT datasets_row_count_non_negative CHECK (row_count >= 0),
    first_ts       TIMESTAMPTZ NOT NULL,
    last_ts        TIMESTAMPTZ NOT NULL,
    table_name     TEXT        NOT NULL UNIQUE,
    columns        TEXT[]      NOT NULL CONSTRAINT datasets_columns_not_empty CHECK (cardinality(columns) > 0),
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT datasets_time_range CHECK (last_ts >= first_ts)
);
