-- sift schema v6 (sqlite): the re-send journal (src/store/journal.rs). One row per commit
-- that had re-sends: the count and ends_at of each re-sent alert, packed in body. Rows are
-- deleted once every alert row they mention has been rewritten by a later commit.
CREATE TABLE alert_journal (
    seq INTEGER PRIMARY KEY,
    written_at BIGINT NOT NULL,
    body BLOB NOT NULL
);
