DROP TRIGGER search_changes_on_delete;
DROP TRIGGER search_changes_on_update;
DROP TABLE search_changes;

-- The index back inside the database, as migration `search_by_lead` made it.
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
