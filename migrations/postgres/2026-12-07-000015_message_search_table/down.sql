DROP TRIGGER message_search_on_delete ON messages;
DROP TRIGGER message_search_on_update ON messages;
DROP TRIGGER message_search_on_insert ON messages;
DROP FUNCTION message_search_on_delete();
DROP FUNCTION message_search_on_update();
DROP FUNCTION message_search_on_insert();
DROP TABLE message_search;
DO $$
BEGIN
    CREATE INDEX messages_body_trgm_idx ON messages USING gin (lower(body) gin_trgm_ops);
EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'leadhook: search index not created (%): message search will scan', SQLERRM;
END $$;
