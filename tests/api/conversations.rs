//! The live conversations kept in memory, as `GET /api/admin/conversations`
//! shows them: bounded per conversation and in number, fed only by messages
//! that were new and authentic.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::helpers::{json_with_status, TestApp, APP_SECRET};
use crate::payloads::{text_from, webhook, Msg, Sender, T0};
use leadhook::whatsapp::signature;

/// The same database backend, with a small conversation store: 3 messages
/// per conversation, 5 conversations.
async fn with_small_store(app: TestApp) -> TestApp {
    let backend = app.backend;
    drop(app);
    TestApp::spawn_with(
        backend,
        &[
            ("CONVERSATION_MAX_MESSAGES", "3"),
            ("CONVERSATION_MAX_COUNT", "5"),
        ],
    )
    .await
    .expect("backend available")
}

async fn conversations(app: &TestApp) -> Vec<Value> {
    let page = app.admin_json("/api/admin/conversations").await;
    let items = page["items"].as_array().expect("items").clone();
    assert_eq!(
        page["total"],
        items.len(),
        "total disagrees with items: {page:#}"
    );
    items
}

/// The one conversation whose phone number is `phone`.
async fn conversation_of(app: &TestApp, phone: &str) -> Value {
    let all = conversations(app).await;
    let mut matching = all.iter().filter(|c| c["phone_number"] == phone);
    let found = matching
        .next()
        .unwrap_or_else(|| panic!("no conversation for {phone}: {all:#?}"))
        .clone();
    assert!(
        matching.next().is_none(),
        "two conversations for {phone}: {all:#?}"
    );
    found
}

async fn post(app: &TestApp, body: &Value) {
    let response = app.post_webhook(body).await;
    assert_eq!(response.status(), 200);
}

async fn conversation_keeps_only_the_newest_messages(app: TestApp) {
    let app = with_small_store(app).await;
    let phone = "15553100001";
    // The newest message arrives first, the rest in order after it.
    let order = [9, 0, 1, 2, 3, 4, 5, 6, 7, 8];
    for i in order {
        post(
            &app,
            &text_from(
                phone,
                &format!("wamid.CK{i}"),
                T0 + i,
                &format!("message {i}"),
            ),
        )
        .await;
    }

    let conversation = conversation_of(&app, phone).await;
    assert_eq!(conversation["message_count"], 3, "{conversation:#}");
    assert_eq!(conversation["sender_name"], "Ada Lovelace");
    let last = &conversation["last_message"];
    assert_eq!(
        last["text"], "message 9",
        "the newest by WhatsApp timestamp: {conversation:#}"
    );
    let sent = DateTime::parse_from_rfc3339(last["timestamp"].as_str().expect("timestamp"))
        .expect("RFC 3339");
    assert_eq!(sent.timestamp(), T0 + 9);
    let activity = conversation["last_activity"]
        .as_str()
        .expect("last_activity");
    let activity = DateTime::parse_from_rfc3339(activity)
        .expect("RFC 3339")
        .with_timezone(&Utc);
    assert!(
        (Utc::now() - activity).num_seconds().abs() < 300,
        "last_activity {activity} is not about now"
    );

    // Memory forgets; the database does not.
    let lead = app.lead(phone).await;
    assert_eq!(lead["message_count"], 10);
}

async fn at_most_five_conversations_are_kept(app: TestApp) {
    let app = with_small_store(app).await;
    for i in 0..8 {
        let phone = format!("1555320000{i}");
        post(
            &app,
            &text_from(&phone, &format!("wamid.MC{i}"), T0 + i, "hello"),
        )
        .await;
    }

    let listed = conversations(&app).await;
    assert!(
        !listed.is_empty() && listed.len() <= 5,
        "{} conversations listed: {listed:#?}",
        listed.len()
    );
    // The most recent writer is always among them.
    assert!(
        listed.iter().any(|c| c["phone_number"] == "15553200007"),
        "{listed:#?}"
    );
    // The database keeps every lead.
    assert_eq!(app.stats().await["total_leads"], 8);
}

