//! Makes SQLite commits durable on a thread of their own, so the writer can
//! run the next batch while the disk takes the last one.
//!
//! With `synchronous=FULL` SQLite `fsync`s the write-ahead log inside every
//! commit, and the writer waits for the disk before it starts the next
//! batch: at full load that wait was about 45 % of the writer's time
//! (BENCHMARKS.md "Tenth pass"). Serving with `SQLITE_SYNCHRONOUS=FULL`,
//! leadhook therefore opens its connections with `synchronous=NORMAL`
//! (commits are written to the log but not synced; checkpoints still sync
//! the log before copying it and the database file after) and hands each
//! committed batch's answers to [`WalSync`]. Its thread syncs the log
//! file and only then answers, so a `200` still means the message is on
//! disk. One sync covers every batch committed before it starts, however
//! many queued up meanwhile.
//!
//! What changes is only what other connections see: a batch is readable
//! (an admin list shows it) a millisecond or two before it is durable. A
//! power cut in that window loses it, and since its webhooks were never
//! answered `200`, WhatsApp delivers them again.
//!
//! A sync that fails leaves it unknown what reached the disk (Linux may drop
//! the unwritten pages and report only once). The batches waiting on it are
//! refused, and so is every write after it until the service restarts and
//! SQLite recovers the log from what is really on disk: a redelivery must
//! never be answered `200` as a duplicate of a message that exists only in
//! memory.

use std::io;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

use diesel::RunQueryDsl;

use super::{DbConnection, Unavailable};

/// What to do once the log is synced, given whether that worked.
pub type Answer = Box<dyn FnOnce(Result<(), Unavailable>) + Send>;

/// The log-syncing thread of one database. Dropping it waits until every
/// answer handed to it is given.
pub struct WalSync {
    queue: Option<mpsc::Sender<Answer>>,
    failure: Arc<OnceLock<String>>,
    thread: Option<JoinHandle<()>>,
}

impl WalSync {
    /// Starts the thread for the write-ahead log at `wal`. The file must
    /// exist (it does once a connection has opened the database in WAL
    /// mode): a wrong path would otherwise make every sync a silent no-op.
    pub fn start(wal: PathBuf) -> io::Result<WalSync> {
        std::fs::metadata(&wal).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("the write-ahead log {}: {e}", wal.display()),
            )
        })?;
        WalSync::spawn(wal)
    }

    fn spawn(wal: PathBuf) -> io::Result<WalSync> {
        let (queue, pending) = mpsc::channel::<Answer>();
        let failure = Arc::new(OnceLock::new());
        let failed = failure.clone();
        let thread = std::thread::Builder::new()
            .name("leadhook-wal-sync".into())
            .spawn(move || sync_loop(&wal, &pending, &failed))?;
        Ok(WalSync {
            queue: Some(queue),
            failure,
            thread: Some(thread),
        })
    }

    /// Why writes are refused, once a sync has failed.
    pub fn failure(&self) -> Option<Unavailable> {
        self.failure.get().map(|why| Unavailable(why.clone()))
    }

    /// Calls `answer` once everything committed so far is on disk (or with
    /// the error that stopped it getting there).
    pub fn after_sync(&self, answer: Answer) {
        let sent = match &self.queue {
            Some(queue) => queue.send(answer),
            None => Err(mpsc::SendError(answer)),
        };
        if let Err(mpsc::SendError(answer)) = sent {
            answer(Err(Unavailable(
                "the log-syncing thread has stopped".into(),
            )));
        }
    }
}

