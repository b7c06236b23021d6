//! `leadhook seed`: fill the configured database with realistic leads and
//! messages, fast, for benchmarks of the admin API at production sizes.
//!
//! Rows go in with multi-row `INSERT`s (as many rows per statement as the
//! bind-parameter limits allow), one transaction per batch of leads with
//! their messages and students. Ids are assigned here, from a block
//! reserved in the table's id sequence inside the same transaction, so
//! messages can name their lead without a round trip per row, and a server
//! running meanwhile cannot be handed an id from the block (SQLite:
//! `sqlite_sequence`; PostgreSQL: the serial sequence, under a table lock).
//!
//! What the data looks like (deterministic for a given `--seed`):
//! - people from several countries: 60 % with phone number and BSUID, 30 %
//!   username users with a BSUID only, 10 % phone-only leads from before
//!   BSUIDs; identifiers are fictional and cannot collide with `loadtest`'s
//!   senders or real numbers;
//! - `--messages` spread over `--leads` (each lead at least one, skewed:
//!   many leads with one or two messages, some with dozens), in WhatsApp
//!   timestamp order, first contact within the last year, recent ones more
//!   often; 70 % text, the rest media, buttons, interactive replies and
//!   locations;
//! - 8 % converted (with a student row carrying the same identifiers, and
//!   `converted_at` a day after the last message), the others spread over
//!   the pipeline (new, contacted, qualified, lost), 3 % deactivated; each
//!   lead's counts and first/last message match its messages exactly, as
//!   leadhook itself would have stored them;
//! - attribution: 25 % of leads came from one of a few click-to-WhatsApp
//!   ads, 5 % from a post, the rest wrote on their own; three business
//!   numbers share the traffic 60 / 30 / 10 %, and a lead's messages all
//!   go to the number it first wrote to.

use std::time::Instant;

use anyhow::{bail, Context};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::connection::{Connection, SimpleConnection};
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel::{PgConnection, SqliteConnection};

use super::content::{self, Rng, OTHER_MESSAGES, PHONE_NUMBER_ID, TEXTS};
use super::stats::thousands;
use crate::config::Config;
use crate::db::schema::{leads, messages, students};
use crate::db::DbConnection;
use crate::startup;

