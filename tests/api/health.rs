//! Liveness and readiness, as the PaaS probes them.
//!
//! `/readyz` answering 503 when the database is gone is tested on PostgreSQL
//! only, by dropping the test database under the running server. SQLite has
//! no reliable way to vanish from outside: a deleted or replaced file stays
//! readable through the connections already open, and the readiness query
//! (`SELECT 1`) never touches the file. A fault-injection proxy (issue 3)
//! will cover a database that stops answering on both backends.

use std::time::Duration;

use diesel::{Connection, PgConnection, RunQueryDsl};

use crate::helpers::{json_with_status, Backend, TestApp, POSTGRES_VAR};

async fn healthz_is_200(app: TestApp) {
    let response = app.get("/healthz").await;
    json_with_status(response, 200).await;
}

async fn readyz_is_200_when_the_database_answers(app: TestApp) {
    let response = app.get("/readyz").await;
    json_with_status(response, 200).await;
    // And again after some traffic, on the same pool.
    let stats = app.stats().await;
    assert_eq!(stats["total_leads"], 0);
    json_with_status(app.get("/readyz").await, 200).await;
}

async fn probes_need_no_admin_token(app: TestApp) {
    for path in ["/healthz", "/readyz"] {
        let response = app
            .client
            .get(app.url(path))
            .header("Authorization", "Bearer wrong")
            .send()
            .await
            .expect("probe");
        assert_eq!(response.status(), 200, "{path}");
    }
}

crate::on_both_databases!(
    healthz_is_200,
    readyz_is_200_when_the_database_answers,
    probes_need_no_admin_token
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_when_the_postgres_database_is_gone() {
    let Some(app) = TestApp::spawn(Backend::Postgres).await else {
        eprintln!("skipped: set {POSTGRES_VAR} to run on PostgreSQL");
        return;
    };
    json_with_status(app.get("/readyz").await, 200).await;

    // Drop the server's database, terminating its connections.
    let database_url = app.database_url();
    let (base, name) = database_url
        .rsplit_once('/')
        .expect("database URL with a name");
    let admin_url = format!("{base}/postgres");
    let name = name.to_string();
    tokio::task::spawn_blocking(move || {
        let mut conn = PgConnection::establish(&admin_url).expect("admin connection");
        diesel::sql_query(format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&mut conn)
            .expect("drop the test database");
    })
    .await
    .expect("drop task");

    let probe = |path: &'static str| {
        app.client
            .get(app.url(path))
            .timeout(Duration::from_secs(20))
            .send()
    };
    let response = probe("/readyz").await.expect("readyz answers");
    assert_eq!(response.status(), 503, "readyz with the database gone");
    // The process itself still serves.
    let response = probe("/healthz").await.expect("healthz answers");
    assert_eq!(response.status(), 200);
}
