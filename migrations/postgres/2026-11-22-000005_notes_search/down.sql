DROP INDEX IF EXISTS lead_notes_body_trgm_idx;
