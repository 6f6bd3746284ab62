-- sift schema v8 (postgres): operator feedback on grouping, for correlation tuning. Each
-- merge or split an operator makes is stored as labelled pairs of alerts (with their CIs):
-- label 'together' (a merge; the alerts split out together) or 'apart' (a split). action:
-- merge | split. incident_id: the incident the edit was made on (merge: merged away;
-- split: the one split); other_incident_id: the target, or the new incident. Times are
-- milliseconds since the Unix epoch (UTC). Rows are only ever appended.
CREATE TABLE feedback (
    id BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    label TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    other_incident_id TEXT NOT NULL,
    a_fingerprint TEXT NOT NULL,
    a_ci TEXT,
    b_fingerprint TEXT NOT NULL,
    b_ci TEXT
);
CREATE INDEX feedback_label ON feedback (label, id);
