//! The single writer: every write of the service runs here, on one thread,
//! with group commit.
//!
//! Callers hand a closure to [`Writer::write`] and await its answer. The
//! writer thread takes whatever jobs are waiting (up to a batch limit), runs
//! them in one transaction with a savepoint per job (none for a job alone
//! in its batch), commits once and only then answers each caller. So:
//! - an answer of `Ok` means the job's writes are committed (the webhook's
//!   `200` promise);
//! - a failing job rolls back to its own savepoint and cannot sink the others;
//! - SQLite pays one fsync per batch rather than one per request, and never
//!   sees two writers contend for its lock;
//! - when the database refuses a batch (locked, unreachable), the jobs that
//!   queued behind it are refused with it, so a webhook waits at most about
//!   two database timeouts for its `503`;
//! - on PostgreSQL the batch holds a transaction-scoped advisory lock, so
//!   writes stay serialised even when several replicas share the database.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::thread::JoinHandle;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::Connection;
use tokio::sync::{mpsc, oneshot};

use super::checkpoint::WalLength;
use super::search_index::Nudge;
use super::{DbConnection, DbPool, Unavailable};

/// Key of the PostgreSQL advisory lock that serialises writers ("LEADHOOK" in ASCII).
const PG_WRITE_LOCK_KEY: i64 = 0x4C45_4144_484F_4F4B;

/// How a job's writes are kept apart from the other jobs of its batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// The job runs without a savepoint: alone in the transaction, or beside
    /// jobs that can all run again. Should it fail, the whole transaction is
    /// rolled back, which for a job alone undoes exactly what a savepoint
    /// would have, and a batch of several runs again, guarded.
    Unguarded,
    /// The job runs in a savepoint of its own, beside other jobs.
    Guarded,
}

/// Work queued for the writer thread, type-erased.
trait Job: Send {
    /// Runs the job inside the batch transaction; `true` when it succeeded.
    fn run(&mut self, conn: &mut DbConnection, attempt: Attempt) -> bool;
    /// Whether a failed [`Attempt::Unguarded`] run is followed by a guarded one.
    fn reruns(&self) -> bool;
    /// Answers the caller once the fate of the batch is known.
    fn finish(self: Box<Self>, batch: Result<(), Unavailable>);
}

struct TypedJob<F, T, E> {
    work: F,
    /// See [`Job::reruns`]: set by [`Writer::write_optimistic`].
    reruns: bool,
    outcome: Option<Result<T, E>>,
    reply: oneshot::Sender<Result<T, E>>,
}

impl<F, T, E> Job for TypedJob<F, T, E>
where
    F: FnMut(&mut DbConnection, Attempt) -> Result<T, E> + Send,
    T: Send,
    E: From<diesel::result::Error> + From<Unavailable> + Send,
{
    fn run(&mut self, conn: &mut DbConnection, attempt: Attempt) -> bool {
        let work = &mut self.work;
        let outcome = match attempt {
            Attempt::Unguarded => work(conn, attempt),
            // Nested inside the batch transaction, so diesel uses a savepoint.
            Attempt::Guarded => conn.transaction(|c| work(c, attempt)),
        };
        let succeeded = outcome.is_ok();
        self.outcome = Some(outcome);
        succeeded
    }

    fn reruns(&self) -> bool {
        self.reruns
    }

    fn finish(self: Box<Self>, batch: Result<(), Unavailable>) {
        let answer = match (self.outcome, batch) {
            // The job's own failure is the more useful answer.
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (_, Err(e)) => Err(E::from(e)),
            (None, Ok(())) => Err(E::from(Unavailable("the write was not run".into()))),
        };
        // The caller may have gone away (client disconnected); nothing to do.
        let _ = self.reply.send(answer);
    }
}

/// Handle for submitting writes. Cheap to clone.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Box<dyn Job>>,
}

impl Writer {
    /// Starts the writer thread. It stops once every `Writer` clone is
    /// dropped and the queue is drained; join the handle to wait for that.
    /// `wal` is given for SQLite: between batches the writer then lets the
    /// write-ahead log start over once it is long (see [`super::checkpoint`]).
    /// `search` too: the writer wakes the search index thread after each
    /// commit (see [`super::search_index`]).
    pub fn start(
        pool: DbPool,
        max_batch: usize,
        wal: Option<WalLength>,
        search: Option<Nudge>,
    ) -> (Writer, JoinHandle<()>) {
        let (queue, receiver) = mpsc::channel(max_batch.max(1) * 4);
        let handle = std::thread::Builder::new()
            .name("leadhook-writer".into())
            .spawn(move || writer_loop(pool, receiver, max_batch.max(1), wal, search))
            .expect("spawning the writer thread");
        (Writer { queue }, handle)
    }

