//! Direct access to a test's database, for setting up what the HTTP API
//! cannot (yet) produce: pipeline and attribution columns, chosen
//! timestamps, and large numbers of rows in seconds.

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, SqliteConnection};

use crate::helpers::Backend;

/// Runs `sql` (one or more statements) on the database at `url`.
pub fn execute(backend: Backend, url: &str, sql: &str) {
    let result = match backend {
        Backend::Sqlite => {
            let mut c = SqliteConnection::establish(url).expect("open the SQLite test database");
            // The server may be writing at the same moment; and its
            // connections enforce foreign keys (so deletes cascade), as
            // SQLite does only when asked.
            c.batch_execute(&format!(
                "PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; {sql}"
            ))
        }
        Backend::Postgres => PgConnection::establish(url)
            .expect("connect to the PostgreSQL test database")
            .batch_execute(sql),
    };
    result.unwrap_or_else(|e| panic!("{e}\nin SQL:\n{sql}"));
}

/// Inserts `count` leads numbered 1..=count with phone numbers `1555` +
/// seven digits, `text` as first and last message (a single-quoted SQL
/// string expression that may use the row number `i`), and last activity one
/// second apart (lead i most recent for the highest i). Rows go in 1,000 per
/// transaction: PostgreSQL's counter trigger makes one huge transaction slow
/// (and runs the statements of one `execute` in one transaction).
pub fn insert_leads(backend: Backend, url: &str, count: u64, text: &str) {
    const BATCH: u64 = 1_000;
    let mut start = 1;
    while start <= count {
        let end = (start + BATCH - 1).min(count);
        let (series, phone, time) = match backend {
            Backend::Sqlite => (
                format!(
                    "WITH RECURSIVE s(i) AS (SELECT {start} UNION ALL SELECT i + 1 FROM s WHERE i < {end}) "
                ),
                "'1555' || printf('%07d', i)",
                "datetime('2026-01-01 00:00:00', '+' || i || ' seconds')",
            ),
            Backend::Postgres => (
                String::new(),
                "'1555' || lpad(i::text, 7, '0')",
                "TIMESTAMP '2026-01-01 00:00:00' + i * INTERVAL '1 second'",
            ),
        };
        let from = match backend {
            Backend::Sqlite => "s".to_string(),
            Backend::Postgres => format!("generate_series({start}, {end}) AS s(i)"),
        };
        let statement = format!(
            "{series}INSERT INTO leads (phone_number, first_message, first_message_time, last_message, \
             last_message_time, message_count, is_active, converted_to_student, created_at, updated_at) \
             SELECT {phone}, {text}, {time}, {text}, {time}, 1, TRUE, FALSE, {time}, {time} FROM {from}"
        );
        execute(backend, url, &statement);
        start = end + 1;
    }
}
