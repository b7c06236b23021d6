DROP INDEX leads_activity_idx;
DROP TRIGGER leads_counted ON leads;
DROP TRIGGER messages_counted ON messages;
DROP FUNCTION count_leads();
DROP FUNCTION count_messages();
DROP TABLE lead_counters;
