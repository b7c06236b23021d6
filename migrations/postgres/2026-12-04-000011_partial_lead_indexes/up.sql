-- Indexes of the columns most leads leave empty hold only the leads that
-- fill them. Every query that reads one asks for a value (`=`, `<`, `>=`),
-- which implies NOT NULL, so SQLite and PostgreSQL use the partial index
-- for it. A new lead then writes none of these; on PostgreSQL, where each
-- message's update of its lead writes a new entry in every index of
-- `leads`, neither does each message (BENCHMARKS.md, twelfth pass).
DROP INDEX leads_student_id_idx;
CREATE INDEX leads_student_id_idx ON leads (student_id) WHERE student_id IS NOT NULL;
DROP INDEX leads_parent_user_id_idx;
CREATE INDEX leads_parent_user_id_idx ON leads (parent_user_id) WHERE parent_user_id IS NOT NULL;
DROP INDEX leads_username_idx;
CREATE INDEX leads_username_idx ON leads (username) WHERE username IS NOT NULL;
DROP INDEX leads_assigned_to_idx;
CREATE INDEX leads_assigned_to_idx ON leads (assigned_to) WHERE assigned_to IS NOT NULL;
DROP INDEX leads_next_follow_up_at_idx;
CREATE INDEX leads_next_follow_up_at_idx ON leads (next_follow_up_at) WHERE next_follow_up_at IS NOT NULL;
DROP INDEX leads_source_type_idx;
CREATE INDEX leads_source_type_idx ON leads (source_type) WHERE source_type IS NOT NULL;
DROP INDEX leads_analytics_converted_idx;
CREATE INDEX leads_analytics_converted_idx ON leads (converted_at, first_message_time)
    WHERE converted_at IS NOT NULL;

-- `leads_created_keyset_idx (created_at DESC, id DESC)` serves every query
-- this one did (ranges and counts of creation time).
DROP INDEX leads_created_at_idx;
