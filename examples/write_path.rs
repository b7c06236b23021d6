//! The write path alone, without HTTP: what the single writer costs per
//! stored message when it is handed batches of a fixed size.
//!
//!     cargo run --release --example write_path -- [database] [batch] [messages] [senders]
//!
//! Defaults: a fresh SQLite file in a temporary directory, 32 bodies per
//! batch, 100,000 messages, 10,000 senders. A `postgres://` URL measures
//! PostgreSQL (the database should be empty: its tables are used as they
//! are). Bodies are the load test's (`leadhook loadtest`), parsed before
//! the clock starts, and go through the server's own writer, checkpoints
//! and search index exactly as the webhook's batches do, two batches in
//! flight as `ingest::queue` keeps them.
//!
//! Prints the writer thread's CPU time per message (the serial part of the
//! write path, and the figure to compare builds by), the search index
//! thread's on SQLite, PostgreSQL's server processes' on PostgreSQL, and
//! messages per second. Unlike a load test over HTTP, the batches are the
//! same size in every run, so two builds can be compared on a busy machine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use leadhook::config::{Config, DatabaseTarget};
use leadhook::db::Attempt;
use leadhook::error::AppError;
use leadhook::ingest::{apply_all, Body};
use leadhook::loadtest::body::{unix_now, Phase, RequestFactory};
use leadhook::loadtest::cpu::parse_thread_stat;
use leadhook::startup::{open_database, start_writes};
use leadhook::whatsapp::payload::{self, ParsedBody};

/// A batch as the writer gets it: parsed bodies and the raw bytes of each.
type Batch = Arc<Vec<(ParsedBody, Vec<u8>)>>;

/// CPU time in µs of the threads or processes in `dir` (`/proc/self/task`
/// or `/proc`) whose `stat` line `keep` accepts.
fn cpu_us(dir: &str, keep: impl Fn(&str) -> bool) -> f64 {
    let ticks: u64 = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
        .filter(|stat| keep(stat))
        .filter_map(|stat| parse_thread_stat(&stat))
        .sum();
    ticks as f64 / 100.0 * 1e6 // USER_HZ ticks
}

/// CPU time in µs of this process's threads named `name`.
fn thread_cpu_us(name: &str) -> f64 {
    let named = format!("({name})");
    cpu_us("/proc/self/task", |stat| stat.contains(&named))
}

/// CPU time in µs of every PostgreSQL server process on this machine.
fn postgres_cpu_us() -> f64 {
    cpu_us("/proc", |stat| stat.contains("(postgres)"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let default_db = dir.path().join("write-path.db").display().to_string();
    let database = args.first().cloned().unwrap_or(default_db);
    let number = |n: usize, default: usize| {
        args.get(n)
            .map(|a| a.parse().expect("a whole number"))
            .unwrap_or(default)
    };
    let (batch, messages, senders) = (number(1, 32), number(2, 100_000), number(3, 10_000));

    let config = Config::from_lookup(|key| match key {
        "DATABASE_URL" => Some(database.clone()),
        "WRITE_BATCH_MAX" => Some(batch.to_string()),
        _ => None,
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let postgres = matches!(config.database, DatabaseTarget::Postgres(_));
    let open = open_database(&config).unwrap_or_else(|e| panic!("{e}"));
    let (writer, background) = start_writes(&config, open.writes, open.search);

    let factory = RequestFactory::new(b"unused", "localhost", "/", senders as u64);
    let now = unix_now();
    let mut json = String::new();
    let bodies: Vec<Batch> = (0..messages as u64)
        .map(|seq| {
            factory.body(Phase::Measure, seq, now, &mut json);
            let parsed = payload::parse(json.as_bytes()).expect("a load-test body parses");
            (parsed, json.clone().into_bytes())
        })
        .collect::<Vec<_>>()
        .chunks(batch)
        .map(|chunk| Arc::new(chunk.to_vec()))
        .collect();

    let (writer_before, search_before, pg_before) = (
        thread_cpu_us("leadhook-writer"),
        thread_cpu_us("leadhook-search"),
        postgres_cpu_us(),
    );
    let started = Instant::now();
    // Two batches in flight, as `ingest::queue` keeps them.
    let in_flight = Arc::new(tokio::sync::Semaphore::new(2));
    let mut tasks = Vec::new();
    for chunk in bodies {
        let permit = in_flight.clone().acquire_owned().await.expect("open");
        let writer = writer.clone();
        tasks.push(tokio::spawn(async move {
            let stored = writer
                .write_optimistic(move |conn, attempt: Attempt| {
                    let bodies: Vec<Body<'_>> = chunk
                        .iter()
                        .map(|(parsed, raw)| Body { parsed, raw })
                        .collect();
                    apply_all(conn, &bodies, attempt).map_err(AppError::from)
                })
                .await
                .expect("the batch commits");
            drop(permit);
            stored
                .into_iter()
                .map(|r| r.expect("each body is stored").stored.len())
                .sum::<usize>()
        }));
    }
    let mut stored = 0;
    for task in tasks {
        stored += task.await.expect("the task ends");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let per_message = |before: f64, after: f64| (after - before) / stored.max(1) as f64;

    println!(
        "{} database, batches of {batch}, {stored} messages from {senders} senders in {elapsed:.2} s \
         ({:.0} messages/s)",
        config.database.backend_name(),
        stored as f64 / elapsed
    );
    println!(
        "writer thread: {:.1} µs of CPU per message",
        per_message(writer_before, thread_cpu_us("leadhook-writer"))
    );
    if postgres {
        println!(
            "PostgreSQL processes: {:.1} µs of CPU per message",
            per_message(pg_before, postgres_cpu_us())
        );
    } else {
        println!(
            "search index thread: {:.1} µs of CPU per message",
            per_message(search_before, thread_cpu_us("leadhook-search"))
        );
    }
    assert_eq!(stored, messages, "every message is new and stored once");
    drop(writer);
    background.finish(Duration::from_secs(60)).await;
}
