-- sift schema v4 (postgres): durable outbound delivery. Times are milliseconds since the Unix epoch (UTC).

-- Webhook subscriptions: those from config (origin 'config', re-synced at start) and those
-- made through the API (origin 'api'). `doc` is the subscription JSON, secret included.
CREATE TABLE subscriptions (
    name TEXT PRIMARY KEY,
    origin TEXT NOT NULL,
    doc TEXT NOT NULL
);

-- One row per (subscription, incident event), written in the same transaction as the
-- incident change. status: pending | delivered | dead. Rows of one (subscription,
-- incident) are delivered in id order. next_at is when a pending row is due (a claim
-- moves it forward as a lease).
CREATE TABLE outbox (
    id BIGSERIAL PRIMARY KEY,
    subscription TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT,
    last_error TEXT,
    body TEXT NOT NULL,
    UNIQUE (subscription, event_id)
);
CREATE INDEX outbox_due ON outbox (status, next_at);
CREATE INDEX outbox_queue ON outbox (subscription, incident_id, id);