#[derive(Debug, Clone, clap::Args)]
pub struct SeedArgs {
    /// Leads to add
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    pub leads: u64,
    /// Messages to add, spread over the leads (at least one per lead)
    #[arg(long, default_value_t = 5_000_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000_000))]
    pub messages: u64,
    /// Leads per transaction, with their messages and students (default:
    /// 10000 on SQLite, 100 on PostgreSQL, see below)
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub batch: Option<u64>,
    /// Seed of the pseudo-random data (same seed, same data)
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Countries people write from: phone prefix and BSUID country code.
const COUNTRIES: [(&str, &str); 6] = [
    ("1", "US"),
    ("44", "GB"),
    ("91", "IN"),
    ("55", "BR"),
    ("234", "NG"),
    ("52", "MX"),
];

/// Leads per transaction. PostgreSQL's are small on purpose: leadhook's
/// running totals (`lead_counters`) are kept by row-level triggers that
/// update one row, and PostgreSQL makes the n-th update of the same row in a
/// transaction walk the n-1 versions before it, so a transaction's cost
/// grows with the square of its rows (measured here: 10,000 message rows in
/// one transaction 1.5 s, 20,000 5.0 s, without the trigger 0.4 s). About
/// 600 rows per transaction keep that negligible without bypassing the
/// triggers (and whatever else they may come to maintain): 100,000 messages
/// took 14.6 s in batches of 1,000 leads, 10.8 s of 400, 8.1 s of 100.
const SQLITE_BATCH: u64 = 10_000;
const POSTGRES_BATCH: u64 = 100;

const CONVERTED_SHARE: f64 = 0.08;
const INACTIVE_SHARE: f64 = 0.03;
const TEXT_SHARE: f64 = 0.7;
/// Pipeline stages of the leads that did not convert, with their weights
/// (out of 100).
const OPEN_STATUSES: [(&str, u64); 4] = [
    ("new", 50),
    ("contacted", 25),
    ("qualified", 13),
    ("lost", 12),
];
/// The business numbers (phone-number ids) and their share of leads (%).
const BUSINESS_NUMBERS: [(&str, u64); 3] = [
    (PHONE_NUMBER_ID, 60),
    ("106540352242923", 30),
    ("106540352242924", 10),
];
/// Click-to-WhatsApp ads that bring leads.
const AD_HEADLINES: [&str; 4] = [
    "Evening coding bootcamp",
    "Learn English in 12 weeks",
    "Data analysis for beginners",
    "Scholarships open now",
];
const DAY: i64 = 86_400;

/// SQLite allows 32,766 bound parameters per statement, PostgreSQL 65,535;
/// statements are sized to stay under both.
const MAX_BINDS: usize = 30_000;

#[derive(Insertable)]
#[diesel(table_name = students, treat_none_as_default_value = false)]
struct SeedStudent {
    id: i64,
    phone_number: Option<String>,
    user_id: Option<String>,
    parent_user_id: Option<String>,
    username: Option<String>,
    name: Option<String>,
    email: Option<String>,
    created_at: NaiveDateTime,
}
const STUDENT_COLUMNS: usize = 8;

#[derive(Insertable)]
#[diesel(table_name = leads, treat_none_as_default_value = false)]
struct SeedLead {
    id: i64,
    phone_number: Option<String>,
    user_id: Option<String>,
    parent_user_id: Option<String>,
    username: Option<String>,
    sender_name: Option<String>,
    first_message: &'static str,
    first_message_time: NaiveDateTime,
    last_message: &'static str,
    last_message_time: NaiveDateTime,
    message_count: i64,
    is_active: bool,
    converted_to_student: bool,
    student_id: Option<i64>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    status: &'static str,
    converted_at: Option<NaiveDateTime>,
    source_type: Option<&'static str>,
    source_id: Option<String>,
    source_headline: Option<&'static str>,
    business_phone_number_id: Option<&'static str>,
}
const LEAD_COLUMNS: usize = 22;

#[derive(Insertable)]
#[diesel(table_name = messages, treat_none_as_default_value = false)]
struct SeedMessage {
    id: i64,
    wamid: String,
    lead_id: Option<i64>,
    direction: &'static str,
    phone_number: Option<String>,
    user_id: Option<String>,
    sender_name: Option<String>,
    business_phone_number_id: Option<&'static str>,
    message_type: &'static str,
    body: &'static str,
    wa_timestamp: NaiveDateTime,
    received_at: NaiveDateTime,
}
const MESSAGE_COLUMNS: usize = 12;

/// How many messages each lead gets: skewed (exponential around the mean),
/// at least one each, summing to exactly the total asked for.
pub struct MessageCounts {
    remaining_messages: u64,
    remaining_leads: u64,
}

impl MessageCounts {
    pub fn new(leads: u64, messages: u64) -> Self {
        Self {
            remaining_messages: messages,
            remaining_leads: leads,
        }
    }

