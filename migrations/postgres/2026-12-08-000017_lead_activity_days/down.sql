DROP TRIGGER lead_days_counted_on_update ON leads;
DROP TRIGGER lead_days_counted_on_delete ON leads;
DROP TRIGGER lead_days_counted_on_insert ON leads;
DROP FUNCTION count_lead_day_moves();
DROP FUNCTION count_lead_days_per_statement();
DROP TABLE lead_activity_days;
