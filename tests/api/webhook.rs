//! The webhook endpoint: handshake, signature, size limit, message types,
//! multi-part bodies, statuses and dead letters.

use serde_json::{json, Value};

use crate::helpers::{json_with_status, TestApp, APP_SECRET, VERIFY_TOKEN};
use crate::payloads::{body_of, change, text_from, value, webhook, Msg, Sender, T0};
use leadhook::whatsapp::signature;

async fn handshake_echoes_the_challenge(app: TestApp) {
    let response = app
        .get(&format!(
            "/api/webhook/whatsapp?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1158201444"
        ))
        .await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(response.text().await.unwrap(), "1158201444");
}

async fn handshake_with_a_wrong_token_is_403(app: TestApp) {
    for query in [
        "hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1",
        "hub.mode=unsubscribe&hub.verify_token=test-verify-token&hub.challenge=1",
        "hub.mode=subscribe&hub.challenge=1",
        "",
    ] {
        let response = app.get(&format!("/api/webhook/whatsapp?{query}")).await;
        assert_eq!(response.status(), 403, "query {query}");
    }
}

async fn signed_text_message_creates_a_lead(app: TestApp) {
    let response = app
        .post_webhook(&text_from("15551230001", "wamid.A1", T0, "Hi, courses?"))
        .await;
    let body = json_with_status(response, 200).await;
    assert_eq!(body["stored"], 1);

    let lead = app.lead("15551230001").await;
    assert_eq!(lead["phone_number"], "15551230001");
    assert_eq!(lead["user_id"], Value::Null);
    assert_eq!(lead["sender_name"], "Ada Lovelace");
    assert_eq!(lead["first_message"], "Hi, courses?");
    assert_eq!(lead["last_message"], "Hi, courses?");
    assert_eq!(lead["message_count"], 1);
    assert_eq!(lead["is_active"], true);
    assert_eq!(lead["converted_to_student"], false);
    assert_eq!(lead["last_message_time"], "2025-11-13T02:13:20Z");
}

async fn bad_signatures_are_401_and_store_nothing(app: TestApp) {
    let bytes = serde_json::to_vec(&text_from("15551230002", "wamid.B1", T0, "hello")).unwrap();
    let good = signature::sign(APP_SECRET.as_bytes(), &bytes);
    let wrong_secret = signature::sign(b"not-the-secret", &bytes);
    let cases: Vec<Option<String>> = vec![
        None,
        Some(String::new()),
        Some("sha256=".into()),
        Some(good.trim_start_matches("sha256=").to_string()),
        Some(format!("sha1={}", good.trim_start_matches("sha256="))),
        Some(format!("{}0", &good[..good.len() - 1])),
        Some("sha256=zz".into()),
        Some(wrong_secret),
    ];
    for sig in cases {
        let response = app.post_raw(bytes.clone(), sig.as_deref()).await;
        let body = json_with_status(response, 401).await;
        let error = body["error"].as_str().expect("error message");
        assert!(
            !error.contains(good.trim_start_matches("sha256=")),
            "leaks the expected value"
        );
    }
    let stats = app.stats().await;
    assert_eq!(stats["messages_total"], 0);
    assert_eq!(stats["total_leads"], 0);
    let convos = app.admin_json("/api/admin/conversations").await;
    assert_eq!(convos["total"], 0);
}

async fn body_reserialised_with_other_whitespace_fails_the_signature(app: TestApp) {
    let value = text_from("15551230003", "wamid.C1", T0, "hello");
    let compact = serde_json::to_vec(&value).unwrap();
    let sig = signature::sign(APP_SECRET.as_bytes(), &compact);
    let pretty = serde_json::to_vec_pretty(&value).unwrap();
    assert_ne!(compact, pretty);
    let response = app.post_raw(pretty, Some(&sig)).await;
    assert_eq!(response.status(), 401);
    // The exact bytes that were signed pass.
    let response = app.post_raw(compact, Some(&sig)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.stats().await["messages_total"], 1);
}

async fn oversized_body_is_413(app: TestApp) {
    let app = TestApp::spawn_with(app.backend, &[("WEBHOOK_MAX_BODY_BYTES", "2048")])
        .await
        .unwrap();
    let long = "x".repeat(4096);
    let response = app
        .post_webhook(&text_from("15551230004", "wamid.D1", T0, &long))
        .await;
    let body = json_with_status(response, 413).await;
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("WEBHOOK_MAX_BODY_BYTES"));
    let response = app
        .post_webhook(&text_from("15551230004", "wamid.D2", T0, "short"))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.stats().await["messages_total"], 1);
}

