-- `q` of the lead list also searches staff notes: an FTS5 trigram index over
-- note bodies, kept in step by triggers like the lead and message indexes.
-- Notes are append-only, so there is no update trigger.
CREATE VIRTUAL TABLE notes_search USING fts5(
    body, content = 'lead_notes', content_rowid = 'id', tokenize = 'trigram'
);
INSERT INTO notes_search (notes_search) VALUES ('rebuild');

CREATE TRIGGER notes_search_on_insert AFTER INSERT ON lead_notes BEGIN
    INSERT INTO notes_search (rowid, body) VALUES (NEW.id, NEW.body);
END;
CREATE TRIGGER notes_search_on_delete AFTER DELETE ON lead_notes BEGIN
    INSERT INTO notes_search (notes_search, rowid, body) VALUES ('delete', OLD.id, OLD.body);
END;
