DROP TRIGGER lead_created_days_on_update;
DROP TRIGGER lead_created_days_on_delete;
DROP TRIGGER lead_created_days_on_insert;
DROP TABLE lead_created_days;
