-- Journeys: versioned definitions, instances with their timers and history,
-- re-entry keys, per-step counters, profile attributes written by journeys,
-- and the outbox of messages to send. Plain types, JSON as text, so the
-- PostgreSQL schema is the same with BIGINT / BIGSERIAL.
CREATE TABLE journeys (
    id             TEXT PRIMARY KEY,
    status         TEXT NOT NULL,      -- draft | live | paused | stopped
    live_version   INTEGER,            -- the version new entries get
    latest_version INTEGER NOT NULL,
    created_ms     INTEGER NOT NULL,
    updated_ms     INTEGER NOT NULL
);

CREATE TABLE journey_versions (
    journey_id   TEXT NOT NULL,
    version      INTEGER NOT NULL,
    doc          TEXT NOT NULL,        -- the definition as JSON
    created_ms   INTEGER NOT NULL,
    published_ms INTEGER,
    PRIMARY KEY (journey_id, version)
);

CREATE TABLE journey_instances (
    id             INTEGER PRIMARY KEY,
    journey_id     TEXT NOT NULL,
    version        INTEGER NOT NULL,
    profile_id     INTEGER NOT NULL,
    entry_key      TEXT NOT NULL,
    step           TEXT NOT NULL,
    phase          INTEGER NOT NULL,   -- 0 arrive, 1 waiting, 2 outside call in flight
    step_since_ms  INTEGER NOT NULL,
    next_run_ms    INTEGER,            -- due time (application clock); NULL: not due
    held_run_ms    INTEGER,            -- due time kept aside while the journey is paused
    entered_ms     INTEGER NOT NULL,
    timeout_at_ms  INTEGER NOT NULL,
    ended_ms       INTEGER,
    outcome        TEXT,               -- completed | exited | timeout | stopped | error
    reason         TEXT,
    entry_seq      INTEGER NOT NULL,
    entry_event    TEXT NOT NULL,      -- JSON
    data           TEXT NOT NULL,      -- JSON: action and recommendation results
    history        TEXT NOT NULL,      -- ",{...},{...}": a JSON array without its brackets
    n_steps        INTEGER NOT NULL,
    attempts       INTEGER NOT NULL DEFAULT 0,
    claimed_by     TEXT,
    lease_until_ms INTEGER             -- wall clock
);
CREATE INDEX journey_instances_due ON journey_instances (next_run_ms)
    WHERE next_run_ms IS NOT NULL;
CREATE INDEX journey_instances_profile ON journey_instances (profile_id);
CREATE INDEX journey_instances_running ON journey_instances (journey_id, version, step)
    WHERE ended_ms IS NULL;

CREATE TABLE journey_keys (
    journey_id      TEXT NOT NULL,
    entry_key       TEXT NOT NULL,     -- "p:<profile id>" or the entity key
    last_entered_ms INTEGER NOT NULL,
    running_id      INTEGER,           -- the running instance, if any
    PRIMARY KEY (journey_id, entry_key)
) WITHOUT ROWID;

CREATE TABLE journey_counters (
    journey_id TEXT NOT NULL,
    version    INTEGER NOT NULL,
    step       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    reason     TEXT NOT NULL,
    n          INTEGER NOT NULL,
    PRIMARY KEY (journey_id, version, step, kind, reason)
) WITHOUT ROWID;

CREATE TABLE profile_attributes (
    profile_id INTEGER NOT NULL,
    name       TEXT NOT NULL,
    value      TEXT NOT NULL,          -- JSON
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (profile_id, name)
) WITHOUT ROWID;

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    message_id      TEXT NOT NULL UNIQUE,
    channel         TEXT NOT NULL,     -- email
    journey_id      TEXT NOT NULL,
    journey_version INTEGER NOT NULL,
    instance_id     INTEGER NOT NULL,
    step            TEXT NOT NULL,
    profile_id      INTEGER NOT NULL,
    recipient       TEXT NOT NULL,
    template_id     TEXT NOT NULL,
    data            TEXT NOT NULL,     -- JSON render data
    status          TEXT NOT NULL,     -- queued | sending | sent | failed | suppressed | cancelled
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,  -- application clock
    claimed_by      TEXT,
    lease_until_ms  INTEGER,           -- wall clock
    created_ms      INTEGER NOT NULL,
    updated_ms      INTEGER NOT NULL,
    sent_ms         INTEGER,
    last_error      TEXT,
    UNIQUE (instance_id, step)
);
CREATE INDEX outbox_queue ON outbox (status, next_attempt_ms);

-- When two profiles merge, instances and journey attributes follow the
-- profile that remains (merges are recorded in profiles.merged_into).
CREATE TRIGGER journey_follow_merge AFTER UPDATE OF merged_into ON profiles
WHEN NEW.merged_into IS NOT NULL
BEGIN
    UPDATE journey_instances SET profile_id = NEW.merged_into WHERE profile_id = NEW.id;
    INSERT INTO profile_attributes (profile_id, name, value, updated_ms)
        SELECT NEW.merged_into, name, value, updated_ms FROM profile_attributes
        WHERE profile_id = NEW.id AND true
        ON CONFLICT (profile_id, name) DO NOTHING;
    DELETE FROM profile_attributes WHERE profile_id = NEW.id;
END;