    /// The next lead's count, or `None` when every lead has one.
    pub fn next(&mut self, rng: &mut Rng) -> Option<u64> {
        if self.remaining_leads == 0 {
            return None;
        }
        let leads = self.remaining_leads;
        let msgs = self.remaining_messages;
        let count = if leads == 1 {
            msgs
        } else {
            // Aim at what is left per lead, so the total comes out exact
            // without the last lead taking a huge remainder.
            let mean = msgs as f64 / leads as f64;
            let exp = -(1.0 - rng.unit()).ln();
            let drawn = 1 + (exp * (mean - 1.0).max(0.0)).round() as u64;
            drawn.clamp(1, msgs - (leads - 1))
        };
        self.remaining_leads -= 1;
        self.remaining_messages -= count;
        Some(count)
    }
}

/// What one lead will be, decided before its ids are known.
struct LeadPlan {
    messages: u64,
    converted: bool,
}

/// The rows of one batch.
#[derive(Default)]
struct Rows {
    students: Vec<SeedStudent>,
    leads: Vec<SeedLead>,
    messages: Vec<SeedMessage>,
}

fn at_secs(secs: i64) -> NaiveDateTime {
    DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .naive_utc()
}

fn at_micros(micros: i64) -> NaiveDateTime {
    DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .naive_utc()
}

/// Builds a batch's rows with ids from the reserved blocks: leads from
/// `lead_base + 1`, messages from `message_base + 1`, students from
/// `student_base + 1`.
fn generate(
    plans: &[LeadPlan],
    lead_base: i64,
    message_base: i64,
    student_base: i64,
    now: i64,
    rng: &mut Rng,
) -> Rows {
    let mut rows = Rows::default();
    let total_messages: u64 = plans.iter().map(|p| p.messages).sum();
    rows.leads.reserve(plans.len());
    rows.messages.reserve(total_messages as usize);
    let mut next_message = message_base;
    let mut next_student = student_base;
    for (j, plan) in plans.iter().enumerate() {
        let id = lead_base + 1 + j as i64;
        let (cc, country) = COUNTRIES[(id as u64 % COUNTRIES.len() as u64) as usize];
        let shape = rng.below(10);
        let phone = (shape < 6 || shape == 9).then(|| format!("{cc}{id:010}"));
        let bsuid = (shape < 9).then(|| format!("{country}.58{id:018}"));
        let person = content::mix(id as u64);
        let username = ((6..9).contains(&shape) || (shape < 6 && rng.chance(0.2)))
            .then(|| content::username(person));
        let name = rng.chance(0.95).then(|| content::name(person));
        let parent = (bsuid.is_some() && rng.chance(0.02)).then(|| {
            format!(
                "{country}.ENT.{}",
                content::mix(id as u64 ^ 0xE17) % 10_000_000_000
            )
        });

        let business_number = weighted(&BUSINESS_NUMBERS, rng);
        let (source_type, source_id, source_headline) = match rng.below(100) {
            0..25 => {
                let ad = rng.below(AD_HEADLINES.len() as u64);
                (
                    Some("ad"),
                    Some(format!("12022{ad:010}")),
                    Some(AD_HEADLINES[ad as usize]),
                )
            }
            25..30 => (
                Some("post"),
                Some(format!("{}", 17_841_000 + rng.below(50))),
                None,
            ),
            _ => (None, None, None),
        };
        let status = if plan.converted {
            "converted"
        } else {
            weighted(&OPEN_STATUSES, rng)
        };

        // First contact within the last year, recent ones more likely.
        let u = rng.unit();
        let mut t = now - 30 - (u * u * 365.0 * DAY as f64) as i64;
        let mut first: Option<(&'static str, i64, i64)> = None;
        let mut last: (&'static str, i64, i64) = ("", t, t);
        for _ in 0..plan.messages {
            let (kind, body) = if rng.chance(TEXT_SHARE) {
                ("text", TEXTS[rng.below(TEXTS.len() as u64) as usize])
            } else {
                OTHER_MESSAGES[rng.below(OTHER_MESSAGES.len() as u64) as usize]
            };
            let received =
                (t * 1_000_000 + 200_000 + rng.below(2_500_000) as i64).min(now * 1_000_000);
            next_message += 1;
            rows.messages.push(SeedMessage {
                id: next_message,
                wamid: format!("wamid.SEED{next_message:020}"),
                lead_id: Some(id),
                direction: "inbound",
                phone_number: phone.clone(),
                user_id: bsuid.clone(),
                sender_name: name.clone(),
                business_phone_number_id: Some(business_number),
                message_type: kind,
                body,
                wa_timestamp: at_secs(t),
                received_at: at_micros(received),
            });
            if first.is_none() {
                first = Some((body, t, received));
            }
            last = (body, t, received);
            // Next message: minutes to hours later (less for recent leads,
            // so their messages fit before now), never in the future.
            let mean_gap = (6.0 * 3600.0f64).min((now - t) as f64 / (plan.messages + 1) as f64);
            let gap = 1 + (-(1.0 - rng.unit()).ln() * mean_gap) as i64;
            t = (t + gap).min(now - 1);
        }
        let (first_body, first_t, first_received) = first.unwrap_or(last);
        // Registered as a student (and so converted) a day after writing last.
        let converted_at = plan
            .converted
            .then(|| at_micros((last.2 + DAY * 1_000_000).min(now * 1_000_000)));
        let student_id = match converted_at {
            Some(at) => {
                next_student += 1;
                rows.students.push(SeedStudent {
                    id: next_student,
                    phone_number: phone.clone(),
                    user_id: bsuid.clone(),
                    parent_user_id: parent.clone(),
                    username: username.clone(),
                    name: name.clone(),
                    email: Some(format!("{}{id}@example.com", content::username(person))),
                    created_at: at,
                });
                Some(next_student)
            }
            None => None,
        };
        rows.leads.push(SeedLead {
            id,
            phone_number: phone,
            user_id: bsuid,
            parent_user_id: parent,
            username,
            sender_name: name,
            first_message: first_body,
            first_message_time: at_secs(first_t),
            last_message: last.0,
            last_message_time: at_secs(last.1),
            message_count: plan.messages as i64,
            is_active: !rng.chance(INACTIVE_SHARE),
            converted_to_student: plan.converted,
            student_id,
            created_at: at_micros(first_received),
            updated_at: converted_at.unwrap_or(at_micros(last.2)),
            status,
            converted_at,
            source_type,
            source_id,
            source_headline,
            business_phone_number_id: Some(business_number),
        });
    }
    rows
}

/// One of `choices`, by their weights.
fn weighted(choices: &[(&'static str, u64)], rng: &mut Rng) -> &'static str {
    let total: u64 = choices.iter().map(|(_, w)| w).sum();
    let mut draw = rng.below(total);
    for (choice, weight) in choices {
        if draw < *weight {
            return choice;
        }
        draw -= weight;
    }
    choices[choices.len() - 1].0
}

#[derive(QueryableByName)]
struct Value {
    #[diesel(sql_type = BigInt)]
    v: i64,
}

/// Reserves `n` ids of `table` (a fixed name from this file); returns the
/// id before the first reserved one. Inside the batch's IMMEDIATE
/// transaction, so nothing else writes meanwhile.
fn reserve_sqlite(c: &mut SqliteConnection, table: &str, n: u64) -> QueryResult<i64> {
    let base = diesel::sql_query(format!(
        "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = '{table}'), 0), \
                    COALESCE((SELECT MAX(id) FROM {table}), 0)) AS v"
    ))
    .get_result::<Value>(c)?
    .v;
    diesel::sql_query(format!(
        "DELETE FROM sqlite_sequence WHERE name = '{table}'"
    ))
    .execute(c)?;
    diesel::sql_query(format!(
        "INSERT INTO sqlite_sequence (name, seq) VALUES ('{table}', ?)"
    ))
    .bind::<BigInt, _>(base + n as i64)
    .execute(c)?;
    Ok(base)
}

/// As [`reserve_sqlite`]; the table lock (taken by the caller) keeps
/// concurrent inserts, and so `nextval`, out until the batch commits.
fn reserve_pg(c: &mut PgConnection, table: &str, n: u64) -> QueryResult<i64> {
    let base = diesel::sql_query(format!(
        "SELECT GREATEST((SELECT COALESCE(MAX(id), 0) FROM {table}), \
                         nextval(pg_get_serial_sequence('{table}', 'id'))) AS v"
    ))
    .get_result::<Value>(c)?
    .v;
    diesel::sql_query(format!(
        "SELECT setval(pg_get_serial_sequence('{table}', 'id'), $1) AS v"
    ))
    .bind::<BigInt, _>(base + n as i64)
    .get_result::<Value>(c)?;
    Ok(base)
}

/// Inserts `rows` in statements of at most `MAX_BINDS` parameters.
macro_rules! insert_all {
    ($c:expr, $table:expr, $rows:expr, $columns:expr) => {
        for part in $rows.chunks((MAX_BINDS / $columns).max(1)) {
            diesel::insert_into($table).values(part).execute($c)?;
        }
    };
}

fn insert_sqlite(
    c: &mut SqliteConnection,
    plans: &[LeadPlan],
    now: i64,
    rng: &mut Rng,
) -> QueryResult<Rows> {
    c.immediate_transaction(|c| {
        let (n_leads, n_messages, n_students) = sizes(plans);
        let lead_base = reserve_sqlite(c, "leads", n_leads)?;
        let message_base = reserve_sqlite(c, "messages", n_messages)?;
        let student_base = reserve_sqlite(c, "students", n_students)?;
        let rows = generate(plans, lead_base, message_base, student_base, now, rng);
        insert_all!(c, students::table, &rows.students, STUDENT_COLUMNS);
        insert_all!(c, leads::table, &rows.leads, LEAD_COLUMNS);
        insert_all!(c, messages::table, &rows.messages, MESSAGE_COLUMNS);
        Ok(rows)
    })
}

fn insert_pg(
    c: &mut PgConnection,
    plans: &[LeadPlan],
    now: i64,
    rng: &mut Rng,
) -> QueryResult<Rows> {
    c.transaction(|c| {
        // A crash during seeding may lose the last batches, never corrupt
        // anything; not waiting for each commit's WAL flush saves time.
        diesel::sql_query("SET LOCAL synchronous_commit = off").execute(c)?;
        diesel::sql_query("LOCK TABLE students, leads, messages IN SHARE ROW EXCLUSIVE MODE")
            .execute(c)?;
        let (n_leads, n_messages, n_students) = sizes(plans);
        let lead_base = reserve_pg(c, "leads", n_leads)?;
        let message_base = reserve_pg(c, "messages", n_messages)?;
        let student_base = reserve_pg(c, "students", n_students)?;
        let rows = generate(plans, lead_base, message_base, student_base, now, rng);
        insert_all!(c, students::table, &rows.students, STUDENT_COLUMNS);
        insert_all!(c, leads::table, &rows.leads, LEAD_COLUMNS);
        insert_all!(c, messages::table, &rows.messages, MESSAGE_COLUMNS);
        Ok(rows)
    })
}

fn sizes(plans: &[LeadPlan]) -> (u64, u64, u64) {
    (
        plans.len() as u64,
        plans.iter().map(|p| p.messages).sum(),
        plans.iter().filter(|p| p.converted).count() as u64,
    )
}

pub async fn run(args: SeedArgs) -> anyhow::Result<()> {
    if args.messages < args.leads {
        bail!(
            "--messages {} is less than --leads {}: every lead has at least one message",
            args.messages,
            args.leads
        );
    }
    let config = Config::from_env()?;
    tokio::task::spawn_blocking(move || seed(&config, &args))
        .await
        .context("the seeding thread failed")?
}

fn seed(config: &Config, args: &SeedArgs) -> anyhow::Result<()> {
    let database = startup::open_database(config)?;
    let mut conn = database
        .writes
        .get()
        .context("cannot get a database connection")?;
    let batch = args.batch.unwrap_or(match &*conn {
        DbConnection::Sqlite(_) => SQLITE_BATCH,
        DbConnection::Postgres(_) => POSTGRES_BATCH,
    });
    println!(
        "seeding {}: {} leads, {} messages, {} leads per transaction",
        config.database,
        thousands(args.leads),
        thousands(args.messages),
        thousands(batch)
    );
    let began = Instant::now();
    let now = Utc::now().timestamp();
    let mut counts = MessageCounts::new(args.leads, args.messages);
    let mut rng = Rng::new(args.seed);
    let (mut leads_done, mut messages_done, mut students_done) = (0u64, 0u64, 0u64);
    let mut last_report = Instant::now();
    loop {
        let mut plans = Vec::with_capacity(batch as usize);
        while (plans.len() as u64) < batch {
            let Some(messages) = counts.next(&mut rng) else {
                break;
            };
            plans.push(LeadPlan {
                messages,
                converted: rng.chance(CONVERTED_SHARE),
            });
        }
        if plans.is_empty() {
            break;
        }
        let rows = match &mut *conn {
            DbConnection::Sqlite(c) => insert_sqlite(c, &plans, now, &mut rng),
            DbConnection::Postgres(c) => insert_pg(c, &plans, now, &mut rng),
        }
        .context("inserting a batch failed (nothing of that batch was kept)")?;
        if let DbConnection::Sqlite(c) = &mut *conn {
            // Connections leave checkpoints to the server's background task
            // (`db::checkpoint`), which does not run here: without
            // this the write-ahead log grows to the size of everything seeded
            // (35 GB for 1 M leads) and every read slows down with it.
            c.batch_execute("PRAGMA wal_checkpoint(TRUNCATE)")
                .context("checkpointing the write-ahead log failed")?;
        }
        leads_done += rows.leads.len() as u64;
        messages_done += rows.messages.len() as u64;
        students_done += rows.students.len() as u64;
        if last_report.elapsed().as_secs_f64() >= 2.0 || leads_done == args.leads {
            last_report = Instant::now();
            let secs = began.elapsed().as_secs_f64();
            println!(
                "  {:>5.1} %  {} leads, {} messages  {:.1} s  ({:.0} rows/s)",
                100.0 * messages_done as f64 / args.messages as f64,
                thousands(leads_done),
                thousands(messages_done),
                secs,
                (leads_done + messages_done + students_done) as f64 / secs.max(1e-9)
            );
        }
    }
    let inserted = began.elapsed();
    // Give the planner row counts before anyone benchmarks queries. On
    // PostgreSQL also what autovacuum would do soon anyway: mark the pages
    // all-visible, so that queries answered from an index alone (analytics)
    // need not visit the table. Both cover every table, including those
    // that triggers fill (PostgreSQL's `lead_search`).
    let analyzing = Instant::now();
    match &mut *conn {
        DbConnection::Sqlite(c) => c.batch_execute("ANALYZE"),
        DbConnection::Postgres(c) => c.batch_execute("VACUUM ANALYZE"),
    }
    .context("ANALYZE failed")?;
    println!("  analyzed in {:.1} s", analyzing.elapsed().as_secs_f64());
    if let Some(mut index) = database.search {
        // The server's index thread would do it at its start; done here, the
        // seeded database is ready to benchmark searches on.
        let indexing = Instant::now();
        let indexed = index
            .catch_up()
            .context("building the search indexes failed")?;
        println!(
            "  indexed {} leads and {} messages for search in {:.1} s",
            thousands(indexed.leads as u64),
            thousands(indexed.messages as u64),
            indexing.elapsed().as_secs_f64()
        );
    }
    let secs = inserted.as_secs_f64();
    println!(
        "seeded {} leads, {} messages and {} students in {:.1} s ({:.0} rows/s)",
        thousands(leads_done),
        thousands(messages_done),
        thousands(students_done),
        secs,
        (leads_done + messages_done + students_done) as f64 / secs.max(1e-9)
    );
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn message_counts_sum_exactly_and_are_skewed() {
        for (leads, messages) in [(1u64, 1u64), (1, 7), (10, 10), (1000, 5000), (777, 100_000)] {
            let mut c = MessageCounts::new(leads, messages);
            let mut rng = Rng::new(3);
            let mut all = Vec::new();
            while let Some(n) = c.next(&mut rng) {
                assert!(n >= 1);
                all.push(n);
            }
            assert_eq!(all.len() as u64, leads);
            assert_eq!(all.iter().sum::<u64>(), messages);
        }
        let mut c = MessageCounts::new(10_000, 50_000);
        let mut rng = Rng::new(3);
        let all: Vec<u64> = std::iter::from_fn(|| c.next(&mut rng)).collect();
        let ones = all.iter().filter(|n| **n == 1).count();
        let max = *all.iter().max().unwrap();
        assert!(ones > 1000, "{ones}");
        assert!(max > 25, "{max}");
    }

    #[test]
    fn generated_rows_are_consistent() {
        let plans: Vec<LeadPlan> = (0..200)
            .map(|i| LeadPlan {
                messages: 1 + i % 7,
                converted: i % 10 == 0,
            })
            .collect();
        let now = 1_767_225_600;
        let rows = generate(&plans, 100, 5000, 7, now, &mut Rng::new(9));
        assert_eq!(rows.leads.len(), 200);
        assert_eq!(rows.students.len(), 20);
        assert_eq!(rows.leads[0].id, 101);
        assert_eq!(rows.messages[0].id, 5001);
        assert_eq!(rows.students[0].id, 8);
        let mut ids = std::collections::HashSet::new();
        for lead in &rows.leads {
            assert!(lead.phone_number.is_some() || lead.user_id.is_some());
            if let Some(p) = &lead.phone_number {
                assert!(crate::identity::PhoneNumber::parse(p).is_ok(), "{p}");
                assert!(ids.insert(p.clone()));
            }
            if let Some(b) = &lead.user_id {
                assert!(crate::identity::Bsuid::parse(b).is_ok(), "{b}");
                assert!(ids.insert(b.clone()));
            }
            let mine: Vec<&SeedMessage> = rows
                .messages
                .iter()
                .filter(|m| m.lead_id == Some(lead.id))
                .collect();
            assert_eq!(mine.len() as i64, lead.message_count);
            assert_eq!(mine[0].body, lead.first_message);
            assert_eq!(mine[0].wa_timestamp, lead.first_message_time);
            assert_eq!(mine.last().unwrap().body, lead.last_message);
            assert_eq!(mine.last().unwrap().wa_timestamp, lead.last_message_time);
            assert!(mine
                .windows(2)
                .all(|w| w[0].wa_timestamp <= w[1].wa_timestamp));
            assert!(lead.last_message_time <= at_secs(now));
            assert_eq!(lead.converted_to_student, lead.student_id.is_some());
            assert_eq!(lead.converted_to_student, lead.converted_at.is_some());
            assert_eq!(lead.converted_to_student, lead.status == "converted");
            assert!(mine
                .iter()
                .all(|m| m.business_phone_number_id == lead.business_phone_number_id));
        }
        let statuses: std::collections::HashSet<&str> =
            rows.leads.iter().map(|l| l.status).collect();
        assert_eq!(statuses.len(), 5, "{statuses:?}");
        let sources: std::collections::HashSet<Option<&str>> =
            rows.leads.iter().map(|l| l.source_type).collect();
        assert_eq!(sources.len(), 3, "{sources:?}");
        let wamids: std::collections::HashSet<&str> =
            rows.messages.iter().map(|m| m.wamid.as_str()).collect();
        assert_eq!(wamids.len(), rows.messages.len());
    }

    #[test]
    fn seeds_a_sqlite_database_twice_without_collisions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seed.db");
        let config = Config::from_lookup(|k| match k {
            "DATABASE_URL" => Some(path.to_string_lossy().into_owned()),
            _ => None,
        })
        .unwrap();
        let args = SeedArgs {
            leads: 250,
            messages: 1000,
            batch: Some(100),
            seed: 1,
        };
        seed(&config, &args).unwrap();
        seed(&config, &args).unwrap();
        let database = startup::open_database(&config).unwrap();
        let mut conn = database.reads.get().unwrap();
        let stats = crate::leads::service::stats(&mut conn).unwrap();
        assert_eq!(stats.total_leads, 500);
        assert_eq!(stats.messages_total, 2000);
        // The server's own inserts continue after the seeded ids.
        let next: i64 = crate::with_conn!(&mut *conn, c => {
            diesel::insert_into(students::table)
                .values((
                    students::phone_number.eq("15550000001"),
                    students::created_at.eq(crate::time::now()),
                ))
                .returning(students::id)
                .get_result(c)
        })
        .unwrap();
        assert!(next > 0);
    }
}
