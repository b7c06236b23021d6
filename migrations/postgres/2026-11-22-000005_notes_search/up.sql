-- `q` of the lead list also searches staff notes: a trigram GIN index on
-- `lower(body)`, like the message index (and, like it, skipped with a warning
-- where pg_trgm cannot be created: search then scans).
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
    CREATE INDEX lead_notes_body_trgm_idx ON lead_notes USING gin (lower(body) gin_trgm_ops);
EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'leadhook: note search index not created (%): note search will scan', SQLERRM;
END $$;
