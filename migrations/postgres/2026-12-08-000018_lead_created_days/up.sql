-- How many leads were created on each day (UTC), kept by triggers like
-- `lead_counters`. A page at an offset into the list sorted by creation
-- (`sort=created`, unfiltered) starts at the day its offset lands in, as
-- one in the default order does from `lead_activity_days`
-- (`leads::day_counts`). New and deleted leads are counted once per
-- statement. A lead keeps its creation time through its messages; a merge
-- that gives the kept lead the other's earlier time fires the update
-- trigger. A day that loses its last lead keeps its row at 0.
CREATE TABLE lead_created_days (
    day   DATE PRIMARY KEY,
    leads BIGINT NOT NULL
);

INSERT INTO lead_created_days (day, leads)
SELECT created_at::date, count(*) FROM leads GROUP BY 1;

CREATE FUNCTION count_lead_created_days_per_statement() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    sign INT := CASE WHEN TG_OP = 'INSERT' THEN 1 ELSE -1 END;
BEGIN
    INSERT INTO lead_created_days (day, leads)
    SELECT created_at::date, sign * count(*) FROM changed_rows GROUP BY 1
    ON CONFLICT (day) DO UPDATE SET leads = lead_created_days.leads + EXCLUDED.leads;
    RETURN NULL;
END $$;

CREATE FUNCTION count_lead_created_day_moves() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE lead_created_days SET leads = leads - 1 WHERE day = OLD.created_at::date;
    INSERT INTO lead_created_days (day, leads) VALUES (NEW.created_at::date, 1)
    ON CONFLICT (day) DO UPDATE SET leads = lead_created_days.leads + 1;
    RETURN NULL;
END $$;

CREATE TRIGGER lead_created_days_on_insert AFTER INSERT ON leads
    REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_lead_created_days_per_statement();
CREATE TRIGGER lead_created_days_on_delete AFTER DELETE ON leads
    REFERENCING OLD TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_lead_created_days_per_statement();
CREATE TRIGGER lead_created_days_on_update AFTER UPDATE OF created_at ON leads
    FOR EACH ROW
    WHEN (NEW.created_at::date IS DISTINCT FROM OLD.created_at::date)
    EXECUTE FUNCTION count_lead_created_day_moves();
