-- Recommendations: a counter every write to reco_docs moves, in the writing
-- transaction, so each node sharing the database notices criteria, CUSTOM
-- lists and designs written or deleted elsewhere by reading one row.
CREATE TABLE reco_docs_rev (
    one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    rev BIGINT NOT NULL
);
INSERT INTO reco_docs_rev (rev) VALUES (0);
CREATE FUNCTION reco_docs_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE reco_docs_rev SET rev = rev + 1;
    RETURN NULL;
END
$$;
CREATE TRIGGER reco_docs_bump AFTER INSERT OR UPDATE OR DELETE ON reco_docs
    FOR EACH STATEMENT EXECUTE FUNCTION reco_docs_bump();
