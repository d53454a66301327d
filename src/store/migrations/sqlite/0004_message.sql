-- Messages: stored email templates, the suppression list, the send log
-- (one row per outbox message: attempts started and finished, so a send
-- that a crash interrupted is recognised when its row is claimed again),
-- and attributions of purchases to email clicks.
CREATE TABLE message_templates (
    id         TEXT PRIMARY KEY,
    version    INTEGER NOT NULL,
    subject    TEXT NOT NULL,
    html       TEXT NOT NULL,
    text       TEXT,                  -- NULL: generated from the HTML
    from_name  TEXT,
    reply_to   TEXT,
    source     TEXT NOT NULL,         -- api | file
    updated_ms INTEGER NOT NULL
);

CREATE TABLE message_suppressions (
    key        TEXT PRIMARY KEY,      -- a lower-case address, or "@domain"
    reason     TEXT NOT NULL,         -- hard_bounce | complaint | manual | import | ...
    source     TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);

CREATE TABLE message_sends (
    message_id  TEXT PRIMARY KEY,
    journey_id  TEXT NOT NULL,
    in_flight   INTEGER NOT NULL,     -- 1 between claim and mark
    started     INTEGER NOT NULL,     -- attempts started
    resent      INTEGER NOT NULL,     -- attempts started again after a crash mid-send
    outcome     TEXT,                 -- sent | retry | failed | skipped
    reason      TEXT,                 -- machine-readable skip or failure reason
    updated_ms  INTEGER NOT NULL      -- wall clock
);
CREATE INDEX message_sends_journey ON message_sends (journey_id, outcome, reason);

CREATE TABLE message_attributions (
    order_id    TEXT PRIMARY KEY,
    profile_id  INTEGER NOT NULL,
    journey_id  TEXT NOT NULL,
    step        TEXT,
    message_id  TEXT NOT NULL,
    label       TEXT,
    revenue     REAL,
    ts_ms       INTEGER NOT NULL
);
CREATE INDEX message_attributions_journey ON message_attributions (journey_id);
