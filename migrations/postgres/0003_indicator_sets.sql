-- Indicator sets: a validated spec (indicators, parameters, output columns) applied to one dataset,
-- numbered per dataset (1, 2, ...), and the time-series table `<dataset>_<version>` (the measurement)
-- holding its values. A spec never changes: a different spec is a new version, so a version number
-- always means the same columns and values, and (dataset, spec_sha256) finds the set of a given spec.
-- The hashes are TEXT with a pattern check rather than CHAR(64), which would blank-pad short values.
CREATE TABLE indicator_sets (
    measurement  TEXT        PRIMARY KEY,
    dataset      TEXT        NOT NULL REFERENCES datasets (name),
    version      INTEGER     NOT NULL CONSTRAINT indicator_sets_version_positive CHECK (version > 0),
    -- The set's name from its spec (e.g. 'default'), for people; the version is what identifies it.
    label        TEXT        NOT NULL,
    -- The canonical JSON of the spec, so the set can be recomputed from the catalog alone.
    spec         TEXT        NOT NULL,
    spec_sha256  TEXT        NOT NULL CONSTRAINT indicator_sets_spec_sha256_hex CHECK (spec_sha256 ~ '^[0-9a-f]{64}$'),
    columns      TEXT[]      NOT NULL CONSTRAINT indicator_sets_columns_not_empty CHECK (cardinality(columns) > 0),
    -- Warm-up bars of each column (leading values that are NaN), in `columns` order.
    lookbacks    INTEGER[]   NOT NULL,
    -- registered: no values stored yet; ready: the table holds the values; failed: see message.
    status       TEXT        NOT NULL CONSTRAINT indicator_sets_status
                             CHECK (status IN ('registered', 'ready', 'failed')),
    -- The outputs below stay NULL until values are stored.
    row_count    BIGINT      CONSTRAINT indicator_sets_row_count_non_negative CHECK (row_count >= 0),
    first_ts     TIMESTAMPTZ,
    last_ts      TIMESTAMPTZ,
    -- Hash of the bars the stored rows were computed from: a later import that changes them shows here.
    bars_sha256  TEXT,
    -- The dataset's version (hash of its source file's SHA-256 and reading options) when the values were
    -- computed: a dataset row that says otherwise was imported again since, and the set is due an update.
    dataset_version TEXT,
    -- JSON resume state of stateful indicators (EMA, ...), so new bars extend the set without a rerun.
    state        TEXT,
    code_version TEXT,
    message      TEXT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT indicator_sets_lookbacks_per_column CHECK (cardinality(lookbacks) = cardinality(columns)),
    -- IS TRUE because a NULL element makes ALL yield NULL, which a CHECK would let through.
    CONSTRAINT indicator_sets_lookbacks_non_negative CHECK ((0 <= ALL (lookbacks)) IS TRUE),
    CONSTRAINT indicator_sets_time_range CHECK (last_ts >= first_ts),
    CONSTRAINT indicator_sets_dataset_version UNIQUE (dataset, version),
    CONSTRAINT indicator_sets_dataset_spec UNIQUE (dataset, spec_sha256)
);
