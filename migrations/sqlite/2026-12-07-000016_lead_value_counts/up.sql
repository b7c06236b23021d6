-- How many leads have each status, each referral source type and each
-- business number, kept by triggers like `lead_counters`. A list filtered
-- on one of them takes its total from here instead of counting the
-- matching leads, which at 1 M leads read 400,000–600,000 index entries
-- for a common value (`LeadFilter::counted_by_values`). A lead without a
-- source or a business number has no row: those are the rest of all leads.
-- A new lead adds to three rows; a message to a lead that keeps its
-- values changes none, since the write path's lead UPDATE names only the
-- columns that changed.
CREATE TABLE lead_value_counts (
    kind  TEXT NOT NULL,
    value TEXT NOT NULL,
    leads BIGINT NOT NULL,
    PRIMARY KEY (kind, value)
) WITHOUT ROWID;

INSERT INTO lead_value_counts (kind, value, leads)
SELECT 'status', status, count(*) FROM leads GROUP BY status;
INSERT INTO lead_value_counts (kind, value, leads)
SELECT 'source', source_type, count(*) FROM leads
WHERE source_type IS NOT NULL GROUP BY source_type;
INSERT INTO lead_value_counts (kind, value, leads)
SELECT 'business_number', business_phone_number_id, count(*) FROM leads
WHERE business_phone_number_id IS NOT NULL GROUP BY business_phone_number_id;

CREATE TRIGGER lead_values_counted_on_insert AFTER INSERT ON leads BEGIN
    INSERT INTO lead_value_counts (kind, value, leads) VALUES ('status', NEW.status, 1)
    ON CONFLICT (kind, value) DO UPDATE SET leads = leads + 1;
    INSERT INTO lead_value_counts (kind, value, leads)
    SELECT 'source', NEW.source_type, 1 WHERE NEW.source_type IS NOT NULL
    ON CONFLICT (kind, value) DO UPDATE SET leads = leads + 1;
    INSERT INTO lead_value_counts (kind, value, leads)
    SELECT 'business_number', NEW.business_phone_number_id, 1
    WHERE NEW.business_phone_number_id IS NOT NULL
    ON CONFLICT (kind, value) DO UPDATE SET leads = leads + 1;
END;
CREATE TRIGGER lead_values_counted_on_delete AFTER DELETE ON leads BEGIN
    UPDATE lead_value_counts SET leads = leads - 1
    WHERE (kind = 'status' AND value = OLD.status)
       OR (kind = 'source' AND value = OLD.source_type)
       OR (kind = 'business_number' AND value = OLD.business_phone_number_id);
END;
-- A change of any of the three values moves a lead from one row to another;
-- the WHEN leaves an everyday message's update alone.
CREATE TRIGGER lead_values_counted_on_update
AFTER UPDATE OF status, source_type, business_phone_number_id ON leads
WHEN NEW.status IS NOT OLD.status OR NEW.source_type IS NOT OLD.source_type
  OR NEW.business_phone_number_id IS NOT OLD.business_phone_number_id
BEGIN
    INSERT INTO lead_value_counts (kind, value, leads)
    SELECT kind, value, sum(delta) FROM (
        SELECT 'status' AS kind, OLD.status AS value, -1 AS delta
        UNION ALL SELECT 'status', NEW.status, 1
        UNION ALL SELECT 'source', OLD.source_type, -1
        UNION ALL SELECT 'source', NEW.source_type, 1
        UNION ALL SELECT 'business_number', OLD.business_phone_number_id, -1
        UNION ALL SELECT 'business_number', NEW.business_phone_number_id, 1)
    WHERE value IS NOT NULL
    GROUP BY kind, value HAVING sum(delta) <> 0
    ON CONFLICT (kind, value) DO UPDATE SET leads = leads + excluded.leads;
END;
