//! Keeps the SQLite write-ahead log short while the writer never stops.
//!
//! SQLite's own automatic checkpoint runs inside the commit that crosses
//! 1,000 WAL pages, which made every such commit of the single writer (and
//! every webhook waiting on it) pause. Connections are therefore opened with
//! `wal_autocheckpoint = 0` and a background task checkpoints instead.
//!
//! Copying pages back (`PASSIVE`) beside the writer is not enough on its
//! own. The log only starts over from its first frame when a write
//! transaction begins while *every* frame has been copied, and under
//! sustained load the writer appends new frames while each pass runs: no
//! pass ever finishes, and the log grew by about 70 MB a second, 1.5 GB in a
//! 20-second load test (and the index SQLite keeps of it in `-shm` with it).
//! So the background task also publishes how long the log is
//! ([`WalLength`]), and once it passes the limit given to [`WalLength::new`]
//! the writer itself runs one more passive checkpoint between two batches
//! ([`WalLength::finish_if_long`]). With no other writer it always finishes,
//! it only has to copy what the background task has not, and sync the
//! database file — and the writer's next transaction starts the log over.
//! `journal_size_limit` then cuts the file back. That pause is as long as
//! what the background task left, so the task runs every few milliseconds
//! (`startup::CHECKPOINT_EVERY`): with a pass every 500 ms the pauses were
//! up to 12 ms, two or three a second at 5,000 webhooks a second.
//!
//! What the task left also includes syncing the database file: SQLite syncs
//! it only after a pass that reached the end of the log, which beside a busy
//! writer only the writer's own pass does, and that sync then wrote out
//! every page the background passes had copied since the last one. So the
//! task syncs the file itself after each pass that copied something
//! ([`Checkpointer::round`]), and the writer's pass finds little left to
//! write.

use std::fs::File;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use diesel::sql_types::Integer;
use diesel::{QueryableByName, RunQueryDsl};
use tokio::sync::oneshot;

use super::{DbConnection, DbPool};

/// The log's length as last seen by a checkpoint, shared by the background
/// task and the writer. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WalLength {
    frames: Arc<AtomicI32>,
    restart_at_frames: i32,
}

impl WalLength {
    pub fn new(restart_at_frames: i32) -> WalLength {
        WalLength {
            frames: Arc::new(AtomicI32::new(0)),
            restart_at_frames,
        }
    }

    /// What a checkpoint beside the writer saw. Even a pass that copied
    /// everything it saw leaves the log long: the writer appended more while
    /// it ran, so only the writer's own pass can finish it.
    fn seen_beside_the_writer(&self, result: &CheckpointResult) {
        self.frames.store(result.log, Ordering::Relaxed);
    }

    /// True once the log has grown past the limit: checked by the writer
    /// after every batch, before it takes a connection for
    /// [`Self::finish_if_long`].
    pub fn is_long(&self) -> bool {
        self.frames.load(Ordering::Relaxed) >= self.restart_at_frames
    }

    /// Run by the writer between batches: when the log has grown past the
    /// limit, copy the rest of it back so that the next batch starts it
    /// over. Returns the checkpoint's report when one ran.
    pub fn finish_if_long(
        &self,
        conn: &mut DbConnection,
    ) -> diesel::QueryResult<Option<CheckpointResult>> {
        if !self.is_long() {
            return Ok(None);
        }
        let began = std::time::Instant::now();
        let result = passive_checkpoint(conn)?;
        log::debug!(
            "writer finished a checkpoint of {} frames in {:.1} ms",
            result.log,
            began.elapsed().as_secs_f64() * 1000.0
        );
        // With no write in progress, a pass that copied every frame leaves
        // nothing behind, and the next write transaction starts the log over.
        // One that could not (the background pass was running) is retried
        // after the next batch.
        let left = if result.copied_everything() {
            0
        } else {
            result.log
        };
        self.frames.store(left, Ordering::Relaxed);
        Ok(Some(result))
    }
}

/// What `PRAGMA wal_checkpoint` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, QueryableByName)]
pub struct CheckpointResult {
    /// 1 when the checkpoint could not finish (a writer or reader was in the way).
    #[diesel(sql_type = Integer)]
    pub busy: i32,
    /// Frames in the log.
    #[diesel(sql_type = Integer)]
    pub log: i32,
    /// Frames copied back into the database file.
    #[diesel(sql_type = Integer)]
    pub checkpointed: i32,
}

