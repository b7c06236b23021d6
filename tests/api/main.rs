//! Black-box tests: the real server over HTTP, on SQLite and (when
//! `LEADHOOK_TEST_POSTGRES_URL` is set) on PostgreSQL.

mod child;
mod helpers;
mod payloads;
mod proxy;
mod sql;
mod staff;

mod admin;
mod analytics;
mod attribution;
mod bulk;
mod conversations;
mod export;
mod faults;
mod finding;
mod health;
mod identity;
mod leads;
mod pipeline;
mod process;
mod reset;
mod security;
mod webhook;
