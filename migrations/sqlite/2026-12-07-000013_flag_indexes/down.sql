DROP INDEX leads_converted_idx;
DROP INDEX leads_inactive_idx;
