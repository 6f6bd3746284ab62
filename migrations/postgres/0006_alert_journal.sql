-- sift schema v6 (postgres): the re-send journal (src/store/journal.rs). One row per commit
-- that had re-sends: the count and ends_at of each re-sent alert, packed in body. Rows are
-- deleted once every alert row they mention has been rewritten by a later commit.
CREATE TABLE alert_journal (
    seq BIGINT PRIMARY KEY,
    written_at BIGINT NOT NULL,
    body BYTEA NOT NULL
);
