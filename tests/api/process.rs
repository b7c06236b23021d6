//! The real `leadhook` binary as an operator runs it: startup errors, missing
//! secrets, `migrate`, `simulate` and a graceful `SIGTERM`. SQLite only; the
//! children are run by [`crate::child`].

use std::sync::mpsc;
use std::time::{Duration, Instant};

use diesel::{Connection, RunQueryDsl, SqliteConnection};

use crate::child::{
    in_flight_post, leadhook, run_to_end, send_signal, wait_until_refused, Server, SECRETS,
};
use crate::helpers::{ADMIN_TOKEN, APP_SECRET, VERIFY_TOKEN};
use crate::payloads::{text_from, T0};
use leadhook::whatsapp::signature;

/// The non-empty lines a process wrote to standard error.
fn lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| !l.trim().is_empty()).collect()
}

// --- startup errors --------------------------------------------------------

/// Starts `leadhook` with every secret set and `vars`, expects it to fail
/// within 10 s, and returns its standard error. The secrets are set so that
/// the (legitimate) startup warnings about missing ones cannot be mistaken
/// for the error line, and so that the error can be checked not to show them.
async fn startup_failure(vars: &[(&str, &str)], label: &str) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = leadhook(dir.path());
    command
        .env("HOST", "127.0.0.1")
        .env("DATABASE_URL", dir.path().join("leadhook.db"))
        .envs(SECRETS)
        .envs(vars.iter().copied());
    let (status, stderr) = run_to_end(command, dir.path(), label, Duration::from_secs(10)).await;
    assert!(
        !status.success(),
        "`{label}` exited with {status}; stderr:\n{stderr}"
    );
    for (name, secret) in SECRETS {
        assert!(!stderr.contains(secret), "stderr shows {name}:\n{stderr}");
    }
    stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_numeric_port_stops_startup_with_one_line_naming_port() {
    let stderr = startup_failure(&[("PORT", "abc")], "bad-port").await;
    let lines = lines(&stderr);
    assert_eq!(lines.len(), 1, "expected one line, got:\n{stderr}");
    assert!(lines[0].contains("PORT"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_database_scheme_stops_startup_with_one_line_naming_database_url() {
    let stderr = startup_failure(&[("DATABASE_URL", "mysql://x/y")], "mysql").await;
    let lines = lines(&stderr);
    assert_eq!(lines.len(), 1, "expected one line, got:\n{stderr}");
    assert!(lines[0].contains("DATABASE_URL"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_postgres_stops_startup_with_one_line_without_the_password() {
    let password = "pw-hunter2-never-shown";
    let url = format!("postgres://postgres:{password}@127.0.0.1:1/none");
    let stderr = startup_failure(&[("DATABASE_URL", url.as_str())], "unreachable").await;
    let lines = lines(&stderr);
    assert_eq!(lines.len(), 1, "expected one line, got:\n{stderr}");
    assert!(lines[0].contains("DATABASE_URL"), "{stderr}");
    assert!(
        !stderr.contains(password),
        "the password is shown:\n{stderr}"
    );
}

// --- running without secrets -----------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_secrets_the_server_runs_but_refuses_webhooks_admin_and_handshake() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(
        dir.path(),
        &dir.path().join("leadhook.db"),
        &[],
        "no-secrets",
    )
    .await;

    let body = serde_json::to_vec(&text_from("15558880001", "wamid.NS1", T0, "hello")).unwrap();
    let sig = signature::sign(APP_SECRET.as_bytes(), &body);
    let webhook = server
        .client
        .post(format!("{}/api/webhook/whatsapp", server.base))
        .header("Content-Type", "application/json")
        .header("X-Hub-Signature-256", sig)
        .body(body)
        .send()
        .await
        .expect("webhook");
    assert_eq!(webhook.status(), 503);

    let admin = server
        .client
        .get(format!("{}/api/admin/leads", server.base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("admin");
    assert_eq!(admin.status(), 503);

    let handshake = server
        .client
        .get(format!(
            "{}/api/webhook/whatsapp?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=42",
            server.base
        ))
        .send()
        .await
        .expect("handshake");
    assert_eq!(handshake.status(), 403);

    let ready = server
        .client
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 200);
}

// --- migrate ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_creates_a_fresh_sqlite_database_and_exits_0() {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = dir.path().join("fresh.db");
    assert!(!database.exists());
    for run in ["migrate-1", "migrate-again"] {
        let mut command = leadhook(dir.path());
        command.arg("migrate").env("DATABASE_URL", &database);
        let (status, stderr) = run_to_end(command, dir.path(), run, Duration::from_secs(30)).await;
        assert!(
            status.success(),
            "`leadhook migrate` ({run}) exited with {status}; stderr:\n{stderr}"
        );
        assert!(database.is_file(), "{} was not created", database.display());
    }
    // The schema is there.
    let mut conn = SqliteConnection::establish(database.to_str().expect("UTF-8 path"))
        .expect("open the database");
    for table in ["leads", "messages", "students", "webhook_failures"] {
        diesel::sql_query(format!("SELECT * FROM {table} LIMIT 1"))
            .execute(&mut conn)
            .unwrap_or_else(|e| panic!("table {table} is missing after migrate: {e}"));
    }
}

// --- SIGTERM ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_webhooks_and_exits_0() {
    const IN_FLIGHT: i64 = 4;
    let dir = tempfile::tempdir().expect("temp dir");
    let database = dir.path().join("leadhook.db");
    let mut vars = SECRETS.to_vec();
    vars.push(("SHUTDOWN_GRACE_SECS", "5"));
    let mut server = Server::start(dir.path(), &database, &vars, "sigterm").await;
    let (port, pid) = (server.port, server.process.pid());

    let bodies: Vec<Vec<u8>> = (0..IN_FLIGHT)
        .map(|i| {
            let body = text_from(
                &format!("1555660000{i}"),
                &format!("wamid.TERM{i}"),
                T0 + i,
                "sent during shutdown",
            );
            serde_json::to_vec(&body).unwrap()
        })
        .collect();
    let orchestration = tokio::task::spawn_blocking(move || {
        let (ready_tx, ready_rx) = mpsc::channel();
        let mut go_signals = Vec::new();
        let mut threads = Vec::new();
        for body in bodies {
            let (go_tx, go_rx) = mpsc::channel();
            go_signals.push(go_tx);
            let ready = ready_tx.clone();
            threads.push(std::thread::spawn(move || {
                in_flight_post(port, body, ready, go_rx)
            }));
        }
        for _ in 0..IN_FLIGHT {
            ready_rx
                .recv_timeout(Duration::from_secs(10))
                .expect("every request is in flight");
        }

        send_signal(pid, "TERM");
        let sent_at = Instant::now();
        let stopped_accepting = wait_until_refused(port, Duration::from_secs(4));

        for go in go_signals {
            let _ = go.send(());
        }
        let statuses: Vec<Result<u16, String>> = threads
            .into_iter()
            .map(|t| t.join().expect("request thread"))
            .collect();
        (sent_at, stopped_accepting, statuses)
    });
    let (sent_at, stopped_accepting, statuses) = orchestration.await.expect("orchestration");

    let remaining = Duration::from_secs(5).saturating_sub(sent_at.elapsed());
    let exit = server.process.exit_within(remaining).await;
    let stderr = server.process.stderr();
    assert!(
        stopped_accepting,
        "still accepting connections after SIGTERM; stderr:\n{stderr}"
    );
    for (i, status) in statuses.iter().enumerate() {
        assert_eq!(status, &Ok(200), "in-flight webhook {i}; stderr:\n{stderr}");
    }
    let status =
        exit.unwrap_or_else(|| panic!("still running 5 s after SIGTERM; stderr:\n{stderr}"));
    assert!(
        status.success(),
        "exited with {status} after SIGTERM; stderr:\n{stderr}"
    );

    // Every answered webhook was committed.
    let restarted = Server::start(dir.path(), &database, &SECRETS, "after-sigterm").await;
    let stats = restarted.admin_json("/api/admin/leads/stats").await;
    assert_eq!(stats["messages_total"], IN_FLIGHT, "{stats}");
    assert_eq!(stats["total_leads"], IN_FLIGHT, "{stats}");
}

// --- simulate --------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_sends_a_signed_message_that_becomes_a_lead() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(
        dir.path(),
        &dir.path().join("leadhook.db"),
        &SECRETS,
        "simulate-server",
    )
    .await;

    let mut command = leadhook(dir.path());
    command.args([
        "simulate",
        "--url",
        &server.base,
        "--secret",
        APP_SECRET,
        "--from",
        "15557770001",
        "--name",
        "Sim User",
        "--text",
        "hello from simulate",
    ]);
    let (status, stderr) =
        run_to_end(command, dir.path(), "simulate", Duration::from_secs(30)).await;
    assert!(
        status.success(),
        "simulate exited with {status}; stderr:\n{stderr}"
    );

    let page = server.admin_json("/api/admin/leads?q=15557770001").await;
    assert_eq!(page["total"], 1, "{page:#}");
    let lead = &page["items"][0];
    assert_eq!(lead["phone_number"], "15557770001");
    assert_eq!(lead["sender_name"], "Sim User");
    assert_eq!(lead["last_message"], "hello from simulate");
    assert_eq!(lead["message_count"], 1);

    // With the wrong secret the server refuses it, and simulate says so.
    let mut command = leadhook(dir.path());
    command.args([
        "simulate",
        "--url",
        &server.base,
        "--secret",
        "not-the-secret",
        "--from",
        "15557770002",
    ]);
    let (status, stderr) = run_to_end(
        command,
        dir.path(),
        "simulate-wrong",
        Duration::from_secs(30),
    )
    .await;
    assert!(
        !status.success(),
        "simulate with a wrong secret exited 0; stderr:\n{stderr}"
    );
    let stats = server.admin_json("/api/admin/leads/stats").await;
    assert_eq!(stats["messages_total"], 1);
    assert_eq!(stats["total_leads"], 1);

    // As a username user who hides the phone number.
    let mut command = leadhook(dir.path());
    command.args([
        "simulate",
        "--url",
        &server.base,
        "--secret",
        APP_SECRET,
        "--bsuid",
        "US.13491208655302741918",
        "--username",
        "ada.codes",
        "--name",
        "Ada",
    ]);
    let (status, stderr) = run_to_end(
        command,
        dir.path(),
        "simulate-bsuid",
        Duration::from_secs(30),
    )
    .await;
    assert!(
        status.success(),
        "simulate --bsuid exited with {status}; stderr:\n{stderr}"
    );
    let page = server.admin_json("/api/admin/leads?q=ada.codes").await;
    assert_eq!(page["total"], 1, "{page:#}");
    let lead = &page["items"][0];
    assert_eq!(lead["phone_number"], serde_json::Value::Null);
    assert_eq!(lead["user_id"], "US.13491208655302741918");
    assert_eq!(lead["username"], "ada.codes");
}
