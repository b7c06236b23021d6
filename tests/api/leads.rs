//! Exactly-once leads: duplicates, retries, concurrency, restarts, ordering by
//! WhatsApp timestamp, profile names, reactivation and students.

use std::time::Duration;

use futures::future::join_all;
use serde_json::json;

use crate::helpers::{json_with_status, TestApp};
use crate::payloads::{text_from, webhook, Msg, Sender, T0};

async fn redelivered_message_counts_once(app: TestApp) {
    let body = text_from("15552220001", "wamid.R1", T0, "first");
    for _ in 0..3 {
        assert_eq!(app.post_webhook(&body).await.status(), 200);
    }
    let lead = app.lead("15552220001").await;
    assert_eq!(lead["message_count"], 1);
    assert_eq!(app.stats().await["messages_total"], 1);
}

async fn twenty_concurrent_deliveries_of_one_message_count_once(app: TestApp) {
    let body = text_from("15552220002", "wamid.C20", T0, "once");
    let responses = join_all((0..20).map(|_| app.post_webhook(&body))).await;
    assert!(responses.iter().all(|r| r.status() == 200));
    let lead = app.lead("15552220002").await;
    assert_eq!(lead["message_count"], 1);
    assert_eq!(app.stats().await["messages_total"], 1);
    let convos = app.admin_json("/api/admin/conversations").await;
    assert_eq!(convos["items"][0]["message_count"], 1);
}

async fn two_hundred_concurrent_messages_from_one_sender_count_200(app: TestApp) {
    let bodies: Vec<_> = (0..200)
        .map(|i| {
            text_from(
                "15552220003",
                &format!("wamid.P{i}"),
                T0 + i,
                &format!("message {i}"),
            )
        })
        .collect();
    let responses = join_all(bodies.iter().map(|b| app.post_webhook(b))).await;
    assert!(responses.iter().all(|r| r.status() == 200));
    let lead = app.lead("15552220003").await;
    assert_eq!(lead["message_count"], 200);
    assert_eq!(lead["first_message"], "message 0");
    assert_eq!(lead["last_message"], "message 199");
    let stats = app.stats().await;
    assert_eq!(stats["total_leads"], 1);
    assert_eq!(stats["messages_total"], 200);
}

async fn older_message_delivered_last_does_not_become_last_message(app: TestApp) {
    let phone = "15552220004";
    for (id, ts, text) in [
        ("wamid.O2", T0 + 60, "middle"),
        ("wamid.O3", T0 + 120, "newest"),
        ("wamid.O1", T0, "oldest"),
    ] {
        assert_eq!(
            app.post_webhook(&text_from(phone, id, ts, text))
                .await
                .status(),
            200
        );
    }
    let lead = app.lead(phone).await;
    assert_eq!(lead["message_count"], 3);
    assert_eq!(lead["last_message"], "newest");
    assert_eq!(lead["first_message"], "oldest");
    assert_eq!(lead["last_message_time"], "2025-11-13T02:15:20Z");
}

async fn restart_then_redelivery_counts_nothing_new(app: TestApp) {
    let bodies: Vec<_> = (0..5)
        .map(|i| {
            text_from(
                "15552220005",
                &format!("wamid.RS{i}"),
                T0 + i,
                "before restart",
            )
        })
        .collect();
    for b in &bodies {
        assert_eq!(app.post_webhook(b).await.status(), 200);
    }
    let app = app.restart().await;
    for b in &bodies {
        let reply = json_with_status(app.post_webhook(b).await, 200).await;
        assert_eq!(reply["stored"], 0);
        assert_eq!(reply["duplicates"], 1);
    }
    assert_eq!(app.lead("15552220005").await["message_count"], 5);
    assert_eq!(app.stats().await["messages_total"], 5);
    // The restarted process has no live conversation for redelivered messages.
    assert_eq!(app.admin_json("/api/admin/conversations").await["total"], 0);
}

