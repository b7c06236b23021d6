DROP TRIGGER lead_created_days_on_update ON leads;
DROP TRIGGER lead_created_days_on_delete ON leads;
DROP TRIGGER lead_created_days_on_insert ON leads;
DROP FUNCTION count_lead_created_day_moves();
DROP FUNCTION count_lead_created_days_per_statement();
DROP TABLE lead_created_days;
