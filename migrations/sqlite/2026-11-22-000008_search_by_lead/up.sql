-- Message search rows keyed by lead. The rowid of a message's search row is
-- `message id << 32 | lead_id`, so the leads a term occurs in are read from
-- the index alone: counting the leads of a term found in hundreds of
-- thousands of messages no longer looks every hit up in `messages`. The
-- message id leads so that new rows keep arriving in rowid order: FTS5
-- flushes its pending rows whenever a rowid is not above the last one, and
-- a lead-first key made that happen on nearly every insert.
--
-- The index keeps no copy of the text (`content = ''`), and holds only
-- messages that belong to a lead (a student's messages are never searched).
-- A message moving to another lead (a merge) moves its search row with it.
-- The key holds while message ids stay below 2^31 and lead ids below 2^32.
DROP TRIGGER messages_search_on_update;
DROP TRIGGER messages_search_on_delete;
DROP TRIGGER messages_search_on_insert;
DROP TABLE messages_search;

CREATE VIRTUAL TABLE messages_search USING fts5(
    body, content = '', contentless_delete = 1, tokenize = 'trigram'
);
INSERT INTO messages_search (rowid, body)
SELECT (id << 32) | lead_id, body FROM messages WHERE lead_id IS NOT NULL;

CREATE TRIGGER messages_search_on_insert AFTER INSERT ON messages
WHEN NEW.lead_id IS NOT NULL
BEGIN
    INSERT INTO messages_search (rowid, body) VALUES ((NEW.id << 32) | NEW.lead_id, NEW.body);
END;
CREATE TRIGGER messages_search_on_delete AFTER DELETE ON messages
WHEN OLD.lead_id IS NOT NULL
BEGIN
    DELETE FROM messages_search WHERE rowid = (OLD.id << 32) | OLD.lead_id;
END;
CREATE TRIGGER messages_search_on_update AFTER UPDATE OF lead_id, body ON messages
WHEN NEW.lead_id IS NOT OLD.lead_id OR NEW.body IS NOT OLD.body
BEGIN
    DELETE FROM messages_search WHERE OLD.lead_id IS NOT NULL
        AND rowid = (OLD.id << 32) | OLD.lead_id;
    INSERT INTO messages_search (rowid, body)
    SELECT (NEW.id << 32) | NEW.lead_id, NEW.body WHERE NEW.lead_id IS NOT NULL;
END;
