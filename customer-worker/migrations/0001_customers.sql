-- One schema for SQLite and PostgreSQL: portable types only. Times are
-- milliseconds since the Unix epoch (UTC); money is integer minor units.

-- Each consumer records the events it applied, in the same transaction as
-- the effect: a redelivered or duplicated event changes nothing.
CREATE TABLE inbox (
    consumer     TEXT   NOT NULL,
    event_id     TEXT   NOT NULL,
    processed_at BIGINT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX inbox_processed_at ON inbox (processed_at);

-- What is known of each order, from whichever of its events arrived. The
-- customer's figures are derived from these rows, so the order in which
-- events arrive does not matter.
CREATE TABLE orders (
    order_id       TEXT   PRIMARY KEY,
    customer_id    TEXT   NOT NULL,
    currency       TEXT,
    amount_minor   BIGINT,
    completed_at   BIGINT,
    cancelled_at   BIGINT,
    refunded_minor BIGINT NOT NULL DEFAULT 0,
    return_count   BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX orders_customer ON orders (customer_id);
CREATE INDEX orders_completed_at ON orders (completed_at);

CREATE TABLE customers (
    customer_id       TEXT   PRIMARY KEY,
    currency          TEXT,
    order_count       BIGINT NOT NULL DEFAULT 0,
    total_spent_minor BIGINT NOT NULL DEFAULT 0,
    cancelled_count   BIGINT NOT NULL DEFAULT 0,
    returned_count    BIGINT NOT NULL DEFAULT 0,
    refunded_minor    BIGINT NOT NULL DEFAULT 0,
    first_order_at    BIGINT,
    last_order_at     BIGINT,
    last_login_at     BIGINT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);

CREATE TABLE security_events (
    event_id    TEXT   PRIMARY KEY,
    customer_id TEXT   NOT NULL,
    kind        TEXT   NOT NULL,
    occurred_at BIGINT NOT NULL,
    ip_address  TEXT,
    user_agent  TEXT,
    recorded_at BIGINT NOT NULL
);
CREATE INDEX security_events_customer ON security_events (customer_id);
CREATE INDEX security_events_recorded_at ON security_events (recorded_at);

CREATE TABLE customer_segments (
    customer_id TEXT   NOT NULL,
    segment     TEXT   NOT NULL,
    assigned_at BIGINT NOT NULL,
    PRIMARY KEY (customer_id, segment)
);

CREATE TABLE daily_stats (
    day              TEXT   PRIMARY KEY,
    customers        BIGINT NOT NULL,
    new_customers    BIGINT NOT NULL,
    orders_completed BIGINT NOT NULL,
    revenue_minor    BIGINT NOT NULL,
    logins           BIGINT NOT NULL,
    computed_at      BIGINT NOT NULL
);