    /// Runs `work` in a transaction of its own within the next batch and
    /// answers once that batch is committed (or failed).
    pub async fn write<F, T, E>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<diesel::result::Error> + From<Unavailable> + Send + 'static,
    {
        // Run once only: a job that does not rerun is never called again.
        let mut work = Some(work);
        let once = move |conn: &mut DbConnection, _: Attempt| match work.take() {
            Some(work) => work(conn),
            None => Err(E::from(Unavailable("the write was run already".into()))),
        };
        self.submit(once, false).await
    }

    /// Like [`Writer::write`], for work that can tell a first, savepoint-free
    /// attempt from a guarded one. Alone in its batch, or beside other such
    /// work only, `work` first runs with [`Attempt::Unguarded`]; should that
    /// (or another job's) fail, the transaction is rolled back and `work`
    /// runs again with [`Attempt::Guarded`] in a new one. Beside a plain
    /// [`Writer::write`] it runs guarded only.
    pub async fn write_optimistic<F, T, E>(&self, work: F) -> Result<T, E>
    where
        F: FnMut(&mut DbConnection, Attempt) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<diesel::result::Error> + From<Unavailable> + Send + 'static,
    {
        self.submit(work, true).await
    }

    async fn submit<F, T, E>(&self, work: F, reruns: bool) -> Result<T, E>
    where
        F: FnMut(&mut DbConnection, Attempt) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<diesel::result::Error> + From<Unavailable> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(TypedJob {
            work,
            reruns,
            outcome: None,
            reply,
        });
        if self.queue.send(job).await.is_err() {
            return Err(E::from(Unavailable("the writer has stopped".into())));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(E::from(Unavailable("the writer has stopped".into()))))
    }
}

fn writer_loop(
    pool: DbPool,
    mut receiver: mpsc::Receiver<Box<dyn Job>>,
    max_batch: usize,
    wal: Option<WalLength>,
    search: Option<Nudge>,
) {
    while let Some(first) = receiver.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let outcome = run_batch(&pool, &mut batch);
        if let Err(e) = &outcome {
            log::warn!("write batch of {} failed: {e}", batch.len());
            // Jobs that queued up while this batch waited out the database's
            // timeout get the same answer now rather than a timeout of their
            // own: otherwise each queued job (the ingest queue keeps two in
            // flight) adds another full timeout to the wait of the webhooks
            // behind it. Their callers answer 503 and WhatsApp retries.
            while let Ok(job) = receiver.try_recv() {
                batch.push(job);
            }
        }
        let committed = outcome.is_ok();
        for job in batch {
            job.finish(outcome.clone());
        }
        if let (Some(search), true) = (&search, committed) {
            search.wake();
        }
        // Checked before taking a connection: most batches leave the log short.
        if let (Some(wal), true) = (&wal, committed) {
            if wal.is_long() {
                finish_checkpoint(&pool, wal);
            }
        }
    }
    log::debug!("writer stopped");
}

fn run_batch(pool: &DbPool, batch: &mut [Box<dyn Job>]) -> Result<(), Unavailable> {
    let mut conn = pool.get().map_err(|e| Unavailable(e.to_string()))?;
    let conn: &mut DbConnection = &mut conn;
    // At load the usual batch is one job holding every webhook body that
    // queued up, or two of them (`ingest::queue` keeps two in flight). Without
    // savepoints SQLite keeps no sub-journal of the pages the jobs change
    // (7 % of the writer's time). A job alone runs so whether or not it can
    // run again; several only when every one of them can.
    let all_rerun = batch.iter().all(|job| job.reruns());
    if batch.len() == 1 || all_rerun {
        let succeeded = in_transaction(conn, |c| {
            batch.iter_mut().all(|job| job.run(c, Attempt::Unguarded))
        })?;
        if succeeded || !all_rerun {
            return Ok(());
        }
    }
    in_transaction(conn, |c| {
        for job in batch.iter_mut() {
            job.run(c, Attempt::Guarded);
        }
        true
    })
    .map(|_| ())
}