async fn authentic_bodies_leadhook_cannot_read_are_dead_lettered(app: TestApp) {
    let bodies: Vec<Vec<u8>> = vec![
        b"this is not json".to_vec(),
        br#"{"object":"whatsapp_business_account"}"#.to_vec(),
        br#"[1,2,3]"#.to_vec(),
    ];
    for bytes in &bodies {
        let sig = signature::sign(APP_SECRET.as_bytes(), bytes);
        let response = app.post_raw(bytes.clone(), Some(&sig)).await;
        assert_eq!(response.status(), 200);
    }
    let failures = app.admin_json("/api/admin/webhook-failures").await;
    assert_eq!(failures["total"], 3);
    let items = failures["items"].as_array().unwrap();
    let stored: Vec<&str> = items.iter().map(|f| f["body"].as_str().unwrap()).collect();
    assert!(stored.contains(&"this is not json"));
    assert!(items
        .iter()
        .all(|f| !f["reason"].as_str().unwrap().is_empty()));
}

async fn every_message_type_is_summarised(app: TestApp) {
    let s = Sender::phone("15551230005").named("Types");
    let cases: Vec<(&str, Option<Value>, &str)> = vec![
        ("text", Some(json!({"body": "plain text"})), "plain text"),
        (
            "image",
            Some(json!({"caption": "our flyer", "mime_type": "image/jpeg", "id": "M1"})),
            "our flyer",
        ),
        (
            "image",
            Some(json!({"mime_type": "image/jpeg", "id": "M2"})),
            "[image]",
        ),
        (
            "video",
            Some(json!({"mime_type": "video/mp4", "id": "M3"})),
            "[video]",
        ),
        (
            "audio",
            Some(json!({"mime_type": "audio/ogg", "id": "M4", "voice": true})),
            "[audio]",
        ),
        (
            "document",
            Some(json!({"filename": "brochure.pdf", "id": "M5"})),
            "[document: brochure.pdf]",
        ),
        (
            "sticker",
            Some(json!({"mime_type": "image/webp", "id": "M6", "animated": false})),
            "[sticker]",
        ),
        (
            "location",
            Some(json!({"latitude": 38.9, "longitude": -77.03, "name": "Campus"})),
            "[location: 38.9,-77.03 Campus]",
        ),
        (
            "contacts",
            Some(json!([{"name": {"formatted_name": "Grace Hopper", "first_name": "Grace"}}])),
            "[contacts: Grace Hopper]",
        ),
        (
            "interactive",
            Some(
                json!({"type": "button_reply", "button_reply": {"id": "b1", "title": "Yes please"}}),
            ),
            "Yes please",
        ),
        (
            "interactive",
            Some(
                json!({"type": "list_reply", "list_reply": {"id": "l1", "title": "Evening class", "description": "18:00"}}),
            ),
            "Evening class",
        ),
        (
            "button",
            Some(json!({"text": "Interested", "payload": "INTERESTED"})),
            "Interested",
        ),
        (
            "reaction",
            Some(json!({"message_id": "wamid.X", "emoji": "👍"})),
            "[reaction: 👍]",
        ),
        (
            "system",
            Some(json!({"body": "Something happened", "type": "customer_identity_changed"})),
            "[system: Something happened]",
        ),
        ("unsupported", Some(json!({})), "[unsupported]"),
        ("hologram", Some(json!({"depth": 3})), "[unsupported]"),
        ("text", None, "[text]"),
        ("location", Some(json!("not an object")), "[location]"),
    ];
    let messages: Vec<Msg> = cases
        .iter()
        .enumerate()
        .map(|(i, (kind, content, _))| {
            Msg::typed(
                &s,
                &format!("wamid.T{i}"),
                T0 + i as i64,
                kind,
                content.clone(),
            )
        })
        .collect();
    let mut body = webhook(&messages);
    // An order, in its documented shape.
    body["entry"][0]["changes"][0]["value"]["messages"]
        .as_array_mut()
        .unwrap()
        .push(json!({"from": "15551230005", "id": "wamid.ORDER", "timestamp": (T0 + 100).to_string(), "type": "order",
            "order": {"catalog_id": "C1", "product_items": [{"product_retailer_id": "P1", "quantity": "1", "item_price": "10", "currency": "USD"}]}}));
    let response = app.post_webhook(&body).await;
    let reply = json_with_status(response, 200).await;
    assert_eq!(reply["stored"], cases.len() + 1);

    let lead = app.lead("15551230005").await;
    assert_eq!(lead["message_count"], cases.len() + 1);
    let detail = app
        .admin_json(&format!("/api/admin/leads/{}", lead["id"]))
        .await;
    let texts: Vec<&str> = detail["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    for (i, (kind, _, expected)) in cases.iter().enumerate() {
        assert_eq!(texts[i], *expected, "summary of {kind} case {i}");
    }
    assert!(texts.last().unwrap().starts_with("[order"), "{texts:?}");
}

