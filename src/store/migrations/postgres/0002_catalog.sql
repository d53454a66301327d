-- The product catalog (the same tables as the SQLite backend): one row per
-- entity (Adobe Target's entity attributes). Standard attributes are plain
-- columns; categories and custom attributes are JSON text, which the store
-- does not parse. change_seq is the catalog sequence number of the
-- transaction that last wrote the row: other processes fetch rows with
-- change_seq above the one they saw last.
CREATE TABLE catalog_entities (
    id            TEXT PRIMARY KEY,
    name          TEXT,
    categories    TEXT,             -- JSON array of strings
    brand         TEXT,
    page_url      TEXT,
    thumbnail_url TEXT,
    message       TEXT,
    value         DOUBLE PRECISION, -- price
    inventory     DOUBLE PRECISION,
    margin        DOUBLE PRECISION,
    attrs         TEXT,             -- JSON object of custom attributes
    environment   BIGINT NOT NULL DEFAULT 0,
    updated_ms    BIGINT NOT NULL,
    change_seq    BIGINT NOT NULL
);
CREATE INDEX catalog_entities_change ON catalog_entities (change_seq);

-- Deleted ids, so that other processes drop them too (kept for a day).
CREATE TABLE catalog_tombstones (
    id         TEXT PRIMARY KEY,
    change_seq BIGINT NOT NULL,
    deleted_ms BIGINT NOT NULL
);
CREATE INDEX catalog_tombstones_change ON catalog_tombstones (change_seq);

-- The last catalog sequence number handed out (one row). A counter row
-- rather than a sequence: the row lock taken by the writer that moves it
-- is held until that writer commits, so numbers become visible in the
-- order they were handed out and a reader that saw N has seen every
-- change stamped N or less (a sequence hands out numbers that may commit
-- out of order, and a poller would skip the late one).
CREATE TABLE catalog_state (
    k   INTEGER PRIMARY KEY CHECK (k = 1),
    seq BIGINT NOT NULL
);
INSERT INTO catalog_state (k, seq) VALUES (1, 0);
