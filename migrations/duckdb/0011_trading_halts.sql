-- The table of migrations/postgres/0011_trading_halts.sql (read it for what it means), in DuckDB's dialect.
CREATE TABLE trading_halts (
    venue      VARCHAR     NOT NULL,
    account    VARCHAR     NOT NULL,
    halted     BOOLEAN     NOT NULL,
    reason     VARCHAR     NOT NULL,
    set_by     VARCHAR     NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (venue, account),
    CHECK (reason <> '')
);
