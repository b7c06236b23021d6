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
