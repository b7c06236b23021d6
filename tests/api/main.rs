//! Black-box tests: the real server over HTTP, on SQLite and (when
//! `LEADHOOK_TEST_POSTGRES_URL` is set) on PostgreSQL.

mod helpers;
mod payloads;

mod admin;
mod conversations;
mod health;
mod identity;
mod leads;
mod process;
mod security;
mod webhook;
