-- Every stored message moves its lead's last activity and update time, so
-- each index on those columns is rewritten per message. Two were not worth
-- it: `leads_activity_idx (last_message_time DESC, id DESC)` serves every
-- query the plain last_message_time index did, and no query reads
-- updated_at through an index.
DROP INDEX leads_last_message_time_idx;
DROP INDEX leads_updated_at_idx;

-- message_count changes with every message, so carrying it in the analytics
-- index made every message rewrite that index entry too (about 8 % of the
-- writer's time); analytics reads it from the lead rows instead. The
-- message-type index is covered by messages_analytics_received_idx.
DROP INDEX leads_analytics_created_idx;
CREATE INDEX leads_analytics_created_idx ON leads
    (substr(created_at, 1, 10), status, source_type, business_phone_number_id,
     created_at, converted_at);
DROP INDEX messages_message_type_idx;
