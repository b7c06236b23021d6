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