impl CheckpointResult {
    /// Every frame in the log was copied back.
    pub fn copied_everything(&self) -> bool {
        self.busy == 0 && self.log == self.checkpointed
    }
}

/// The background task: copies the log back every `every`, off the write
/// path, and publishes its length. At rest (nothing appended since its last
/// pass, and all of it copied) it looks only every [`AT_REST`].
#[derive(Debug, Clone)]
pub struct Checkpointer {
    pub every: Duration,
    pub length: WalLength,
    /// The database file, synced after each pass that copied pages into it;
    /// `None` when it could not be opened (the passes then leave the sync
    /// to the writer's, as SQLite does).
    file: Option<Arc<File>>,
}

/// The running background task.
pub struct CheckpointTask {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl CheckpointTask {
    /// Ends the task after the round under way, if any, and waits for that:
    /// when it returns the task holds no connection.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// How often the background task looks at a log nobody writes to: a pass
/// every few milliseconds is for a writer that keeps appending, and would
/// cost an idle server about 1 % of a core.
pub const AT_REST: Duration = Duration::from_millis(250);

impl Checkpointer {
    /// A task for the SQLite database at `database` (a file path).
    pub fn new(every: Duration, length: WalLength, database: &str) -> Checkpointer {
        let file = match File::open(database) {
            Ok(file) => Some(Arc::new(file)),
            Err(e) => {
                log::warn!("{database}: not opened for syncing beside the writer ({e})");
                None
            }
        };
        Checkpointer {
            every,
            length,
            file,
        }
    }

    /// Runs rounds on the current Tokio runtime until the runtime stops or
    /// [`CheckpointTask::stop`] is called.
    pub fn spawn(self, pool: DbPool) -> CheckpointTask {
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut before: Option<CheckpointResult> = None;
            loop {
                let pool = pool.clone();
                let task = self.clone();
                let now = match tokio::task::spawn_blocking(move || task.round(&pool, before)).await
                {
                    Ok(Ok(result)) => Some(result),
                    Ok(Err(e)) => {
                        log::debug!("WAL checkpoint skipped: {e}");
                        None
                    }
                    Err(_) => None,
                };
                let at_rest = matches!(
                    (before, now),
                    (Some(b), Some(n)) if n.copied_everything() && n.log == b.log
                );
                before = now;
                let pause = if at_rest { AT_REST } else { self.every };
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    // The sender was used or dropped: either way, stop.
                    _ = &mut stopped => return,
                }
            }
        });
        CheckpointTask { stop, task }
    }

    /// One round on a pooled connection, which goes back as soon as the
    /// pass is done; then, when the pass copied pages the round `before` had
    /// not, the database file is synced. That sync is SQLite's own work done
    /// early and beside the writer, not an extra promise: the p99 of the
    /// webhook went from 12.6–13.9 to 10.0–11.1 ms at 64 connections, and
    /// from 4.5–4.8 to 4.2 ms at 5,000 a second (BENCHMARKS.md, nineteenth
    /// pass).
    pub fn round(
        &self,
        pool: &DbPool,
        before: Option<CheckpointResult>,
    ) -> Result<CheckpointResult, String> {
        let result = {
            let mut conn = pool.get().map_err(|e| e.to_string())?;
            passive_checkpoint(&mut conn).map_err(|e| e.to_string())?
        };
        self.length.seen_beside_the_writer(&result);
        if let (Some(file), true) = (&self.file, copied_something_new(before, &result)) {
            // A failure here loses nothing: the writer's pass syncs again,
            // and reports what SQLite sees.
            if let Err(e) = file.sync_data() {
                log::debug!("database file not synced beside the writer: {e}");
            }
        }
        Ok(result)
    }
}

/// Whether a pass copied pages into the database file since the pass
/// `before` it: it copied some, and the log is not as that pass left it.
/// (A log that started over and reached the very same counts again is
/// taken for unchanged; the next pass, or the writer's, syncs it.)
fn copied_something_new(before: Option<CheckpointResult>, now: &CheckpointResult) -> bool {
    now.checkpointed > 0 && before != Some(*now)
}

