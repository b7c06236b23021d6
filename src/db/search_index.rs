//! SQLite's search indexes (of message text, and of the leads' phone, BSUID,
//! username and name), kept in a file of their own beside the database
//! (`<database>-search`) by a thread of their own.
//!
//! Why a file of their own: the trigram index of message text cost a third
//! of the single writer's time per message, and the leads' index a fifth
//! more when most messages come from new senders (BENCHMARKS.md, eleventh
//! pass). SQLite has one write lock per file, so inside the database the
//! indexes could only be written by the writer, inside its commit. In a
//! file of their own they are written under its own lock, on the other
//! core, while the writer commits the next batch. PostgreSQL keeps its
//! trigram indexes inside the database (`migrations/postgres`), where
//! writers do not queue on one lock.
//!
//! How they stay right:
//! - An index is derived data: everything in it can be rebuilt from its
//!   table ([`Source`]). Beside the FTS5 tables the file holds how far each
//!   has got (`search_progress`: the last row id indexed, the last change
//!   note applied), written in the same transaction as the rows they cover.
//!   The file is written with `synchronous = NORMAL`: a power cut can lose
//!   its last passes, never make it disagree with its progress, and the
//!   next pass does them again.
//! - New rows are found by id (ids only grow: `AUTOINCREMENT`). What ids
//!   cannot tell — an indexed row that changed what is indexed of it (a
//!   message moved to another lead by a merge, or edited; a lead's new
//!   number or name) or was deleted — triggers in the database note, with
//!   the index row it had (migrations `search_beside_the_database` and
//!   `lead_search_beside_the_database`).
//! - Each pass reads the database in one snapshot, so the changes and the
//!   rows it applies belong together.
//! - A search first waits until the indexes have reached everything
//!   committed when it began ([`wait_until_current`]): a message or lead
//!   answered `200` is found by the next search, as when the indexes were
//!   kept by the writer. At rest that wait is one look; under load, one pass
//!   (milliseconds).
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
use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use diesel::{Connection, QueryResult, QueryableByName, RunQueryDsl, SqliteConnection};

use super::reuse::kept;

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
/// 1: messages only; 2: messages and leads, progress by source.
const FORMAT: i32 = 2;
/// Most rows of each table one pass indexes: a pass is one transaction of
/// the index file, and a search waiting for the index waits for at most
/// about one.
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

/// A table of the database and the FTS5 table of the index file that
/// indexes it. Every name and expression here is SQL of this module's own,
/// never input.
struct Source {
    /// Its row in `search_progress`.
    name: &'static str,
    /// The FTS5 table in the index file.
    index: &'static str,
    /// The indexed columns, the same in the table and in the index.
    columns: &'static str,
    /// The table in the database; its ids only grow.
    table: &'static str,
    /// A row's index row id, over the table's columns.
    rowid: &'static str,
    /// Which rows of the table have an index row.
    indexed: &'static str,
    /// The table of change notes in the database,
    changes: &'static str,
    /// …the id of the changed row in `table`, over the notes' columns,
    changed: &'static str,
    /// …and the index row id it had, or NULL when it had none.
    old_rowid: &'static str,
}

/// Message text. A message's index row id is `message id << 32 | lead id`
/// (migration `search_by_lead`): the leads a term occurs in are read from
/// the index alone. A student's message (no lead) has no row, and the note
/// of a message that had none has a NULL `old_lead_id`.
const MESSAGES: Source = Source {
    name: "messages",
    index: "messages_search",
    columns: "body",
    table: "messages",
    rowid: "(id << 32) | lead_id",
    indexed: "lead_id IS NOT NULL",
    changes: "search_changes",
    changed: "message_id",
    old_rowid: "(message_id << 32) | old_lead_id",
};

/// The leads' identity: a search finds a lead by any part of its phone,
/// BSUID, username or name.
const LEADS: Source = Source {
    name: "leads",
    index: "leads_search",
    columns: "phone_number, user_id, username, sender_name",
    table: "leads",
    rowid: "id",
    indexed: "TRUE",
    changes: "lead_search_changes",
    changed: "lead_id",
    old_rowid: "lead_id",
};

