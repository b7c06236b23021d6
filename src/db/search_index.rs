//! SQLite's message search index, kept in a file of its own beside the
//! database (`<database>-search`) by a thread of its own.
//!
//! Why a file of its own: the trigram index of message text cost a third of
//! the single writer's time per message (BENCHMARKS.md, eleventh pass).
//! SQLite has one write lock per file, so inside the database the index
//! could only be written by the writer, inside its commit. In a file of its
//! own it is written under its own lock, on the other core, while the writer
//! commits the next batch. PostgreSQL keeps its trigram index inside the
//! database (`migrations/postgres`), where writers do not queue on one lock.
//!
//! How it stays right:
//! - The index is derived data: everything in it can be rebuilt from
//!   `messages`. Beside the FTS5 table the file holds how far it has got
//!   (`search_progress`: the last message id indexed, the last
//!   `search_changes` id applied), written in the same transaction as the
//!   rows they cover. The file is written with `synchronous = NORMAL`: a
//!   power cut can lose its last passes, never make it disagree with its
//!   progress, and the next pass does them again.
//! - New messages are found by id (ids only grow: `AUTOINCREMENT`). What
//!   ids cannot tell — an indexed message that moved to another lead (a
//!   merge), changed its text or was deleted — triggers in the database note
//!   in `search_changes`, with the lead the message had (migration
//!   `search_beside_the_database`).
//! - Each pass reads the database in one snapshot, so the changes and the
//!   messages it applies belong together.
//! - A search first waits until the index has reached everything committed
//!   when it began ([`wait_until_current`]): a message answered `200` is
//!   found by the next search, as when the index was kept by the writer.
//!   At rest that wait is one look; under load, one pass (milliseconds).
//!
//! The database's own connections must not have this file attached while
//! they write: `BEGIN IMMEDIATE` takes the write lock of every attached file,
//! and the writer would then queue behind this thread again. Only reads
//! attach it (see [`super::ConnectionManager`]).

use std::collections::HashSet;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::sql_types::{BigInt, Integer, Nullable};
use diesel::{Connection, QueryResult, QueryableByName, RunQueryDsl, SqliteConnection};

/// The schema name under which reading connections attach the index file.
pub const SCHEMA: &str = "search";

/// The index file of the SQLite database at `database`: a sidecar with the
/// database's own name, as SQLite's `-wal` and `-shm` files are, so that a
/// copy of `leadhook.db*` takes it along.
pub fn path_for(database: &str) -> String {
    format!("{database}-search")
}

/// `'path'` as an SQL string literal.
pub fn quoted(path: &str) -> String {
    format!("'{}'", path.replace('\'', "''"))
}

/// The layout of the file; a file of another layout is built again.
const FORMAT: i32 = 1;
/// Most messages one pass indexes: a pass is one transaction of the index
/// file, and a search waiting for the index waits for at most about one.
const PASS_LIMIT: i64 = 5_000;
/// Least time from one pass to the next. Each pass writes a new FTS5
/// segment, so a pass per commit of the writer (hundreds a second under
/// load) would write many small ones and merge them again; a few
/// milliseconds gather several commits into one.
const GATHER: Duration = Duration::from_millis(10);
/// How often the thread looks with nothing waking it: it also finds what
/// another process (`leadhook seed`) wrote.
const IDLE_LOOK: Duration = Duration::from_secs(1);
/// How long a search waits for the index to catch up before it answers
/// from what is indexed (and says so in the log).
pub const CATCH_UP_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq, QueryableByName)]
struct Progress {
    /// Every message up to this id is indexed.
    #[diesel(sql_type = BigInt)]
    messages: i64,
    /// Every `search_changes` row up to this id is applied.
    #[diesel(sql_type = BigInt)]
    changes: i64,
}

impl Progress {
    fn covers(&self, other: &Progress) -> bool {
        self.messages >= other.messages && self.changes >= other.changes
    }
}

#[derive(QueryableByName)]
struct Change {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    message_id: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    old_lead_id: Option<i64>,
}

#[derive(QueryableByName)]
struct LastId {
    #[diesel(sql_type = Nullable<BigInt>)]
    id: Option<i64>,
}

#[derive(QueryableByName)]
struct Version {
    #[diesel(sql_type = Integer)]
    user_version: i32,
}

