DROP TRIGGER messages_search_on_update;
DROP TRIGGER messages_search_on_delete;
DROP TRIGGER messages_search_on_insert;
DROP TABLE messages_search;

CREATE VIRTUAL TABLE messages_search USING fts5(
    body, content = 'messages', content_rowid = 'id', tokenize = 'trigram'
);
INSERT INTO messages_search (messages_search) VALUES ('rebuild');

CREATE TRIGGER messages_search_on_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_search (rowid, body) VALUES (NEW.id, NEW.body);
END;
CREATE TRIGGER messages_search_on_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_search (messages_search, rowid, body) VALUES ('delete', OLD.id, OLD.body);
END;
CREATE TRIGGER messages_search_on_update AFTER UPDATE OF body ON messages
WHEN NEW.body IS NOT OLD.body
BEGIN
    INSERT INTO messages_search (messages_search, rowid, body) VALUES ('delete', OLD.id, OLD.body);
    INSERT INTO messages_search (rowid, body) VALUES (NEW.id, NEW.body);
END;
