DROP INDEX IF EXISTS messages_body_trgm_idx;
DROP INDEX IF EXISTS leads_search_trgm_idx;