/// What one pass applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Applied {
    /// Messages newly looked at (a student's message is passed over, not
    /// indexed, and counts here too).
    pub messages: i64,
    /// `search_changes` rows applied.
    pub changes: usize,
}

/// The index file, with the database attached as `db` to read from.
pub struct SearchIndex {
    path: String,
    conn: SqliteConnection,
}

impl SearchIndex {
    /// Opens (or creates) the index of the migrated database at `database`,
    /// builds it again when it does not belong to that database, and prunes
    /// the change notes it has applied. Run before the writer starts: the
    /// pruning writes the database.
    pub fn open(database: &str, busy_timeout: Duration) -> Result<SearchIndex, String> {
        super::sqlite_process_setup();
        let path = path_for(database);
        let fail = |e: &dyn std::fmt::Display| format!("search index {path}: {e}");
        let mut conn = SqliteConnection::establish(&path).map_err(|e| fail(&e))?;
        // Pragmas before the attach: `journal_mode` without a schema name
        // would switch every attached file.
        conn.batch_execute(&format!(
            "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
             PRAGMA temp_store = MEMORY; PRAGMA cache_size = -32768; \
             ATTACH DATABASE {} AS db;",
            busy_timeout.as_millis(),
            quoted(database)
        ))
        .map_err(|e| fail(&e))?;
        let mut index = SearchIndex {
            path: path.clone(),
            conn,
        };
        index.prepare().map_err(|e| fail(&e))?;
        Ok(index)
    }

    fn prepare(&mut self) -> QueryResult<()> {
        let version = diesel::sql_query("PRAGMA main.user_version")
            .get_result::<Version>(&mut self.conn)?
            .user_version;
        if version != FORMAT {
            self.rebuild_from_scratch()?;
        }
        let done = self.progress()?;
        let latest = latest_in_database(&mut self.conn, "db")?;
        if !latest.covers(&done) {
            // Ahead of the database: an index of another copy of it (the
            // database was restored from a backup without this file).
            log::warn!(
                "search index {} is ahead of its database ({done:?} against {latest:?}): building it again",
                self.path
            );
            self.rebuild_from_scratch()?;
        }
        let done = self.progress()?;
        diesel::sql_query("DELETE FROM db.search_changes WHERE id <= ?")
            .bind::<BigInt, _>(done.changes)
            .execute(&mut self.conn)?;
        Ok(())
    }

    fn rebuild_from_scratch(&mut self) -> QueryResult<()> {
        self.conn.batch_execute(&format!(
            "BEGIN;
             DROP TABLE IF EXISTS main.messages_search;
             DROP TABLE IF EXISTS main.search_progress;
             CREATE VIRTUAL TABLE main.messages_search USING fts5(
                 body, content = '', contentless_delete = 1, tokenize = 'trigram'
             );
             CREATE TABLE main.search_progress (
                 id       INTEGER PRIMARY KEY CHECK (id = 1),
                 messages BIGINT NOT NULL,
                 changes  BIGINT NOT NULL
             );
             INSERT INTO main.search_progress (id, messages, changes) VALUES (1, 0, 0);
             PRAGMA main.user_version = {FORMAT};
             COMMIT;"
        ))
    }

    fn progress(&mut self) -> QueryResult<Progress> {
        progress_in(&mut self.conn, "main")
    }

