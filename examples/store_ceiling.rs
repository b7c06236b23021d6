//! The store ceiling: how fast this machine can answer a signed webhook
//! *after committing its message*, with nothing else done.
//!
//!     cargo build --release --example store_ceiling
//!     scripts/bench-webhook store|store-postgres 3 --connections 64 --duration 15
//!
//! or by hand. It reads leadhook's own configuration (`PORT`, `DATABASE_URL`,
//! `WHATSAPP_APP_SECRET`, `SQLITE_SYNCHRONOUS`, `HTTP_WORKERS`); a
//! PostgreSQL database must exist:
//!
//!     PORT=18090 DATABASE_URL=/tmp/store.db WHATSAPP_APP_SECRET=s target/release/examples/store_ceiling &
//!     leadhook loadtest --url http://127.0.0.1:18090 --secret s --admin-token x --ceiling
//!
//! `loadtest --ceiling` says what the machine allows for a handler that only
//! checks the signature. This server adds the least that any design keeping
//! the webhook's promise ("`200` means committed") must add: it reads each
//! message's id and text from the body, and a writer thread stores them in
//! one table keyed by the id, one transaction and one sync per batch of
//! whatever bodies are waiting (group commit), before the `200`. There are
//! no leads, no other index, no search index, no logging, and the
//! database's own checkpoints. On SQLite the writer inserts row by row with
//! one prepared statement; on PostgreSQL, where each statement is a round
//! trip, a batch is one prepared `INSERT … SELECT FROM unnest(…)`. Its
//! throughput as a share of the ceiling bounds what a write path that
//! commits each message before answering can reach here, whatever else it
//! leaves out.
//!
//! `GET /api/admin/leads/stats` answers `{"messages_total": N}`, so that
//! `loadtest` checks lost and duplicated messages against it as it does
//! against leadhook, and `GET /readyz` answers once the database is open.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, Text as SqlText};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

use leadhook::config::{Config, DatabaseTarget};
use leadhook::loadtest::ceiling;

/// The most bodies one transaction takes, as leadhook's writer batch.
const MAX_BATCH: usize = 512;

diesel::table! {
    messages (id) {
        id -> BigInt,
        wamid -> Text,
        body -> Text,
    }
}

/// Only what the store needs from a WhatsApp webhook body.
#[derive(Deserialize)]
struct Payload {
    #[serde(default)]
    entry: Vec<Entry>,
}
#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    changes: Vec<Change>,
}
#[derive(Deserialize)]
struct Change {
    value: Value,
}
#[derive(Deserialize)]
struct Value {
    #[serde(default)]
    messages: Vec<Message>,
}
#[derive(Deserialize)]
struct Message {
    id: String,
    #[serde(default)]
    text: Option<Text>,
}
#[derive(Deserialize)]
struct Text {
    body: String,
}

/// One request's messages, and where to say they are committed.
struct Job {
    rows: Vec<(String, String)>,
    reply: oneshot::Sender<bool>,
}

struct Shared {
    secret: Vec<u8>,
    queue: mpsc::Sender<Job>,
    stored: Arc<AtomicI64>,
}

async fn webhook(
    shared: web::Data<Shared>,
    request: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    if !ceiling::is_signed(&shared.secret, &request, &body) {
        return HttpResponse::Unauthorized().json(serde_json::json!({"error": "bad signature"}));
    }
    let Ok(payload) = serde_json::from_slice::<Payload>(&body) else {
        return HttpResponse::BadRequest().json(serde_json::json!({"error": "not a webhook"}));
    };
    let rows: Vec<(String, String)> = payload
        .entry
        .into_iter()
        .flat_map(|e| e.changes)
        .flat_map(|c| c.value.messages)
        .map(|m| (m.id, m.text.map(|t| t.body).unwrap_or_default()))
        .collect();
    let count = rows.len();
    let (reply, committed) = oneshot::channel();
    if shared.queue.send(Job { rows, reply }).await.is_err() || committed.await != Ok(true) {
        return HttpResponse::ServiceUnavailable().json(serde_json::json!({"error": "not stored"}));
    }
    HttpResponse::Ok().json(serde_json::json!({"status": "ok", "stored": count}))
}

