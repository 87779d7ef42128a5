-- Indicator sets: a validated spec (indicators, parameters, output columns) applied to one dataset,
-- numbered per dataset (1, 2, ...), and the time-series table `<dataset>_<version>` (the measurement)
-- holding its values. Same table and constraints as migrations/postgres/0003_indicator_sets.sql, in
-- DuckDB's dialect, except the foreign key to datasets: DuckDB rewrites a row whose list column is
-- updated as delete + insert, so with the key every re-import of a dataset that has indicator sets
-- (upsert_dataset sets `columns`) would fail. register_indicator_set checks that the dataset exists
-- instead, under the exclusive file lock that every writer holds, and datasets are never deleted.
CREATE TABLE indicator_sets (
    measurement  VARCHAR     PRIMARY KEY,
    dataset      VARCHAR     NOT NULL,
    version      INTEGER     NOT NULL CONSTRAINT indicator_sets_version_positive CHECK (version > 0),
    -- The set's name from its spec (e.g. 'default'), for people; the version is what identifies it.
    label        VARCHAR     NOT NULL,
    -- The canonical JSON of the spec, so the set can be recomputed from the catalog alone.
    spec         VARCHAR     NOT NULL,
    spec_sha256  VARCHAR     NOT NULL CONSTRAINT indicator_sets_spec_sha256_hex
                             CHECK (regexp_full_match(spec_sha256, '[0-9a-f]{64}')),
    columns      VARCHAR[]   NOT NULL CONSTRAINT indicator_sets_columns_not_empty CHECK (len(columns) > 0),
    -- Warm-up bars of each column (leading values that are NaN), in `columns` order.
    lookbacks    INTEGER[]   NOT NULL,
    -- registered: no values stored yet; ready: the table holds the values; failed: see message.
    status       VARCHAR     NOT NULL CONSTRAINT indicator_sets_status
                             CHECK (status IN ('registered', 'ready', 'failed')),
    -- The outputs below stay NULL until values are stored.
    row_count    BIGINT      CONSTRAINT indicator_sets_row_count_non_negative CHECK (row_count >= 0),
    first_ts     TIMESTAMPTZ,
    last_ts      TIMESTAMPTZ,
    -- Hash of the bars the stored rows were computed from: a later import that changes them shows here.
    bars_sha256  VARCHAR,
    -- The dataset's version (hash of its source file's SHA-256 and reading options) when the values were
    -- computed: a dataset row that says otherwise was imported again since, and the set is due an update.
    dataset_version VARCHAR,
    -- JSON resume state of stateful indicators (EMA, ...), so new bars extend the set without a rerun.
    state        VARCHAR,
    code_version VARCHAR,
    message      VARCHAR,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT indicator_sets_lookbacks_per_column CHECK (len(lookbacks) = len(columns)),
    -- list_min skips NULL elements, so the count of non-NULL ones must be the length too.
    CONSTRAINT indicator_sets_lookbacks_non_negative
        CHECK (list_count(lookbacks) = len(lookbacks) AND list_min(lookbacks) >= 0),
    CONSTRAINT indicator_sets_time_range CHECK (last_ts >= first_ts),
    CONSTRAINT indicator_sets_dataset_version UNIQUE (dataset, version),
    CONSTRAINT indicator_sets_dataset_spec UNIQUE (dataset, spec_sha256)
);
