//! `POST /api/admin/reset`: wipes the lead data only when explicitly
//! confirmed, and keeps the students.

use serde_json::json;

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

crate::on_both_databases!(
    reset_requires_the_exact_confirmation,
    reset_wipes_the_lead_data_and_keeps_students,
);
