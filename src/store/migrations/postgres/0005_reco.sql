-- Recommendations: documents the recommendation service keeps, by kind:
-- "criteria" (the criteria JSON), "custom" (CUSTOM lists as uploaded CSV)
-- and "design" (an mbox / decision scope name -> criteria, count, options).
CREATE TABLE reco_docs (
    kind       TEXT NOT NULL,
    id         TEXT NOT NULL,
    body       TEXT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (kind, id)
);
