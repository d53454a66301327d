-- Events, profiles, identities and the profile state derived from events.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE profiles (
    id          INTEGER PRIMARY KEY,
    created_ms  INTEGER NOT NULL,
    merged_into INTEGER            -- set when this profile was merged away
);

CREATE TABLE identities (
    ns         TEXT NOT NULL,      -- ecid | email | customer
    id         TEXT NOT NULL,
    profile_id INTEGER NOT NULL,
    linked_ms  INTEGER NOT NULL,
    PRIMARY KEY (ns, id)
) WITHOUT ROWID;
CREATE INDEX identities_profile ON identities (profile_id);

CREATE TABLE events (
    seq         INTEGER PRIMARY KEY,
    event_id    TEXT,              -- client idempotency key
    type        TEXT NOT NULL,
    profile_id  INTEGER NOT NULL,
    ts_ms       INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    doc         TEXT NOT NULL      -- the normalised event as JSON
);
CREATE UNIQUE INDEX events_event_id ON events (event_id) WHERE event_id IS NOT NULL;
CREATE INDEX events_profile ON events (profile_id, ts_ms);

CREATE TABLE cart (
    profile_id INTEGER NOT NULL,
    item_id    TEXT NOT NULL,
    name       TEXT,
    category   TEXT,
    price      REAL,
    quantity   INTEGER NOT NULL,
    added_ms   INTEGER NOT NULL,
    PRIMARY KEY (profile_id, item_id)
) WITHOUT ROWID;

CREATE TABLE viewed (
    profile_id INTEGER NOT NULL,
    item_id    TEXT NOT NULL,
    name       TEXT,
    category   TEXT,
    price      REAL,
    ts_ms      INTEGER NOT NULL,
    PRIMARY KEY (profile_id, item_id)
) WITHOUT ROWID;
CREATE INDEX viewed_recent ON viewed (profile_id, ts_ms);

CREATE TABLE purchases (
    profile_id INTEGER NOT NULL,
    order_id   TEXT,
    ts_ms      INTEGER NOT NULL,
    total      REAL,
    currency   TEXT,
    items      TEXT NOT NULL       -- JSON array of the order's items
);
CREATE INDEX purchases_profile ON purchases (profile_id, ts_ms);

CREATE TABLE consent (
    profile_id INTEGER NOT NULL,
    channel    TEXT NOT NULL,      -- marketing
    value      INTEGER NOT NULL,   -- 1 in, 2 out
    ts_ms      INTEGER NOT NULL,
    source     TEXT NOT NULL,
    PRIMARY KEY (profile_id, channel)
) WITHOUT ROWID;