    /// One pass: applies every change noted since the last pass, then
    /// indexes up to `limit` messages past the last one indexed, in one
    /// transaction of the index file.
    ///
    /// A message's search row id is `message id << 32 | lead id` (migration
    /// `search_by_lead`): the leads a term occurs in are read from the index
    /// alone. A student's message (no lead) has no row.
    pub fn pass(&mut self, limit: i64) -> QueryResult<Applied> {
        // A deferred transaction: it takes the write lock of the index file
        // only, and reads the database in one snapshot from its first read.
        self.conn.transaction(|c| {
            let done = progress_in(c, "main")?;
            let changes: Vec<Change> = diesel::sql_query(
                "SELECT id, message_id, old_lead_id FROM db.search_changes WHERE id > ? ORDER BY id",
            )
            .bind::<BigInt, _>(done.changes)
            .load(c)?;
            let upto = diesel::sql_query(
                "SELECT max(id) AS id FROM (SELECT id FROM db.messages WHERE id > ? ORDER BY id LIMIT ?)",
            )
            .bind::<BigInt, _>(done.messages)
            .bind::<BigInt, _>(limit)
            .get_result::<LastId>(c)?
            .id
            .unwrap_or(done.messages);
            if upto > done.messages {
                // In id order, so that FTS5 keeps the rows pending until the
                // commit instead of flushing at each one.
                diesel::sql_query(
                    "INSERT INTO main.messages_search (rowid, body) \
                     SELECT (id << 32) | lead_id, body FROM db.messages \
                     WHERE id > ? AND id <= ? AND lead_id IS NOT NULL ORDER BY id",
                )
                .bind::<BigInt, _>(done.messages)
                .bind::<BigInt, _>(upto)
                .execute(c)?;
            }
            // Only a message indexed before this pass has a row to move; one
            // indexed in this pass was read as it is now. The first change of
            // a message since the last pass names the lead it was indexed
            // under; later ones name leads it passed through in between.
            let mut seen = HashSet::new();
            for change in &changes {
                if change.message_id > done.messages || !seen.insert(change.message_id) {
                    continue;
                }
                if let Some(old_lead) = change.old_lead_id {
                    diesel::sql_query("DELETE FROM main.messages_search WHERE rowid = (? << 32) | ?")
                        .bind::<BigInt, _>(change.message_id)
                        .bind::<BigInt, _>(old_lead)
                        .execute(c)?;
                }
                diesel::sql_query(
                    "INSERT INTO main.messages_search (rowid, body) \
                     SELECT (id << 32) | lead_id, body FROM db.messages \
                     WHERE id = ? AND lead_id IS NOT NULL",
                )
                .bind::<BigInt, _>(change.message_id)
                .execute(c)?;
            }
            let now = Progress {
                messages: upto,
                changes: changes.last().map_or(done.changes, |c| c.id),
            };
            if now != done {
                diesel::sql_query(
                    "UPDATE main.search_progress SET messages = ?, changes = ? WHERE id = 1",
                )
                .bind::<BigInt, _>(now.messages)
                .bind::<BigInt, _>(now.changes)
                .execute(c)?;
            }
            Ok(Applied {
                messages: now.messages - done.messages,
                changes: changes.len(),
            })
        })
    }

    /// Passes until everything committed so far is indexed (`leadhook
    /// seed`, tests). Returns how many messages it looked at.
    pub fn catch_up(&mut self) -> QueryResult<i64> {
        let mut messages = 0;
        loop {
            let applied = self.pass(PASS_LIMIT)?;
            messages += applied.messages;
            if applied.messages < PASS_LIMIT {
                return Ok(messages);
            }
        }
    }

    /// Keeps the index up to date on a thread of its own until every
    /// [`Nudge`] is dropped (the writer stops), then catches up once more.
    pub fn spawn(self) -> (Nudge, JoinHandle<()>) {
        let (nudge, wakes) = sync_channel(1);
        let handle = std::thread::Builder::new()
            .name("leadhook-search".into())
            .spawn(move || self.keep_up(wakes))
            .expect("spawning the search index thread");
        (Nudge(nudge), handle)
    }

    fn keep_up(mut self, wakes: Receiver<()>) {
        loop {
            let began = Instant::now();
            let full = match self.pass(PASS_LIMIT) {
                Ok(applied) => applied.messages == PASS_LIMIT,
                Err(e) => {
                    // Retried at the next wake-up; searches meanwhile wait
                    // at most CATCH_UP_WAIT and say so.
                    log::warn!("search index pass failed (tried again): {e}");
                    false
                }
            };
            if full {
                continue;
            }
            if let Err(RecvTimeoutError::Disconnected) = wakes.recv_timeout(IDLE_LOOK) {
                break;
            }
            if let Some(rest) = GATHER.checked_sub(began.elapsed()) {
                std::thread::sleep(rest);
            }
        }
        if let Err(e) = self.catch_up() {
            log::warn!("search index: last pass failed, the next start catches up: {e}");
        }
        log::debug!("search index thread stopped");
    }
}

/// Wakes the index thread: given to the writer, which calls it after each
/// commit. Never blocks; wake-ups that arrive while one is pending merge.
#[derive(Clone)]
pub struct Nudge(SyncSender<()>);

impl Nudge {
    pub fn wake(&self) {
        let _ = self.0.try_send(());
    }
}

