-- sift schema v5 (postgres): an incident's member alerts as rows, not inside its document,
-- so a batch that adds one alert to a large incident writes one row, not the whole list.
-- pos: the alert's place in the incident's join order (0-based).
CREATE TABLE incident_alerts (
    incident_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    pos BIGINT NOT NULL,
    PRIMARY KEY (incident_id, fingerprint)
);

-- Incidents stored by earlier versions carry their list in the document: sift moves it
-- out right after this script, in the same transaction (in Rust: a document may hold text
-- that PostgreSQL's JSON parser refuses, such as an escaped NUL).
