DROP TRIGGER lead_search_changes_on_delete;
DROP TRIGGER lead_search_changes_on_update;
DROP TABLE lead_search_changes;

-- The index back inside the database, as migration `search_indexes` made it.
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
