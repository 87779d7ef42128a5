-- Live and paper trading: strategies promoted from walkforward runs, their signals, orders with their
-- event history, fills, positions, reconciliation runs and service heartbeats (docs/live/orders.md).
-- Quantities, prices and money are NUMERIC(38, 18), exact (DuckDB's widest DECIMAL is the same), never
-- floats; the catalog refuses values that would need rounding.

-- A strategy: one fold's model of a completed walkforward run, trading one symbol on one venue account.
-- What it was promoted from (run through bars_sha256) never changes: a new model is a new strategy, so
-- every order and fill keeps the lineage it was made with. desired_state is what an operator asks
-- (UPDATE strategies SET desired_state = 'running' WHERE name = ...); actual_state what the runner did.
CREATE TABLE strategies (
    name                  TEXT        PRIMARY KEY CONSTRAINT strategies_name
                                      CHECK (name ~ '^[a-z][a-z0-9_]{0,23}$'),
    walkforward_run       TEXT        NOT NULL,
    fold                  INTEGER     NOT NULL,
    model_path            TEXT        NOT NULL,
    model_sha256          TEXT        NOT NULL CONSTRAINT strategies_model_sha256_hex
                                      CHECK (model_sha256 ~ '^[0-9a-f]{64}$'),
    -- The indicator set the features come from: its table and version of the run's dataset.
    measurement           TEXT        NOT NULL,
    indicator_version     INTEGER     NOT NULL,
    dataset               TEXT        NOT NULL,
    -- The SHA-256 of the bars file the dataset was imported from (datasets.source_sha256).
    bars_sha256           TEXT        NOT NULL CONSTRAINT strategies_bars_sha256_hex
                                      CHECK (bars_sha256 ~ '^[0-9a-f]{64}$'),
    long_threshold        DOUBLE PRECISION NOT NULL CONSTRAINT strategies_long_finite
                                      CHECK (long_threshold > '-Infinity' AND long_threshold < 'Infinity'),
    short_threshold       DOUBLE PRECISION NOT NULL CONSTRAINT strategies_short_finite
                                      CHECK (short_threshold > '-Infinity' AND short_threshold < 'Infinity'),
    -- How targets become quantities, as JSON (the simulator's sizing, fraction/notional/units).
    sizing                TEXT        NOT NULL,
    symbol                TEXT        NOT NULL CONSTRAINT strategies_symbol_not_empty CHECK (symbol <> ''),
    venue                 TEXT        NOT NULL CONSTRAINT strategies_venue_not_empty CHECK (venue <> ''),
    account               TEXT        NOT NULL CONSTRAINT strategies_account_not_empty CHECK (account <> ''),
    -- Pre-trade risk limits: the largest position (base units, either side), order notional (quote).
    max_position          NUMERIC(38, 18) NOT NULL CONSTRAINT strategies_max_position_positive
                                      CHECK (max_position > 0),
    max_order_notional    NUMERIC(38, 18) NOT NULL CONSTRAINT strategies_max_order_notional_positive
                                      CHECK (max_order_notional > 0),
    max_orders_per_minute INTEGER     NOT NULL CONSTRAINT strategies_max_orders_per_minute_positive
                                      CHECK (max_orders_per_minute > 0),
    desired_state         TEXT        NOT NULL DEFAULT 'stopped' CONSTRAINT strategies_desired_state
                                      CHECK (desired_state IN ('running', 'stopped')),
    actual_state          TEXT        NOT NULL DEFAULT 'stopped' CONSTRAINT strategies_actual_state
                                      CHECK (actual_state IN ('stopped', 'starting', 'running', 'stopping',
                                                              'failed')),
    state_message         TEXT,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT strategies_long_above_short CHECK (long_threshold >= short_threshold),
    CONSTRAINT strategies_fold FOREIGN KEY (walkforward_run, fold) REFERENCES walkforward_folds (run, fold),
    CONSTRAINT strategies_indicator_set
        FOREIGN KEY (dataset, indicator_version) REFERENCES indicator_sets (dataset, version)
);

-- One signal per strategy and closed bar: the model's prediction (NaN inside the features' warm-up) and
-- the target the simulator's signal function gave (-1 .. 1), by the model with that hash.
CREATE TABLE signals (
    strategy     TEXT        NOT NULL REFERENCES strategies (name),
    bar_ts       TIMESTAMPTZ NOT NULL,
    prediction   DOUBLE PRECISION NOT NULL,
    -- NaN compares above every number here, so the range check refuses it.
    target       DOUBLE PRECISION NOT NULL CONSTRAINT signals_target_range CHECK (target BETWEEN -1 AND 1),
    model_sha256 TEXT        NOT NULL CONSTRAINT signals_model_sha256_hex
                             CHECK (model_sha256 ~ '^[0-9a-f]{64}$'),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT signals_strategy_bar UNIQUE (strategy, bar_ts)
);

-- Orders, stored as intents (INITIALIZED) before they are sent, under their deterministic client order id
-- (trading_assets.orders.client_order_id of strategy, bar_ts, seq). `status` moves only through the state
-- machine, and every move adds its order_events row in the same transaction; event_seq is the seq of the
-- latest one, so a writer that read an older row changes nothing.
CREATE TABLE orders (
    client_order_id    TEXT        PRIMARY KEY CONSTRAINT orders_client_order_id
                                   CHECK (client_order_id ~ '^[a-zA-Z0-9_-]{1,36}$'),
    strategy           TEXT        NOT NULL REFERENCES strategies (name),
    bar_ts             TIMESTAMPTZ NOT NULL,
    seq                INTEGER     NOT NULL CONSTRAINT orders_seq_non_negative CHECK (seq >= 0),
    -- The strategy's, copied: the venue's records are matched on them.
    venue              TEXT        NOT NULL,
    account            TEXT        NOT NULL,
    symbol             TEXT        NOT NULL,
    side               TEXT        NOT NULL CONSTRAINT orders_side CHECK (side IN ('buy', 'sell')),
    order_type         TEXT        NOT NULL CONSTRAINT orders_order_type
                                   CHECK (order_type IN ('market', 'limit')),
    quantity           NUMERIC(38, 18) NOT NULL CONSTRAINT orders_quantity_positive CHECK (quantity > 0),
    limit_price        NUMERIC(38, 18) CONSTRAINT orders_limit_price_positive CHECK (limit_price > 0),
    status             TEXT        NOT NULL CONSTRAINT orders_status
                                   CHECK (status IN ('INITIALIZED', 'DENIED', 'SUBMITTED', 'ACCEPTED',
                                                     'REJECTED', 'PARTIALLY_FILLED', 'FILLED',
                                                     'PENDING_CANCEL', 'CANCELED', 'EXPIRED', 'UNKNOWN')),
    venue_order_id     TEXT,
    filled_quantity    NUMERIC(38, 18) NOT NULL DEFAULT 0,
    -- Quantity-weighted mean of the fills' prices, rounded to the scale; NULL until a fill.
    average_fill_price NUMERIC(38, 18),
    -- Why it was denied or rejected (or the venue's word on a cancel or expiry).
    reason             TEXT,
    event_seq          INTEGER     NOT NULL CONSTRAINT orders_event_seq_positive CHECK (event_seq > 0),
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT orders_strategy_bar_seq UNIQUE (strategy, bar_ts, seq),
    CONSTRAINT orders_limit_has_price CHECK ((order_type = 'limit') = (limit_price IS NOT NULL)),
    CONSTRAINT orders_filled_range CHECK (filled_quantity >= 0 AND filled_quantity <= quantity),
    CONSTRAINT orders_fill_price CHECK ((filled_quantity > 0) = (average_fill_price IS NOT NULL)),
    CONSTRAINT orders_filled_means_all CHECK ((status = 'FILLED') = (filled_quantity = quantity)),
    CONSTRAINT orders_says_why CHECK (status NOT IN ('DENIED', 'REJECTED') OR reason IS NOT NULL)
);

-- The full history of each order, appended and never changed: seq 1 is its creation (CREATE, from NULL to
-- INITIALIZED), every later row one state-machine event. detail is JSON (reason, fill, venue order id).
CREATE TABLE order_events (
    client_order_id TEXT        NOT NULL REFERENCES orders (client_order_id),
    seq             INTEGER     NOT NULL CONSTRAINT order_events_seq_positive CHECK (seq > 0),
    event           TEXT        NOT NULL CONSTRAINT order_events_event
                                CHECK (event IN ('CREATE', 'DENY', 'SUBMIT', 'ACCEPT', 'REJECT', 'FILL',
                                                 'CANCEL_REQUEST', 'CANCEL_REJECT', 'CANCEL', 'EXPIRE',
                                                 'TIMEOUT')),
    from_status     TEXT,
    to_status       TEXT        NOT NULL,
    detail          TEXT        NOT NULL,
    recorded_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (client_order_id, seq),
    CONSTRAINT order_events_first_is_create CHECK ((seq = 1) = (event = 'CREATE')),
    CONSTRAINT order_events_from CHECK ((from_status IS NULL) = (event = 'CREATE'))
);

-- The catalog has no path that changes or deletes an event; here the database refuses one too.
CREATE FUNCTION order_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'order_events is append-only: % refused', TG_OP;
END;
$$;
CREATE TRIGGER order_events_append_only BEFORE UPDATE OR DELETE ON order_events
    FOR EACH STATEMENT EXECUTE FUNCTION order_events_append_only();

-- Executions, one per venue trade: a trade seen again (a replay after a reconnect) is the same row, so it
-- is never counted twice. A fill, its order's move and its position's change commit together.
CREATE TABLE fills (
    venue           TEXT        NOT NULL,
    trade_id        TEXT        NOT NULL CONSTRAINT fills_trade_id_not_empty CHECK (trade_id <> ''),
    client_order_id TEXT        NOT NULL REFERENCES orders (client_order_id),
    symbol          TEXT        NOT NULL,
    side            TEXT        NOT NULL CONSTRAINT fills_side CHECK (side IN ('buy', 'sell')),
    quantity        NUMERIC(38, 18) NOT NULL CONSTRAINT fills_quantity_positive CHECK (quantity > 0),
    price           NUMERIC(38, 18) NOT NULL CONSTRAINT fills_price_positive CHECK (price > 0),
    -- A maker rebate is a negative fee.
    fee             NUMERIC(38, 18) NOT NULL,
    fee_currency    TEXT,
    ts              TIMESTAMPTZ NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (venue, trade_id)
);

-- Positions per venue account and symbol, as the recorded fills made them: signed quantity (> 0 long),
-- average entry of what is held (NULL when flat), PnL realised by reducing it (quote currency, before fees).
CREATE TABLE positions (
    venue               TEXT        NOT NULL,
    account             TEXT        NOT NULL,
    symbol              TEXT        NOT NULL,
    quantity            NUMERIC(38, 18) NOT NULL,
    average_entry_price NUMERIC(38, 18) CONSTRAINT positions_entry_positive CHECK (average_entry_price > 0),
    realised_pnl        NUMERIC(38, 18) NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (venue, account, symbol),
    CONSTRAINT positions_entry_when_held CHECK ((quantity <> 0) = (average_entry_price IS NOT NULL))
);

-- One comparison of the catalog's open orders, fills and positions with a venue's. details is JSON, with
-- every mismatch listed.
CREATE TABLE reconciliation_runs (
    id          BIGINT      GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    service     TEXT        NOT NULL,
    venue       TEXT        NOT NULL,
    account     TEXT        NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at TIMESTAMPTZ,
    -- NULL while running.
    status      TEXT        CONSTRAINT reconciliation_runs_status
                            CHECK (status IN ('ok', 'mismatch', 'failed')),
    details     TEXT,
    CONSTRAINT reconciliation_runs_finished CHECK ((finished_at IS NULL) = (status IS NULL))
);

-- The latest beat of each instance of each long-running service; detail is JSON.
CREATE TABLE service_heartbeats (
    service   TEXT        NOT NULL,
    instance  TEXT        NOT NULL,
    status    TEXT        NOT NULL,
    detail    TEXT        NOT NULL,
    last_beat TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (service, instance)
);