/// Runs `body` in a batch transaction, committed when it returns `true` and
/// rolled back otherwise; its answer once that is done.
fn in_transaction(
    conn: &mut DbConnection,
    body: impl FnOnce(&mut DbConnection) -> bool,
) -> Result<bool, Unavailable> {
    type Manager = <DbConnection as Connection>::TransactionManager;
    begin_batch(conn).map_err(|e| Unavailable(e.to_string()))?;
    let ran = catch_unwind(AssertUnwindSafe(|| body(conn)));
    let ended = match ran {
        Ok(true) => Manager::commit_transaction(conn).map(|()| true),
        Ok(false) => Manager::rollback_transaction(conn).map(|()| false),
        Err(_) => {
            // A job panicked mid-transaction: undo the whole batch. Should the
            // rollback fail, the open transaction makes the pool's
            // `has_broken` check discard the connection.
            let _ = Manager::rollback_transaction(conn);
            return Err(Unavailable("internal error in a write".into()));
        }
    };
    ended.map_err(|e| Unavailable(e.to_string()))
}

/// Between batches, once the batch's callers are answered: only the next
/// batch waits for it. A checkpoint that fails changes nothing committed;
/// a later one retries.
fn finish_checkpoint(pool: &DbPool, wal: &WalLength) {
    let done = pool
        .get()
        .map_err(|e| e.to_string())
        .and_then(|mut conn| wal.finish_if_long(&mut conn).map_err(|e| e.to_string()));
    if let Err(e) = done {
        log::debug!("WAL checkpoint by the writer skipped: {e}");
    }
}

