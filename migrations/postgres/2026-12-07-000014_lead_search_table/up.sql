-- A lead's searchable fields (phone, BSUID, username, name), lower-cased,
-- in a table of their own with the trigram index that `q` reads. On `leads`
-- that index was written by every stored message: PostgreSQL's update of a
-- lead is never HOT (its activity and counters are indexed), so each one
-- added an entry for every trigram of the four fields (BENCHMARKS.md,
-- eighteenth pass: 8 % of the webhook's throughput). Triggers keep this
-- table: new leads as a statement, and an update only when it writes one
-- of the four fields; a deleted lead takes its row with it.
CREATE TABLE lead_search (
    lead_id BIGINT PRIMARY KEY REFERENCES leads (id) ON DELETE CASCADE,
    terms   TEXT NOT NULL
);

CREATE FUNCTION lead_search_terms(phone TEXT, bsuid TEXT, username TEXT, name TEXT)
RETURNS TEXT LANGUAGE sql IMMUTABLE AS $$
    SELECT lower(coalesce(phone, '') || ' ' || coalesce(bsuid, '') || ' ' ||
                 coalesce(username, '') || ' ' || coalesce(name, ''))
$$;

INSERT INTO lead_search (lead_id, terms)
SELECT id, lead_search_terms(phone_number, user_id, username, sender_name) FROM leads;

CREATE FUNCTION lead_search_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO lead_search (lead_id, terms)
    SELECT id, lead_search_terms(phone_number, user_id, username, sender_name) FROM new_leads;
    RETURN NULL;
END $$;

CREATE FUNCTION lead_search_on_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE lead_search
    SET terms = lead_search_terms(NEW.phone_number, NEW.user_id, NEW.username, NEW.sender_name)
    WHERE lead_id = NEW.id;
    RETURN NULL;
END $$;

CREATE TRIGGER lead_search_on_insert AFTER INSERT ON leads
    REFERENCING NEW TABLE AS new_leads
    FOR EACH STATEMENT EXECUTE FUNCTION lead_search_on_insert();
CREATE TRIGGER lead_search_on_update AFTER UPDATE OF phone_number, user_id, username, sender_name ON leads
    FOR EACH ROW
    WHEN (NEW.phone_number IS DISTINCT FROM OLD.phone_number
          OR NEW.user_id IS DISTINCT FROM OLD.user_id
          OR NEW.username IS DISTINCT FROM OLD.username
          OR NEW.sender_name IS DISTINCT FROM OLD.sender_name)
    EXECUTE FUNCTION lead_search_on_update();

DROP INDEX IF EXISTS leads_search_trgm_idx;
-- As in `search_indexes`: without pg_trgm the search still works, by scanning.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
    CREATE INDEX lead_search_trgm_idx ON lead_search USING gin (terms gin_trgm_ops);
EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'leadhook: lead search index not created (%): lead search will scan', SQLERRM;
END $$;
