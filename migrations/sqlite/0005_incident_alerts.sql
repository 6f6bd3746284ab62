-- sift schema v5 (sqlite): an incident's member alerts as rows, not inside its document,
-- so a batch that adds one alert to a large incident writes one row, not the whole list.
-- pos: the alert's place in the incident's join order (0-based).
CREATE TABLE incident_alerts (
    incident_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    pos BIGINT NOT NULL,
    PRIMARY KEY (incident_id, fingerprint)
) WITHOUT ROWID;

-- Incidents stored by earlier versions carry their list in the document: move it out.
INSERT OR IGNORE INTO incident_alerts (incident_id, fingerprint, pos)
    SELECT i.id, j.value, CAST(j.key AS INTEGER)
    FROM incidents i, json_each(i.doc, '$.alert_fingerprints') j;
UPDATE incidents SET doc = json_remove(doc, '$.alert_fingerprints')
    WHERE json_type(doc, '$.alert_fingerprints') IS NOT NULL;
