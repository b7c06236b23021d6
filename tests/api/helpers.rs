//! Test support: a real server on port 0 over a fresh database, and request
//! helpers so each test reads like what a user does.
//!
//! Every test runs on SQLite. It also runs on PostgreSQL when
//! `LEADHOOK_TEST_POSTGRES_URL` names a server (e.g.
//! `postgres://postgres@127.0.0.1:5432`); each test then gets a database of its
//! own, dropped afterwards.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use diesel::{Connection, PgConnection, RunQueryDsl};
use leadhook::config::Config;
use leadhook::startup::Application;
use leadhook::whatsapp::signature;
use serde_json::Value;

pub const APP_SECRET: &str = "test-app-secret";
pub const VERIFY_TOKEN: &str = "test-verify-token";
pub const ADMIN_TOKEN: &str = "test-admin-token";
pub const POSTGRES_VAR: &str = "LEADHOOK_TEST_POSTGRES_URL";

/// Declares test functions `async fn name(app: TestApp)` as two tests each:
/// `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = $crate::helpers::TestApp::spawn($crate::helpers::Backend::Sqlite).await;
                super::$name(app.expect("SQLite is always available")).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                match $crate::helpers::TestApp::spawn($crate::helpers::Backend::Postgres).await {
                    Some(app) => super::$name(app).await,
                    None => eprintln!("skipped: set {} to run on PostgreSQL", $crate::helpers::POSTGRES_VAR),
                }
            }
        }
    )*};
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database that lives as long as the test.
pub enum TestDb {
    Sqlite(tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl TestDb {
    /// A fresh database; `None` for PostgreSQL when its variable is unset.
    pub fn create(backend: Backend) -> Option<TestDb> {
        match backend {
            Backend::Sqlite => Some(TestDb::Sqlite(tempfile::tempdir().expect("temp dir"))),
            Backend::Postgres => {
                let base = std::env::var(POSTGRES_VAR)
                    .ok()
                    .filter(|v| !v.trim().is_empty())?;
                let admin_url = format!("{}/postgres", base.trim_end_matches('/'));
                leadhook::db::postgres_process_setup();
                static COUNTER: AtomicU32 = AtomicU32::new(0);
                let name = format!(
                    "leadhook_test_{}_{}_{}",
                    std::process::id(),
                    COUNTER.fetch_add(1, Ordering::SeqCst),
                    chrono::Utc::now().timestamp_micros()
                );
                let mut conn = PgConnection::establish(&admin_url).unwrap_or_else(|e| {
                    panic!("{POSTGRES_VAR} is set but {admin_url} is unreachable: {e}")
                });
                diesel::sql_query(format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .expect("create test database");
                Some(TestDb::Postgres { admin_url, name })
            }
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            TestDb::Sqlite(_) => Backend::Sqlite,
            TestDb::Postgres { .. } => Backend::Postgres,
        }
    }

    /// Whether anything still has the database open. SQLite: a write-ahead
    /// log beside a database file, which SQLite removes as the last
    /// connection closes. PostgreSQL: a session connected to it, after
    /// waiting up to `settle` for the server to end those whose clients have
    /// closed them (it does so a moment later).
    pub fn in_use(&self, settle: Duration) -> bool {
        match self {
            TestDb::Sqlite(dir) => std::fs::read_dir(dir.path())
                .expect("the database directory")
                .any(|entry| {
                    let name = entry.expect("a directory entry").file_name();
                    name.to_string_lossy().ends_with("-wal")
                }),
            TestDb::Postgres { admin_url, name } => {
                #[derive(diesel::QueryableByName)]
                struct Sessions {
                    #[diesel(sql_type = diesel::sql_types::BigInt)]
                    n: i64,
                }
                let mut conn = PgConnection::establish(admin_url).expect("admin connection");
                let deadline = std::time::Instant::now() + settle;
                loop {
                    let open = diesel::sql_query(
                        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1",
                    )
                    .bind::<diesel::sql_types::Text, _>(name.as_str())
                    .get_result::<Sessions>(&mut conn)
                    .expect("pg_stat_activity")
                    .n;
                    if open == 0 {
                        return false;
                    }
                    if std::time::Instant::now() >= deadline {
                        return true;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }

    pub fn url(&self) -> String {
        match self {
            TestDb::Sqlite(dir) => dir.path().join("leadhook.db").display().to_string(),
            TestDb::Postgres { admin_url, name } => {
                format!("{}/{name}", admin_url.trim_end_matches("/postgres"))
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres { admin_url, name } = self {
            if let Ok(mut conn) = PgConnection::establish(admin_url) {
                let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn);
            }
        }
    }
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub backend: Backend,
    vars: HashMap<String, String>,
    server: Running,
    // Dropped after the server has stopped (see `Drop for TestApp`).
    db: TestDb,
}

/// An in-process server: its handle and the task that serves, which ends
/// once the server, its writer and its search index have finished.
struct Running {
    handle: actix_web::dev::ServerHandle,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Running {
    /// Stops the server and waits until the application has finished with
    /// the database. Idempotent.
    async fn stop(&mut self, graceful: bool) -> Result<(), String> {
        self.handle.stop(graceful).await;
        let Some(task) = self.task.take() else {
            return Ok(());
        };
        match tokio::time::timeout(Duration::from_secs(30), task).await {
            Err(_) => Err("the application had not finished 30 s after its stop".into()),
            Ok(Err(e)) => Err(format!("the serving task failed: {e}")),
            Ok(Ok(Err(e))) => Err(format!("the server failed: {e}")),
            Ok(Ok(Ok(()))) => Ok(()),
        }
    }
}

/// Stops the server and waits for its writer before the database goes.
/// Otherwise the writer, the search index and the pools outlive the test,
/// still using a database that is being dropped.
impl Drop for TestApp {
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let stopped = tokio::task::block_in_place(|| runtime.block_on(self.server.stop(false)));
        if let Err(e) = stopped {
            // A test that failed already says why; a second panic would abort.
            if !std::thread::panicking() {
                panic!("{e}");
            }
        }
    }
}

impl TestApp {
    /// A server with every secret set; `None` when the backend is not
    /// available (PostgreSQL without its variable).
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        TestApp::spawn_with(backend, &[]).await
    }

    /// Like [`TestApp::spawn`], with environment overrides; an override with
    /// an empty value removes the variable.
    pub async fn spawn_with(backend: Backend, overrides: &[(&str, &str)]) -> Option<TestApp> {
        let db = TestDb::create(backend)?;
        let url = db.url();
        Some(TestApp::spawn_on(db, &url, overrides).await)
    }

    /// A server on `db` that reaches it at `database_url` (which may lead
    /// through a fault-injecting proxy), with environment overrides.
    pub async fn spawn_on(db: TestDb, database_url: &str, overrides: &[(&str, &str)]) -> TestApp {
        let backend = db.backend();
        let mut vars: HashMap<String, String> = [
            ("HOST", "127.0.0.1"),
            ("PORT", "0"),
            ("WHATSAPP_APP_SECRET", APP_SECRET),
            ("WHATSAPP_VERIFY_TOKEN", VERIFY_TOKEN),
            ("ADMIN_TOKEN", ADMIN_TOKEN),
            ("HTTP_WORKERS", "2"),
            ("DATABASE_POOL_SIZE", "4"),
            ("SHUTDOWN_GRACE_SECS", "5"),
            // Tests of the login throttle set their own limit.
            ("ADMIN_AUTH_MAX_FAILURES", "1000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        vars.insert("DATABASE_URL".into(), database_url.to_string());
        for (k, v) in overrides {
            vars.insert(k.to_string(), v.to_string());
        }
        let (address, server) = start(&vars).await;
        TestApp {
            address,
            client: reqwest::Client::new(),
            backend,
            vars,
            server,
            db,
        }
    }

    /// Stops the server gracefully and waits until the application has
    /// finished with the database; [`TestApp::restart`] starts it again.
    pub async fn stop(&mut self) {
        self.server.stop(true).await.expect("the server stops");
    }

    /// Whether anything still has the test database open ([`TestDb::in_use`]).
    pub fn database_in_use(&self, settle: Duration) -> bool {
        self.db.in_use(settle)
    }

    /// Stops the server (gracefully) and starts a new one on the same database.
    pub async fn restart(self) -> TestApp {
        self.restart_after(|| {}).await
    }

    /// Like [`TestApp::restart`], doing `between` while no server runs.
    pub async fn restart_after(mut self, between: impl FnOnce()) -> TestApp {
        self.stop().await;
        between();
        let (address, server) = start(&self.vars).await;
        self.address = address;
        self.server = server;
        self
    }

    pub fn endpoint(&self) -> Endpoint {
        Endpoint::new(self.client.clone(), &self.address)
    }

    pub fn database_url(&self) -> String {
        self.db.url()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Signs and posts a webhook body exactly as WhatsApp does.
    pub async fn post_webhook(&self, body: &Value) -> reqwest::Response {
        let bytes = serde_json::to_vec(body).expect("serialise");
        let sig = signature::sign(APP_SECRET.as_bytes(), &bytes);
        self.post_raw(bytes, Some(&sig)).await
    }

    pub async fn post_raw(&self, body: Vec<u8>, signature: Option<&str>) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.url("/api/webhook/whatsapp"))
            .header("Content-Type", "application/json")
            .body(body);
        if let Some(sig) = signature {
            request = request.header("X-Hub-Signature-256", sig);
        }
        request.send().await.expect("webhook request")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    pub async fn admin_get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("admin request")
    }

    pub async fn admin_post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .json(body)
            .send()
            .await
            .expect("admin request")
    }

    pub async fn admin_delete(&self, path: &str) -> reqwest::Response {
        self.client
            .delete(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("admin request")
    }

    /// GET an admin path, assert 200, return the JSON.
    pub async fn admin_json(&self, path: &str) -> Value {
        admin_json_at(&self.client, &self.address, path).await
    }

    /// Every lead, newest activity first.
    pub async fn leads(&self) -> Vec<Value> {
        self.admin_json("/api/admin/leads?limit=500").await["items"]
            .as_array()
            .expect("items")
            .clone()
    }

    /// The one lead matching `q`; panics unless exactly one matches.
    pub async fn lead(&self, q: &str) -> Value {
        let page = self.admin_json(&format!("/api/admin/leads?q={q}")).await;
        let items = page["items"].as_array().expect("items");
        assert_eq!(items.len(), 1, "expected one lead for q={q}: {page:#}");
        items[0].clone()
    }

    /// The id of the one lead `q` finds.
    pub async fn lead_id(&self, q: &str) -> i64 {
        self.lead(q).await["id"].as_i64().expect("id")
    }

    pub async fn stats(&self) -> Value {
        self.admin_json("/api/admin/leads/stats").await
    }
}

async fn start(vars: &HashMap<String, String>) -> (String, Running) {
    let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("test configuration");
    let app = Application::build(config)
        .await
        .expect("application starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    let task = Some(tokio::spawn(app.run_until_stopped()));
    (address, Running { handle, task })
}

/// How one webhook POST ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostOutcome {
    /// No connection could be made (refused): the server never saw the
    /// request.
    Refused,
    /// Connected, but no response arrived (reset, or closed before a status
    /// line).
    NoResponse(String),
    /// A response with this status.
    Answered(u16),
}

/// A server's address and a client for it, whether the server runs in this
/// process ([`TestApp::endpoint`]) or as a child (`child::Server::endpoint`).
/// Unlike [`TestApp`]'s helpers it never panics on a failed request: the
/// server may be down on purpose.
#[derive(Clone)]
pub struct Endpoint {
    pub client: reqwest::Client,
    pub base: String,
}

impl Endpoint {
    pub fn new(client: reqwest::Client, base: &str) -> Endpoint {
        Endpoint {
            client,
            base: base.to_string(),
        }
    }

    /// Signs `body` with [`APP_SECRET`] and posts it as WhatsApp does.
    pub async fn post_webhook(&self, body: &[u8]) -> PostOutcome {
        let sig = signature::sign(APP_SECRET.as_bytes(), body);
        let sent = self
            .client
            .post(format!("{}/api/webhook/whatsapp", self.base))
            .header("Content-Type", "application/json")
            .header("X-Hub-Signature-256", sig)
            .timeout(Duration::from_secs(15))
            .body(body.to_vec())
            .send()
            .await;
        match sent {
            Ok(response) => PostOutcome::Answered(response.status().as_u16()),
            Err(e) if e.is_connect() => PostOutcome::Refused,
            Err(e) => PostOutcome::NoResponse(e.to_string()),
        }
    }

    /// GET `path`; its status (panics if there is no answer within 15 s).
    pub async fn status_of(&self, path: &str) -> u16 {
        self.client
            .get(format!("{}{path}", self.base))
            .timeout(Duration::from_secs(15))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
            .status()
            .as_u16()
    }

    pub async fn admin_json(&self, path: &str) -> Value {
        admin_json_at(&self.client, &self.base, path).await
    }
}

/// GET an admin path of the server at `base` (`http://host:port`), assert
/// 200, return the JSON.
pub async fn admin_json_at(client: &reqwest::Client, base: &str, path: &str) -> Value {
    let response = client
        .get(format!("{base}{path}"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("admin request");
    let status = response.status();
    let body = response.text().await.expect("body");
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).expect("JSON body")
}

/// Asserts the status and returns the JSON body, with the body in the message
/// when the status is wrong.
pub async fn json_with_status(response: reqwest::Response, expected: u16) -> Value {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    assert_eq!(status, expected, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}