/// The sources, in the order of [`Progress`].
const SOURCES: [&Source; 2] = [&MESSAGES, &LEADS];

/// How far the index of one source has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Mark {
    /// Every row up to this id is indexed.
    rows: i64,
    /// Every change note up to this id is applied.
    changes: i64,
}

/// How far the index of each of [`SOURCES`] has got; or, read from the
/// database, how far it has to get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Progress([Mark; 2]);

impl Progress {
    fn covers(&self, other: &Progress) -> bool {
        self.0
            .iter()
            .zip(&other.0)
            .all(|(a, b)| a.rows >= b.rows && a.changes >= b.changes)
    }

    /// Reads the rows of a progress query; a source without a row is at its
    /// start.
    fn from_rows(rows: Vec<MarkRow>) -> Progress {
        let mut progress = Progress::default();
        for row in rows {
            if let Some(i) = SOURCES.iter().position(|s| s.name == row.source) {
                progress.0[i] = Mark {
                    rows: row.rows,
                    changes: row.changes,
                };
            }
        }
        progress
    }
}

#[derive(QueryableByName)]
struct MarkRow {
    #[diesel(sql_type = Text)]
    source: String,
    #[diesel(sql_type = BigInt)]
    rows: i64,
    #[diesel(sql_type = BigInt)]
    changes: i64,
}

#[derive(QueryableByName)]
struct Change {
    #[diesel(sql_type = BigInt)]
    changed: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    old_rowid: Option<i64>,
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

/// What one pass did for one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct SourcePass {
    now: Mark,
    /// Index rows written for new rows.
    indexed: usize,
    /// Change notes applied.
    changes: usize,
    /// It stopped at its limit: more new rows may be waiting.
    more: bool,
}

/// What one pass (or a catch-up) applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Applied {
    /// Index rows written for new messages (a student's message has none).
    pub messages: usize,
    /// Index rows written for new leads.
    pub leads: usize,
    /// Change notes applied, of both tables.
    pub changes: usize,
    /// A table had more new rows than one pass takes.
    pub more: bool,
}

impl Source {
    /// How far the database attached as `schema` has got, as a row of
    /// [`MarkRow`]: the last row id and change note id it has handed out.
    /// From `sqlite_sequence` (AUTOINCREMENT), not `max(id)`: deleting the
    /// newest rows or pruning the applied notes must not make the database
    /// look behind its index, only an older copy of it may.
    fn latest_sql(&self, schema: &str) -> String {
        let last = |table: &str| {
            format!(
                "coalesce((SELECT seq FROM {schema}.sqlite_sequence WHERE name = '{table}'), 0)"
            )
        };
        format!(
            "SELECT '{}' AS source, {} AS rows, {} AS changes",
            self.name,
            last(self.table),
            last(self.changes)
        )
    }

