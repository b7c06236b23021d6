//! Storage plumbing: one connection type over SQLite or PostgreSQL, chosen at
//! runtime from `DATABASE_URL`, an r2d2 pool of it, embedded migrations, and
//! the single writer that commits every write (see [`writer`]).
//!
//! Queries are written once with diesel's DSL and compiled for each backend
//! through [`with_conn!`]: the derived `MultiBackend` lacks `ON CONFLICT`,
//! booleans and `RETURNING`, which the concrete backends both have.

pub mod checkpoint;
pub mod page_cache;
pub mod reuse;
pub mod schema;
pub mod search_index;
pub mod sql_time;
pub mod wal_writes;
pub mod writer;

pub use writer::Attempt;

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, QueryResult, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::config::{DatabaseTarget, SqliteSynchronous};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// A connection to whichever database the configuration names.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

/// Runs `$body` with `$c` bound to the concrete connection inside a
/// [`DbConnection`]; the body is compiled once per backend.
#[macro_export]
macro_rules! with_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::db::DbConnection::Sqlite($c) => $body,
            $crate::db::DbConnection::Postgres($c) => $body,
        }
    };
}

pub type DbPool = r2d2::Pool<ConnectionManager>;

/// The database could not be reached or could not take a write in time.
#[derive(Debug, Clone, thiserror::Error)]
#[error("database unavailable: {0}")]
pub struct Unavailable(pub String);

/// The pool for reads and the writer for writes: what request handlers use.
#[derive(Clone)]
pub struct Database {
    pub pool: DbPool,
    pub writer: writer::Writer,
}

impl Database {
    /// Runs a read on a pooled connection, off the async executor.
    pub async fn read<F, T, E>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<Unavailable> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(|e| Unavailable(e.to_string()))?;
            work(&mut conn)
        })
        .await
        .unwrap_or_else(|e| Err(E::from(Unavailable(format!("read task failed: {e}")))))
    }

    /// Runs a write through the single writer; see [`writer`].
    pub async fn write<F, T, E>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<diesel::result::Error> + From<Unavailable> + Send + 'static,
    {
        self.writer.write(work).await
    }

    /// Runs a write that may be attempted twice; see
    /// [`writer::Writer::write_optimistic`].
    pub async fn write_optimistic<F, T, E>(&self, work: F) -> Result<T, E>
    where
        F: FnMut(&mut DbConnection, Attempt) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<diesel::result::Error> + From<Unavailable> + Send + 'static,
    {
        self.writer.write_optimistic(work).await
    }

    /// True when a connection can be had and answers a query.
    pub async fn ping(&self) -> bool {
        self.read(|conn| {
            conn.batch_execute("SELECT 1")
                .map_err(|e| Unavailable(e.to_string()))
        })
        .await
        .is_ok()
    }
}
pub type PooledConnection = r2d2::PooledConnection<ConnectionManager>;

/// Opens connections for the pool. Unlike `establish` of the derived enum,
/// which tries every backend in turn, it opens exactly the configured one (a
/// mistyped PostgreSQL URL must never silently become a SQLite file).
#[derive(Debug, Clone)]
pub struct ConnectionManager {
    target: DatabaseTarget,
    synchronous: SqliteSynchronous,
    /// How long SQLite waits for a lock before giving up: the same bound as
    /// the pool's, so a locked database answers `503` in bounded time.
    busy_timeout: Duration,
    /// SQLite: attach the search indexes ([`search_index`]). For
    /// reading connections only: a connection that writes with the index
    /// attached would take its lock too.
    attach_search: bool,
}

