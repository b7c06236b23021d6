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

CREATE FUNCTION count_messages() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE lead_counters SET messages = messages + 1 WHERE id = 1;
    ELSE
        UPDATE lead_counters SET messages = messages - 1 WHERE id = 1;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION count_leads() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE lead_counters
        SET leads = leads + 1,
            active = active + NEW.is_active::int,
            converted = converted + NEW.converted_to_student::int
        WHERE id = 1;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE lead_counters
        SET leads = leads - 1,
            active = active - OLD.is_active::int,
            converted = converted - OLD.converted_to_student::int
        WHERE id = 1;
    ELSIF NEW.is_active IS DISTINCT FROM OLD.is_active
       OR NEW.converted_to_student IS DISTINCT FROM OLD.converted_to_student THEN
        UPDATE lead_counters
        SET active = active + NEW.is_active::int - OLD.is_active::int,
            converted = converted + NEW.converted_to_student::int - OLD.converted_to_student::int
        WHERE id = 1;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER messages_counted AFTER INSERT OR DELETE ON messages
    FOR EACH ROW EXECUTE FUNCTION count_messages();
CREATE TRIGGER leads_counted AFTER INSERT OR DELETE OR UPDATE OF is_active, converted_to_student ON leads
    FOR EACH ROW EXECUTE FUNCTION count_leads();

-- Keyset pagination of the lead list: newest activity first, id breaks ties.
CREATE INDEX leads_activity_idx ON leads (last_message_time DESC, id DESC);
