DROP TRIGGER lead_values_counted_on_update ON leads;
DROP TRIGGER lead_values_counted_on_delete ON leads;
DROP TRIGGER lead_values_counted_on_insert ON leads;
DROP FUNCTION count_lead_value_changes();
DROP FUNCTION count_lead_values_per_statement();
DROP TABLE lead_value_counts;
