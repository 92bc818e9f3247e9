-- Why each event the worker answered DROP was dropped: daprd dead-letters it
-- without a reason, so the worker keeps one for `customer-worker redrive`
-- (its --reason filter and its listing). Rows past the inbox retention are
-- deleted by the cleanup job.
CREATE TABLE dead_letters (
    topic      TEXT   NOT NULL,
    event_id   TEXT   NOT NULL,
    reason     TEXT   NOT NULL,
    dropped_at BIGINT NOT NULL,
    PRIMARY KEY (topic, event_id)
);
CREATE INDEX dead_letters_dropped_at ON dead_letters (dropped_at);
