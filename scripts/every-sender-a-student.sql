-- Registers the first 10,000 senders of `leadhook loadtest` (its default
-- `--senders`) as students, with the identifiers each kind of sender sends
-- (`loadtest::body::sender_identities`). The write path then stores every
-- message without a lead: no lead is looked up, created or updated, and no
-- message is search-indexed. It measures what the
-- message path costs alone, with the shipped build (BENCHMARKS.md,
-- seventeenth pass). The same text runs on SQLite and PostgreSQL (numbers
-- pad the identifiers, since the two have no padding function in common):
--   BENCH_SQLITE="$(cat scripts/every-sender-a-student.sql)" scripts/bench-webhook sqlite 3 --connections 64 --duration 15
--   BENCH_SQL="$(cat scripts/every-sender-a-student.sql)" scripts/bench-webhook postgres 3 --connections 64 --duration 15
-- A unit test (`loadtest::body`) checks it against the load test's senders.
WITH RECURSIVE k(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM k WHERE n < 9999)
INSERT INTO students (phone_number, user_id, created_at)
SELECT CASE WHEN n % 10 <= 5 OR n % 10 = 9 THEN CAST(1555200000000 + n AS TEXT) END,
       CASE WHEN n % 10 <= 8 THEN 'US.72' || substr(CAST(1000000000000000000 + n AS TEXT), 2) END,
       CURRENT_TIMESTAMP
FROM k;
-- Statistics, as autovacuum would gather them after the first inserts: on a
-- PostgreSQL without them, the look-up of a batch's senders scans every
-- student instead of reading the two unique indexes.
ANALYZE students;
