-- sift schema v5 (postgres): an incident's member alerts as rows, not inside its document,
-- so a batch that adds one alert to a large incident writes one row, not the whole list.
-- pos: the alert's place in the incident's join order (0-based).
CREATE TABLE incident_alerts (
    incident_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    pos BIGINT NOT NULL,
    PRIMARY KEY (incident_id, fingerprint)
);

-- Incidents stored by earlier versions carry their list in the document: move it out.
INSERT INTO incident_alerts (incident_id, fingerprint, pos)
    SELECT i.id, e.value, e.ord - 1
    FROM incidents i
    CROSS JOIN LATERAL jsonb_array_elements_text(
        COALESCE((i.doc::jsonb) -> 'alert_fingerprints', '[]'::jsonb)
    ) WITH ORDINALITY AS e(value, ord)
    ON CONFLICT DO NOTHING;
UPDATE incidents SET doc = ((doc::jsonb) - 'alert_fingerprints')::text
    WHERE (doc::jsonb) ? 'alert_fingerprints';
