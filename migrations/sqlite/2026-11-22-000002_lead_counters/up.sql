-- Running totals for the stats endpoint, kept by triggers so that every code
-- path (ingest, merges, admin edits, hard deletes) keeps them exact and the
-- stats never count millions of rows.
CREATE TABLE lead_counters (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    leads     BIGINT NOT NULL,
    active    BIGINT NOT NULL,
    converted BIGINT NOT NULL,
    messages  BIGINT NOT NULL
);
INSERT INTO lead_counters (id, leads, active, converted, messages)
SELECT 1,
       (SELECT count(*) FROM leads),
       (SELECT count(*) FROM leads WHERE is_active),
       (SELECT count(*) FROM leads WHERE converted_to_student),
       (SELECT count(*) FROM messages);

CREATE TRIGGER messages_counted_on_insert AFTER INSERT ON messages BEGIN
    UPDATE lead_counters SET messages = messages + 1 WHERE id = 1;
END;
CREATE TRIGGER messages_counted_on_delete AFTER DELETE ON messages BEGIN
    UPDATE lead_counters SET messages = messages - 1 WHERE id = 1;
END;
CREATE TRIGGER leads_counted_on_insert AFTER INSERT ON leads BEGIN
    UPDATE lead_counters
    SET leads = leads + 1,
        active = active + NEW.is_active,
        converted = converted + NEW.converted_to_student
    WHERE id = 1;
END;
CREATE TRIGGER leads_counted_on_delete AFTER DELETE ON leads BEGIN
    UPDATE lead_counters
    SET leads = leads - 1,
        active = active - OLD.is_active,
        converted = converted - OLD.converted_to_student
    WHERE id = 1;
END;
CREATE TRIGGER leads_counted_on_update AFTER UPDATE OF is_active, converted_to_student ON leads
WHEN NEW.is_active IS NOT OLD.is_active OR NEW.converted_to_student IS NOT OLD.converted_to_student
BEGIN
    UPDATE lead_counters
    SET active = active + NEW.is_active - OLD.is_active,
        converted = converted + NEW.converted_to_student - OLD.converted_to_student
    WHERE id = 1;
END;

-- Keyset pagination of the lead list: newest activity first, id breaks ties.
CREATE INDEX leads_activity_idx ON leads (last_message_time DESC, id DESC);
