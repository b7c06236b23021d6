-- The text of each lead's messages, lower-cased, in a narrow table of its
-- own with the trigram index that `q` reads. A word found in many messages
-- is tested again in each matching row, whose lead is then counted; on
-- `messages` those rows lay across nearly every page of the table (1 GB at
-- 5 M messages), here they hold only the message's id, its lead and its
-- text, in about 40 % of the pages (BENCHMARKS.md, nineteenth pass: a
-- word in 292,000 messages counted in 262 ms instead of 558 ms). A
-- student's messages have no lead and are never searched, so they have no
-- row. Triggers keep the table: new messages as one statement, a message
-- that moves to another lead or changes its text row by row (merges, which
-- are rare), deleted messages as one statement.
CREATE TABLE message_search (
    message_id BIGINT PRIMARY KEY,
    lead_id    BIGINT NOT NULL,
    body       TEXT NOT NULL
);

INSERT INTO message_search (message_id, lead_id, body)
SELECT id, lead_id, lower(body) FROM messages WHERE lead_id IS NOT NULL;

CREATE FUNCTION message_search_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO message_search (message_id, lead_id, body)
    SELECT id, lead_id, lower(body) FROM new_messages WHERE lead_id IS NOT NULL;
    RETURN NULL;
END $$;

CREATE FUNCTION message_search_on_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM message_search WHERE message_id = OLD.id;
    IF NEW.lead_id IS NOT NULL THEN
        INSERT INTO message_search (message_id, lead_id, body)
        VALUES (NEW.id, NEW.lead_id, lower(NEW.body));
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION message_search_on_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM message_search WHERE message_id IN (SELECT id FROM old_messages);
    RETURN NULL;
END $$;

CREATE TRIGGER message_search_on_insert AFTER INSERT ON messages
    REFERENCING NEW TABLE AS new_messages
    FOR EACH STATEMENT EXECUTE FUNCTION message_search_on_insert();
-- (A trigger with a column list cannot take transition tables, so this one
-- runs per row; a delivery status update names neither column and does
-- not fire it.)
CREATE TRIGGER message_search_on_update AFTER UPDATE OF lead_id, body ON messages
    FOR EACH ROW
    WHEN (NEW.lead_id IS DISTINCT FROM OLD.lead_id OR NEW.body IS DISTINCT FROM OLD.body)
    EXECUTE FUNCTION message_search_on_update();
CREATE TRIGGER message_search_on_delete AFTER DELETE ON messages
    REFERENCING OLD TABLE AS old_messages
    FOR EACH STATEMENT EXECUTE FUNCTION message_search_on_delete();

DROP INDEX IF EXISTS messages_body_trgm_idx;
-- As in `search_indexes`: without pg_trgm the search still works, by scanning.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
    CREATE INDEX message_search_trgm_idx ON message_search USING gin (body gin_trgm_ops);
EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'leadhook: message search index not created (%): message search will scan', SQLERRM;
END $$;
