-- Message search rows keyed by lead. The rowid of a message's search row is
-- `lead_id << 32 | message id`, so the leads a term occurs in are read from
-- the index alone: counting the leads of a term found in hundreds of
-- thousands of messages no longer looks every hit up in `messages`.
--
-- The index keeps no copy of the text (`content = ''`), and holds only
-- messages that belong to a lead (a student's messages are never searched).
-- A message moving to another lead (a merge) moves its search row with it.
-- Message ids stay below 2^32 (four billion messages) for the key to hold.
DROP TRIGGER messages_search_on_update;
DROP TRIGGER messages_search_on_delete;
DROP TRIGGER messages_search_on_insert;
DROP TABLE messages_search;

CREATE VIRTUAL TABLE messages_search USING fts5(
    body, content = '', contentless_delete = 1, tokenize = 'trigram'
);
INSERT INTO messages_search (rowid, body)
SELECT (lead_id << 32) | id, body FROM messages WHERE lead_id IS NOT NULL;

CREATE TRIGGER messages_search_on_insert AFTER INSERT ON messages
WHEN NEW.lead_id IS NOT NULL
BEGIN
    INSERT INTO messages_search (rowid, body) VALUES ((NEW.lead_id << 32) | NEW.id, NEW.body);
END;
CREATE TRIGGER messages_search_on_delete AFTER DELETE ON messages
WHEN OLD.lead_id IS NOT NULL
BEGIN
    DELETE FROM messages_search WHERE rowid = (OLD.lead_id << 32) | OLD.id;
END;
CREATE TRIGGER messages_search_on_update AFTER UPDATE OF lead_id, body ON messages
WHEN NEW.lead_id IS NOT OLD.lead_id OR NEW.body IS NOT OLD.body
BEGIN
    DELETE FROM messages_search WHERE OLD.lead_id IS NOT NULL
        AND rowid = (OLD.lead_id << 32) | OLD.id;
    INSERT INTO messages_search (rowid, body)
    SELECT (NEW.lead_id << 32) | NEW.id, NEW.body WHERE NEW.lead_id IS NOT NULL;
END;