async fn redelivered_message_adds_nothing_to_the_conversation(app: TestApp) {
    let app = with_small_store(app).await;
    let phone = "15553300001";
    let newer = text_from(phone, "wamid.RD2", T0 + 10, "newer");
    post(&app, &text_from(phone, "wamid.RD1", T0, "older")).await;
    post(&app, &newer).await;
    let before = conversation_of(&app, phone).await;
    assert_eq!(before["message_count"], 2);

    for _ in 0..3 {
        let reply = json_with_status(app.post_webhook(&newer).await, 200).await;
        assert_eq!(reply["stored"], 0, "{reply}");
    }
    // Redelivered together with nothing new, in one body.
    let both = webhook(&[
        Msg::text(
            &Sender::phone(phone).named("Ada Lovelace"),
            "wamid.RD1",
            T0,
            "older",
        ),
        Msg::text(
            &Sender::phone(phone).named("Ada Lovelace"),
            "wamid.RD2",
            T0 + 10,
            "newer",
        ),
    ]);
    post(&app, &both).await;

    let after = conversation_of(&app, phone).await;
    assert_eq!(after["message_count"], 2, "{after:#}");
    assert_eq!(after["last_message"], before["last_message"]);
    assert_eq!(conversations(&app).await.len(), 1);
}

async fn rejected_post_adds_nothing_to_the_conversation(app: TestApp) {
    let app = with_small_store(app).await;
    let phone = "15553400001";
    post(&app, &text_from(phone, "wamid.BS1", T0, "genuine")).await;

    for (id, sender) in [("wamid.BS2", phone), ("wamid.BS3", "15553400002")] {
        let bytes = serde_json::to_vec(&text_from(sender, id, T0 + 60, "forged")).unwrap();
        let forged = signature::sign(b"not-the-app-secret", &bytes);
        assert_eq!(
            app.post_raw(bytes.clone(), Some(&forged)).await.status(),
            401
        );
        assert_eq!(app.post_raw(bytes, None).await.status(), 401);
    }

    let listed = conversations(&app).await;
    assert_eq!(listed.len(), 1, "{listed:#?}");
    let conversation = conversation_of(&app, phone).await;
    assert_eq!(conversation["message_count"], 1);
    assert_eq!(conversation["last_message"]["text"], "genuine");

    // The same messages, correctly signed, are then taken: the refusal was
    // about the signature, not the content.
    let bytes = serde_json::to_vec(&text_from(phone, "wamid.BS2", T0 + 60, "forged")).unwrap();
    let genuine = signature::sign(APP_SECRET.as_bytes(), &bytes);
    assert_eq!(app.post_raw(bytes, Some(&genuine)).await.status(), 200);
    assert_eq!(conversation_of(&app, phone).await["message_count"], 2);
}

async fn username_user_has_one_conversation_keyed_by_bsuid(app: TestApp) {
    let app = with_small_store(app).await;
    let bsuid = "US.13491208655302741918";
    let with_phone = Sender::both("15553500001", bsuid)
        .named("Ana")
        .username("ana.learns");
    let phone_hidden = Sender::bsuid(bsuid).named("Ana").username("ana.learns");
    post(
        &app,
        &webhook(&[Msg::text(&with_phone, "wamid.UN1", T0, "hi")]),
    )
    .await;
    post(
        &app,
        &webhook(&[Msg::text(&phone_hidden, "wamid.UN2", T0 + 5, "still me")]),
    )
    .await;

    let listed = conversations(&app).await;
    assert_eq!(listed.len(), 1, "{listed:#?}");
    let conversation = &listed[0];
    assert_eq!(conversation["user_id"], bsuid);
    assert_eq!(conversation["username"], "ana.learns");
    assert_eq!(conversation["sender_name"], "Ana");
    assert_eq!(conversation["message_count"], 2);
    assert_eq!(conversation["last_message"]["text"], "still me");
}

crate::on_both_databases!(
    conversation_keeps_only_the_newest_messages,
    at_most_five_conversations_are_kept,
    redelivered_message_adds_nothing_to_the_conversation,
    rejected_post_adds_nothing_to_the_conversation,
    username_user_has_one_conversation_keyed_by_bsuid,
);
