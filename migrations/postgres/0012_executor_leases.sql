-- One executor per venue account: an executor trades an account only while it holds the account's lease, so
-- two executor processes (a restart that overlaps the old one, a second replica, a person's second terminal)
-- never both send orders for it. The holder renews the lease before `expires_at`; a lease not renewed in
-- time (its holder died or froze) can be taken by another. Times are the database's clock, the one clock all
-- holders share.
CREATE TABLE executor_leases (
    venue       TEXT        NOT NULL,
    account     TEXT        NOT NULL,
    holder      TEXT        NOT NULL,
    acquired_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (venue, account),
    CHECK (holder <> '')
);
