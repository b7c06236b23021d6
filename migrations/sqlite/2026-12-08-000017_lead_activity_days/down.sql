DROP TRIGGER lead_days_counted_on_update;
DROP TRIGGER lead_days_counted_on_delete;
DROP TRIGGER lead_days_counted_on_insert;
DROP TABLE lead_activity_days;
