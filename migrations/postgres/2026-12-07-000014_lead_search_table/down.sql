DROP TRIGGER lead_search_on_update ON leads;
DROP TRIGGER lead_search_on_insert ON leads;
DROP FUNCTION lead_search_on_update();
DROP FUNCTION lead_search_on_insert();
DROP TABLE lead_search;
DROP FUNCTION lead_search_terms(TEXT, TEXT, TEXT, TEXT);
DO $$
BEGIN
    CREATE INDEX leads_search_trgm_idx ON leads USING gin (
        lower(coalesce(phone_number, '') || ' ' || coalesce(user_id, '') || ' ' ||
              coalesce(username, '') || ' ' || coalesce(sender_name, '')) gin_trgm_ops
    );
EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'leadhook: search index not created (%): lead search will scan', SQLERRM;
END $$;
