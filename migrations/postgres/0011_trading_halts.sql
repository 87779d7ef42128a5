-- The kill switch of a venue account: while `halted`, the executor cancels the account's open orders and
-- refuses new ones (each denied with the halt's reason). One row per account, updated in place; who set it
-- and why is kept with it.
CREATE TABLE trading_halts (
    venue      TEXT        NOT NULL,
    account    TEXT        NOT NULL,
    halted     BOOLEAN     NOT NULL,
    reason     TEXT        NOT NULL,
    set_by     TEXT        NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (venue, account),
    CHECK (reason <> '')
);
