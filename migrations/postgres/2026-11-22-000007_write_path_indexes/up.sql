-- Every stored message moves its lead's last activity and update time, so
-- each index on those columns is rewritten per message. Two were not worth
-- it: `leads_activity_idx (last_message_time DESC, id DESC)` serves every
-- query the plain last_message_time index did, and no query reads
-- updated_at through an index.
DROP INDEX leads_last_message_time_idx;
DROP INDEX leads_updated_at_idx;

-- The message-type index is covered by messages_analytics_received_idx, and
-- each message had to update it.
DROP INDEX messages_message_type_idx;

-- Counters per statement instead of per row: the write path inserts a whole
-- batch of messages (and of new leads) in one statement, and one UPDATE of
-- the counter row per row inserted made every batch rewrite that row
-- hundreds of times. Row-level counting stays for lead updates, which
-- touch one lead per statement and only fire when the counted columns are
-- written.
DROP TRIGGER messages_counted ON messages;
DROP TRIGGER leads_counted ON leads;

CREATE FUNCTION count_messages_per_statement() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    delta BIGINT;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT count(*) INTO delta FROM changed_rows;
    ELSE
        SELECT -count(*) INTO delta FROM changed_rows;
    END IF;
    IF delta <> 0 THEN
        UPDATE lead_counters SET messages = messages + delta WHERE id = 1;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION count_leads_per_statement() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    sign INT := CASE WHEN TG_OP = 'INSERT' THEN 1 ELSE -1 END;
    n BIGINT;
    a BIGINT;
    c BIGINT;
BEGIN
    SELECT count(*), count(*) FILTER (WHERE is_active), count(*) FILTER (WHERE converted_to_student)
    INTO n, a, c FROM changed_rows;
    IF n <> 0 THEN
        UPDATE lead_counters
        SET leads = leads + sign * n, active = active + sign * a, converted = converted + sign * c
        WHERE id = 1;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER messages_counted_on_insert AFTER INSERT ON messages
    REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_messages_per_statement();
CREATE TRIGGER messages_counted_on_delete AFTER DELETE ON messages
    REFERENCING OLD TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_messages_per_statement();
CREATE TRIGGER leads_counted_on_insert AFTER INSERT ON leads
    REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_leads_per_statement();
CREATE TRIGGER leads_counted_on_delete AFTER DELETE ON leads
    REFERENCING OLD TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_leads_per_statement();
-- count_leads() handles UPDATE as before (and ignores the other operations).
CREATE TRIGGER leads_counted_on_update AFTER UPDATE OF is_active, converted_to_student ON leads
    FOR EACH ROW EXECUTE FUNCTION count_leads();