/// A stop returns only once the writer has committed everything and the
/// application has closed the database; a restart then finds every message.
async fn a_stop_finishes_the_writes_and_closes_the_database(mut app: TestApp) {
    let posts = (0..40).map(|i| {
        let body = text_from(
            &format!("1555333{:04}", i % 8),
            &format!("wamid.STOP{i}"),
            T0 + i,
            "before the stop",
        );
        let app = &app;
        async move { app.post_webhook(&body).await.status() }
    });
    for status in join_all(posts).await {
        assert_eq!(status, 200);
    }
    assert!(
        app.database_in_use(Duration::ZERO),
        "a running server has the database open"
    );
    app.stop().await;
    assert!(
        !app.database_in_use(Duration::from_secs(5)),
        "the database is still open after the stop returned"
    );
    let app = app.restart().await;
    assert_eq!(app.stats().await["messages_total"], 40);
    assert_eq!(
        app.admin_json("/api/admin/leads?q=before").await["total"],
        8
    );
}

async fn sender_name_is_the_latest_non_empty_profile_name(app: TestApp) {
    let phone = "15552220006";
    let app = &app;
    let send = |id: &'static str, ts: i64, name: &'static str| {
        let body = webhook(&[Msg::text(&Sender::phone(phone).named(name), id, ts, "hi")]);
        async move { assert_eq!(app.post_webhook(&body).await.status(), 200) }
    };
    send("wamid.N1", T0, "Ada").await;
    assert_eq!(app.lead(phone).await["sender_name"], "Ada");
    send("wamid.N2", T0 + 10, "Ada L.").await;
    assert_eq!(app.lead(phone).await["sender_name"], "Ada L.");
    send("wamid.N3", T0 + 20, "").await;
    assert_eq!(
        app.lead(phone).await["sender_name"],
        "Ada L.",
        "an empty name does not erase"
    );
    send("wamid.N4", T0 + 5, "Old Name").await;
    assert_eq!(
        app.lead(phone).await["sender_name"],
        "Ada L.",
        "an older message's name does not win"
    );
}

async fn deactivated_lead_that_writes_again_is_active(app: TestApp) {
    let phone = "15552220007";
    app.post_webhook(&text_from(phone, "wamid.D1", T0, "hi"))
        .await;
    let id = app.lead(phone).await["id"].clone();
    let response = app.admin_delete(&format!("/api/admin/leads/{id}")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.lead(phone).await["is_active"], false);
    assert_eq!(app.stats().await["active_leads"], 0);
    app.post_webhook(&text_from(phone, "wamid.D2", T0 + 60, "back again"))
        .await;
    let lead = app.lead(phone).await;
    assert_eq!(lead["is_active"], true);
    assert_eq!(lead["id"], id);
    assert_eq!(lead["message_count"], 2);
}

async fn registered_students_create_no_leads(app: TestApp) {
    let created = app
        .admin_post(
            "/api/admin/students",
            &json!({"phone_number": "+1 555-222-0008", "name": "Grace"}),
        )
        .await;
    let student = json_with_status(created, 201).await;
    assert_eq!(student["student"]["phone_number"], "15552220008");
    let reply = json_with_status(
        app.post_webhook(&text_from("15552220008", "wamid.S1", T0, "I'm enrolled"))
            .await,
        200,
    )
    .await;
    assert_eq!(reply["stored"], 1, "the message itself is stored");
    let stats = app.stats().await;
    assert_eq!(stats["total_leads"], 0);
    assert_eq!(stats["messages_total"], 1);
}

async fn converted_lead_keeps_its_history_and_counts_no_more(app: TestApp) {
    let phone = "15552220009";
    app.post_webhook(&text_from(phone, "wamid.CV1", T0, "interested"))
        .await;
    let id = app.lead(phone).await["id"].clone();
    let converted = json_with_status(
        app.admin_post(&format!("/api/admin/leads/{id}/convert"), &json!({}))
            .await,
        200,
    )
    .await;
    assert_eq!(converted["lead"]["converted_to_student"], true);
    // Now a student: further messages update no lead.
    app.post_webhook(&text_from(phone, "wamid.CV2", T0 + 60, "see you in class"))
        .await;
    let lead = app.lead(phone).await;
    assert_eq!(lead["message_count"], 1);
    assert_eq!(lead["converted_to_student"], true);
    assert_eq!(app.stats().await["conversion_rate"], "100.0%");
}