impl Drop for WalSync {
    fn drop(&mut self) {
        // Closing the queue ends the thread once it has answered the rest.
        self.queue.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The write-ahead log of the connection's main database: its file as
/// SQLite resolved it, with SQLite's `-wal` suffix.
pub fn log_of(conn: &mut DbConnection) -> diesel::QueryResult<PathBuf> {
    use diesel::dsl::sql;
    use diesel::sql_types::Text;
    let DbConnection::Sqlite(c) = conn else {
        return Err(diesel::result::Error::QueryBuilderError(
            "only SQLite has a write-ahead log".into(),
        ));
    };
    let file: String = diesel::select(sql::<Text>(
        "(SELECT file FROM pragma_database_list WHERE name = 'main')",
    ))
    .get_result(c)?;
    Ok(PathBuf::from(file + "-wal"))
}

fn sync_loop(wal: &std::path::Path, pending: &mpsc::Receiver<Answer>, failure: &OnceLock<String>) {
    while let Ok(first) = pending.recv() {
        // Everything queued so far was committed before this sync starts.
        let mut answers = vec![first];
        answers.extend(pending.try_iter());
        let synced = match failure.get() {
            Some(why) => Err(Unavailable(why.clone())),
            None => sync(wal).map_err(|e| {
                let why = format!(
                    "syncing the write-ahead log {} failed ({e}); writes are refused until the service restarts",
                    wal.display()
                );
                log::error!("{why}");
                Unavailable(failure.get_or_init(|| why).clone())
            }),
        };
        for answer in answers {
            answer(synced.clone());
        }
    }
}

/// `fdatasync` of the log through a descriptor of its own: the kernel
/// writes out the file's dirty pages whichever descriptor wrote them.
/// Opened afresh each time, so a log that SQLite deleted and created again
/// (when the last connection closes and a new one opens) is the one synced.
fn sync(wal: &std::path::Path) -> io::Result<()> {
    match std::fs::File::open(wal) {
        Ok(file) => file.sync_data(),
        // SQLite deletes the log only after copying all of it into the
        // database file and syncing that, when its last connection closes:
        // what was committed is on disk already.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc as std_mpsc;
    use std::time::Duration;

    use super::*;

    fn log_in(dir: &tempfile::TempDir) -> PathBuf {
        let wal = dir.path().join("db.sqlite-wal");
        std::fs::write(&wal, b"frames").unwrap();
        wal
    }

    #[test]
    fn a_missing_log_is_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let err = WalSync::start(dir.path().join("nowhere-wal"))
            .err()
            .expect("refused");
        assert!(err.to_string().contains("nowhere-wal"), "{err}");
    }

    #[test]
    fn every_answer_is_given_after_a_sync_and_before_drop_returns() {
        let dir = tempfile::tempdir().unwrap();
        let sync = WalSync::start(log_in(&dir)).unwrap();
        let (tx, rx) = std_mpsc::channel();
        for i in 0..100 {
            let tx = tx.clone();
            sync.after_sync(Box::new(move |r| tx.send((i, r.is_ok())).unwrap()));
        }
        drop(sync);
        let got: Vec<_> = rx.try_iter().collect();
        assert_eq!(got.len(), 100, "all answered by the time drop returned");
        assert!(got.iter().all(|(_, ok)| *ok));
        let order: Vec<_> = got.iter().map(|(i, _)| *i).collect();
        assert_eq!(
            order,
            (0..100).collect::<Vec<_>>(),
            "in the order handed over"
        );
    }

    #[test]
    fn a_log_deleted_by_sqlite_counts_as_synced() {
        let dir = tempfile::tempdir().unwrap();
        let wal = log_in(&dir);
        let sync = WalSync::start(wal.clone()).unwrap();
        std::fs::remove_file(&wal).unwrap();
        let (tx, rx) = std_mpsc::channel();
        sync.after_sync(Box::new(move |r| tx.send(r.is_ok()).unwrap()));
        assert!(rx.recv_timeout(Duration::from_secs(5)).unwrap());
        assert!(sync.failure().is_none());
    }

    #[test]
    fn a_failed_sync_refuses_its_answers_and_every_write_after_it() {
        let dir = tempfile::tempdir().unwrap();
        // A log that cannot be opened (its path runs through a regular
        // file) stands in for a disk that reports an error.
        let blocker = dir.path().join("not-a-dir");
        std::fs::write(&blocker, b"").unwrap();
        let sync = WalSync::spawn(blocker.join("db-wal")).unwrap();
        let (tx, rx) = std_mpsc::channel();
        let tx2 = tx.clone();
        sync.after_sync(Box::new(move |r| tx.send(r.err().map(|e| e.0)).unwrap()));
        let first = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        let why = first.expect("the sync failed");
        assert!(why.contains("db-wal") && why.contains("restarts"), "{why}");
        assert_eq!(sync.failure().map(|e| e.0), Some(why.clone()));
        sync.after_sync(Box::new(move |r| tx2.send(r.err().map(|e| e.0)).unwrap()));
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), Some(why));
    }
}
