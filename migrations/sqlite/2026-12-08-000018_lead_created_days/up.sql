-- How many leads were created on each day (UTC), kept by triggers like
-- `lead_counters`. A page at an offset into the list sorted by creation
-- (`sort=created`, unfiltered) starts at the day its offset lands in, as
-- one in the default order does from `lead_activity_days`
-- (`leads::day_counts`). A lead keeps its creation time through its
-- messages, so the write path fires only the insert trigger, once per new
-- lead; a merge that gives the kept lead the other's earlier time fires the
-- update trigger. A day that loses its last lead keeps its row at 0.
CREATE TABLE lead_created_days (
    day   TEXT NOT NULL PRIMARY KEY,
    leads BIGINT NOT NULL
) WITHOUT ROWID;

INSERT INTO lead_created_days (day, leads)
SELECT date(created_at), count(*) FROM leads GROUP BY 1;

CREATE TRIGGER lead_created_days_on_insert AFTER INSERT ON leads BEGIN
    INSERT INTO lead_created_days (day, leads) VALUES (date(NEW.created_at), 1)
    ON CONFLICT (day) DO UPDATE SET leads = leads + 1;
END;
CREATE TRIGGER lead_created_days_on_delete AFTER DELETE ON leads BEGIN
    UPDATE lead_created_days SET leads = leads - 1 WHERE day = date(OLD.created_at);
END;
CREATE TRIGGER lead_created_days_on_update AFTER UPDATE OF created_at ON leads
WHEN date(NEW.created_at) IS NOT date(OLD.created_at)
BEGIN
    UPDATE lead_created_days SET leads = leads - 1 WHERE day = date(OLD.created_at);
    INSERT INTO lead_created_days (day, leads) VALUES (date(NEW.created_at), 1)
    ON CONFLICT (day) DO UPDATE SET leads = leads + 1;
END;
