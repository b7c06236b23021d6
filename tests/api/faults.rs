//! Fault injection: what the service promises when things break.
//!
//! - PostgreSQL goes away under traffic and comes back (a TCP proxy between
//!   the service and the database is cut, then restored);
//! - SQLite refuses writes (another connection holds the write lock);
//! - the process is killed with `SIGKILL` under load, then restarted;
//! - the process is stopped with `SIGTERM` with 50 requests in flight;
//! - secrets never reach the logs, at `debug` or `trace` level.
//!
//! The promises checked throughout: `200` means committed; a webhook the
//! database cannot take answers `503` within a bounded time; nothing is
//! half-applied; redelivering everything (as WhatsApp does) stores each
//! message exactly once and counts it once on its sender's lead.
//!
//! Each test prints a `fault summary` line (see with `--nocapture`).

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};
use futures::StreamExt;

use crate::child::{in_flight_post, post_once, send_signal, wait_until_refused, Server, SECRETS};
use crate::helpers::{
    Backend, Endpoint, PostOutcome, TestApp, TestDb, ADMIN_TOKEN, APP_SECRET, POSTGRES_VAR,
    VERIFY_TOKEN,
};
use crate::payloads::{webhook, Msg, Sender, T0};
use crate::proxy::Proxy;

/// The bound on every webhook's answer while the database is unavailable
/// (`DATABASE_TIMEOUT_MS` is 1 s in these tests).
const ANSWER_WITHIN: Duration = Duration::from_secs(3);

/// Declares `async fn name(db: TestDb)` as two tests, `name::sqlite` and
/// `name::postgres` (skipped without `LEADHOOK_TEST_POSTGRES_URL`), for the
/// tests that run the binary as a child on a database of their own.
macro_rules! on_both_databases_as_a_child {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use $crate::helpers::{Backend, TestDb, POSTGRES_VAR};
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(TestDb::create(Backend::Sqlite).expect("SQLite")).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                match TestDb::create(Backend::Postgres) {
                    Some(db) => super::$name(db).await,
                    None => eprintln!("skipped: set {POSTGRES_VAR} to run on PostgreSQL"),
                }
            }
        }
    )*};
}

// --- what is sent ------------------------------------------------------------

/// One webhook body and the messages in it.
struct Delivery {
    body: Vec<u8>,
    /// (sender's phone number, message id)
    messages: Vec<(String, String)>,
}

impl Delivery {
    fn of(messages: &[Msg]) -> Delivery {
        Delivery {
            body: serde_json::to_vec(&webhook(messages)).expect("serialise"),
            messages: messages
                .iter()
                .map(|m| (m.sender.phone.clone().expect("a phone"), m.id.clone()))
                .collect(),
        }
    }
}

/// The phone number of sender `n` of test `run`.
fn phone(run: u32, n: usize) -> String {
    format!("1555{run:03}{n:04}")
}

/// `per_sender` one-message webhooks from each of `senders` people,
/// interleaved.
fn one_message_each(run: u32, senders: usize, per_sender: usize) -> Vec<Delivery> {
    (0..per_sender)
        .flat_map(|i| (0..senders).map(move |n| (i, n)))
        .map(|(i, n)| {
            let sender = Sender::phone(&phone(run, n)).named(&format!("Sender {n}"));
            let id = format!("wamid.F{run}.{n}.{i}");
            Delivery::of(&[Msg::text(&sender, &id, T0 + i as i64, "hello")])
        })
        .collect()
}

/// Webhooks of three messages from two people (two from one, one from the
/// next, of three senders): a half-applied body would show in the counts.
fn three_message_bodies(run: u32, bodies: usize) -> Vec<Delivery> {
    (0..bodies)
        .map(|k| {
            let a = Sender::phone(&phone(run, k % 3)).named("Sender A");
            let b = Sender::phone(&phone(run, (k + 1) % 3)).named("Sender B");
            let id = |j: usize| format!("wamid.F{run}.{k}.{j}");
            let t = T0 + 10 * k as i64;
            Delivery::of(&[
                Msg::text(&a, &id(0), t, "first"),
                Msg::text(&b, &id(1), t + 1, "second"),
                Msg::text(&a, &id(2), t + 2, "third"),
            ])
        })
        .collect()
}

/// One attempt to deliver a planned webhook, and how it ended.
#[derive(Debug, Clone)]
struct Attempt {
    delivery: usize,
    started: Instant,
    latency: Duration,
    outcome: PostOutcome,
}

impl Attempt {
    fn acked(&self) -> bool {
        self.outcome == PostOutcome::Answered(200)
    }
}