    /// This source's part of a pass (see [`SearchIndex::pass`]), inside its
    /// transaction: indexes up to `limit` rows past `done`, then applies the
    /// change notes past it, up to `latest`, where the database had got.
    fn apply(
        &self,
        c: &mut SqliteConnection,
        done: Mark,
        latest: Mark,
        limit: i64,
    ) -> QueryResult<SourcePass> {
        // The `limit`-th row past the last one indexed, if there are that
        // many; otherwise everything up to the last id handed out, including
        // ids whose rows were deleted or never committed.
        let nth = kept(format!(
            "SELECT (SELECT id FROM db.{} WHERE id > ? ORDER BY id LIMIT 1 OFFSET ?) AS id",
            self.table
        ))
        .bind_int(done.rows)
        .bind_int(limit - 1)
        .get_result::<LastId>(c)?
        .id;
        let now = Mark {
            rows: nth.unwrap_or(latest.rows).max(done.rows),
            changes: latest.changes.max(done.changes),
        };
        let index_rows = format!(
            "INSERT INTO main.{index} (rowid, {columns}) SELECT {rowid}, {columns} FROM db.{table} \
             WHERE {indexed} AND",
            index = self.index,
            columns = self.columns,
            rowid = self.rowid,
            table = self.table,
            indexed = self.indexed,
        );
        let mut indexed = 0;
        if now.rows > done.rows {
            // In id order, so that FTS5 keeps the rows pending until the
            // commit instead of flushing at each one.
            indexed = kept(format!("{index_rows} id > ? AND id <= ? ORDER BY id"))
                .bind_int(done.rows)
                .bind_int(now.rows)
                .execute(c)?;
        }
        let changes: Vec<Change> = kept(format!(
            "SELECT {} AS changed, {} AS old_rowid FROM db.{} WHERE id > ? AND id <= ? ORDER BY id",
            self.changed, self.old_rowid, self.changes
        ))
        .bind_int(done.changes)
        .bind_int(now.changes)
        .load(c)?;
        // Only a row indexed before this pass has an index row to replace;
        // one indexed in this pass was read as it is now. The first note of a
        // row since the last pass names the index row it had; later ones name
        // what it was in between (a message passing through several leads).
        let mut seen = HashSet::new();
        for change in &changes {
            if change.changed > done.rows || !seen.insert(change.changed) {
                continue;
            }
            if let Some(old) = change.old_rowid {
                kept(format!("DELETE FROM main.{} WHERE rowid = ?", self.index))
                    .bind_int(old)
                    .execute(c)?;
            }
            kept(format!("{index_rows} id = ?"))
                .bind_int(change.changed)
                .execute(c)?;
        }
        Ok(SourcePass {
            now,
            indexed,
            changes: changes.len(),
            more: nth.is_some(),
        })
    }
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
        for (source, mark) in SOURCES.iter().zip(done.0) {
            diesel::sql_query(format!("DELETE FROM db.{} WHERE id <= ?", source.changes))
                .bind::<BigInt, _>(mark.changes)
                .execute(&mut self.conn)?;
        }
        Ok(())
    }

    fn rebuild_from_scratch(&mut self) -> QueryResult<()> {
        let mut sql = String::from("BEGIN; DROP TABLE IF EXISTS main.search_progress;");
        for source in SOURCES {
            // Contentless: the index answers which rows match, the database
            // holds the text.
            sql += &format!(
                "DROP TABLE IF EXISTS main.{index};
                 CREATE VIRTUAL TABLE main.{index} USING fts5(
                     {columns}, content = '', contentless_delete = 1, tokenize = 'trigram'
                 );",
                index = source.index,
                columns = source.columns
            );
        }
        sql += "CREATE TABLE main.search_progress (
                    source  TEXT PRIMARY KEY,
                    rows    BIGINT NOT NULL,
                    changes BIGINT NOT NULL
                );";
        for source in SOURCES {
            sql += &format!(
                "INSERT INTO main.search_progress (source, rows, changes) VALUES ('{}', 0, 0);",
                source.name
            );
        }
        sql += &format!("PRAGMA main.user_version = {FORMAT}; COMMIT;");
        self.conn.batch_execute(&sql)
    }

    fn progress(&mut self) -> QueryResult<Progress> {
        progress_in(&mut self.conn, "main")
    }

    /// One pass: for each source, indexes up to `limit` rows past the last
    /// one indexed and applies every change noted since the last pass, all
    /// in one transaction of the index file.
    pub fn pass(&mut self, limit: i64) -> QueryResult<Applied> {
        // A deferred transaction: it takes the write lock of the index file
        // only, and reads the database in one snapshot from its first read.
        self.conn.transaction(|c| {
            let done = progress_in(c, "main")?;
            let latest = latest_in_database(c, "db")?;
            let mut passes = [SourcePass::default(); 2];
            for (i, source) in SOURCES.iter().enumerate() {
                passes[i] = source.apply(c, done.0[i], latest.0[i], limit)?;
                if passes[i].now != done.0[i] {
                    kept("UPDATE main.search_progress SET rows = ?, changes = ? WHERE source = ?")
                        .bind_int(passes[i].now.rows)
                        .bind_int(passes[i].now.changes)
                        .bind_text(source.name)
                        .execute(c)?;
                }
            }
            let [messages, leads] = passes;
            Ok(Applied {
                messages: messages.indexed,
                leads: leads.indexed,
                changes: messages.changes + leads.changes,
                more: messages.more || leads.more,
            })
        })
    }

    /// Passes until everything committed so far is indexed (`leadhook
    /// seed`, tests). Returns what it applied in all.
    pub fn catch_up(&mut self) -> QueryResult<Applied> {
        let mut all = Applied::default();
        loop {
            let applied = self.pass(PASS_LIMIT)?;
            all.messages += applied.messages;
            all.leads += applied.leads;
            all.changes += applied.changes;
            if !applied.more {
                return Ok(all);
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
                Ok(applied) => applied.more,
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
    kept(format!(
        "SELECT source, rows, changes FROM {schema}.search_progress"
    ))
    .load(conn)
    .map(Progress::from_rows)
}

/// The last row ids and change note ids committed to the database attached
/// as `schema` (`main` on a reading connection).
fn latest_in_database(conn: &mut SqliteConnection, schema: &str) -> QueryResult<Progress> {
    let parts: Vec<String> = SOURCES.iter().map(|s| s.latest_sql(schema)).collect();
    kept(parts.join(" UNION ALL "))
        .load(conn)
        .map(Progress::from_rows)
}

/// Waits, for up to `wait`, until the index has reached every row and
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

    /// Leads 1 to `n`, to hang messages on, named `lead<i>z`.
    fn leads(pool: &DbPool, n: i64) {
        execute(
            pool,
            &format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n})
                 INSERT INTO leads (id, phone_number, sender_name, first_message, first_message_time,
                                    last_message, last_message_time, message_count, created_at,
                                    updated_at)
                 SELECT i, '155500' || i, 'lead' || i || 'z', 'x', '2026-01-01 00:00:00', 'x',
                        '2026-01-01 00:00:00', 1, '2026-01-01 00:00:00', '2026-01-01 00:00:00'
                 FROM n;"
            ),
        );
    }

    fn ids(pool: &DbPool, sql: &str) -> Vec<i64> {
        let mut rows: Vec<Row> =
            with_sqlite(pool, |c| diesel::sql_query(sql).load(c).expect("a query"));
        rows.sort();
        rows.into_iter().map(|r| r.id).collect()
    }

    /// Each index holds exactly one row per row it indexes: one per message
    /// of a lead, under the lead it has now, found by its current text; one
    /// per lead, found by its current name.
    fn assert_index_matches(pool: &DbPool, step: usize) {
        assert_eq!(
            ids(pool, "SELECT rowid AS id FROM leads_search"),
            ids(pool, "SELECT id FROM leads"),
            "leads after step {step}"
        );
        let expected = ids(
            pool,
            "SELECT (id << 32) | lead_id AS id FROM messages WHERE lead_id IS NOT NULL",
        );
        let indexed = ids(pool, "SELECT rowid AS id FROM messages_search");
        assert_eq!(indexed, expected, "after step {step}");
        // Bodies and names are unique words: each is found under its own
        // row alone.
        #[derive(QueryableByName)]
        struct Word {
            #[diesel(sql_type = BigInt)]
            id: i64,
            #[diesel(sql_type = Text)]
            word: String,
        }
        for (index, rows) in [
            (
                "messages_search",
                "SELECT (id << 32) | lead_id AS id, body AS word FROM messages WHERE lead_id IS NOT NULL",
            ),
            ("leads_search", "SELECT id, sender_name AS word FROM leads"),
        ] {
            with_sqlite(pool, |c| {
                let words: Vec<Word> = diesel::sql_query(rows).load(c).unwrap();
                for w in words {
                    let found: Vec<Row> = diesel::sql_query(format!(
                        "SELECT rowid AS id FROM {index} WHERE {index} MATCH ?"
                    ))
                    .bind::<Text, _>(format!("\"{}\"", w.word))
                    .load(c)
                    .unwrap();
                    assert_eq!(found, [Row { id: w.id }], "'{}' after step {step}", w.word);
                }
            });
        }
    }

    /// Inserts, merges (a message moving from lead to lead, several times
    /// between two passes), students' messages gaining a lead, edits and
    /// deletes of messages; new, renamed and deleted leads (their messages
    /// with them), in a fixed pseudo-random order, with the index caught up
    /// at random points: after each catch-up it matches the tables exactly.
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
            // An existing lead, or NULL when there is none.
            let some_lead =
                |k: u64| format!("(SELECT id FROM leads ORDER BY (id * 7 + {k}) % 5, id LIMIT 1)");
            let sql = match next(9) {
                0 | 1 => {
                    let lead = match next(4) {
                        0 => "NULL".to_string(),
                        _ => some_lead(next(5)),
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
                    some_lead(next(5)),
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
                5 => format!(
                    "INSERT INTO leads (phone_number, sender_name, first_message, first_message_time,
                                        last_message, last_message_time, created_at, updated_at)
                     VALUES ('1666{word}', 'lead{word}y', 'x', '2026-01-01 00:00:00', 'x',
                             '2026-01-01 00:00:00', '2026-01-01 00:00:00', '2026-01-01 00:00:00');"
                ),
                6 => format!(
                    "UPDATE leads SET sender_name = 'name{word}y' WHERE id = {};",
                    some_lead(next(5))
                ),
                7 => format!("DELETE FROM leads WHERE id = {};", some_lead(next(5))),
                _ => String::new(),
            };
            execute(&pool, &sql);
            if next(5) == 0 {
                index.catch_up().unwrap();
                assert_index_matches(&pool, step);
            }
        }
        index.catch_up().unwrap();
        assert_index_matches(&pool, 400);
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
        assert_index_matches(&pool, 0);

        // Deleting the newest rows, and pruning the notes of their deletes,
        // makes the database look neither ahead of its index (a search would
        // wait for rows that will never come) nor behind it (a rebuild at
        // each start).
        execute(
            &pool,
            "INSERT INTO messages (wamid, lead_id, message_type, body, wa_timestamp, received_at)
             VALUES ('wamid.b', 1, 'text', 'gone', '2026-01-01 00:00:00', '2026-01-01 00:00:00');",
        );
        index.catch_up().unwrap();
        // A lead's change alone, without a message, is waited for too.
        execute(
            &pool,
            "UPDATE leads SET sender_name = 'renamed' WHERE id = 1;",
        );
        assert!(behind(&pool), "a renamed lead is waited for");
        index.catch_up().unwrap();
        execute(&pool, "DELETE FROM messages WHERE wamid = 'wamid.b';");
        execute(
            &pool,
            "INSERT INTO messages (wamid, lead_id, message_type, body, wa_timestamp, received_at)
             VALUES ('wamid.c', NULL, 'text', 'never indexed', '2026-01-01 00:00:00', '2026-01-01 00:00:00');
             DELETE FROM messages WHERE wamid = 'wamid.c';",
        );
        index.catch_up().unwrap();
        assert!(!behind(&pool), "deleted rows are not waited for");
        assert_index_matches(&pool, 0);
        drop(index);
        for _ in 0..2 {
            let mut index = SearchIndex::open(&database, Duration::from_secs(5)).unwrap();
            assert_eq!(
                index.pass(PASS_LIMIT).unwrap(),
                Applied::default(),
                "reopened with its notes pruned, the index is not built again"
            );
        }

        // An index ahead of its database (the database restored from an
        // older copy) is built again.
        execute(
            &pool,
            "UPDATE search.search_progress SET rows = 99 WHERE source = 'messages';",
        );
        let mut index = SearchIndex::open(&database, Duration::from_secs(5)).unwrap();
        assert_eq!(index.catch_up().unwrap().messages, 1);
        assert_index_matches(&pool, 0);
    }
}