impl ConnectionManager {
    pub fn new(
        target: DatabaseTarget,
        synchronous: SqliteSynchronous,
        busy_timeout: Duration,
        attach_search: bool,
    ) -> Self {
        Self {
            target,
            synchronous,
            busy_timeout,
            attach_search,
        }
    }
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConnection, Self::Error> {
        match &self.target {
            DatabaseTarget::Sqlite(path) => {
                sqlite_process_setup();
                let mut conn = SqliteConnection::establish(path)
                    .map_err(diesel::r2d2::Error::ConnectionError)?;
                // busy_timeout first: the other pragmas may need a lock that
                // another connection (a checkpoint, `leadhook migrate`)
                // holds for a moment. WAL lets readers run beside the
                // writer; foreign keys are off by default in SQLite.
                // temp_store=MEMORY keeps the per-request savepoint journals
                // off disk (they are rolled back or released within the
                // batch; the WAL holds what is committed); a 32 MiB page
                // cache keeps the hot index pages of the write path; WAL
                // checkpoints run beside the writer (`checkpoint`), and a
                // log that starts over is cut back to 64 MiB on disk.
                let pragmas = format!(
                    "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; \
                     PRAGMA foreign_keys = ON; PRAGMA synchronous = {}; \
                     PRAGMA temp_store = MEMORY; PRAGMA cache_size = -32768; \
                     PRAGMA wal_autocheckpoint = 0; \
                     PRAGMA journal_size_limit = 67108864;",
                    self.busy_timeout.as_millis(),
                    self.synchronous.pragma_value()
                );
                conn.batch_execute(&pragmas)
                    .map_err(diesel::r2d2::Error::QueryError)?;
                if self.attach_search {
                    conn.batch_execute(&format!(
                        "ATTACH DATABASE {} AS {};",
                        search_index::quoted(&search_index::path_for(path)),
                        search_index::SCHEMA
                    ))
                    .map_err(diesel::r2d2::Error::QueryError)?;
                }
                Ok(DbConnection::Sqlite(conn))
            }
            DatabaseTarget::Postgres(url) => {
                postgres_process_setup();
                let mut conn =
                    PgConnection::establish(url).map_err(diesel::r2d2::Error::ConnectionError)?;
                // diesel keeps prepared statements per connection; after five
                // runs PostgreSQL may switch one to a generic plan, chosen
                // while the tables were small. For the write path's
                // `= ANY($1)` look-ups that plan was a sequential scan, kept
                // as the tables grew (most of the database's time at 10,000
                // leads). Planning each run with its values costs far less.
                conn.batch_execute("SET plan_cache_mode = force_custom_plan")
                    .map_err(diesel::r2d2::Error::QueryError)?;
                Ok(DbConnection::Postgres(conn))
            }
        }
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), Self::Error> {
        conn.batch_execute("SELECT 1")
            .map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        use diesel::connection::TransactionManager;
        use diesel::r2d2::R2D2Connection;
        conn.is_broken()
            || <DbConnection as Connection>::TransactionManager::is_broken_transaction_manager(conn)
    }
}

/// Process-wide set-up before the first PostgreSQL connection: OpenSSL,
/// which libpq uses for TLS, is initialised without its clean-up at exit.
/// That clean-up frees OpenSSL's global state while other threads may still
/// use it: an r2d2 worker thread re-opening a connection, or closing the
/// pool's connections as the last handle on it goes. The process then ended
/// with SIGSEGV after a clean stop. OpenSSL decides whether to clean up at
/// its first initialisation, so this runs before libpq's (programs that open
/// a connection with libpq directly, such as the tests, call it first); the
/// operating system reclaims the memory at exit anyway.
pub fn postgres_process_setup() {
    // Idempotent: the crate initialises once per process.
    openssl_sys::init();
}

