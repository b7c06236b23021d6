DROP TRIGGER IF EXISTS notes_search_on_delete;
DROP TRIGGER IF EXISTS notes_search_on_insert;
DROP TABLE IF EXISTS notes_search;
