CREATE INDEX messages_message_type_idx ON messages (message_type);
DROP INDEX leads_analytics_created_idx;
CREATE INDEX leads_analytics_created_idx ON leads
    (substr(created_at, 1, 10), status, source_type, business_phone_number_id,
     created_at, converted_at, message_count);
CREATE INDEX leads_updated_at_idx ON leads (updated_at);
CREATE INDEX leads_last_message_time_idx ON leads (last_message_time);
