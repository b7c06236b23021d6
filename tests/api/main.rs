//! Black-box tests: the real server over HTTP, on SQLite and (when
//! `LEADHOOK_TEST_POSTGRES_URL` is set) on PostgreSQL.

mod child;
mod helpers;
mod payloads;
mod proxy;
mod sql;

mod admin;
mod analytics;
mod conversations;
mod export;
mod faults;
mod health;
mod identity;
mod leads;
mod process;
mod security;
mod webhook;
