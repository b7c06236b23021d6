//! leadhook: signed WhatsApp Cloud API webhooks in, exactly-once leads out.
//!
//! Layers, outermost first: `routes` (HTTP) → `whatsapp` (Meta's wire format)
//! → `ingest` / `leads::service` (domain) → `leads::model`, `messages`,
//! `students`, `failures` (storage queries) → `db` (connections, pool,
//! migrations, the single writer).

pub mod config;
pub mod conversations;
pub mod db;
pub mod error;
pub mod failures;
pub mod identity;
pub mod ingest;
pub mod leads;
pub mod loadtest;
pub mod messages;
pub mod routes;
pub mod simulate;
pub mod startup;
pub mod students;
pub mod time;
pub mod whatsapp;

/// The allocator of every program built on this crate: the server, its
/// tests and the memory example, so that what they measure is what runs.
/// glibc's malloc was 13 % of the writer thread's time under load (SQLite's
/// page and journal buffers, diesel's rows, the parsed bodies); mimalloc
/// takes the writer's CPU per message down by 8–15 %. Its `override`
/// feature makes it serve the bundled SQLite and libpq as well; `no_thp`
/// keeps it from asking for transparent huge pages, with which an idle
/// server held 35 MiB instead of 15.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
