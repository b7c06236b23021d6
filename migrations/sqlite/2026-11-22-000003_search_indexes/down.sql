DROP TRIGGER messages_search_on_update;
DROP TRIGGER messages_search_on_delete;
DROP TRIGGER messages_search_on_insert;
DROP TABLE messages_search;
DROP TRIGGER leads_search_on_update;
DROP TRIGGER leads_search_on_delete;
DROP TRIGGER leads_search_on_insert;
DROP TABLE leads_search;
