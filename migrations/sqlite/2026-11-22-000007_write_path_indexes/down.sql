CREATE INDEX messages_message_type_idx ON messages (message_type);
CREATE INDEX leads_updated_at_idx ON leads (updated_at);
CREATE INDEX leads_last_message_time_idx ON leads (last_message_time);
