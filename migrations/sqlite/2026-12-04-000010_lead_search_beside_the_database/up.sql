-- The leads' search index follows the messages' into `<database>-search`
-- (migration `search_beside_the_database`, `src/db/search_index.rs`).
-- When most messages come from new senders (a campaign, a click-to-WhatsApp
-- ad) nearly every message creates a lead, and the trigram index of its
-- identity cost the single writer about a fifth of its time per message
-- (BENCHMARKS.md, eleventh pass).
--
-- New leads are found by id (AUTOINCREMENT: ids only grow). What ids cannot
-- tell is noted here: a lead whose phone, BSUID, username or name changed,
-- or that was deleted (a merge deletes the lead it folds in).
DROP TRIGGER leads_search_on_update;
DROP TRIGGER leads_search_on_delete;
DROP TRIGGER leads_search_on_insert;
DROP TABLE leads_search;

CREATE TABLE lead_search_changes (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    lead_id BIGINT NOT NULL
);

CREATE TRIGGER lead_search_changes_on_update
AFTER UPDATE OF phone_number, user_id, username, sender_name ON leads
WHEN NEW.phone_number IS NOT OLD.phone_number OR NEW.user_id IS NOT OLD.user_id
  OR NEW.username IS NOT OLD.username OR NEW.sender_name IS NOT OLD.sender_name
BEGIN
    INSERT INTO lead_search_changes (lead_id) VALUES (OLD.id);
END;
CREATE TRIGGER lead_search_changes_on_delete AFTER DELETE ON leads
BEGIN
    INSERT INTO lead_search_changes (lead_id) VALUES (OLD.id);
END;
