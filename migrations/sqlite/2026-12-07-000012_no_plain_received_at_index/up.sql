-- No query reads messages through a plain `received_at` index on SQLite:
-- the analytics read `messages_analytics_received_idx`, which begins with
-- the day of `received_at` (PostgreSQL dropped its twin in 000006). Every
-- stored message still wrote an entry here and a page of it to the log.
DROP INDEX messages_received_at_idx;
