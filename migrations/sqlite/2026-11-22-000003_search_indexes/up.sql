-- Substring search (`q` of the lead list) without scanning every row:
-- FTS5 trigram indexes over the lead's identity fields and over message
-- text, kept in step with their tables by triggers. Trigram matching is
-- case-insensitive and needs at least three characters; shorter queries
-- fall back to a scan.
CREATE VIRTUAL TABLE leads_search USING fts5(
    phone_number, user_id, username, sender_name,
    content = 'leads', content_rowid = 'id', tokenize = 'trigram'
);
INSERT INTO leads_search (leads_search) VALUES ('rebuild');

CREATE TRIGGER leads_search_on_insert AFTER INSERT ON leads BEGIN
    INSERT INTO leads_search (rowid, phone_number, user_id, username, sender_name)
    VALUES (NEW.id, NEW.phone_number, NEW.user_id, NEW.username, NEW.sender_name);
END;
CREATE TRIGGER leads_search_on_delete AFTER DELETE ON leads BEGIN
    INSERT INTO leads_search (leads_search, rowid, phone_number, user_id, username, sender_name)
    VALUES ('delete', OLD.id, OLD.phone_number, OLD.user_id, OLD.username, OLD.sender_name);
END;
CREATE TRIGGER leads_search_on_update AFTER UPDATE OF phone_number, user_id, username, sender_name ON leads
WHEN NEW.phone_number IS NOT OLD.phone_number OR NEW.user_id IS NOT OLD.user_id
  OR NEW.username IS NOT OLD.username OR NEW.sender_name IS NOT OLD.sender_name
BEGIN
    INSERT INTO leads_search (leads_search, rowid, phone_number, user_id, username, sender_name)
    VALUES ('delete', OLD.id, OLD.phone_number, OLD.user_id, OLD.username, OLD.sender_name);
    INSERT INTO leads_search (rowid, phone_number, user_id, username, sender_name)
    VALUES (NEW.id, NEW.phone_number, NEW.user_id, NEW.username, NEW.sender_name);
END;

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
