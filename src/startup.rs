//! Wiring: pool, migrations, writer, conversation store, routes, listener.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::Logger;
use actix_web::{web, App, HttpServer, ResponseError};

use crate::config::{Config, ConfigError, DatabaseTarget};
use crate::conversations::{spawn_janitor, ConversationStore};
use crate::db::{
    self,
    checkpoint::{CheckpointTask, Checkpointer, WalLength},
    writer::Writer,
    Database,
};
use crate::error::AppError;
use crate::ingest::Ingestor;
use crate::routes;
use crate::routes::admin::throttle::AuthThrottle;

/// What every request handler can reach.
pub struct AppState {
    pub config: Config,
    pub db: Database,
    pub ingestor: Ingestor,
    pub conversations: Arc<ConversationStore>,
    pub admin_throttle: AuthThrottle,
}

pub struct Application {
    port: u16,
    server: Server,
    background: Background,
    /// How long a stop waits for the background to finish.
    finish_within: Duration,
}

/// The database as the server uses it.
pub struct OpenDatabase {
    /// For reads. On SQLite its connections have the search indexes
    /// attached ([`db::search_index`]).
    pub reads: db::DbPool,
    /// For the writer and the WAL checkpoints. On SQLite without the search
    /// index, whose lock a writing connection would otherwise take; on
    /// PostgreSQL the same pool as `reads`.
    pub writes: db::DbPool,
    /// SQLite's search indexes, opened; once spawned
    /// ([`db::search_index::SearchIndex::spawn`]) it catches up with the
    /// database and keeps up.
    pub search: Option<db::search_index::SearchIndex>,
}

/// Connections of the SQLite writing pool: the writer's, the background
/// checkpoint's, and one to spare.
const SQLITE_WRITE_CONNECTIONS: u32 = 3;

/// Opens the database named by the configuration, applies migrations and,
/// for SQLite, opens its search index. Errors name `DATABASE_URL`, on one
/// line, without the password.
pub fn open_database(config: &Config) -> Result<OpenDatabase, ConfigError> {
    let fail = |what: &str, e: String| ConfigError {
        variable: "DATABASE_URL",
        message: format!(
            "{what} {}: {}",
            config.database,
            e.split_whitespace().collect::<Vec<_>>().join(" ")
        ),
    };
    let pool = |size: u32, attach_search: bool| {
        db::build_pool(
            &config.database,
            config.sqlite_synchronous,
            size,
            config.pool_timeout,
            attach_search,
        )
        .map_err(|e| fail("cannot open", e))
    };
    let sqlite = match &config.database {
        DatabaseTarget::Sqlite(path) => Some(path),
        DatabaseTarget::Postgres(_) => None,
    };
    let writes = pool(
        match sqlite {
            Some(_) => SQLITE_WRITE_CONNECTIONS,
            None => config.pool_size,
        },
        false,
    )?;
    let mut conn = writes
        .get()
        .map_err(|e| fail("cannot open", e.to_string()))?;
    let applied = db::run_migrations(&mut conn).map_err(|e| fail("cannot migrate", e))?;
    drop(conn);
    if applied > 0 {
        log::info!("applied {applied} migration(s) to {}", config.database);
    }
    let Some(path) = sqlite else {
        return Ok(OpenDatabase {
            reads: writes.clone(),
            writes,
            search: None,
        });
    };
    let search = db::search_index::SearchIndex::open(path, config.pool_timeout)
        .map_err(|e| fail("cannot open the search index of", e))?;
    Ok(OpenDatabase {
        reads: pool(config.pool_size, true)?,
        writes,
        search: Some(search),
    })
}

