-- Messages: stored email templates, the suppression list, the send log
-- (one row per outbox message: attempts started and finished, so a send
-- that a crash interrupted is recognised when its row is claimed again),
-- and attributions of purchases to email clicks: the same tables as the
-- SQLite backend. Keys compare byte-wise (COLLATE "C"), as in SQLite, so
-- lists and pages come in the same order on both backends. The primary keys
-- are what keep several nodes from writing a row twice: an order is
-- attributed once, a suppression or a send log entry is an upsert.
CREATE TABLE message_templates (
    id         TEXT COLLATE "C" PRIMARY KEY,
    version    BIGINT NOT NULL,
    subject    TEXT NOT NULL,
    html       TEXT NOT NULL,
    text       TEXT,                  -- NULL: generated from the HTML
    from_name  TEXT,
    reply_to   TEXT,
    source     TEXT NOT NULL,         -- api | file
    updated_ms BIGINT NOT NULL
);

CREATE TABLE message_suppressions (
    key        TEXT COLLATE "C" PRIMARY KEY, -- a lower-case address, or "@domain"
    reason     TEXT NOT NULL,         -- hard_bounce | complaint | manual | import | ...
    source     TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);

CREATE TABLE message_sends (
    message_id  TEXT PRIMARY KEY,
    journey_id  TEXT NOT NULL,
    in_flight   INTEGER NOT NULL,     -- 1 between claim and mark
    started     BIGINT NOT NULL,      -- attempts started
    resent      BIGINT NOT NULL,      -- attempts started again after a crash mid-send
    outcome     TEXT COLLATE "C",     -- sent | retry | failed | skipped
    reason      TEXT COLLATE "C",     -- machine-readable skip or failure reason
    updated_ms  BIGINT NOT NULL       -- wall clock
);
CREATE INDEX message_sends_journey ON message_sends (journey_id, outcome, reason);

CREATE TABLE message_attributions (
    order_id    TEXT PRIMARY KEY,
    profile_id  BIGINT NOT NULL,
    journey_id  TEXT NOT NULL,
    step        TEXT,
    message_id  TEXT NOT NULL,
    label       TEXT,
    revenue     DOUBLE PRECISION,
    ts_ms       BIGINT NOT NULL
);
CREATE INDEX message_attributions_journey ON message_attributions (journey_id);

-- Frequency caps count a profile's outbox rows that are being sent or were
-- sent lately (see pg_message.c).
CREATE INDEX message_outbox_caps ON outbox (profile_id, status);
