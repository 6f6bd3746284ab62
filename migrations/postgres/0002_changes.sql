-- Change records (maintenance windows and enrichment). Times in ms since the epoch.
CREATE TABLE changes (
    id TEXT PRIMARY KEY,
    ci_id TEXT NOT NULL,
    start_at BIGINT NOT NULL,
    end_at BIGINT NOT NULL,
    maintenance BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX changes_ci ON changes (ci_id, start_at);
CREATE INDEX changes_end ON changes (end_at);
CREATE INDEX changes_seq ON changes (seq);
