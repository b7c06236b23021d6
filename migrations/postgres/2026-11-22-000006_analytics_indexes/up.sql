-- GET /api/admin/analytics answers from these indexes alone, without reading
-- a single row of the tables:
-- new leads per day, by status, source and business number, with whether
-- and when they converted and how many messages they sent;
CREATE INDEX leads_analytics_created_idx ON leads
    (created_at, status, source_type, business_phone_number_id, converted_at, message_count);
-- conversions per day, and the time from first message to conversion;
CREATE INDEX leads_analytics_converted_idx ON leads (converted_at, first_message_time);
-- messages per day, by type and business number.
CREATE INDEX messages_analytics_received_idx ON messages
    (received_at, message_type, business_phone_number_id);

-- Each began the index that now replaces it.
DROP INDEX leads_converted_at_idx;
DROP INDEX messages_received_at_idx;