/// One line per attempt, for failure messages.
fn brief<'a>(attempts: impl IntoIterator<Item = &'a Attempt>) -> String {
    attempts
        .into_iter()
        .map(|a| {
            format!(
                "\n  delivery {}: {:?} after {:?}",
                a.delivery, a.outcome, a.latency
            )
        })
        .collect()
}

/// A plan of webhooks, handed out once each to whoever sends next (several
/// clients, tasks or threads), and a record of every attempt.
#[derive(Clone)]
struct Traffic(Arc<TrafficState>);

struct TrafficState {
    plan: Vec<Delivery>,
    next: AtomicUsize,
    attempts: Mutex<Vec<Attempt>>,
}

impl Traffic {
    fn new(plan: Vec<Delivery>) -> Traffic {
        Traffic(Arc::new(TrafficState {
            plan,
            next: AtomicUsize::new(0),
            attempts: Mutex::new(Vec::new()),
        }))
    }

    /// The next planned delivery (its index and body); `None` once all are
    /// taken.
    fn take(&self) -> Option<(usize, Vec<u8>)> {
        let i = self.0.next.fetch_add(1, Ordering::SeqCst);
        self.0.plan.get(i).map(|d| (i, d.body.clone()))
    }

    fn record(&self, delivery: usize, started: Instant, outcome: PostOutcome) -> Attempt {
        let attempt = Attempt {
            delivery,
            started,
            latency: started.elapsed(),
            outcome,
        };
        self.0.attempts.lock().unwrap().push(attempt.clone());
        attempt
    }

    /// Sends the next planned delivery; `None` once all are taken.
    async fn send_next(&self, endpoint: &Endpoint) -> Option<Attempt> {
        let (i, body) = self.take()?;
        let started = Instant::now();
        let outcome = endpoint.post_webhook(&body).await;
        Some(self.record(i, started, outcome))
    }

    fn attempts(&self) -> Vec<Attempt> {
        self.0.attempts.lock().unwrap().clone()
    }

    fn attempted(&self) -> usize {
        self.0.attempts.lock().unwrap().len()
    }

    fn acked(&self) -> usize {
        self.0
            .attempts
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.acked())
            .count()
    }

    fn ledger(&self) -> Ledger {
        let mut ledger = Ledger::default();
        for attempt in self.attempts() {
            let delivery = &self.0.plan[attempt.delivery];
            ledger.bodies.push(delivery.body.clone());
            ledger.requests += 1;
            ledger.acked_requests += usize::from(attempt.acked());
            for (phone, id) in &delivery.messages {
                ledger
                    .sent
                    .entry(phone.clone())
                    .or_default()
                    .insert(id.clone());
                if attempt.acked() {
                    ledger
                        .acked
                        .entry(phone.clone())
                        .or_default()
                        .insert(id.clone());
                }
                ledger.outcome.insert(id.clone(), attempt.outcome.clone());
            }
        }
        ledger
    }
}

/// `clients` tasks, each sending one webhook after another `pause` apart,
/// until `stop` is set, the plan runs out or 30 s pass.
fn steady_stream(
    traffic: &Traffic,
    endpoint: &Endpoint,
    clients: usize,
    pause: Duration,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..clients)
        .map(|_| {
            let (traffic, endpoint, stop) = (traffic.clone(), endpoint.clone(), stop.clone());
            tokio::spawn(async move {
                let deadline = Instant::now() + Duration::from_secs(30);
                while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                    if traffic.send_next(&endpoint).await.is_none() {
                        break;
                    }
                    tokio::time::sleep(pause).await;
                }
            })
        })
        .collect()
}

/// Every message the test sent (attempted, whatever the answer), per sender.
#[derive(Debug, Default)]
struct Ledger {
    sent: BTreeMap<String, BTreeSet<String>>,
    /// The messages whose webhook was answered `200`.
    acked: BTreeMap<String, BTreeSet<String>>,
    /// How the (last) attempt to deliver each message ended.
    outcome: BTreeMap<String, PostOutcome>,
    /// Every body attempted, for redelivery.
    bodies: Vec<Vec<u8>>,
    requests: usize,
    acked_requests: usize,
}

fn total(messages: &BTreeMap<String, BTreeSet<String>>) -> usize {
    messages.values().map(BTreeSet::len).sum()
}

// --- what is stored ----------------------------------------------------------

/// What the admin API shows: per sender's phone number, its lead's
/// `message_count` and the ids of its stored messages; and the totals.
#[derive(Debug)]
struct Stored {
    leads: BTreeMap<String, (i64, BTreeSet<String>)>,
    lead_rows: usize,
    messages_total: i64,
}

