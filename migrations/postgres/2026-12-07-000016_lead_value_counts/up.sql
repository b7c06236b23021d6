-- How many leads have each status, each referral source type and each
-- business number, kept by triggers like `lead_counters`. A list filtered
-- on one of them takes its total from here instead of counting the
-- matching leads, which at 1 M leads read 400,000–600,000 index entries
-- for a common value (`LeadFilter::counted_by_values`). A lead without a
-- source or a business number has no row: those are the rest of all leads.
-- New and deleted leads are counted once per statement; a message to a
-- lead that keeps its values fires nothing, since the write path's lead
-- UPDATE names only the columns that changed.
CREATE TABLE lead_value_counts (
    kind  TEXT NOT NULL,
    value TEXT NOT NULL,
    leads BIGINT NOT NULL,
    PRIMARY KEY (kind, value)
);

INSERT INTO lead_value_counts (kind, value, leads)
SELECT 'status', status, count(*) FROM leads GROUP BY status;
INSERT INTO lead_value_counts (kind, value, leads)
SELECT 'source', source_type, count(*) FROM leads
WHERE source_type IS NOT NULL GROUP BY source_type;
INSERT INTO lead_value_counts (kind, value, leads)
SELECT 'business_number', business_phone_number_id, count(*) FROM leads
WHERE business_phone_number_id IS NOT NULL GROUP BY business_phone_number_id;

CREATE FUNCTION count_lead_values_per_statement() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    sign INT := CASE WHEN TG_OP = 'INSERT' THEN 1 ELSE -1 END;
BEGIN
    INSERT INTO lead_value_counts (kind, value, leads)
    SELECT kind, value, sign * count(*) FROM (
        SELECT 'status' AS kind, status AS value FROM changed_rows
        UNION ALL
        SELECT 'source', source_type FROM changed_rows WHERE source_type IS NOT NULL
        UNION ALL
        SELECT 'business_number', business_phone_number_id FROM changed_rows
        WHERE business_phone_number_id IS NOT NULL
    ) AS lead_values
    GROUP BY kind, value
    ON CONFLICT (kind, value) DO UPDATE SET leads = lead_value_counts.leads + EXCLUDED.leads;
    RETURN NULL;
END $$;

CREATE FUNCTION count_lead_value_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO lead_value_counts (kind, value, leads)
    SELECT kind, value, sum(delta) FROM (VALUES
        ('status', OLD.status, -1), ('status', NEW.status, 1),
        ('source', OLD.source_type, -1), ('source', NEW.source_type, 1),
        ('business_number', OLD.business_phone_number_id, -1),
        ('business_number', NEW.business_phone_number_id, 1)
    ) AS moved (kind, value, delta)
    WHERE value IS NOT NULL
    GROUP BY kind, value HAVING sum(delta) <> 0
    ON CONFLICT (kind, value) DO UPDATE SET leads = lead_value_counts.leads + EXCLUDED.leads;
    RETURN NULL;
END $$;

CREATE TRIGGER lead_values_counted_on_insert AFTER INSERT ON leads
    REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_lead_values_per_statement();
CREATE TRIGGER lead_values_counted_on_delete AFTER DELETE ON leads
    REFERENCING OLD TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_lead_values_per_statement();
-- (A trigger with a column list cannot take transition tables, so this one
-- runs per row; changes of these values are rare.)
CREATE TRIGGER lead_values_counted_on_update
    AFTER UPDATE OF status, source_type, business_phone_number_id ON leads
    FOR EACH ROW
    WHEN (NEW.status IS DISTINCT FROM OLD.status
          OR NEW.source_type IS DISTINCT FROM OLD.source_type
          OR NEW.business_phone_number_id IS DISTINCT FROM OLD.business_phone_number_id)
    EXECUTE FUNCTION count_lead_value_changes();
