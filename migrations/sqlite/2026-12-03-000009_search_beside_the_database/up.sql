-- The message search index moves out of this file into one of its own,
-- `<database>-search`, kept by a thread beside the writer
-- (`src/db/search_index.rs`). Its trigram index was a third of the single
-- writer's time per message (BENCHMARKS.md, eleventh pass); in a file of
-- its own it is written under a lock of its own, on the other core.
--
-- The index is built from `messages` by message id, so what it needs from
-- this file is only what ids alone cannot tell: which indexed messages
-- moved to another lead (a merge), changed their text, or were deleted.
-- Triggers note those here, with the lead the message had; the indexer
-- reads them past the last change id it applied. AUTOINCREMENT, so that an
-- id is never handed out twice even after consumed rows are pruned.
DROP TRIGGER messages_search_on_update;
DROP TRIGGER messages_search_on_delete;
DROP TRIGGER messages_search_on_insert;
DROP TABLE messages_search;

CREATE TABLE search_changes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id  BIGINT NOT NULL,
    old_lead_id BIGINT
);

CREATE TRIGGER search_changes_on_update AFTER UPDATE OF lead_id, body ON messages
WHEN NEW.lead_id IS NOT OLD.lead_id OR NEW.body IS NOT OLD.body
BEGIN
    INSERT INTO search_changes (message_id, old_lead_id) VALUES (OLD.id, OLD.lead_id);
END;
CREATE TRIGGER search_changes_on_delete AFTER DELETE ON messages
WHEN OLD.lead_id IS NOT NULL
BEGIN
    INSERT INTO search_changes (message_id, old_lead_id) VALUES (OLD.id, OLD.lead_id);
END;
