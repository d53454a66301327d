-- Opens, clicks and unsubscribes per message (from the tracking events),
-- for the per-journey message report; one row per (message, kind).
CREATE TABLE message_engagement (
    message_id TEXT NOT NULL,
    journey_id TEXT NOT NULL,
    kind       TEXT NOT NULL,         -- opened | clicked | unsubscribed
    first_ms   BIGINT NOT NULL,
    n          BIGINT NOT NULL,
    PRIMARY KEY (message_id, kind)
);
CREATE INDEX message_engagement_journey ON message_engagement (journey_id, kind);
