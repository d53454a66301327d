-- Journeys: versioned definitions, instances with their timers and history,
-- re-entry keys, per-step counters, profile attributes written by journeys,
-- and the outbox of messages to send: the same tables as the SQLite backend.
-- Several nodes share these tables: due instances and outbox rows are
-- claimed with FOR UPDATE SKIP LOCKED, and the unique keys below are what
-- keeps an entry, a counter or an outbox row from being written twice.
CREATE TABLE journeys (
    id             TEXT PRIMARY KEY,
    status         TEXT NOT NULL,      -- draft | live | paused | stopped
    live_version   BIGINT,             -- the version new entries get
    latest_version BIGINT NOT NULL,
    created_ms     BIGINT NOT NULL,
    updated_ms     BIGINT NOT NULL
);

CREATE TABLE journey_versions (
    journey_id   TEXT NOT NULL,
    version      BIGINT NOT NULL,
    doc          TEXT NOT NULL,        -- the definition as JSON
    created_ms   BIGINT NOT NULL,
    published_ms BIGINT,
    PRIMARY KEY (journey_id, version)
);

CREATE TABLE journey_instances (
    id             BIGSERIAL PRIMARY KEY,
    journey_id     TEXT NOT NULL,
    version        BIGINT NOT NULL,
    profile_id     BIGINT NOT NULL,
    entry_key      TEXT NOT NULL,
    step           TEXT NOT NULL,
    phase          INTEGER NOT NULL,   -- 0 arrive, 1 waiting, 2 outside call in flight
    step_since_ms  BIGINT NOT NULL,
    next_run_ms    BIGINT,             -- due time (application clock); NULL: not due
    held_run_ms    BIGINT,             -- due time kept aside while the journey is paused
    entered_ms     BIGINT NOT NULL,
    timeout_at_ms  BIGINT NOT NULL,
    ended_ms       BIGINT,
    outcome        TEXT,               -- completed | exited | timeout | stopped | error
    reason         TEXT,
    entry_seq      BIGINT NOT NULL,
    entry_event    TEXT NOT NULL,      -- JSON
    data           TEXT NOT NULL,      -- JSON: action and recommendation results
    history        TEXT NOT NULL,      -- ",{...},{...}": a JSON array without its brackets
    n_steps        BIGINT NOT NULL,
    attempts       INTEGER NOT NULL DEFAULT 0,
    claimed_by     TEXT,
    lease_until_ms BIGINT              -- wall clock
);
CREATE INDEX journey_instances_due ON journey_instances (next_run_ms)
    WHERE next_run_ms IS NOT NULL;
CREATE INDEX journey_instances_profile ON journey_instances (profile_id);
CREATE INDEX journey_instances_running ON journey_instances (journey_id, version, step)
    WHERE ended_ms IS NULL;

CREATE TABLE journey_keys (
    journey_id      TEXT NOT NULL,
    entry_key       TEXT NOT NULL,     -- "p:<profile id>" or the entity key
    last_entered_ms BIGINT NOT NULL,
    running_id      BIGINT,            -- the running instance, if any
    PRIMARY KEY (journey_id, entry_key)
);

CREATE TABLE journey_counters (
    journey_id TEXT NOT NULL,
    version    BIGINT NOT NULL,
    step       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    reason     TEXT NOT NULL,
    n          BIGINT NOT NULL,
    PRIMARY KEY (journey_id, version, step, kind, reason)
);

-- What transactions add to the counters, folded into journey_counters when
-- the counts are read: appending takes no row lock, so ingest transactions
-- on several nodes never wait for each other (or deadlock) over a counter.
CREATE TABLE journey_counter_log (
    journey_id TEXT NOT NULL,
    version    BIGINT NOT NULL,
    step       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    reason     TEXT NOT NULL,
    n          BIGINT NOT NULL
);
CREATE INDEX journey_counter_log_journey ON journey_counter_log (journey_id);

CREATE TABLE profile_attributes (
    profile_id BIGINT NOT NULL,
    name       TEXT NOT NULL,
    value      TEXT NOT NULL,          -- JSON
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (profile_id, name)
);

CREATE TABLE outbox (
    id              BIGSERIAL PRIMARY KEY,
    message_id      TEXT NOT NULL UNIQUE,
    channel         TEXT NOT NULL,     -- email
    journey_id      TEXT NOT NULL,
    journey_version BIGINT NOT NULL,
    instance_id     BIGINT NOT NULL,
    step            TEXT NOT NULL,
    profile_id      BIGINT NOT NULL,
    recipient       TEXT NOT NULL,
    template_id     TEXT NOT NULL,
    data            TEXT NOT NULL,     -- JSON render data
    status          TEXT NOT NULL,     -- queued | sending | sent | failed | suppressed | cancelled
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT NOT NULL,   -- application clock
    claimed_by      TEXT,
    lease_until_ms  BIGINT,            -- wall clock
    created_ms      BIGINT NOT NULL,
    updated_ms      BIGINT NOT NULL,
    sent_ms         BIGINT,
    last_error      TEXT,
    UNIQUE (instance_id, step)
);
CREATE INDEX outbox_queue ON outbox (status, next_attempt_ms);

-- When two profiles merge, instances and journey attributes follow the
-- profile that remains (merges are recorded in profiles.merged_into).
CREATE FUNCTION journey_follow_merge() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE journey_instances SET profile_id = NEW.merged_into WHERE profile_id = NEW.id;
    INSERT INTO profile_attributes (profile_id, name, value, updated_ms)
        SELECT NEW.merged_into, name, value, updated_ms FROM profile_attributes
        WHERE profile_id = NEW.id
        ON CONFLICT (profile_id, name) DO NOTHING;
    DELETE FROM profile_attributes WHERE profile_id = NEW.id;
    RETURN NULL;
END;
$$;
CREATE TRIGGER journey_follow_merge AFTER UPDATE OF merged_into ON profiles
    FOR EACH ROW WHEN (NEW.merged_into IS NOT NULL)
    EXECUTE FUNCTION journey_follow_merge();
