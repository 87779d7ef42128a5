-- Job requests and their Dagster runs: same tables and constraints as
-- migrations/postgres/0007_job_requests.sql (read it for what each column means), in DuckDB's dialect,
-- except the foreign keys (DuckDB rewrites an updated row as delete + insert, which a key to it would
-- refuse; see 0003) and the partial index. The catalog checks the parent and the request exist instead.
CREATE SEQUENCE job_requests_id_seq START 1;

CREATE TABLE job_requests (
    id              BIGINT      PRIMARY KEY DEFAULT nextval('job_requests_id_seq'),
    kind            VARCHAR     NOT NULL CONSTRAINT job_requests_kind
                                CHECK (kind IN ('walkforward', 'simulation')),
    config          VARCHAR     NOT NULL,
    requested_by    VARCHAR     NOT NULL CONSTRAINT job_requests_requested_by_not_empty
                                CHECK (requested_by <> ''),
    status          VARCHAR     NOT NULL DEFAULT 'QUEUED' CONSTRAINT job_requests_status
                                CHECK (status IN ('QUEUED', 'RUNNING', 'COMPLETED', 'FAILED', 'REJECTED')),
    message         VARCHAR,
    target          VARCHAR,
    parent_id       BIGINT,
    intake_attempts INTEGER     NOT NULL DEFAULT 0 CONSTRAINT job_requests_intake_attempts_non_negative
                                CHECK (intake_attempts >= 0),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at      TIMESTAMPTZ,
    finished_at     TIMESTAMPTZ,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT job_requests_finished
        CHECK ((finished_at IS NOT NULL) = (status IN ('COMPLETED', 'FAILED', 'REJECTED'))),
    CONSTRAINT job_requests_says_why CHECK (status NOT IN ('FAILED', 'REJECTED') OR message IS NOT NULL),
    CONSTRAINT job_requests_target_kind UNIQUE (kind, target),
    CONSTRAINT job_requests_one_chained UNIQUE (parent_id)
);

CREATE TABLE job_request_runs (
    request_id  BIGINT      NOT NULL,
    run_id      VARCHAR     NOT NULL,
    job_name    VARCHAR     NOT NULL,
    partition   VARCHAR,
    status      VARCHAR     NOT NULL CONSTRAINT job_request_runs_status
                            CHECK (status IN ('STARTED', 'SUCCESS', 'FAILURE', 'CANCELED')),
    message     VARCHAR,
    url         VARCHAR     NOT NULL,
    started_at  TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (request_id, run_id)
);