/// `PASSIVE` never waits for the writer or for readers: it copies what it
/// can. Only SQLite has a write-ahead log to checkpoint.
fn passive_checkpoint(conn: &mut DbConnection) -> diesel::QueryResult<CheckpointResult> {
    let DbConnection::Sqlite(c) = conn else {
        return Err(diesel::result::Error::QueryBuilderError(
            "a WAL checkpoint needs SQLite".into(),
        ));
    };
    // `main.`: a reading connection also has the search index attached, and
    // this is about the database's own log.
    diesel::sql_query("PRAGMA main.wal_checkpoint(PASSIVE)").get_result(c)
}

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection;

    use super::*;
    use crate::db::test_pool;

    #[test]
    fn the_file_is_synced_after_a_pass_that_copied_pages_only() {
        let pass = |log, checkpointed| CheckpointResult {
            busy: 0,
            log,
            checkpointed,
        };
        assert!(copied_something_new(None, &pass(10, 10)));
        assert!(copied_something_new(Some(pass(10, 4)), &pass(12, 12)));
        // The log started over and this pass copied its first frames.
        assert!(copied_something_new(
            Some(pass(8_200, 8_200)),
            &pass(40, 40)
        ));
        // At rest: nothing appended, all of it copied before.
        assert!(!copied_something_new(Some(pass(12, 12)), &pass(12, 12)));
        // Nothing copied: a log that started over and is empty, or a pass
        // that found the writer in the way.
        assert!(!copied_something_new(Some(pass(12, 12)), &pass(0, 0)));
        assert!(!copied_something_new(None, &pass(30, 0)));
    }

    fn wal_bytes(dir: &tempfile::TempDir) -> u64 {
        std::fs::metadata(dir.path().join("test.db-wal"))
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// One writer committing back to back, as under load, with the
    /// background task beside it: the log starts over again and again
    /// instead of growing with every commit, and nothing is lost.
    #[test]
    fn the_log_starts_over_while_a_writer_keeps_committing() {
        let dir = tempfile::tempdir().unwrap();
        let pool = test_pool(&dir);
        let mut writer = pool.get().unwrap();
        writer
            .batch_execute("CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT UNIQUE, v BLOB)")
            .unwrap();

        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let rounds = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let length = WalLength::new(64);
        let background = {
            let database = dir.path().join("test.db");
            let task = Checkpointer::new(
                Duration::from_millis(5),
                length.clone(),
                database.to_str().unwrap(),
            );
            assert!(task.file.is_some(), "the database file opened for syncing");
            let pool = pool.clone();
            let stop = stop.clone();
            let rounds = rounds.clone();
            std::thread::spawn(move || {
                let mut before = None;
                while !stop.load(Ordering::Relaxed) {
                    before = Some(task.round(&pool, before).unwrap());
                    rounds.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(task.every);
                }
            })
        };

        // 3,000 commits, each touching a random page of the unique index and
        // appending a 2 KiB row: over 20 MB of frames in all.
        let mut largest = 0;
        let mut finished = 0;
        for i in 0..3_000u64 {
            let key = format!("{:016x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            writer
                .batch_execute(&format!(
                    "BEGIN IMMEDIATE; INSERT INTO t (k, v) VALUES ('{key}', zeroblob(2048)); COMMIT;"
                ))
                .unwrap();
            if let Some(result) = length.finish_if_long(&mut writer).unwrap() {
                if result.copied_everything() {
                    finished += 1;
                }
            }
            largest = largest.max(wal_bytes(&dir));
            // On a busy machine the task's thread may not get to run for a
            // while, and the log grows without any fault: every 50 commits,
            // let at least one round pass before going on.
            if i % 50 == 49 {
                let seen = rounds.load(Ordering::Relaxed);
                let waited = std::time::Instant::now();
                while rounds.load(Ordering::Relaxed) == seen
                    && waited.elapsed() < Duration::from_secs(10)
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        background.join().unwrap();
        assert!(finished > 0, "the writer never finished a checkpoint");

        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let DbConnection::Sqlite(c) = &mut *writer else {
            unreachable!()
        };
        let count = diesel::sql_query("SELECT count(*) AS n FROM t")
            .get_result::<Count>(c)
            .unwrap()
            .n;
        assert_eq!(count, 3_000);
        // 64 frames of 4 KiB are 256 KiB; allow for the frames appended
        // between two rounds of the background task (a few MB here). Without
        // the writer's pass the log passes 50 MB.
        assert!(largest < 16 << 20, "the WAL grew to {largest} bytes");
    }
}