/// How far the index file attached as `schema` has got (`main` on the index's
/// own connection).
fn progress_in(conn: &mut SqliteConnection, schema: &str) -> QueryResult<Progress> {
    diesel::sql_query(format!(
        "SELECT messages, changes FROM {schema}.search_progress WHERE id = 1"
    ))
    .get_result(conn)
}

/// The last message id and change id committed to the database attached as
/// `schema` (`main` on a reading connection).
fn latest_in_database(conn: &mut SqliteConnection, schema: &str) -> QueryResult<Progress> {
    diesel::sql_query(format!(
        "SELECT (SELECT coalesce(max(id), 0) FROM {schema}.messages) AS messages, \
                (SELECT coalesce(max(id), 0) FROM {schema}.search_changes) AS changes"
    ))
    .get_result(conn)
}

/// Waits, for up to `wait`, until the index has reached every message and
/// change committed when it was called. For a reading connection, which has
/// the index attached as [`SCHEMA`], outside a transaction (each look must
/// see the latest progress). Returns false when it gave up: the search then
/// answers from what is indexed.
pub fn wait_until_current(conn: &mut SqliteConnection, wait: Duration) -> QueryResult<bool> {
    let target = latest_in_database(conn, "main")?;
    let began = Instant::now();
    loop {
        let done = progress_in(conn, SCHEMA)?;
        if done.covers(&target) {
            return Ok(true);
        }
        if began.elapsed() >= wait {
            log::warn!(
                "search index behind the database after {} ms ({done:?} against {target:?}): answering from what is indexed",
                wait.as_millis()
            );
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{test_database, test_pool, DbConnection, DbPool};

    #[derive(QueryableByName, PartialEq, Eq, Debug, PartialOrd, Ord)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }

    /// Runs `work` on a pooled connection of the unit-test database.
    fn with_sqlite<T>(pool: &DbPool, work: impl FnOnce(&mut SqliteConnection) -> T) -> T {
        let mut conn = pool.get().expect("a connection");
        let DbConnection::Sqlite(c) = &mut *conn else {
            unreachable!("the unit-test database is SQLite")
        };
        work(c)
    }

    fn execute(pool: &DbPool, sql: &str) {
        with_sqlite(pool, |c| c.batch_execute(sql).expect("statements run"));
    }

    /// Leads 1 to `n`, to hang messages on.
    fn leads(pool: &DbPool, n: i64) {
        execute(
            pool,
            &format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n})
                 INSERT INTO leads (id, phone_number, first_message, first_message_time, last_message,
                                    last_message_time, message_count, created_at, updated_at)
                 SELECT i, '155500' || i, 'x', '2026-01-01 00:00:00', 'x', '2026-01-01 00:00:00', 1,
                        '2026-01-01 00:00:00', '2026-01-01 00:00:00' FROM n;"
            ),
        );
    }

    fn ids(pool: &DbPool, sql: &str) -> Vec<i64> {
        let mut rows: Vec<Row> =
            with_sqlite(pool, |c| diesel::sql_query(sql).load(c).expect("a query"));
        rows.sort();
        rows.into_iter().map(|r| r.id).collect()
    }

    /// The index holds exactly one row per message of a lead, under the
    /// lead it has now, and finds each by its current text.
    fn assert_index_matches_messages(pool: &DbPool, step: usize) {
        let expected = ids(
            pool,
            "SELECT (id << 32) | lead_id AS id FROM messages WHERE lead_id IS NOT NULL",
        );
        let indexed = ids(pool, "SELECT rowid AS id FROM messages_search");
        assert_eq!(indexed, expected, "after step {step}");
        // Bodies are unique words: each is found under its message alone.
        #[derive(QueryableByName)]
        struct Body {
            #[diesel(sql_type = BigInt)]
            id: i64,
            #[diesel(sql_type = diesel::sql_types::Text)]
            body: String,
        }
        with_sqlite(pool, |c| {
            let bodies: Vec<Body> = diesel::sql_query(
                "SELECT (id << 32) | lead_id AS id, body FROM messages WHERE lead_id IS NOT NULL",
            )
            .load(c)
            .unwrap();
            for b in bodies {
                let found: Vec<Row> = diesel::sql_query(
                    "SELECT rowid AS id FROM messages_search WHERE messages_search MATCH ?",
                )
                .bind::<diesel::sql_types::Text, _>(format!("\"{}\"", b.body))
                .load(c)
                .unwrap();
                assert_eq!(found, [Row { id: b.id }], "'{}' after step {step}", b.body);
            }
        });
    }

    /// Inserts, merges (a message moving from lead to lead, several times
    /// between two passes), students' messages gaining a lead, edits and
    /// deletes, in a fixed pseudo-random order, with the index caught up at
    /// random points: after each catch-up it matches the messages exactly.
    #[test]
    fn the_index_follows_every_kind_of_change() {
        let dir = tempfile::tempdir().unwrap();
        let pool = test_pool(&dir);
        let database = test_database(&dir);
        leads(&pool, 6);
        let mut index = SearchIndex::open(&database, Duration::from_secs(5)).unwrap();
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let mut word = 0;
        for step in 0..400 {
            word += 1;
            let sql = match next(6) {
                0 | 1 => {
                    let lead = match next(4) {
                        0 => "NULL".to_string(),
                        _ => (1 + next(6)).to_string(),
                    };
                    format!(
                        "INSERT INTO messages (wamid, lead_id, message_type, body, wa_timestamp, received_at)
                         VALUES ('wamid.{word}', {lead}, 'text', 'w{word}x', '2026-01-01 00:00:00',
                                 '2026-01-01 00:00:00');"
                    )
                }
                2 => format!(
                    "UPDATE messages SET lead_id = {} WHERE id IN
                     (SELECT id FROM messages ORDER BY (id * 7919) % 13, id LIMIT {});",
                    1 + next(6),
                    1 + next(3)
                ),
                3 => format!(
                    "UPDATE messages SET body = 'w{word}x' WHERE id =
                     (SELECT id FROM messages ORDER BY (id * 104729 + {word}) % 17, id LIMIT 1);"
                ),
                4 => format!(
                    "DELETE FROM messages WHERE id =
                     (SELECT id FROM messages ORDER BY (id * 31 + {word}) % 11, id LIMIT 1);"
                ),
                _ => String::new(),
            };
            execute(&pool, &sql);
            if next(5) == 0 {
                index.catch_up().unwrap();
                assert_index_matches_messages(&pool, step);
            }
        }
        index.catch_up().unwrap();
        assert_index_matches_messages(&pool, 400);
    }

    #[test]
    fn a_search_waits_for_the_index_and_a_reopened_index_goes_on_where_it_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let pool = test_pool(&dir);
        let database = test_database(&dir);
        leads(&pool, 1);
        execute(
            &pool,
            "INSERT INTO messages (wamid, lead_id, message_type, body, wa_timestamp, received_at)
             VALUES ('wamid.a', 1, 'text', 'first words', '2026-01-01 00:00:00', '2026-01-01 00:00:00');",
        );
        let behind = |pool: &DbPool| {
            with_sqlite(pool, |c| {
                !wait_until_current(c, Duration::from_millis(20)).unwrap()
            })
        };
        assert!(behind(&pool), "nothing is indexed yet");

        // The thread indexes what the writer's nudge announces.
        let index = SearchIndex::open(&database, Duration::from_secs(5)).unwrap();
        let (nudge, thread) = index.spawn();
        nudge.wake();
        with_sqlite(&pool, |c| {
            assert!(wait_until_current(c, Duration::from_secs(10)).unwrap())
        });
        execute(
            &pool,
            "UPDATE messages SET body = 'second words' WHERE wamid = 'wamid.a';",
        );
        drop(nudge);
        thread.join().unwrap();
        assert!(
            !behind(&pool),
            "the thread catches up once more as it stops"
        );

        // Reopened: nothing is indexed twice, and the applied change notes
        // are pruned.
        let mut index = SearchIndex::open(&database, Duration::from_secs(5)).unwrap();
        assert_eq!(index.pass(PASS_LIMIT).unwrap(), Applied::default());
        assert_eq!(
            ids(&pool, "SELECT id FROM search_changes"),
            Vec::<i64>::new()
        );
        assert_index_matches_messages(&pool, 0);

        // An index ahead of its database (the database restored from an
        // older copy) is built again.
        execute(&pool, "UPDATE search.search_progress SET messages = 99;");
        drop(index);
        let mut index = SearchIndex::open(&database, Duration::from_secs(5)).unwrap();
        assert_eq!(index.catch_up().unwrap(), 1);
        assert_index_matches_messages(&pool, 0);
    }
}
