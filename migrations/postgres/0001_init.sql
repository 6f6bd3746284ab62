-- sift schema v1 (PostgreSQL). Times are milliseconds since the Unix epoch (UTC).
-- `doc` columns hold the record's JSON; the other columns are what queries filter on.
CREATE TABLE sift_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,           -- bumped by every write transaction of any daemon
    cmdb_version BIGINT NOT NULL,  -- bumped by every CMDB change
    next_incident BIGINT NOT NULL
);
INSERT INTO sift_state (id, seq, cmdb_version, next_incident) VALUES (1, 0, 0, 1);

CREATE TABLE cis (
    id TEXT PRIMARY KEY,
    doc TEXT NOT NULL,
    seq BIGINT NOT NULL
);

CREATE TABLE relations (
    source TEXT NOT NULL REFERENCES cis (id),
    target TEXT NOT NULL REFERENCES cis (id),
    type TEXT NOT NULL,
    PRIMARY KEY (source, target, type)
);

CREATE TABLE alerts (
    fingerprint TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    ci_id TEXT,
    incident_id TEXT,
    starts_at BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX alerts_seq ON alerts (seq);
CREATE INDEX alerts_incident ON alerts (incident_id);
CREATE INDEX alerts_ci ON alerts (ci_id, starts_at);
CREATE INDEX alerts_order ON alerts (starts_at, fingerprint);
CREATE INDEX alerts_status ON alerts (status, starts_at);

CREATE TABLE incidents (
    id TEXT PRIMARY KEY,
    number BIGINT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    priority BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX incidents_seq ON incidents (seq);
CREATE INDEX incidents_status ON incidents (status, number);

CREATE TABLE incident_cis (
    incident_id TEXT NOT NULL,
    ci_id TEXT NOT NULL,
    PRIMARY KEY (ci_id, incident_id)
);

CREATE TABLE timeline (
    id BIGSERIAL PRIMARY KEY,
    incident_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX timeline_incident ON timeline (incident_id, id);
