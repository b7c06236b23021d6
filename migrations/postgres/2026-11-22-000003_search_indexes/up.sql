-- Substring search (`q` of the lead list) without scanning every row:
-- trigram GIN indexes that serve `lower(…) LIKE '%q%'` for queries of three
-- characters or more. pg_trgm ships with PostgreSQL (contrib) and is a
-- trusted extension; where it cannot be created, search still works, by
-- scanning, and the migration says so instead of failing.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
    CREATE INDEX leads_search_trgm_idx ON leads USING gin (
        lower(coalesce(phone_number, '') || ' ' || coalesce(user_id, '') || ' ' ||
              coalesce(username, '') || ' ' || coalesce(sender_name, '')) gin_trgm_ops
    );
    CREATE INDEX messages_body_trgm_idx ON messages USING gin (lower(body) gin_trgm_ops);
EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'leadhook: search indexes not created (%): lead search will scan', SQLERRM;
END $$;
