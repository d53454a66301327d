-- Events, profiles, identities and the profile state derived from events
-- (the same tables as the SQLite backend).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE profiles (
    id          BIGSERIAL PRIMARY KEY,
    created_ms  BIGINT NOT NULL,
    merged_into BIGINT
);

CREATE TABLE identities (
    ns         TEXT NOT NULL,
    id         TEXT NOT NULL,
    profile_id BIGINT NOT NULL,
    linked_ms  BIGINT NOT NULL,
    PRIMARY KEY (ns, id)
);
CREATE INDEX identities_profile ON identities (profile_id);

CREATE TABLE events (
    seq         BIGSERIAL PRIMARY KEY,
    event_id    TEXT,
    type        TEXT NOT NULL,
    profile_id  BIGINT NOT NULL,
    ts_ms       BIGINT NOT NULL,
    received_ms BIGINT NOT NULL,
    doc         TEXT NOT NULL
);
CREATE UNIQUE INDEX events_event_id ON events (event_id) WHERE event_id IS NOT NULL;
CREATE INDEX events_profile ON events (profile_id, ts_ms);

CREATE TABLE cart (
    profile_id BIGINT NOT NULL,
    item_id    TEXT NOT NULL,
    name       TEXT,
    category   TEXT,
    price      DOUBLE PRECISION,
    quantity   BIGINT NOT NULL,
    added_ms   BIGINT NOT NULL,
    PRIMARY KEY (profile_id, item_id)
);

CREATE TABLE viewed (
    profile_id BIGINT NOT NULL,
    item_id    TEXT NOT NULL,
    name       TEXT,
    category   TEXT,
    price      DOUBLE PRECISION,
    ts_ms      BIGINT NOT NULL,
    PRIMARY KEY (profile_id, item_id)
);
CREATE INDEX viewed_recent ON viewed (profile_id, ts_ms);

CREATE TABLE purchases (
    profile_id BIGINT NOT NULL,
    order_id   TEXT,
    ts_ms      BIGINT NOT NULL,
    total      DOUBLE PRECISION,
    currency   TEXT,
    items      TEXT NOT NULL
);
CREATE INDEX purchases_profile ON purchases (profile_id, ts_ms);

CREATE TABLE consent (
    profile_id BIGINT NOT NULL,
    channel    TEXT NOT NULL,
    value      INTEGER NOT NULL,
    ts_ms      BIGINT NOT NULL,
    source     TEXT NOT NULL,
    PRIMARY KEY (profile_id, channel)
);