async fn multi_entry_multi_message_body_stores_everything(app: TestApp) {
    let a = Sender::phone("15551230006").named("A");
    let b = Sender::bsuid("US.100000000000000006").named("B");
    let body = body_of(vec![
        change(
            "messages",
            value(&[
                Msg::text(&a, "wamid.M1", T0, "a1"),
                Msg::text(&b, "wamid.M2", T0 + 1, "b1"),
            ]),
        ),
        change(
            "messages",
            value(&[Msg::text(&a, "wamid.M3", T0 + 2, "a2")]),
        ),
        change(
            "account_update",
            json!({"phone_number": "15550001111", "event": "VERIFIED_ACCOUNT"}),
        ),
        change(
            "message_template_status_update",
            json!({"event": "APPROVED", "message_template_id": 1}),
        ),
    ]);
    let reply = json_with_status(app.post_webhook(&body).await, 200).await;
    assert_eq!(reply["stored"], 3);
    assert_eq!(app.lead("15551230006").await["message_count"], 2);
    assert_eq!(app.lead("US.100000000000000006").await["message_count"], 1);
    assert_eq!(app.stats().await["total_leads"], 2);
}

async fn statuses_are_acknowledged_and_create_no_leads(app: TestApp) {
    let body = body_of(vec![change(
        "messages",
        json!({
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": "106540352242922"},
            "statuses": [
                {"id": "wamid.OUT1", "status": "delivered", "timestamp": T0.to_string(), "recipient_id": "15551230007"},
                {"id": "wamid.OUT1", "status": "read", "timestamp": (T0 + 5).to_string(), "recipient_id": "15551230007"},
                {"id": "wamid.OUT2", "status": "failed", "timestamp": T0.to_string(), "recipient_id": "15551230008",
                 "errors": [{"code": 131047, "title": "Re-engagement message"}]}
            ]
        }),
    )]);
    assert_eq!(app.post_webhook(&body).await.status(), 200);
    let stats = app.stats().await;
    assert_eq!(stats["total_leads"], 0);
    assert_eq!(stats["messages_total"], 0);
    assert_eq!(
        app.admin_json("/api/admin/webhook-failures").await["total"],
        0
    );
}

async fn one_odd_message_does_not_cost_the_others(app: TestApp) {
    let s = Sender::phone("15551230009");
    let mut body = webhook(&[
        Msg::text(&s, "wamid.OK1", T0, "fine"),
        Msg::text(&s, "wamid.OK2", T0 + 1, "also fine"),
    ]);
    let messages = body["entry"][0]["changes"][0]["value"]["messages"]
        .as_array_mut()
        .unwrap();
    messages.push(json!({"id": "wamid.NOSENDER", "timestamp": T0.to_string(), "type": "text", "text": {"body": "who?"}}));
    messages.push(json!({"from": "15551230009", "timestamp": T0.to_string(), "type": "text", "text": {"body": "no id"}}));
    messages.push(json!({"from": "15551230009", "id": "wamid.BADTS", "timestamp": "yesterday", "type": "text"}));
    messages.push(json!(42));
    let reply = json_with_status(app.post_webhook(&body).await, 200).await;
    assert_eq!(reply["stored"], 2);
    assert_eq!(app.lead("15551230009").await["message_count"], 2);
    let failures = app.admin_json("/api/admin/webhook-failures").await;
    assert_eq!(failures["total"], 1, "one dead-letter row for the body");
    let reason = failures["items"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("wamid.NOSENDER"), "{reason}");
    assert!(failures["items"][0]["body"]
        .as_str()
        .unwrap()
        .contains("wamid.BADTS"));
}

async fn webhook_without_app_secret_is_503(app: TestApp) {
    let app = TestApp::spawn_with(app.backend, &[("WHATSAPP_APP_SECRET", "")])
        .await
        .unwrap();
    let response = app
        .post_webhook(&text_from("15551230010", "wamid.N1", T0, "hi"))
        .await;
    let body = json_with_status(response, 503).await;
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("WHATSAPP_APP_SECRET"));
    assert_eq!(app.stats().await["messages_total"], 0);
}

crate::on_both_databases!(
    handshake_echoes_the_challenge,
    handshake_with_a_wrong_token_is_403,
    signed_text_message_creates_a_lead,
    bad_signatures_are_401_and_store_nothing,
    body_reserialised_with_other_whitespace_fails_the_signature,
    oversized_body_is_413,
    authentic_bodies_leadhook_cannot_read_are_dead_lettered,
    every_message_type_is_summarised,
    multi_entry_multi_message_body_stores_everything,
    statuses_are_acknowledged_and_create_no_leads,
    one_odd_message_does_not_cost_the_others,
    webhook_without_app_secret_is_503,
);
