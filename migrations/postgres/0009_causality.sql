-- sift schema v9 (postgres): learned causality kept across restarts.
-- causality_graph: the last learning run, one row (id 1): when it ran (learned_at, ms since
-- the Unix epoch, UTC), how many stored alert occurrences it read, and the learned graph
-- (edges and summary) as JSON. Replaced by each run.
CREATE TABLE causality_graph (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    learned_at BIGINT NOT NULL,
    occurrences BIGINT NOT NULL,
    doc TEXT NOT NULL
);
-- causality_overrides: operators' pins and vetoes, at most one per (cause, effect) pair.
-- kind: pin | veto; actor and at (ms): who made it and when; doc: the whole override as
-- JSON (scope, lag and note of a pin). Relearning never touches this table.
CREATE TABLE causality_overrides (
    cause TEXT NOT NULL,
    effect TEXT NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    at BIGINT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (cause, effect)
);