/// Process-wide SQLite set-up, once, before the first connection:
/// - the "multi-thread" threading mode instead of the default "serialized":
///   the pool already hands each connection to one thread at a time, so
///   SQLite's own per-call mutex (about 5 % of the writer's time) protects
///   nothing. Too late once SQLite is initialised (a second pool in the same
///   process); it then stays serialized, which is merely slower;
/// - no memory statistics: keeping them takes a global mutex around every
///   allocation SQLite makes, and nothing here reads them;
/// - the built-in page cache without its futile end-of-transaction scans
///   ([`page_cache`]), under the same condition;
/// - write-ahead log writes handed to the kernel in one call per commit
///   ([`wal_writes`]).
pub(crate) fn sqlite_process_setup() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: sqlite3_config is called before any other SQLite function
        // of this process (guarded by `Once`, and this is the only place
        // connections are opened); with any other timing it returns
        // SQLITE_MISUSE and changes nothing.
        let rc =
            unsafe { libsqlite3_sys::sqlite3_config(libsqlite3_sys::SQLITE_CONFIG_MULTITHREAD) };
        if rc != libsqlite3_sys::SQLITE_OK {
            log::debug!("SQLite stays in serialized threading mode (sqlite3_config: {rc})");
        }
        // SAFETY: as above.
        let rc = unsafe {
            libsqlite3_sys::sqlite3_config(
                libsqlite3_sys::SQLITE_CONFIG_MEMSTATUS,
                0 as std::ffi::c_int,
            )
        };
        if rc != libsqlite3_sys::SQLITE_OK {
            log::debug!("SQLite keeps its memory statistics (sqlite3_config: {rc})");
        }
        let rc = page_cache::install();
        if rc != libsqlite3_sys::SQLITE_OK {
            log::debug!("SQLite keeps its page cache as it is (sqlite3_config: {rc})");
        }
        let rc = wal_writes::register();
        if rc != libsqlite3_sys::SQLITE_OK {
            log::warn!("SQLite writes its log page by page (registering the VFS: {rc})");
        }
    });
}

/// A migrated SQLite database in `dir`, for the unit tests of modules that
/// write; its connections have the search indexes attached, which
/// [`test_search_catch_up`] brings up to date.
#[cfg(test)]
pub fn test_pool(dir: &tempfile::TempDir) -> DbPool {
    let path = test_database(dir);
    let target = DatabaseTarget::Sqlite(path.clone());
    let pool = build_pool(
        &target,
        crate::config::SqliteSynchronous::Normal,
        3,
        std::time::Duration::from_secs(5),
        true,
    )
    .expect("a SQLite pool");
    run_migrations(&mut pool.get().expect("a connection")).expect("migrations");
    search_index::SearchIndex::open(&path, Duration::from_secs(5)).expect("a search index");
    pool
}

/// The file of [`test_pool`]'s database in `dir`.
#[cfg(test)]
pub fn test_database(dir: &tempfile::TempDir) -> String {
    dir.path().join("test.db").display().to_string()
}

/// Indexes what the unit test wrote to the database of [`test_pool`], as the
/// server's index thread would.
#[cfg(test)]
pub fn test_search_catch_up(dir: &tempfile::TempDir) {
    search_index::SearchIndex::open(&test_database(dir), Duration::from_secs(5))
        .and_then(|mut index| index.catch_up().map_err(|e| e.to_string()))
        .expect("the search index caught up");
}

/// Builds the pool. The first connection is opened eagerly so that a wrong
/// `DATABASE_URL` stops startup instead of failing the first webhook.
/// `attach_search` gives SQLite connections the search indexes, for
/// a pool of reads ([`search_index`]).
pub fn build_pool(
    target: &DatabaseTarget,
    synchronous: SqliteSynchronous,
    size: u32,
    timeout: Duration,
    attach_search: bool,
) -> Result<DbPool, String> {
    let manager = ConnectionManager::new(target.clone(), synchronous, timeout, attach_search);
    // Connect once by hand first: r2d2 would only report a timeout, the
    // driver's own message says what is wrong.
    r2d2::ManageConnection::connect(&manager).map_err(|e| e.to_string())?;
    r2d2::Pool::builder()
        .max_size(size)
        .min_idle(Some(1))
        .connection_timeout(timeout)
        // A broken connection is detected by `has_broken`; a check-out query
        // would cost a round trip on every webhook batch.
        .test_on_check_out(false)
        .build(manager)
        .map_err(|e| e.to_string())
}