impl Stored {
    async fn read(endpoint: &Endpoint) -> Stored {
        let stats = endpoint.admin_json("/api/admin/leads/stats").await;
        let page = endpoint.admin_json("/api/admin/leads?limit=500").await;
        let items = page["items"].as_array().expect("items");
        assert_eq!(page["total"], items.len(), "more than one page of leads");
        let mut leads = BTreeMap::new();
        for lead in items {
            let phone = lead["phone_number"].as_str().expect("phone_number");
            let detail = endpoint
                .admin_json(&format!("/api/admin/leads/{}?limit=1000", lead["id"]))
                .await;
            let ids: BTreeSet<String> = detail["messages"]
                .as_array()
                .expect("messages")
                .iter()
                .map(|m| m["wamid"].as_str().expect("wamid").to_string())
                .collect();
            let count = lead["message_count"].as_i64().expect("message_count");
            leads.insert(phone.to_string(), (count, ids));
        }
        Stored {
            leads,
            lead_rows: items.len(),
            messages_total: stats["messages_total"].as_i64().expect("messages_total"),
        }
    }

    /// Distinct stored message ids.
    fn found(&self) -> usize {
        self.leads.values().map(|(_, ids)| ids.len()).sum()
    }

    /// How many more messages are counted than distinct ones are stored.
    fn duplicates(&self) -> i64 {
        let counted: i64 = self.leads.values().map(|(count, _)| *count).sum();
        counted.max(self.messages_total) - self.found() as i64
    }

    /// Counting problems: a lead whose count differs from its stored
    /// messages, a total that differs from the sum, two leads of one number.
    fn inconsistencies(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (phone, (count, ids)) in &self.leads {
            if *count != ids.len() as i64 {
                problems.push(format!(
                    "{phone}: message_count {count}, but {} messages stored",
                    ids.len()
                ));
            }
        }
        if self.messages_total != self.found() as i64 {
            problems.push(format!(
                "messages_total {} but {} messages stored on leads",
                self.messages_total,
                self.found()
            ));
        }
        if self.lead_rows != self.leads.len() {
            problems.push(format!(
                "{} lead rows for {} phone numbers",
                self.lead_rows,
                self.leads.len()
            ));
        }
        problems
    }

    /// After a fault, before any redelivery: every message answered `200` is
    /// stored and counted, nothing is stored that was not sent, and the
    /// counts agree with the stored rows.
    fn assert_acknowledged_present(&self, ledger: &Ledger, when: &str) {
        let mut problems = self.inconsistencies();
        for (phone, acked) in &ledger.acked {
            let stored = self.leads.get(phone).map(|(_, ids)| ids);
            let missing: Vec<_> = acked
                .iter()
                .filter(|id| !stored.is_some_and(|ids| ids.contains(*id)))
                .collect();
            if !missing.is_empty() {
                problems.push(format!("{phone}: answered 200 but not stored: {missing:?}"));
            }
        }
        for (phone, (_, ids)) in &self.leads {
            let sent = ledger.sent.get(phone);
            let unknown: Vec<_> = ids
                .iter()
                .filter(|id| !sent.is_some_and(|s| s.contains(*id)))
                .collect();
            if !unknown.is_empty() {
                problems.push(format!("{phone}: stored but never sent: {unknown:?}"));
            }
        }
        assert!(problems.is_empty(), "{when}:\n{}", problems.join("\n"));
    }

    /// Exactly `expected` is stored, each message once, and counted once on
    /// its sender's lead.
    fn assert_exactly(
        &self,
        expected: &BTreeMap<String, BTreeSet<String>>,
        ledger: &Ledger,
        when: &str,
    ) {
        let mut problems = self.inconsistencies();
        let empty = BTreeSet::new();
        let phones: BTreeSet<&String> = expected.keys().chain(self.leads.keys()).collect();
        for phone in phones {
            let want = expected.get(phone).unwrap_or(&empty);
            let (count, have) = self
                .leads
                .get(phone)
                .map_or((0, &empty), |(c, ids)| (*c, ids));
            let with_outcome = |ids: Vec<&String>| -> Vec<String> {
                ids.into_iter()
                    .map(|id| format!("{id} ({:?})", ledger.outcome.get(id)))
                    .collect()
            };
            let missing = with_outcome(want.difference(have).collect());
            let extra = with_outcome(have.difference(want).collect());
            if !missing.is_empty() {
                problems.push(format!("{phone}: not stored: {missing:?}"));
            }
            if !extra.is_empty() {
                problems.push(format!("{phone}: stored, but should not be: {extra:?}"));
            }
            if count != want.len() as i64 {
                problems.push(format!(
                    "{phone}: message_count {count}, expected {}",
                    want.len()
                ));
            }
        }
        if self.messages_total != total(expected) as i64 {
            problems.push(format!(
                "messages_total {}, expected {}",
                self.messages_total,
                total(expected)
            ));
        }
        assert!(problems.is_empty(), "{when}:\n{}", problems.join("\n"));
    }
}