async fn stats(shared: web::Data<Shared>) -> HttpResponse {
    HttpResponse::Ok()
        .json(serde_json::json!({"messages_total": shared.stored.load(Ordering::SeqCst)}))
}

/// The one table, in either database.
enum Store {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

impl Store {
    fn open(config: &Config) -> Result<Store, Box<dyn std::error::Error>> {
        let table = "CREATE TABLE IF NOT EXISTS messages (
            id {id} PRIMARY KEY, wamid TEXT NOT NULL UNIQUE, body TEXT NOT NULL);";
        Ok(match &config.database {
            DatabaseTarget::Postgres(url) => {
                let mut conn = PgConnection::establish(url)?;
                conn.batch_execute(&table.replace("{id}", "BIGSERIAL"))?;
                Store::Postgres(conn)
            }
            DatabaseTarget::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(path)?;
                conn.batch_execute(&format!(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = {}; {}",
                    config.sqlite_synchronous.pragma_value(),
                    table.replace("{id}", "INTEGER")
                ))?;
                Store::Sqlite(conn)
            }
        })
    }

    fn count(&mut self) -> QueryResult<i64> {
        match self {
            Store::Sqlite(c) => messages::table.count().get_result(c),
            Store::Postgres(c) => messages::table.count().get_result(c),
        }
    }

    /// Stores the batch's messages in one transaction; how many were new.
    fn store(&mut self, batch: &[Job]) -> QueryResult<usize> {
        let rows = batch.iter().flat_map(|job| &job.rows);
        match self {
            Store::Sqlite(c) => c.immediate_transaction(|c| {
                let mut inserted = 0;
                for (wamid, body) in rows {
                    inserted += diesel::insert_or_ignore_into(messages::table)
                        .values((messages::wamid.eq(wamid), messages::body.eq(body)))
                        .execute(c)?;
                }
                Ok(inserted)
            }),
            Store::Postgres(c) => {
                let (wamids, bodies): (Vec<&String>, Vec<&String>) =
                    rows.map(|(wamid, body)| (wamid, body)).unzip();
                // One statement, committed on its own.
                diesel::sql_query(
                    "INSERT INTO messages (wamid, body) SELECT * FROM unnest($1::text[], $2::text[]) \
                     ON CONFLICT (wamid) DO NOTHING",
                )
                .bind::<Array<SqlText>, _>(wamids)
                .bind::<Array<SqlText>, _>(bodies)
                .execute(c)
            }
        }
    }
}

/// Group commit: every job waiting, in one transaction, then the answers.
fn writer(mut store: Store, mut queue: mpsc::Receiver<Job>, stored: Arc<AtomicI64>) {
    while let Some(first) = queue.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let outcome = store.store(&batch);
        if let Ok(inserted) = &outcome {
            stored.fetch_add(*inserted as i64, Ordering::SeqCst);
        }
        for job in batch {
            let _ = job.reply.send(outcome.is_ok());
        }
    }
}

fn main() -> std::io::Result<()> {
    let config = Config::from_env().unwrap_or_else(|e| panic!("{e}"));
    let secret = config
        .app_secret
        .as_ref()
        .expect("WHATSAPP_APP_SECRET is not set");
    let mut store = Store::open(&config).unwrap_or_else(|e| panic!("opening the database: {e}"));
    let stored = Arc::new(AtomicI64::new(store.count().expect("counting")));
    let (queue, receiver) = mpsc::channel(MAX_BATCH * 4);
    let writing = {
        let stored = Arc::clone(&stored);
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer(store, receiver, stored))?
    };
    let shared = web::Data::new(Shared {
        secret: secret.expose().as_bytes().to_vec(),
        queue,
        stored,
    });
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .app_data(web::PayloadConfig::new(4 * 1024 * 1024))
                .route("/api/webhook/whatsapp", web::post().to(webhook))
                .route("/api/admin/leads/stats", web::get().to(stats))
                .route("/readyz", web::get().to(HttpResponse::Ok))
        })
        .workers(config.workers)
        .bind((config.host.as_str(), config.port))?
        .run()
        .await
    })?;
    let _ = writing.join();
    Ok(())
}