/// Opens the batch transaction holding the write lock from the start, so a
/// database that cannot take writes fails the batch once, after one timeout,
/// rather than once per job in turn. SQLite: `BEGIN IMMEDIATE` (a deferred
/// `BEGIN` would wait for the lock at each job's first write). PostgreSQL: a
/// transaction-scoped advisory lock that serialises writers across replicas.
fn begin_batch(conn: &mut DbConnection) -> diesel::QueryResult<()> {
    match conn {
        // Through the inner connection's transaction manager, which the
        // derived `DbConnection` delegates to: the jobs' nested transactions
        // then become savepoints of this one.
        DbConnection::Sqlite(c) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")
        }
        DbConnection::Postgres(c) => {
            AnsiTransactionManager::begin_transaction(c)?;
            let locked = c.batch_execute(&format!(
                "SELECT pg_advisory_xact_lock({PG_WRITE_LOCK_KEY})"
            ));
            if locked.is_err() {
                let _ = AnsiTransactionManager::rollback_transaction(c);
            }
            locked
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc as std_mpsc;
    use std::time::Duration;

    use diesel::prelude::*;

    use super::*;
    use crate::db::{schema::webhook_failures, test_pool};
    use crate::failures;

    /// A migrated database in `dir` and a writer on it.
    fn start(dir: &tempfile::TempDir, max_batch: usize) -> (DbPool, Writer, JoinHandle<()>) {
        let pool = test_pool(dir);
        let (writer, thread) = Writer::start(pool.clone(), max_batch, None, None);
        (pool, writer, thread)
    }

    fn reasons(pool: &DbPool) -> Vec<String> {
        let mut conn = pool.get().unwrap();
        crate::with_conn!(&mut *conn, c => webhook_failures::table
            .select(webhook_failures::reason)
            .order(webhook_failures::id)
            .load(c))
        .unwrap()
    }

    #[derive(Debug)]
    enum TestError {
        Db,
        Refused,
    }
    impl From<diesel::result::Error> for TestError {
        fn from(_: diesel::result::Error) -> Self {
            TestError::Db
        }
    }
    impl From<Unavailable> for TestError {
        fn from(_: Unavailable) -> Self {
            TestError::Db
        }
    }

    fn record(reason: &'static str) -> impl FnOnce(&mut DbConnection) -> Result<(), TestError> {
        move |conn| {
            failures::record(conn, reason, b"{}", crate::time::now()).map_err(TestError::from)
        }
    }

    /// Holds the writer thread inside a job until `release` is sent; the
    /// returned task ends with that job.
    async fn hold(
        writer: &Writer,
    ) -> (
        std_mpsc::Sender<()>,
        tokio::task::JoinHandle<Result<(), TestError>>,
    ) {
        let (release, hold) = std_mpsc::channel::<()>();
        let (entered, wait_entered) = std_mpsc::channel::<()>();
        let blocker = {
            let writer = writer.clone();
            tokio::spawn(async move {
                writer
                    .write(move |_conn| {
                        entered.send(()).unwrap();
                        hold.recv().unwrap();
                        Ok::<_, TestError>(())
                    })
                    .await
            })
        };
        tokio::task::spawn_blocking(move || wait_entered.recv().unwrap())
            .await
            .unwrap();
        (release, blocker)
    }

    /// Three jobs queued while the writer is busy go out in one batch; the
    /// failing one is rolled back to its savepoint, the other two commit and
    /// each caller hears its own outcome.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_job_does_not_sink_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, writer, _thread) = start(&dir, 16);

        // Hold the writer thread inside a first job until the others are queued.
        let (release, blocker) = hold(&writer).await;

        let a = tokio::spawn({
            let w = writer.clone();
            async move { w.write(record("a")).await }
        });
        let b = tokio::spawn({
            let w = writer.clone();
            async move {
                w.write(|conn| {
                    record("b, rolled back")(conn)?;
                    Err::<(), _>(TestError::Refused)
                })
                .await
            }
        });
        let c = tokio::spawn({
            let w = writer.clone();
            async move { w.write(record("c")).await }
        });
        // Let the three reach the queue, then let the blocker finish.
        tokio::time::sleep(Duration::from_millis(200)).await;
        release.send(()).unwrap();

        blocker.await.unwrap().unwrap();
        assert!(a.await.unwrap().is_ok());
        assert!(matches!(b.await.unwrap(), Err(TestError::Refused)));
        assert!(c.await.unwrap().is_ok());
        // The three tasks may reach the queue in any order.
        let mut committed = reasons(&pool);
        committed.sort();
        assert_eq!(committed, ["a", "c"]);
    }

    /// A job alone in its batch runs without a savepoint; its failure still
    /// leaves nothing behind.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sole_job_that_fails_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, writer, _thread) = start(&dir, 16);
        let failed = writer
            .write(|conn| {
                record("rolled back")(conn)?;
                Err::<(), _>(TestError::Refused)
            })
            .await;
        assert!(matches!(failed, Err(TestError::Refused)));
        writer.write(record("kept")).await.unwrap();
        assert_eq!(reasons(&pool), ["kept"]);
    }

    /// An optimistic job that fails alone is rolled back and run once more,
    /// guarded; what the second run writes is committed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_optimistic_job_is_run_again_guarded_after_a_failed_sole_attempt() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, writer, _thread) = start(&dir, 16);
        let attempts = writer
            .write_optimistic({
                let mut attempts = Vec::new();
                move |conn, attempt| {
                    attempts.push(attempt);
                    match attempt {
                        Attempt::Unguarded => {
                            record("first attempt")(conn)?;
                            Err(TestError::Refused)
                        }
                        Attempt::Guarded => {
                            record("second attempt")(conn)?;
                            Ok(attempts.clone())
                        }
                    }
                }
            })
            .await
            .unwrap();
        assert_eq!(attempts, [Attempt::Unguarded, Attempt::Guarded]);
        assert_eq!(reasons(&pool), ["second attempt"]);
    }

    /// Optimistic jobs that share a batch run without savepoints; when one of
    /// them fails, the transaction is rolled back and both run again
    /// guarded, so what the other wrote unguarded is not left behind twice.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn optimistic_jobs_in_one_batch_run_again_guarded_when_one_fails() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, writer, _thread) = start(&dir, 16);

        // Hold the writer so that both jobs queue up for the same batch.
        let (release, blocker) = hold(&writer).await;
        let job = |name: &'static str, fails_unguarded: bool| {
            let writer = writer.clone();
            tokio::spawn(async move {
                let mut attempts = Vec::new();
                writer
                    .write_optimistic(move |conn, attempt| {
                        attempts.push(attempt);
                        record(name)(conn)?;
                        if fails_unguarded && attempt == Attempt::Unguarded {
                            return Err(TestError::Refused);
                        }
                        Ok(attempts.clone())
                    })
                    .await
            })
        };
        let a = job("a", false);
        let b = job("b", true);
        // Both are queued once the writer's channel holds them.
        while writer.queue.capacity() > writer.queue.max_capacity() - 2 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        release.send(()).unwrap();
        blocker.await.unwrap().unwrap();

        // The jobs may reach the queue in either order: `a` ran unguarded
        // only when it came first.
        let a = a.await.unwrap().unwrap();
        assert!(
            a == [Attempt::Unguarded, Attempt::Guarded] || a == [Attempt::Guarded],
            "{a:?}"
        );
        let b = b.await.unwrap().unwrap();
        assert_eq!(b, [Attempt::Unguarded, Attempt::Guarded]);
        let mut committed = reasons(&pool);
        committed.sort();
        assert_eq!(committed, ["a", "b"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn answers_unavailable_once_the_writer_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let (_pool, writer, thread) = start(&dir, 4);
        let survivor = writer.clone();
        drop(writer);
        // The thread keeps running while a clone lives.
        assert!(survivor.write(record("still works")).await.is_ok());
        let (queue, _) = mpsc::channel(1);
        let dead = Writer { queue };
        assert!(matches!(dead.write(record("x")).await, Err(TestError::Db)));
        drop(survivor);
        tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap();
    }
}