/// Redelivers every attempted body (8 at a time), as WhatsApp retries; each
/// must be answered `200`.
async fn redeliver_all(endpoint: &Endpoint, ledger: &Ledger) {
    let outcomes: Vec<PostOutcome> = futures::stream::iter(&ledger.bodies)
        .map(|body| endpoint.post_webhook(body))
        .buffer_unordered(8)
        .collect()
        .await;
    let failed: Vec<_> = outcomes
        .iter()
        .filter(|o| **o != PostOutcome::Answered(200))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} redeliveries failed: {failed:?}",
        failed.len(),
        outcomes.len()
    );
}

fn summary(test: &str, ledger: &Ledger, stored: &Stored) {
    eprintln!(
        "fault summary | {test} | requests {} acked {} | messages sent {} acked {} | found {} | duplicates {}",
        ledger.requests,
        ledger.acked_requests,
        total(&ledger.sent),
        total(&ledger.acked),
        stored.found(),
        stored.duplicates()
    );
}

// --- 1. PostgreSQL outage ----------------------------------------------------

/// PostgreSQL goes away while webhooks keep arriving: each is answered `503`
/// within 3 s and `/readyz` says 503; once the database is back the same
/// process serves `200` again, and redelivery stores everything exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_answers_503_in_bounded_time_and_recovers_without_restart() {
    let Some(proxy) = Proxy::to_test_postgres().await else {
        eprintln!("skipped: set {POSTGRES_VAR} to run on PostgreSQL");
        return;
    };
    let db = TestDb::create(Backend::Postgres).expect("a PostgreSQL test database");
    let url = proxy.route(&db.url());
    let app = TestApp::spawn_on(db, &url, &[("DATABASE_TIMEOUT_MS", "1000")]).await;
    let endpoint = app.endpoint();
    let traffic = Traffic::new(one_message_each(1, 5, 80));

    for _ in 0..10 {
        let attempt = traffic.send_next(&endpoint).await.expect("planned");
        assert!(attempt.acked(), "before the outage: {attempt:?}");
    }
    assert_eq!(endpoint.status_of("/readyz").await, 200);

    // Eight clients keep sending while the database is away for 3.5 s.
    let stop = Arc::new(AtomicBool::new(false));
    let clients = steady_stream(&traffic, &endpoint, 8, Duration::from_millis(40), &stop);
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.cut().await;
    let cut_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let ready_started = Instant::now();
    let ready_during = endpoint.status_of("/readyz").await;
    let ready_latency = ready_started.elapsed();
    tokio::time::sleep(Duration::from_millis(3500).saturating_sub(cut_at.elapsed())).await;
    let restore_at = Instant::now();
    proxy.restore().await;

    // Recovered: webhooks are stored again and /readyz says so (bounded).
    let recovery_deadline = restore_at + Duration::from_secs(15);
    let mut webhook_back = None;
    while webhook_back.is_none() && Instant::now() < recovery_deadline {
        if traffic
            .send_next(&endpoint)
            .await
            .is_some_and(|a| a.acked())
        {
            webhook_back = Some(restore_at.elapsed());
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let mut ready_back = None;
    while ready_back.is_none() && Instant::now() < recovery_deadline {
        if endpoint.status_of("/readyz").await == 200 {
            ready_back = Some(restore_at.elapsed());
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.expect("client task");
    }
    // And stays recovered.
    let mut after: Vec<PostOutcome> = Vec::new();
    for _ in 0..10 {
        after.push(traffic.send_next(&endpoint).await.expect("planned").outcome);
    }
    let ready_after = endpoint.status_of("/readyz").await;

    let attempts = traffic.attempts();
    let slow: Vec<_> = attempts
        .iter()
        .filter(|a| a.latency > ANSWER_WITHIN)
        .collect();
    let unanswered: Vec<_> = attempts
        .iter()
        .filter(|a| !matches!(a.outcome, PostOutcome::Answered(_)))
        .collect();
    let during: Vec<_> = attempts
        .iter()
        .filter(|a| a.started >= cut_at && a.started + a.latency <= restore_at)
        .collect();
    let not_503: Vec<_> = during
        .iter()
        .filter(|a| a.outcome != PostOutcome::Answered(503))
        .collect();
    assert!(
        slow.is_empty(),
        "answered after more than {ANSWER_WITHIN:?}:{}",
        brief(slow)
    );
    assert!(unanswered.is_empty(), "no answer:{}", brief(unanswered));
    assert!(
        during.len() >= 5,
        "only {} webhooks were sent during the outage",
        during.len()
    );
    assert!(
        not_503.is_empty(),
        "during the outage, not 503:{}",
        brief(not_503.into_iter().copied())
    );
    assert_eq!(ready_during, 503, "/readyz during the outage");
    assert!(
        ready_latency <= ANSWER_WITHIN,
        "/readyz took {ready_latency:?} during the outage"
    );
    let webhook_back = webhook_back.expect("webhooks answered 200 within 15 s of the restore");
    let ready_back = ready_back.expect("/readyz answered 200 within 15 s of the restore");
    assert!(
        after.iter().all(|o| *o == PostOutcome::Answered(200)),
        "after recovery: {after:?}"
    );
    assert_eq!(ready_after, 200, "/readyz after recovery");

    let slowest = attempts.iter().map(|a| a.latency).max().unwrap_or_default();

    let ledger = traffic.ledger();
    let stored = Stored::read(&endpoint).await;
    stored.assert_acknowledged_present(&ledger, "after the outage, before redelivery");
    redeliver_all(&endpoint, &ledger).await;
    let stored = Stored::read(&endpoint).await;
    stored.assert_exactly(&ledger.sent, &ledger, "after redelivering everything");
    summary(
        &format!(
            "postgres outage: {} sent during the 3.5 s cut, all 503, slowest answer {slowest:?}; \
             webhooks back after {webhook_back:?}, /readyz after {ready_back:?}",
            during.len()
        ),
        &ledger,
        &stored,
    );
}

// --- 2. SQLite refuses writes ------------------------------------------------

/// Another connection holds SQLite's write lock: webhooks (of three
/// messages each) answer `503` within 3 s and change nothing; once the lock
/// is released only the acknowledged messages are there, and redelivery
/// stores each exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_write_lock_answers_503_in_bounded_time_and_applies_nothing() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[("DATABASE_TIMEOUT_MS", "1000")])
        .await
        .expect("SQLite");
    let endpoint = app.endpoint();
    let traffic = Traffic::new(three_message_bodies(2, 16));

    for _ in 0..4 {
        let attempt = traffic.send_next(&endpoint).await.expect("planned");
        assert!(attempt.acked(), "before the lock: {attempt:?}");
    }

    let path = app.database_url();
    let lock = tokio::task::spawn_blocking(move || {
        let mut conn = SqliteConnection::establish(&path).expect("open the database");
        conn.batch_execute("PRAGMA busy_timeout = 5000; BEGIN EXCLUSIVE;")
            .expect("take the write lock");
        conn
    })
    .await
    .expect("lock task");
    let locked_at = Instant::now();

    // Three rounds of four concurrent webhooks.
    let mut during = Vec::new();
    for _ in 0..3 {
        let round = futures::future::join_all((0..4).map(|_| traffic.send_next(&endpoint))).await;
        during.extend(round.into_iter().map(|a| a.expect("planned")));
    }
    // Reads still work (WAL) and see only what was acknowledged.
    let while_locked = Stored::read(&endpoint).await;

    tokio::task::spawn_blocking(move || {
        let mut lock = lock;
        lock.batch_execute("ROLLBACK").expect("release the lock");
    })
    .await
    .expect("unlock task");
    let locked_for = locked_at.elapsed();

    let not_503: Vec<_> = during
        .iter()
        .filter(|a| a.outcome != PostOutcome::Answered(503))
        .collect();
    assert!(
        not_503.is_empty(),
        "while the database was locked, webhooks must answer 503:{}",
        brief(not_503)
    );

    let ledger = traffic.ledger();
    while_locked.assert_exactly(&ledger.acked, &ledger, "while locked");
    let stored = Stored::read(&endpoint).await;
    stored.assert_exactly(&ledger.acked, &ledger, "after the lock is released");
    // Nor did the live conversations see a message that was not committed.
    let conversations = endpoint.admin_json("/api/admin/conversations").await;
    let in_memory: u64 = conversations["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|c| c["total_messages"].as_u64().expect("total_messages"))
        .sum();
    assert_eq!(
        in_memory as usize,
        total(&ledger.acked),
        "{conversations:#}"
    );

    redeliver_all(&endpoint, &ledger).await;
    let stored = Stored::read(&endpoint).await;
    stored.assert_exactly(&ledger.sent, &ledger, "after redelivering everything");
    let slowest = during.iter().map(|a| a.latency).max().unwrap_or_default();
    summary(
        &format!(
            "sqlite write lock held {locked_for:?}: {} bodies sent meanwhile, all 503, slowest after {slowest:?}",
            during.len()
        ),
        &ledger,
        &stored,
    );
    // Last, so that the checks above still report when only this fails.
    let slow: Vec<_> = during
        .iter()
        .filter(|a| a.latency > ANSWER_WITHIN)
        .collect();
    assert!(
        slow.is_empty(),
        "while the database was locked, webhooks must answer within {ANSWER_WITHIN:?}:{}",
        brief(slow)
    );
}

// --- 3. SIGKILL under load ---------------------------------------------------

/// ~300 distinct messages from six senders, 16 in flight; `SIGKILL` once 100
/// are acknowledged. After a restart every acknowledged message is stored
/// and counted; redelivering everything then counts each exactly once.
async fn sigkill_under_load_loses_no_acknowledged_message(db: TestDb) {
    const SENDERS: usize = 6;
    const PER_SENDER: usize = 50;
    const KILL_AFTER_ACKS: usize = 100;
    let dir = tempfile::tempdir().expect("temp dir");
    let database = db.url();
    let mut server = Server::start(dir.path(), &database, &SECRETS, "before-kill").await;
    let pid = server.pid();
    let endpoint = server.endpoint();
    let traffic = Traffic::new(one_message_each(3, SENDERS, PER_SENDER));

    let load = futures::stream::iter(0..SENDERS * PER_SENDER)
        .map(|_| traffic.send_next(&endpoint))
        .buffer_unordered(16)
        .count();
    let killer = async {
        let deadline = Instant::now() + Duration::from_secs(30);
        while traffic.acked() < KILL_AFTER_ACKS
            && traffic.attempted() < SENDERS * PER_SENDER
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        send_signal(pid, "KILL");
    };
    tokio::join!(load, killer);
    let status = server
        .process
        .exit_within(Duration::from_secs(5))
        .await
        .expect("the process died");
    assert_eq!(status.signal(), Some(9), "{status}");

    let ledger = traffic.ledger();
    assert!(
        ledger.acked_requests >= KILL_AFTER_ACKS && ledger.acked_requests < SENDERS * PER_SENDER,
        "the kill did not land mid-load: {} of {} acknowledged",
        ledger.acked_requests,
        ledger.requests
    );

    let restarted = Server::start(dir.path(), &database, &SECRETS, "after-kill").await;
    let endpoint = restarted.endpoint();
    let stored = Stored::read(&endpoint).await;
    stored.assert_acknowledged_present(&ledger, "after SIGKILL and a restart");
    let found_after_crash = stored.found();

    redeliver_all(&endpoint, &ledger).await;
    let stored = Stored::read(&endpoint).await;
    stored.assert_exactly(&ledger.sent, &ledger, "after redelivering everything");
    assert_eq!(stored.leads.len(), SENDERS);
    assert_eq!(total(&ledger.sent), SENDERS * PER_SENDER);
    summary(
        &format!(
            "SIGKILL ({:?}) after {} acks; {found_after_crash} found after the restart",
            db.backend(),
            ledger.acked_requests
        ),
        &ledger,
        &stored,
    );
}

// --- 4. SIGTERM under load ---------------------------------------------------

/// `SIGTERM` while 50 webhooks are in flight (their heads read, half their
/// bodies sent) and three clients keep sending complete ones. The process
/// stops accepting, the 50 finish with `200`, it exits 0 within
/// `SHUTDOWN_GRACE_SECS`, and after a restart the database holds exactly
/// the messages answered `200`. Every other request either had its
/// connection refused, or was cut off without any answer (a connection
/// still queued when the listener closed): such a message is never stored,
/// and no request is answered anything but `200`.
async fn sigterm_under_load_answers_every_committed_request(db: TestDb) {
    const IN_FLIGHT: usize = 50;
    const GRACE: Duration = Duration::from_secs(10);
    let dir = tempfile::tempdir().expect("temp dir");
    let database = db.url();
    let mut vars = SECRETS.to_vec();
    let grace = GRACE.as_secs().to_string();
    vars.push(("SHUTDOWN_GRACE_SECS", &grace));
    let mut server = Server::start(dir.path(), &database, &vars, "sigterm-load").await;
    let (port, pid) = (server.port, server.pid());
    let endpoint = server.endpoint();
    let traffic = Traffic::new(one_message_each(4, 5, 80));

    for _ in 0..5 {
        let attempt = traffic.send_next(&endpoint).await.expect("planned");
        assert!(attempt.acked(), "before SIGTERM: {attempt:?}");
    }

    let orchestration = {
        let traffic = traffic.clone();
        tokio::task::spawn_blocking(move || {
            let (ready_tx, ready_rx) = mpsc::channel();
            let mut go_signals = Vec::new();
            let mut in_flight = Vec::new();
            for _ in 0..IN_FLIGHT {
                let (i, body) = traffic.take().expect("planned");
                let (go_tx, go_rx) = mpsc::channel();
                go_signals.push(go_tx);
                let (ready, traffic) = (ready_tx.clone(), traffic.clone());
                in_flight.push(std::thread::spawn(move || {
                    let started = Instant::now();
                    let outcome = match in_flight_post(port, body, ready, go_rx) {
                        Ok(status) => PostOutcome::Answered(status),
                        Err(e) => PostOutcome::NoResponse(e),
                    };
                    traffic.record(i, started, outcome)
                }));
            }
            let all_in_flight =
                (0..IN_FLIGHT).all(|_| ready_rx.recv_timeout(Duration::from_secs(15)).is_ok());

            let stop = Arc::new(AtomicBool::new(false));
            let stream: Vec<_> = (0..3)
                .map(|_| {
                    let (traffic, stop) = (traffic.clone(), stop.clone());
                    std::thread::spawn(move || {
                        let deadline = Instant::now() + Duration::from_secs(20);
                        while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                            let Some((i, body)) = traffic.take() else {
                                break;
                            };
                            let started = Instant::now();
                            traffic.record(i, started, post_once(port, &body));
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    })
                })
                .collect();
            std::thread::sleep(Duration::from_millis(200));

            send_signal(pid, "TERM");
            let sent_at = Instant::now();
            let stopped_accepting = wait_until_refused(port, Duration::from_secs(4));
            for go in go_signals {
                let _ = go.send(());
            }
            let in_flight: Vec<Attempt> = in_flight
                .into_iter()
                .map(|t| t.join().expect("in-flight thread"))
                .collect();
            std::thread::sleep(Duration::from_millis(100));
            stop.store(true, Ordering::SeqCst);
            for client in stream {
                client.join().expect("stream thread");
            }
            (all_in_flight, sent_at, stopped_accepting, in_flight)
        })
    };
    let (all_in_flight, sent_at, stopped_accepting, in_flight) =
        orchestration.await.expect("orchestration");
    let exit = server
        .process
        .exit_within(GRACE.saturating_sub(sent_at.elapsed()))
        .await;
    let exited_after = sent_at.elapsed();
    let stderr = server.process.stderr();

    assert!(
        all_in_flight,
        "not all {IN_FLIGHT} requests got in flight; stderr:\n{stderr}"
    );
    assert!(
        stopped_accepting,
        "still accepting after SIGTERM; stderr:\n{stderr}"
    );
    let failed: Vec<_> = in_flight.iter().filter(|a| !a.acked()).collect();
    assert!(
        failed.is_empty(),
        "in-flight requests not answered 200: {failed:#?}\nstderr:\n{stderr}"
    );
    let status =
        exit.unwrap_or_else(|| panic!("still running {GRACE:?} after SIGTERM; stderr:\n{stderr}"));
    assert!(
        status.success(),
        "exited with {status} after SIGTERM; stderr:\n{stderr}"
    );

    let attempts = traffic.attempts();
    let answered_otherwise: Vec<_> = attempts
        .iter()
        .filter(|a| matches!(a.outcome, PostOutcome::Answered(s) if s != 200))
        .collect();
    assert!(
        answered_otherwise.is_empty(),
        "answered, but not 200: {answered_otherwise:#?}"
    );

    let ledger = traffic.ledger();
    let restarted = Server::start(dir.path(), &database, &SECRETS, "after-sigterm-load").await;
    let stored = Stored::read(&restarted.endpoint()).await;
    stored.assert_exactly(
        &ledger.acked,
        &ledger,
        "after SIGTERM the database must hold exactly the messages answered 200",
    );
    let refused = attempts
        .iter()
        .filter(|a| a.outcome == PostOutcome::Refused)
        .count();
    let cut_off = attempts
        .iter()
        .filter(|a| matches!(a.outcome, PostOutcome::NoResponse(_)))
        .count();
    summary(
        &format!(
            "SIGTERM ({:?}) with {IN_FLIGHT} in flight: all 200, exit 0 after {exited_after:?}; \
             others: {refused} refused, {cut_off} cut off unanswered (none stored)",
            db.backend()
        ),
        &ledger,
        &stored,
    );
}

// --- 5. Secrets in logs ------------------------------------------------------

const PG_PASSWORD: &str = "SuperSecretPw-4f2c9e";

/// A full round trip at `debug` and at `trace` level, on PostgreSQL with a
/// password in `DATABASE_URL` and an outage on the way: the app secret, the
/// verify token, the admin token and the password never appear in the
/// process's output.
async fn secrets_never_appear_in_logs(db: TestDb) {
    for level in ["debug", "trace"] {
        round_trip_with_logs(&db, level).await;
    }
}

async fn round_trip_with_logs(db: &TestDb, level: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    // PostgreSQL through a proxy, to take it away mid-run, with a password
    // (the local server's trust authentication accepts any).
    let (proxy, database, password) = match db.backend() {
        Backend::Sqlite => (None, db.url(), None),
        Backend::Postgres => {
            let proxy = Proxy::to_test_postgres().await.expect("PostgreSQL");
            let mut url = url::Url::parse(&proxy.route(&db.url())).expect("URL");
            if url.password().is_none() {
                url.set_password(Some(PG_PASSWORD)).expect("set password");
            }
            let password = url.password().expect("a password").to_string();
            (Some(proxy), url.to_string(), Some(password))
        }
    };
    let mut vars = SECRETS.to_vec();
    vars.extend([("RUST_LOG", level), ("DATABASE_TIMEOUT_MS", "1000")]);
    let mut server = Server::start(dir.path(), &database, &vars, level).await;
    let endpoint = server.endpoint();
    let url = |path: &str| format!("{}{path}", server.base);
    let run: u32 = if level == "debug" { 5 } else { 6 };
    let sender = phone(run, 0);

    let handshake = |token: &str| {
        url(&format!(
            "/api/webhook/whatsapp?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=ch-{run}"
        ))
    };
    let response = server
        .client
        .get(handshake(VERIFY_TOKEN))
        .send()
        .await
        .expect("handshake");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("body"), format!("ch-{run}"));
    let response = server
        .client
        .get(handshake("not-the-token"))
        .send()
        .await
        .expect("handshake");
    assert_eq!(response.status(), 403);

    let plan = one_message_each(run, 1, 3);
    assert_eq!(
        endpoint.post_webhook(&plan[0].body).await,
        PostOutcome::Answered(200)
    );
    let forged = server
        .client
        .post(url("/api/webhook/whatsapp"))
        .header("X-Hub-Signature-256", format!("sha256={}", "0".repeat(64)))
        .body(plan[1].body.clone())
        .send()
        .await
        .expect("forged webhook");
    assert_eq!(forged.status(), 401);

    let page = endpoint
        .admin_json(&format!("/api/admin/leads?q={sender}"))
        .await;
    let id = page["items"][0]["id"].clone();
    endpoint.admin_json("/api/admin/leads/stats").await;
    endpoint.admin_json(&format!("/api/admin/leads/{id}")).await;
    let convert = server
        .client
        .post(url(&format!("/api/admin/leads/{id}/convert")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("convert");
    assert_eq!(convert.status(), 200, "convert");
    let intruder = server
        .client
        .get(url("/api/admin/leads"))
        .bearer_auth("not-the-admin-token")
        .send()
        .await
        .expect("bad token");
    assert_eq!(intruder.status(), 401);

    if let Some(proxy) = &proxy {
        // The database goes away and comes back: the errors are logged too.
        proxy.cut().await;
        assert_eq!(
            endpoint.post_webhook(&plan[1].body).await,
            PostOutcome::Answered(503)
        );
        assert_eq!(endpoint.status_of("/readyz").await, 503);
        proxy.restore().await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while endpoint.post_webhook(&plan[1].body).await != PostOutcome::Answered(200) {
            assert!(Instant::now() < deadline, "no recovery within 10 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert_eq!(
        endpoint.post_webhook(&plan[2].body).await,
        PostOutcome::Answered(200)
    );

    send_signal(server.pid(), "TERM");
    let exit = server.process.exit_within(Duration::from_secs(10)).await;
    assert!(
        exit.is_some_and(|s| s.success()),
        "exit after SIGTERM: {exit:?}"
    );

    let logs = format!("{}{}", server.process.stdout(), server.process.stderr());
    assert!(
        logs.contains(&level.to_uppercase()),
        "no {level} lines were logged:\n{logs}"
    );
    let mut secrets = vec![
        ("WHATSAPP_APP_SECRET", APP_SECRET.to_string()),
        ("WHATSAPP_VERIFY_TOKEN", VERIFY_TOKEN.to_string()),
        ("ADMIN_TOKEN", ADMIN_TOKEN.to_string()),
    ];
    secrets.extend(password.map(|p| ("the DATABASE_URL password", p)));
    for (name, secret) in &secrets {
        let shown: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains(secret.as_str()))
            .collect();
        assert!(
            shown.is_empty(),
            "{name} appears in the {level} logs ({:?}):\n{}",
            db.backend(),
            shown.join("\n")
        );
    }
    eprintln!(
        "fault summary | secrets in logs ({:?}, RUST_LOG={level}) | {} lines, {} bytes searched for {} secrets | none found",
        db.backend(),
        logs.lines().count(),
        logs.len(),
        secrets.len()
    );
}

on_both_databases_as_a_child!(
    sigkill_under_load_loses_no_acknowledged_message,
    sigterm_under_load_answers_every_committed_request,
    secrets_never_appear_in_logs,
);
