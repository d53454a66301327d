-- The product catalog: one row per entity (Adobe Target's entity attributes).
-- Standard attributes are plain columns; categories and custom attributes are
-- JSON text, so that every backend can keep the same table. change_seq is the
-- catalog sequence number of the transaction that last wrote the row: other
-- processes fetch rows with change_seq above the one they saw last.
CREATE TABLE catalog_entities (
    id            TEXT PRIMARY KEY,
    name          TEXT,
    categories    TEXT,            -- JSON array of strings
    brand         TEXT,
    page_url      TEXT,
    thumbnail_url TEXT,
    message       TEXT,
    value         REAL,            -- price
    inventory     REAL,
    margin        REAL,
    attrs         TEXT,            -- JSON object of custom attributes
    environment   INTEGER NOT NULL DEFAULT 0,
    updated_ms    INTEGER NOT NULL,
    change_seq    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX catalog_entities_change ON catalog_entities (change_seq);

-- Deleted ids, so that other processes drop them too (kept for a day).
CREATE TABLE catalog_tombstones (
    id         TEXT PRIMARY KEY,
    change_seq INTEGER NOT NULL,
    deleted_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX catalog_tombstones_change ON catalog_tombstones (change_seq);

-- The last catalog sequence number handed out (one row).
CREATE TABLE catalog_state (
    k   INTEGER PRIMARY KEY CHECK (k = 1),
    seq INTEGER NOT NULL
);
INSERT INTO catalog_state (k, seq) VALUES (1, 0);