impl Application {
    /// Builds everything and binds the listener (port 0 picks a free port, as
    /// the tests do). The server starts serving when awaited.
    pub async fn build(config: Config) -> Result<Application, ConfigError> {
        let OpenDatabase {
            reads,
            writes,
            search,
        } = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || open_database(&config))
                .await
                .map_err(|e| ConfigError {
                    variable: "DATABASE_URL",
                    message: e.to_string(),
                })??
        };
        // After the database: a startup that fails does so with one line.
        for warning in config.warnings() {
            log::warn!("{warning}");
        }
        let (writer, background) = start_writes(&config, writes, search);
        let conversations = Arc::new(ConversationStore::new(config.conversations));
        spawn_janitor(
            conversations.clone(),
            janitor_period(config.conversations.idle_ttl),
        );

        let listener =
            TcpListener::bind((config.host.as_str(), config.port)).map_err(|e| ConfigError {
                variable: if config.port == 0 { "HOST" } else { "PORT" },
                message: format!("cannot listen on {}:{}: {e}", config.host, config.port),
            })?;
        let port = listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or(config.port);
        log::info!(
            "leadhook listening on {}:{port} ({} database)",
            config.host,
            config.database.backend_name()
        );

        let db = Database {
            pool: reads,
            writer,
        };
        let workers = config.workers;
        let grace = config.shutdown_grace;
        let finish_within = grace.max(FINISH_AT_LEAST);
        let request_timeout = config.request_timeout;
        let state = web::Data::new(AppState {
            admin_throttle: AuthThrottle::new(
                config.admin_auth_max_failures,
                config.admin_auth_window,
            ),
            ingestor: Ingestor::start(db.clone(), config.write_batch_max),
            config,
            db,
            conversations,
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(web::QueryConfig::default().error_handler(|e, _| {
                    AppError::BadRequest(format!("invalid query string: {e}")).into()
                }))
                .app_data(web::PathConfig::default().error_handler(|e, _| {
                    AppError::BadRequest(format!("invalid path: {e}")).into()
                }))
                // Paths only: query strings can carry the verify token.
                .wrap(
                    Logger::new("%s %U %Dms")
                        .exclude("/api/webhook/whatsapp")
                        .exclude("/healthz")
                        .exclude("/readyz"),
                )
                .configure(routes::configure)
                .default_service(web::to(|| async {
                    AppError::NotFound("no such endpoint".into()).error_response()
                }))
        })
        .workers(workers)
        // A client that has not sent its request head by then gets 408.
        .client_request_timeout(request_timeout)
        .shutdown_timeout(grace.as_secs())
        .listen(listener)
        .map_err(|e| ConfigError {
            variable: "PORT",
            message: e.to_string(),
        })?
        .run();
        Ok(Application {
            port,
            server,
            background,
            finish_within,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server from elsewhere (tests); `SIGTERM`/`SIGINT` do the same.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped. In-flight requests finish first (within the
    /// grace period), and each of them only answers after its commit. Then
    /// it waits for the writer and the search index to finish (see
    /// [`Background::finish`]), so that when it returns no thread is still
    /// using the database.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        // The server, and with it every handler's `Writer`, is gone now.
        if !self.background.finish(self.finish_within).await {
            log::warn!(
                "the writer or the search index had not finished after {} s; stopping anyway \
                 (every answered webhook is committed; the search index catches up at the next start)",
                self.finish_within.as_secs()
            );
        }
        served
    }
}

/// The shortest wait for the background at a stop, whatever the grace
/// period: the writer's last batch and the search index's last pass.
const FINISH_AT_LEAST: Duration = Duration::from_secs(5);

/// What runs behind the [`Writer`] handle: the writer thread and, on
/// SQLite, the search index thread and the background checkpoint task.
pub struct Background {
    writer: std::thread::JoinHandle<()>,
    search: Option<std::thread::JoinHandle<()>>,
    checkpoints: Option<CheckpointTask>,
}

impl Background {
    /// Stops the checkpoint task and waits, up to `within`, for the writer
    /// thread to end (it commits what is queued and ends once every
    /// [`Writer`] handle is dropped), then for the search index thread (it
    /// catches up once more and ends after the writer). Their connections
    /// close as they end. False when `within` ran out first.
    ///
    /// Without this wait a stop returned while they still ran: the process
    /// could exit before the search index's last pass, and in the tests each
    /// server's threads outlived its test and kept its database open while
    /// it was dropped.
    pub async fn finish(self, within: Duration) -> bool {
        if let Some(task) = self.checkpoints {
            task.stop().await;
        }
        let (writer, search) = (self.writer, self.search);
        let threads = tokio::task::spawn_blocking(move || {
            let _ = writer.join();
            if let Some(search) = search {
                let _ = search.join();
            }
        });
        tokio::time::timeout(within, threads).await.is_ok()
    }
}

/// Starts what keeps the database written: on SQLite the background WAL
/// checkpoints and the search index thread, then the single writer. Returns
/// the writer's handle and what to wait for at a stop.
pub fn start_writes(
    config: &Config,
    writes: db::DbPool,
    search: Option<db::search_index::SearchIndex>,
) -> (Writer, Background) {
    let (wal, checkpoints) = match &config.database {
        DatabaseTarget::Sqlite(path) => {
            let length = WalLength::new(CHECKPOINT_RESTART_AT_FRAMES);
            let task =
                Checkpointer::new(CHECKPOINT_EVERY, length.clone(), path).spawn(writes.clone());
            (Some(length), Some(task))
        }
        DatabaseTarget::Postgres(_) => (None, None),
    };
    // The index thread stops once the writer, which holds its nudge, has.
    let (nudge, search) = search.map(|index| index.spawn()).unzip();
    // The writer thread runs until every handle is dropped.
    let (writer, thread) = Writer::start(writes, config.write_batch_max, wal, nudge);
    let background = Background {
        writer: thread,
        search,
        checkpoints,
    };
    (writer, background)
}

/// How often the SQLite WAL is copied back into the database file. Often,
/// because the writer pauses to copy whatever this task has not yet copied
/// each time the log starts over: at 5,000 webhooks a second that pause set
/// the p99 latency (21.8 ms with a pass every 500 ms, 12.8 ms every 100 ms,
/// 6.0 ms every 5 ms; BENCHMARKS.md, twelfth pass). A pass over a log that
/// is already copied returns at once.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(5);
/// WAL length (4 KiB pages) at which a checkpoint lets the log start over:
/// 32 MiB, a fraction of a second of frames at full load on a small machine.
/// A longer log was slower, not faster (p99 24 against 10 ms at 128 MiB).
const CHECKPOINT_RESTART_AT_FRAMES: i32 = 8192;

fn janitor_period(ttl: Duration) -> Duration {
    (ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
}
