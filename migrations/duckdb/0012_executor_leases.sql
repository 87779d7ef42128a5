-- The table of migrations/postgres/0012_executor_leases.sql (read it for what it means), in DuckDB's dialect.
CREATE TABLE executor_leases (
    venue       VARCHAR     NOT NULL,
    account     VARCHAR     NOT NULL,
    holder      VARCHAR     NOT NULL,
    acquired_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (venue, account),
    CHECK (holder <> '')
);
