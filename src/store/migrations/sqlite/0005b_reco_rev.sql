-- Recommendations: a counter every write to reco_docs moves, in the writing
-- transaction (the same as on PostgreSQL, where several nodes read it).
CREATE TABLE reco_docs_rev (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    rev INTEGER NOT NULL
);
INSERT INTO reco_docs_rev (one, rev) VALUES (1, 0);
CREATE TRIGGER reco_docs_bump_ins AFTER INSERT ON reco_docs
BEGIN
    UPDATE reco_docs_rev SET rev = rev + 1;
END;
CREATE TRIGGER reco_docs_bump_upd AFTER UPDATE ON reco_docs
BEGIN
    UPDATE reco_docs_rev SET rev = rev + 1;
END;
CREATE TRIGGER reco_docs_bump_del AFTER DELETE ON reco_docs
BEGIN
    UPDATE reco_docs_rev SET rev = rev + 1;
END;
