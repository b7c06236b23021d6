CREATE INDEX messages_received_at_idx ON messages (received_at);
CREATE INDEX leads_converted_at_idx ON leads (converted_at);
DROP INDEX messages_analytics_received_idx;
DROP INDEX leads_analytics_converted_idx;
DROP INDEX leads_analytics_created_idx;
