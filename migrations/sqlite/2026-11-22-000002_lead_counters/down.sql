DROP INDEX leads_activity_idx;
DROP TRIGGER leads_counted_on_update;
DROP TRIGGER leads_counted_on_delete;
DROP TRIGGER leads_counted_on_insert;
DROP TRIGGER messages_counted_on_delete;
DROP TRIGGER messages_counted_on_insert;
DROP TABLE lead_counters;