/// Runs `work` inside the current transaction with PostgreSQL's plan cache
/// back at its default (`auto`), then returns it to the per-run planning
/// each connection starts with (see `ConnectionManager::connect`).
///
/// That setting reaches the queries PostgreSQL runs inside a statement
/// too: a message INSERT checks each row's foreign key with `SELECT 1 FROM
/// leads WHERE id = $1 FOR KEY SHARE`, and the counting trigger updates
/// `lead_counters` by its key. Planned at every run, those took 1.27 s of
/// a 15 s load (25 µs a message; BENCHMARKS.md, eighteenth pass). Cached,
/// each stays a look-up by primary key, which no growth of the tables can
/// make wrong. Should `work` fail, the rollback of the transaction (or of
/// its savepoint) undoes the `SET LOCAL` too; outside a transaction it
/// would change nothing. SQLite: `work` alone.
pub fn with_cached_plans<T>(
    conn: &mut DbConnection,
    work: impl FnOnce(&mut DbConnection) -> QueryResult<T>,
) -> QueryResult<T> {
    if let DbConnection::Postgres(c) = conn {
        c.batch_execute("SET LOCAL plan_cache_mode = auto")?;
    }
    let done = work(conn)?;
    if let DbConnection::Postgres(c) = conn {
        c.batch_execute("SET LOCAL plan_cache_mode = force_custom_plan")?;
    }
    Ok(done)
}

/// Applies the embedded migrations of the connection's backend; returns how
/// many were applied.
pub fn run_migrations(conn: &mut DbConnection) -> Result<usize, String> {
    let applied = match conn {
        DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len()),
        DbConnection::Postgres(c) => c
            .run_pending_migrations(POSTGRES_MIGRATIONS)
            .map(|v| v.len()),
    };
    applied.map_err(|e| e.to_string())
}

/// True when a diesel error means the database could not be reached or could
/// not take the write (as opposed to a bug in a query).
pub fn is_unavailable(error: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    match error {
        Error::DatabaseError(kind, info) => match kind {
            DatabaseErrorKind::ClosedConnection
            | DatabaseErrorKind::SerializationFailure
            | DatabaseErrorKind::ReadOnlyTransaction => true,
            _ => {
                let m = info.message().to_ascii_lowercase();
                m.contains("locked")
                    || m.contains("busy")
                    || m.contains("full")
                    || m.contains("disk")
                    || m.contains("readonly")
                    || m.contains("connection")
            }
        },
        Error::BrokenTransactionManager => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PostgreSQL only (skipped without `LEADHOOK_TEST_POSTGRES_URL`): the
    /// plan cache is back at its default inside `with_cached_plans`, and
    /// at per-run planning again after it, in the same transaction.
    #[test]
    fn cached_plans_last_only_for_the_work_given() {
        let Ok(server) = std::env::var("LEADHOOK_TEST_POSTGRES_URL") else {
            return;
        };
        let target = DatabaseTarget::Postgres(format!("{server}/postgres"));
        let manager = ConnectionManager::new(
            target,
            SqliteSynchronous::Full,
            Duration::from_secs(5),
            false,
        );
        let mut conn = r2d2::ManageConnection::connect(&manager).expect("a connection");
        let DbConnection::Postgres(_) = conn else {
            panic!("a PostgreSQL connection");
        };
        #[derive(diesel::QueryableByName)]
        struct Setting {
            #[diesel(sql_type = diesel::sql_types::Text)]
            plan_cache_mode: String,
        }
        fn mode(conn: &mut DbConnection) -> QueryResult<String> {
            let DbConnection::Postgres(c) = conn else {
                unreachable!()
            };
            let setting: Setting = diesel::RunQueryDsl::get_result(
                diesel::sql_query("SELECT current_setting('plan_cache_mode') AS plan_cache_mode"),
                c,
            )?;
            Ok(setting.plan_cache_mode)
        }
        let (inside, after) = conn
            .transaction(|c| {
                let inside = with_cached_plans(c, mode)?;
                Ok::<_, diesel::result::Error>((inside, mode(c)?))
            })
            .expect("the transaction");
        assert_eq!(inside, "auto");
        assert_eq!(after, "force_custom_plan");
        assert_eq!(mode(&mut conn).expect("the setting"), "force_custom_plan");
    }
}
