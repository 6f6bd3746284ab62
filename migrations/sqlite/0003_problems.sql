-- sift schema v3 (SQLite): problem management. Times are milliseconds since the Unix epoch (UTC).
-- (Version 2 belongs to another change; versions apply independently.)

-- Incident history imported from the ITSM suite (POST /api/v1/incidents/import),
-- idempotent on the record id: a re-import replaces the record.
CREATE TABLE history_incidents (
    id TEXT PRIMARY KEY,
    opened_at BIGINT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX history_incidents_opened ON history_incidents (opened_at);

-- Problem candidates and the problem manager's decisions. `doc` is the candidate JSON
-- (incident ids included); status is candidate | accepted | rejected.
CREATE TABLE problems (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    score DOUBLE PRECISION NOT NULL,
    updated_at BIGINT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX problems_status ON problems (status, score);
