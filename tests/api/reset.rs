//! `POST /api/admin/reset`: wipes the lead data only when explicitly
//! confirmed, and keeps the students.

use serde_json::json;

use crate::child::{Server, SECRETS};
use crate::helpers::{json_with_status, TestApp, ADMIN_TOKEN, APP_SECRET};
use crate::payloads::{text_from, T0};
use crate::staff::{leads_from, note, patched};
use leadhook::whatsapp::signature;

const PHRASE: &str = "delete all leads";

async fn reset_requires_the_exact_confirmation(app: TestApp) {
    leads_from(&app, &["15557770001"]).await;
    for body in [
        json!({}),
        json!({"confirm": "delete all leads please"}),
        json!({"confirm": "DELETE ALL LEADS"}),
        json!({"confirm": true}),
        json!({"confirm": PHRASE, "keep_students": false}),
        json!([PHRASE]),
    ] {
        let answer = json_with_status(app.admin_post("/api/admin/reset", &body).await, 422).await;
        let error = answer["error"].as_str().unwrap();
        assert!(
            error.contains("confirm") && error.contains(PHRASE),
            "{body}: {error}"
        );
    }
    let empty = app
        .client
        .post(app.url("/api/admin/reset"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    json_with_status(empty, 422).await;
    let anonymous = app
        .client
        .post(app.url("/api/admin/reset"))
        .json(&json!({"confirm": PHRASE}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(app.stats().await["total_leads"], 1, "nothing was deleted");
}

async fn reset_wipes_the_lead_data_and_keeps_students(app: TestApp) {
    let ids = leads_from(&app, &["15557770011", "15557770012", "15557770013"]).await;
    patched(
        &app,
        ids[0],
        &json!({"tags": ["vip"], "status": "contacted"}),
    )
    .await;
    json_with_status(
        note(&app, ids[1], &json!({"author": "a", "body": "call back"})).await,
        201,
    )
    .await;
    let student = app
        .admin_post(
            "/api/admin/students",
            &json!({"phone_number": "15557770013", "name": "Stu"}),
        )
        .await;
    json_with_status(student, 201).await;
    let raw = b"not a webhook".to_vec();
    let sig = signature::sign(APP_SECRET.as_bytes(), &raw);
    assert_eq!(app.post_raw(raw, Some(&sig)).await.status(), 200);
    let conversations = app.admin_json("/api/admin/conversations").await["total"].clone();
    assert_eq!(conversations, 3);

    let response = crate::staff::send(
        &app,
        reqwest::Method::POST,
        "/api/admin/reset",
        &json!({"confirm": PHRASE}),
        Some("ops"),
    )
    .await;
    let answer = json_with_status(response, 200).await;
    assert_eq!(
        answer["deleted"],
        json!({
            "leads": 3, "messages": 3, "tags": 1, "notes": 1,
            // status + tags on one lead, the note, the student's conversion.
            "activity": 4,
            "webhook_failures": 1, "conversations": 3
        })
    );

    let stats = app.stats().await;
    for field in [
        "total_leads",
        "active_leads",
        "converted_leads",
        "unconverted_leads",
        "new_leads_today",
        "new_leads_7d",
        "messages_total",
    ] {
        assert_eq!(stats[field], 0, "{field}: {stats}");
    }
    assert_eq!(stats["conversion_rate"], "0.0%");
    assert_eq!(app.admin_json("/api/admin/leads").await["total"], 0);
    assert_eq!(
        app.admin_json("/api/admin/leads?q=call%20back").await["total"],
        0
    );
    assert_eq!(app.admin_json("/api/admin/conversations").await["total"], 0);
    assert_eq!(
        app.admin_json("/api/admin/webhook-failures").await["total"],
        0
    );
    assert_eq!(app.admin_json("/api/admin/students").await["total"], 1);
    json_with_status(
        app.admin_get(&format!("/api/admin/leads/{}/activity", ids[0]))
            .await,
        404,
    )
    .await;

    // Life goes on: the same person writes again and is a new lead; the
    // student still creates none.
    assert_eq!(
        app.post_webhook(&text_from("15557770011", "wamid.after", T0 + 99, "back"))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.post_webhook(&text_from("15557770013", "wamid.stu", T0 + 99, "hi"))
            .await
            .status(),
        200
    );
    let stats = app.stats().await;
    assert_eq!(
        (&stats["total_leads"], &stats["messages_total"]),
        (&json!(1), &json!(2))
    );
    let lead = app.lead("15557770011").await;
    assert_eq!(
        (lead["status"].as_str(), &lead["tags"]),
        (Some("new"), &json!([]))
    );
    // A second reset of an empty database is fine.
    let again = json_with_status(
        app.admin_post("/api/admin/reset", &json!({"confirm": PHRASE}))
            .await,
        200,
    )
    .await;
    assert_eq!(again["deleted"]["leads"], 1);
}

/// The reset is logged as a warning naming the actor and the counts (the
/// real binary, so its log output can be read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_is_logged_as_a_warning() {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = dir.path().join("leadhook.db");
    let server = Server::start(dir.path(), &database, &SECRETS, "reset-log").await;
    let body = serde_json::to_vec(&text_from("15557770021", "wamid.log", T0, "hi")).unwrap();
    let _ = server.endpoint().post_webhook(&body).await;
    let response = server
        .client
        .post(format!("{}/api/admin/reset", server.base))
        .bearer_auth(ADMIN_TOKEN)
        .header("X-Actor", "ops-on-call")
        .json(&json!({"confirm": PHRASE}))
        .send()
        .await
        .expect("reset request");
    assert_eq!(response.status(), 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let log = server.process.stderr();
        let line = log.lines().find(|l| l.contains("admin reset"));
        if let Some(line) = line {
            assert!(line.contains("WARN"), "{line}");
            assert!(
                line.contains("ops-on-call") && line.contains("removed 1 leads, 1 messages"),
                "{line}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no reset line in the log:\n{log}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

crate::on_both_databases!(
    reset_requires_the_exact_confirmation,
    reset_wipes_the_lead_data_and_keeps_students,
);