async fn cursor_pages_see_every_lead_once_while_messages_arrive(app: TestApp) {
    for i in 0..25 {
        let body = text_from(
            &format!("1555222{i:04}"),
            &format!("wamid.K{i}"),
            T0 + i,
            "hello",
        );
        assert_eq!(app.post_webhook(&body).await.status(), 200);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for page_number in 0..20 {
        let path = match &cursor {
            Some(c) => format!("/api/admin/leads?limit=10&cursor={c}"),
            None => "/api/admin/leads?limit=10".to_string(),
        };
        let page = app.admin_json(&path).await;
        for lead in page["items"].as_array().unwrap() {
            seen.push(lead["phone_number"].as_str().unwrap().to_string());
        }
        // New activity during paging goes to the top, behind the cursor.
        let body = text_from(
            &format!("1555333{page_number:04}"),
            &format!("wamid.NEW{page_number}"),
            T0 + 1000 + page_number,
            "new",
        );
        assert_eq!(app.post_webhook(&body).await.status(), 200);
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    let originals: Vec<&String> = seen.iter().filter(|p| p.starts_with("1555222")).collect();
    assert_eq!(originals.len(), 25, "{seen:?}");
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "a lead repeated: {seen:?}");
    // Newest activity first within the walk.
    assert_eq!(originals.first().map(|s| s.as_str()), Some("15552220024"));
}

async fn bad_cursor_is_400(app: TestApp) {
    for query in ["cursor=nonsense", "cursor=12_x", "cursor=1_1&skip=5"] {
        let response = app.admin_get(&format!("/api/admin/leads?{query}")).await;
        let body = json_with_status(response, 400).await;
        assert!(
            body["error"].as_str().unwrap().contains("cursor"),
            "{query}: {body}"
        );
    }
}

async fn stats_stay_exact_through_merges_deletes_and_students(app: TestApp) {
    use crate::payloads::Msg;
    let both = Sender::both("15552229001", "US.55500000000000000001");
    app.post_webhook(&webhook(&[Msg::text(
        &Sender::phone("15552229001"),
        "wamid.X1",
        T0,
        "a",
    )]))
    .await;
    app.post_webhook(&webhook(&[Msg::text(
        &Sender::bsuid("US.55500000000000000001"),
        "wamid.X2",
        T0 + 1,
        "b",
    )]))
    .await;
    app.post_webhook(&text_from("15552229002", "wamid.X3", T0 + 2, "c"))
        .await;
    assert_eq!(app.stats().await["total_leads"], 3);
    app.post_webhook(&webhook(&[Msg::text(&both, "wamid.X4", T0 + 3, "merge")]))
        .await;
    let stats = app.stats().await;
    assert_eq!(stats["total_leads"], 2, "{stats}");
    assert_eq!(stats["active_leads"], 2);
    assert_eq!(stats["messages_total"], 4);
    let other = app.lead("15552229002").await;
    app.admin_delete(&format!("/api/admin/leads/{}", other["id"]))
        .await;
    assert_eq!(app.stats().await["active_leads"], 1);
    app.admin_delete(&format!("/api/admin/leads/{}?hard=true", other["id"]))
        .await;
    let stats = app.stats().await;
    assert_eq!(
        (
            stats["total_leads"].as_i64(),
            stats["active_leads"].as_i64(),
            stats["messages_total"].as_i64()
        ),
        (Some(1), Some(1), Some(3))
    );
    app.admin_post(
        "/api/admin/students",
        &json!({"phone_number": "15552229001"}),
    )
    .await;
    let stats = app.stats().await;
    assert_eq!(stats["converted_leads"], 1);
    assert_eq!(stats["unconverted_leads"], 0);
    assert_eq!(stats["conversion_rate"], "100.0%");
    // The list totals come from the same counters.
    assert_eq!(
        app.admin_json("/api/admin/leads?converted=true").await["total"],
        1
    );
    assert_eq!(
        app.admin_json("/api/admin/leads?active=false").await["total"],
        0
    );
    assert_eq!(
        app.admin_json("/api/admin/leads?active=true&converted=true")
            .await["total"],
        1
    );
}

crate::on_both_databases!(
    cursor_pages_see_every_lead_once_while_messages_arrive,
    bad_cursor_is_400,
    stats_stay_exact_through_merges_deletes_and_students,
    redelivered_message_counts_once,
    twenty_concurrent_deliveries_of_one_message_count_once,
    two_hundred_concurrent_messages_from_one_sender_count_200,
    older_message_delivered_last_does_not_become_last_message,
    restart_then_redelivery_counts_nothing_new,
    a_stop_finishes_the_writes_and_closes_the_database,
    sender_name_is_the_latest_non_empty_profile_name,
    deactivated_lead_that_writes_again_is_active,
    registered_students_create_no_leads,
    converted_lead_keeps_its_history_and_counts_no_more,
);
