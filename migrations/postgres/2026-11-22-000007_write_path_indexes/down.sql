CREATE INDEX messages_message_type_idx ON messages (message_type);
CREATE INDEX leads_updated_at_idx ON leads (updated_at);
CREATE INDEX leads_last_message_time_idx ON leads (last_message_time);

DROP TRIGGER leads_counted_on_update ON leads;
DROP TRIGGER leads_counted_on_delete ON leads;
DROP TRIGGER leads_counted_on_insert ON leads;
DROP TRIGGER messages_counted_on_delete ON messages;
DROP TRIGGER messages_counted_on_insert ON messages;
DROP FUNCTION count_leads_per_statement();
DROP FUNCTION count_messages_per_statement();
CREATE TRIGGER messages_counted AFTER INSERT OR DELETE ON messages
    FOR EACH ROW EXECUTE FUNCTION count_messages();
CREATE TRIGGER leads_counted AFTER INSERT OR DELETE OR UPDATE OF is_active, converted_to_student ON leads
    FOR EACH ROW EXECUTE FUNCTION count_leads();
