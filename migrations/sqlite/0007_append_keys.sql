-- sift schema v7 (sqlite): keys that put a new alert's index entries where the previous
-- new alert's went, not on random pages. In an alert storm every new alert dirtied one
-- page per index keyed by fingerprint, and each dirty page is a WAL frame at commit
-- (measured: 13 KB written per new alert, three such indexes).
--
-- 1. incident_alerts keyed by (incident_id, pos) instead of (incident_id, fingerprint):
--    a new member's row goes at the end of its incident's rows. The core never adds an
--    alert to an incident twice (its member set is loaded with the incident), so one row
--    per (incident, fingerprint) still holds. Positions are renumbered 0.. in their order
--    (they already are, unless a list that schema v5 moved out of a document held a
--    fingerprint twice).
CREATE TABLE incident_alerts_v7 (
    incident_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    pos BIGINT NOT NULL,
    PRIMARY KEY (incident_id, pos)
) WITHOUT ROWID;
INSERT INTO incident_alerts_v7 (incident_id, fingerprint, pos)
SELECT incident_id, fingerprint,
       ROW_NUMBER() OVER (PARTITION BY incident_id ORDER BY pos, fingerprint) - 1
FROM incident_alerts;
DROP TABLE incident_alerts;
ALTER TABLE incident_alerts_v7 RENAME TO incident_alerts;

-- 2. The alert list (newest first) breaks ties of starts_at by arrival (the rowid, which
--    an upsert keeps; sift never runs VACUUM, which could renumber it) instead of by
--    fingerprint: the alerts of one rule evaluation share their starts_at, and
--    (starts_at, fingerprint) spread them over random pages.
DROP INDEX alerts_order;
CREATE INDEX alerts_order ON alerts (starts_at);
