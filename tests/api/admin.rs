//! The admin API as staff use it: the bearer token, the lead list and its
//! filters, statistics, a lead's conversation, conversion, deactivation and
//! deletion, the student registry and the dead-letter list.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::helpers::{json_with_status, TestApp, ADMIN_TOKEN, APP_SECRET};
use crate::payloads::{text_from, webhook, Msg, Sender, T0};
use leadhook::whatsapp::signature;

/// Every admin endpoint, as (method, path).
const ENDPOINTS: &[(&str, &str)] = &[
    ("GET", "/api/admin/leads"),
    ("GET", "/api/admin/leads/stats"),
    ("GET", "/api/admin/leads/1"),
    ("POST", "/api/admin/leads/1/convert"),
    ("DELETE", "/api/admin/leads/1"),
    ("GET", "/api/admin/students"),
    ("POST", "/api/admin/students"),
    ("GET", "/api/admin/conversations"),
    ("GET", "/api/admin/webhook-failures"),
];

/// Sends `method path` with the given `Authorization` header value (if any)
/// and a small JSON body for POSTs.
async fn send(
    app: &TestApp,
    method: &str,
    path: &str,
    authorization: Option<&str>,
) -> reqwest::Response {
    let url = app.url(path);
    let mut request = match method {
        "GET" => app.client.get(url),
        "POST" => app
            .client
            .post(url)
            .json(&json!({ "phone_number": "15550009999" })),
        "DELETE" => app.client.delete(url),
        other => panic!("unexpected method {other}"),
    };
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    request.send().await.expect("request")
}

/// Asserts `value` is an RFC 3339 timestamp in UTC and returns it.
fn rfc3339_utc(value: &Value, what: &str) -> DateTime<Utc> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {value}"));
    let parsed = DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{what} = {text:?} is not RFC 3339: {e}"));
    assert_eq!(
        parsed.offset().local_minus_utc(),
        0,
        "{what} = {text:?} is not UTC"
    );
    parsed.with_timezone(&Utc)
}

/// Phone numbers of a page of leads, in order.
fn phones(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|lead| {
            lead["phone_number"]
                .as_str()
                .expect("phone_number")
                .to_string()
        })
        .collect()
}

fn id_of(lead: &Value) -> i64 {
    lead["id"].as_i64().expect("lead id")
}

/// Sends one text message and asserts it was accepted.
async fn say(app: &TestApp, phone: &str, id: &str, timestamp: i64, text: &str) {
    let response = app
        .post_webhook(&text_from(phone, id, timestamp, text))
        .await;
    assert_eq!(response.status(), 200, "webhook {id}");
}

/// POST /convert without any body at all.
async fn convert_without_body(app: &TestApp, lead_id: i64) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/admin/leads/{lead_id}/convert")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("convert request")
}

async fn register_student(app: &TestApp, body: Value) -> Value {
    let response = app.admin_post("/api/admin/students", &body).await;
    json_with_status(response, 201).await["student"].clone()
}

// --- authentication --------------------------------------------------------

async fn admin_api_without_admin_token_configured_is_503_everywhere(app: TestApp) {
    let backend = app.backend;
    drop(app);
    let app = TestApp::spawn_with(backend, &[("ADMIN_TOKEN", "")])
        .await
        .expect("backend available");
    let mut paths: Vec<(&str, &str)> = ENDPOINTS.to_vec();
    paths.push(("GET", "/api/admin/nope"));
    for (method, path) in paths {
        // Whatever the caller presents, including the token other servers use.
        for authorization in [
            None,
            Some(format!("Bearer {ADMIN_TOKEN}")),
            Some("Bearer ".to_string()),
        ] {
            let response = send(&app, method, path, authorization.as_deref()).await;
            let body = json_with_status(response, 503).await;
            let error = body["error"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path}: no JSON error: {body}"));
            assert!(
                error.contains("ADMIN_TOKEN"),
                "{method} {path}: error does not name ADMIN_TOKEN: {error}"
            );
        }
    }
    // The disabled API did not register anyone on the way.
    let still_disabled = send(
        &app,
        "GET",
        "/api/admin/students",
        Some(&format!("Bearer {ADMIN_TOKEN}")),
    )
    .await;
    assert_eq!(still_disabled.status(), 503);
}

async fn missing_or_wrong_admin_token_is_401(app: TestApp) {
    let wrong = [
        None,
        Some(String::new()),
        Some("Bearer".to_string()),
        Some("Bearer ".to_string()),
        Some("Bearer wrong-token".to_string()),
        Some(format!("Bearer {ADMIN_TOKEN}x")),
        Some(format!("Bearer {}", &ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1])),
        Some(format!("Basic {ADMIN_TOKEN}")),
        Some(ADMIN_TOKEN.to_string()),
    ];
    for (method, path) in ENDPOINTS {
        for authorization in &wrong {
            let response = send(&app, method, path, authorization.as_deref()).await;
            let body = json_with_status(response, 401).await;
            let error = body["error"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path}: no JSON error: {body}"));
            assert!(
                !error.contains(ADMIN_TOKEN),
                "the 401 reveals the token: {error}"
            );
        }
    }
    // The refused POSTs registered no student.
    let students = app.admin_json("/api/admin/students").await;
    assert_eq!(students["total"], 0, "{students:#}");
}

async fn unknown_admin_path_is_404_json(app: TestApp) {
    let body = json_with_status(app.admin_get("/api/admin/nope").await, 404).await;
    assert!(
        body["error"].is_string(),
        "404 without a JSON error: {body}"
    );
    // Without the token the path reveals nothing, not even that it is unknown.
    let response = send(&app, "GET", "/api/admin/nope", None).await;
    assert_eq!(response.status(), 401);
}

// --- lead list -------------------------------------------------------------

async fn lead_list_defaults_to_50_and_pages_with_skip_and_limit(app: TestApp) {
    // 60 senders in one webhook; sender i last wrote at T0 + i.
    let messages: Vec<Msg> = (0..60)
        .map(|i| {
            let sender = Sender::phone(&format!("1555100{i:04}")).named(&format!("Sender {i}"));
            Msg::text(&sender, &format!("wamid.PAGE{i}"), T0 + i, "hello")
        })
        .collect();
    assert_eq!(app.post_webhook(&webhook(&messages)).await.status(), 200);
    let phone = |i: i64| format!("1555100{i:04}");

    let first = app.admin_json("/api/admin/leads").await;
    assert_eq!(first["total"], 60);
    assert_eq!(first["skip"], 0);
    assert_eq!(first["limit"], 50);
    let expected: Vec<String> = (10..60).rev().map(phone).collect();
    assert_eq!(phones(&first), expected, "newest activity first");

    let rest = app.admin_json("/api/admin/leads?skip=50&limit=50").await;
    assert_eq!(rest["total"], 60);
    assert_eq!(rest["skip"], 50);
    let expected: Vec<String> = (0..10).rev().map(phone).collect();
    assert_eq!(phones(&rest), expected);

    let middle = app.admin_json("/api/admin/leads?skip=10&limit=5").await;
    assert_eq!(middle["limit"], 5);
    let expected: Vec<String> = (45..50).rev().map(phone).collect();
    assert_eq!(phones(&middle), expected);

    let past_the_end = app.admin_json("/api/admin/leads?skip=100").await;
    assert_eq!(past_the_end["items"], json!([]));
    assert_eq!(past_the_end["total"], 60);

    let everything = app.admin_json("/api/admin/leads?limit=500").await;
    assert_eq!(phones(&everything).len(), 60);
}

async fn bad_lead_list_parameters_are_400_naming_the_parameter(app: TestApp) {
    for (query, parameter) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=abc", "limit"),
        ("limit=-5", "limit"),
        ("skip=-1", "skip"),
        ("skip=abc", "skip"),
        ("converted=yes", "converted"),
        ("converted=1", "converted"),
        ("active=yes", "active"),
    ] {
        let response = app.admin_get(&format!("/api/admin/leads?{query}")).await;
        let body = json_with_status(response, 400).await;
        let error = body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{query}: no JSON error: {body}"));
        assert!(
            error.contains(parameter),
            "{query}: error does not name {parameter}: {error}"
        );
    }
}

async fn converted_and_active_filters_select_leads(app: TestApp) {
    say(&app, "15551200001", "wamid.F1", T0 + 1, "will convert").await;
    say(
        &app,
        "15551200002",
        "wamid.F2",
        T0 + 2,
        "will be deactivated",
    )
    .await;
    say(&app, "15551200003", "wamid.F3", T0 + 3, "plain lead").await;
    let converted = id_of(&app.lead("15551200001").await);
    let inactive = id_of(&app.lead("15551200002").await);
    json_with_status(convert_without_body(&app, converted).await, 200).await;
    json_with_status(
        app.admin_delete(&format!("/api/admin/leads/{inactive}"))
            .await,
        200,
    )
    .await;

    let set = |page: &Value| phones(page).into_iter().collect::<BTreeSet<_>>();
    let expect = |phones: &[&str]| {
        phones
            .iter()
            .map(|p| p.to_string())
            .collect::<BTreeSet<_>>()
    };
    for (query, expected) in [
        ("converted=true", expect(&["15551200001"])),
        ("converted=false", expect(&["15551200002", "15551200003"])),
        ("active=false", expect(&["15551200002"])),
        ("active=true", expect(&["15551200001", "15551200003"])),
        ("converted=false&active=true", expect(&["15551200003"])),
        ("converted=true&active=false", expect(&[])),
    ] {
        let page = app.admin_json(&format!("/api/admin/leads?{query}")).await;
        assert_eq!(set(&page), expected, "{query}");
        assert_eq!(page["total"], expected.len(), "{query}: total");
    }
}

async fn q_finds_leads_by_name_phone_and_message_text_ignoring_case(app: TestApp) {
    let grace = Sender::phone("15551300001").named("Grace Hopper");
    let alan = Sender::both("15551300002", "GB.5550001")
        .named("Alan Turing")
        .username("enigma.alan");
    // A student's messages belong to no lead: a search counts none of them.
    register_student(&app, json!({ "phone_number": "15551300009" })).await;
    let student = Sender::phone("15551300009").named("Ada");
    for msg in [
        Msg::text(&grace, "wamid.Q1", T0, "Interested in the COBOL bootcamp"),
        Msg::text(&alan, "wamid.Q2", T0 + 1, "Pricing for the crypto course?"),
        // Grace's later message: the search must still find her first one.
        Msg::text(&grace, "wamid.Q3", T0 + 2, "thanks"),
        Msg::text(&student, "wamid.Q4", T0 + 3, "Is the crypto course full?"),
        // Found by username and by two messages: still one lead.
        Msg::text(&alan, "wamid.Q5", T0 + 4, "enigma.alan here, about ENIGMA"),
        Msg::text(&alan, "wamid.Q6", T0 + 5, "and enigma again"),
    ] {
        assert_eq!(app.post_webhook(&webhook(&[msg])).await.status(), 200);
    }

    for (q, expected) in [
        ("grace", vec!["15551300001"]),
        ("HOPPER", vec!["15551300001"]),
        ("1300002", vec!["15551300002"]),
        ("15551300001", vec!["15551300001"]),
        ("cobol", vec!["15551300001"]),
        ("BootCamp", vec!["15551300001"]),
        ("CRYPTO", vec!["15551300002"]),
        ("gb.5550001", vec!["15551300002"]),
        ("Enigma.Alan", vec!["15551300002"]),
        ("enigma", vec!["15551300002"]),
        // Both match; Alan wrote last.
        ("1555130000", vec!["15551300002", "15551300001"]),
        ("nobody-writes-this", vec![]),
        // Wildcards are taken literally.
        ("%25", vec![]),
        ("_", vec![]),
    ] {
        let page = app.admin_json(&format!("/api/admin/leads?q={q}")).await;
        assert_eq!(phones(&page), expected, "q={q}");
        assert_eq!(page["total"], expected.len(), "q={q}: total");
    }
}

async fn leads_are_listed_newest_whatsapp_activity_first(app: TestApp) {
    // Arrival order differs from WhatsApp timestamp order on purpose.
    say(&app, "15551400001", "wamid.N1", T0 + 100, "a").await;
    say(&app, "15551400002", "wamid.N2", T0 + 200, "b").await;
    say(&app, "15551400003", "wamid.N3", T0 + 50, "c").await;
    assert_eq!(
        phones(&app.admin_json("/api/admin/leads").await),
        ["15551400002", "15551400001", "15551400003"]
    );

    // A new message moves its sender to the top ...
    say(&app, "15551400001", "wamid.N4", T0 + 300, "a again").await;
    // ... a late-arriving old one does not.
    say(
        &app,
        "15551400003",
        "wamid.N5",
        T0 + 10,
        "c, delivered late",
    )
    .await;
    assert_eq!(
        phones(&app.admin_json("/api/admin/leads").await),
        ["15551400001", "15551400002", "15551400003"]
    );
}

async fn leads_in_the_list_have_the_documented_fields(app: TestApp) {
    say(&app, "15551450001", "wamid.FIELDS", T0, "hello").await;
    let lead = app.lead("15551450001").await;
    for key in [
        "id",
        "phone_number",
        "user_id",
        "parent_user_id",
        "username",
        "sender_name",
        "first_message",
        "last_message",
        "message_count",
        "is_active",
        "converted_to_student",
        "student_id",
        "created_at",
        "updated_at",
        "last_message_time",
    ] {
        assert!(lead.get(key).is_some(), "lead lacks {key}: {lead:#}");
    }
    assert_eq!(
        rfc3339_utc(&lead["last_message_time"], "last_message_time").timestamp(),
        T0
    );
    let created = rfc3339_utc(&lead["created_at"], "created_at");
    let updated = rfc3339_utc(&lead["updated_at"], "updated_at");
    let age = Utc::now() - created;
    assert!(
        age.num_seconds().abs() < 300,
        "created_at is not about now: {created}"
    );
    assert!(updated >= created);
}

// --- stats -----------------------------------------------------------------

const STATS_KEYS: [&str; 8] = [
    "total_leads",
    "active_leads",
    "converted_leads",
    "unconverted_leads",
    "conversion_rate",
    "new_leads_today",
    "new_leads_7d",
    "messages_total",
];

fn stats_keys(stats: &Value) -> BTreeSet<String> {
    stats
        .as_object()
        .expect("stats object")
        .keys()
        .cloned()
        .collect()
}

async fn stats_of_an_empty_database_are_zero(app: TestApp) {
    let stats = app.stats().await;
    assert_eq!(
        stats_keys(&stats),
        STATS_KEYS.iter().map(|k| k.to_string()).collect()
    );
    assert_eq!(stats["conversion_rate"], "0.0%");
    for key in STATS_KEYS.iter().filter(|k| **k != "conversion_rate") {
        assert_eq!(stats[key], json!(0), "{key}");
    }
}

async fn stats_count_leads_conversions_and_messages(app: TestApp) {
    say(&app, "15551500001", "wamid.S1", T0, "one").await;
    say(&app, "15551500001", "wamid.S2", T0 + 1, "two").await;
    say(&app, "15551500002", "wamid.S3", T0 + 2, "three").await;
    say(&app, "15551500003", "wamid.S4", T0 + 3, "four").await;
    let converted = id_of(&app.lead("15551500001").await);
    let deactivated = id_of(&app.lead("15551500003").await);
    json_with_status(convert_without_body(&app, converted).await, 200).await;
    json_with_status(
        app.admin_delete(&format!("/api/admin/leads/{deactivated}"))
            .await,
        200,
    )
    .await;

    let stats = app.stats().await;
    assert_eq!(
        stats_keys(&stats),
        STATS_KEYS.iter().map(|k| k.to_string()).collect()
    );
    assert_eq!(stats["total_leads"], 3);
    assert_eq!(stats["active_leads"], 2);
    assert_eq!(stats["converted_leads"], 1);
    assert_eq!(stats["unconverted_leads"], 2);
    assert_eq!(stats["conversion_rate"], "33.3%");
    assert_eq!(stats["new_leads_today"], 3);
    assert_eq!(stats["new_leads_7d"], 3);
    assert_eq!(stats["messages_total"], 4);
}

// --- lead detail -----------------------------------------------------------

async fn lead_detail_of_an_unknown_id_is_404(app: TestApp) {
    let body = json_with_status(app.admin_get("/api/admin/leads/999999").await, 404).await;
    assert!(body["error"].is_string(), "{body}");
}

async fn lead_detail_with_a_non_numeric_id_is_400(app: TestApp) {
    for id in ["abc", "1.5", "1e3"] {
        let body =
            json_with_status(app.admin_get(&format!("/api/admin/leads/{id}")).await, 400).await;
        assert!(body["error"].is_string(), "{id}: {body}");
    }
}

async fn lead_detail_shows_messages_oldest_first_by_whatsapp_timestamp(app: TestApp) {
    let phone = "15551600001";
    say(&app, phone, "wamid.D3", T0 + 30, "third").await;
    say(&app, phone, "wamid.D1", T0 + 10, "first").await;
    say(&app, phone, "wamid.D2", T0 + 20, "second").await;
    // Someone else's message does not show up in this conversation.
    say(&app, "15551600002", "wamid.D9", T0 + 15, "other person").await;
    let id = id_of(&app.lead(phone).await);

    let detail = app.admin_json(&format!("/api/admin/leads/{id}")).await;
    assert_eq!(id_of(&detail["lead"]), id);
    assert_eq!(detail["lead"]["phone_number"], phone);
    assert_eq!(detail["lead"]["message_count"], 3);
    let messages = detail["messages"].as_array().expect("messages");
    let bodies: Vec<&str> = messages
        .iter()
        .map(|m| m["body"].as_str().expect("body"))
        .collect();
    assert_eq!(bodies, ["first", "second", "third"]);
    let wamids: Vec<&str> = messages
        .iter()
        .map(|m| m["wamid"].as_str().expect("wamid"))
        .collect();
    assert_eq!(wamids, ["wamid.D1", "wamid.D2", "wamid.D3"]);
    for (i, m) in messages.iter().enumerate() {
        let sent = rfc3339_utc(&m["wa_timestamp"], "wa_timestamp");
        assert_eq!(sent.timestamp(), T0 + 10 * (i as i64 + 1));
        rfc3339_utc(&m["received_at"], "received_at");
    }
    for key in ["created_at", "updated_at", "last_message_time"] {
        rfc3339_utc(&detail["lead"][key], key);
    }
    assert_eq!(detail["older_before"], Value::Null);
}

async fn lead_detail_pages_older_messages_with_before(app: TestApp) {
    let phone = "15551700001";
    let sender = Sender::phone(phone).named("Paging Person");
    // Delivered newest first, in one body.
    let messages: Vec<Msg> = (0..7)
        .rev()
        .map(|i| Msg::text(&sender, &format!("wamid.PG{i}"), T0 + i, &format!("m{i}")))
        .collect();
    assert_eq!(app.post_webhook(&webhook(&messages)).await.status(), 200);
    let id = id_of(&app.lead(phone).await);
    let bodies = |detail: &Value| -> Vec<String> {
        detail["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m["body"].as_str().expect("body").to_string())
            .collect()
    };

    let newest = app
        .admin_json(&format!("/api/admin/leads/{id}?limit=3"))
        .await;
    assert_eq!(bodies(&newest), ["m4", "m5", "m6"]);
    let before = newest["older_before"]
        .as_i64()
        .expect("older_before on a partial page");

    let older = app
        .admin_json(&format!("/api/admin/leads/{id}?limit=3&before={before}"))
        .await;
    assert_eq!(bodies(&older), ["m1", "m2", "m3"]);
    let before = older["older_before"]
        .as_i64()
        .expect("older_before on a partial page");

    let oldest = app
        .admin_json(&format!("/api/admin/leads/{id}?limit=3&before={before}"))
        .await;
    assert_eq!(bodies(&oldest), ["m0"]);
    assert_eq!(oldest["older_before"], Value::Null);

    for query in ["limit=0", "limit=abc", "before=abc"] {
        let response = app
            .admin_get(&format!("/api/admin/leads/{id}?{query}"))
            .await;
        json_with_status(response, 400).await;
    }
}

async fn lead_detail_shows_the_newest_200_messages_by_default(app: TestApp) {
    let phone = "15551800001";
    let sender = Sender::phone(phone).named("Chatty");
    let messages: Vec<Msg> = (0..205)
        .map(|i| Msg::text(&sender, &format!("wamid.CH{i}"), T0 + i, &format!("m{i}")))
        .collect();
    assert_eq!(app.post_webhook(&webhook(&messages)).await.status(), 200);
    let id = id_of(&app.lead(phone).await);

    let detail = app.admin_json(&format!("/api/admin/leads/{id}")).await;
    let page = detail["messages"].as_array().expect("messages");
    assert_eq!(page.len(), 200);
    assert_eq!(page[0]["body"], "m5");
    assert_eq!(page[199]["body"], "m204");
    let before = detail["older_before"].as_i64().expect("older_before");
    let older = app
        .admin_json(&format!("/api/admin/leads/{id}?before={before}"))
        .await;
    let older_bodies: Vec<&str> = older["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["body"].as_str().expect("body"))
        .collect();
    assert_eq!(older_bodies, ["m0", "m1", "m2", "m3", "m4"]);
    assert_eq!(older["older_before"], Value::Null);
}

// --- convert ---------------------------------------------------------------

async fn converting_to_an_unknown_student_id_is_422(app: TestApp) {
    say(&app, "15551900001", "wamid.CV1", T0, "hi").await;
    let id = id_of(&app.lead("15551900001").await);
    let response = app
        .admin_post(
            &format!("/api/admin/leads/{id}/convert"),
            &json!({ "student_id": 987654 }),
        )
        .await;
    let body = json_with_status(response, 422).await;
    assert!(body["error"].is_string(), "{body}");
    let lead = app.lead("15551900001").await;
    assert_eq!(lead["converted_to_student"], false);
    assert_eq!(lead["student_id"], Value::Null);
}

async fn converting_without_a_body_creates_a_student_from_the_lead(app: TestApp) {
    say(&app, "15551900002", "wamid.CV2", T0, "sign me up").await;
    let id = id_of(&app.lead("15551900002").await);
    let body = json_with_status(convert_without_body(&app, id).await, 200).await;
    assert_eq!(body["lead"]["converted_to_student"], true);
    let student_id = body["lead"]["student_id"].as_i64().expect("student_id set");

    let lead = app.lead("15551900002").await;
    assert_eq!(lead["converted_to_student"], true);
    assert_eq!(lead["student_id"], student_id);

    let students = app.admin_json("/api/admin/students").await;
    assert_eq!(students["total"], 1, "{students:#}");
    let student = &students["items"][0];
    assert_eq!(student["id"], student_id);
    assert_eq!(student["phone_number"], "15551900002");
    assert_eq!(student["name"], "Ada Lovelace");
    rfc3339_utc(&student["created_at"], "student created_at");
    assert_eq!(app.stats().await["converted_leads"], 1);
}

async fn converting_again_to_the_same_student_changes_nothing(app: TestApp) {
    say(&app, "15551900003", "wamid.CV3", T0, "hi").await;
    let id = id_of(&app.lead("15551900003").await);
    let student = register_student(
        &app,
        json!({ "phone_number": "15559990003", "name": "Enrolled" }),
    )
    .await;
    let student_id = student["id"].as_i64().expect("student id");
    let path = format!("/api/admin/leads/{id}/convert");

    let first = json_with_status(
        app.admin_post(&path, &json!({ "student_id": student_id }))
            .await,
        200,
    )
    .await;
    let again = json_with_status(
        app.admin_post(&path, &json!({ "student_id": student_id }))
            .await,
        200,
    )
    .await;
    assert_eq!(
        again["lead"], first["lead"],
        "a repeated conversion changed the lead"
    );
    assert_eq!(again["lead"]["student_id"], student_id);
    // Without a body, the lead's own student is meant: still a no-op.
    let bare = json_with_status(convert_without_body(&app, id).await, 200).await;
    assert_eq!(bare["lead"], first["lead"]);
    assert_eq!(app.admin_json("/api/admin/students").await["total"], 1);
}

async fn converting_to_another_student_is_409(app: TestApp) {
    say(&app, "15551900004", "wamid.CV4", T0, "hi").await;
    let id = id_of(&app.lead("15551900004").await);
    let first = register_student(&app, json!({ "phone_number": "15559990041" })).await;
    let second = register_student(&app, json!({ "phone_number": "15559990042" })).await;
    let path = format!("/api/admin/leads/{id}/convert");
    json_with_status(
        app.admin_post(&path, &json!({ "student_id": first["id"] }))
            .await,
        200,
    )
    .await;

    let body = json_with_status(
        app.admin_post(&path, &json!({ "student_id": second["id"] }))
            .await,
        409,
    )
    .await;
    assert!(body["error"].is_string(), "{body}");
    assert_eq!(app.lead("15551900004").await["student_id"], first["id"]);
}

async fn converting_an_unknown_lead_is_404(app: TestApp) {
    let student = register_student(&app, json!({ "phone_number": "15559990005" })).await;
    let response = app
        .admin_post(
            "/api/admin/leads/999999/convert",
            &json!({ "student_id": student["id"] }),
        )
        .await;
    json_with_status(response, 404).await;
    json_with_status(convert_without_body(&app, 999999).await, 404).await;
    // Nothing was created for the missing lead.
    assert_eq!(app.admin_json("/api/admin/students").await["total"], 1);
}

// --- delete ----------------------------------------------------------------

async fn delete_deactivates_the_lead_and_keeps_it(app: TestApp) {
    say(&app, "15552000001", "wamid.DL1", T0, "hi").await;
    let id = id_of(&app.lead("15552000001").await);
    let body = json_with_status(
        app.admin_delete(&format!("/api/admin/leads/{id}")).await,
        200,
    )
    .await;
    assert_eq!(body["lead"]["is_active"], false);

    let lead = app.lead("15552000001").await;
    assert_eq!(lead["is_active"], false);
    assert_eq!(lead["message_count"], 1);
    let detail = app.admin_json(&format!("/api/admin/leads/{id}")).await;
    assert_eq!(detail["messages"].as_array().expect("messages").len(), 1);
    let stats = app.stats().await;
    assert_eq!(stats["total_leads"], 1);
    assert_eq!(stats["active_leads"], 0);
    assert_eq!(stats["messages_total"], 1);

    // Writing again brings the lead back.
    say(
        &app,
        "15552000001",
        "wamid.DL2",
        T0 + 60,
        "still interested",
    )
    .await;
    let lead = app.lead("15552000001").await;
    assert_eq!(id_of(&lead), id);
    assert_eq!(lead["is_active"], true);
    assert_eq!(lead["message_count"], 2);
    assert_eq!(lead["last_message"], "still interested");
}

async fn hard_delete_removes_the_lead_and_its_messages(app: TestApp) {
    for (i, ts) in [(1, T0), (2, T0 + 1), (3, T0 + 2)] {
        say(&app, "15552100001", &format!("wamid.HD{i}"), ts, "bye soon").await;
    }
    say(&app, "15552100002", "wamid.HDX", T0, "staying").await;
    let id = id_of(&app.lead("15552100001").await);
    assert_eq!(app.stats().await["messages_total"], 4);

    json_with_status(
        app.admin_delete(&format!("/api/admin/leads/{id}?hard=true"))
            .await,
        200,
    )
    .await;
    json_with_status(app.admin_get(&format!("/api/admin/leads/{id}")).await, 404).await;
    let stats = app.stats().await;
    assert_eq!(stats["total_leads"], 1);
    assert_eq!(stats["messages_total"], 1);

    json_with_status(
        app.admin_delete(&format!("/api/admin/leads/{id}?hard=true"))
            .await,
        404,
    )
    .await;
    json_with_status(
        app.admin_delete(&format!("/api/admin/leads/{id}")).await,
        404,
    )
    .await;
    let other = id_of(&app.lead("15552100002").await);
    json_with_status(
        app.admin_delete(&format!("/api/admin/leads/{other}?hard=yes"))
            .await,
        400,
    )
    .await;
    assert_eq!(app.lead("15552100002").await["is_active"], true);
}

// --- students --------------------------------------------------------------

async fn student_needs_a_phone_number_or_user_id(app: TestApp) {
    for body in [
        json!({}),
        json!({ "name": "No Identity", "email": "x@example.com" }),
        json!({ "phone_number": "   " }),
        json!({ "phone_number": null, "user_id": null }),
    ] {
        let response = app.admin_post("/api/admin/students", &body).await;
        let reply = json_with_status(response, 422).await;
        assert!(reply["error"].is_string(), "{body}: {reply}");
    }
    let not_json = app
        .client
        .post(app.url("/api/admin/students"))
        .bearer_auth(ADMIN_TOKEN)
        .header("Content-Type", "application/json")
        .body("phone=15550001")
        .send()
        .await
        .expect("request");
    json_with_status(not_json, 422).await;
    assert_eq!(app.admin_json("/api/admin/students").await["total"], 0);
}

async fn student_with_an_invalid_phone_number_is_422(app: TestApp) {
    for body in [
        json!({ "phone_number": "abc" }),
        json!({ "phone_number": "12" }),
        json!({ "phone_number": "1555123456789012345" }),
        json!({ "user_id": "not a bsuid" }),
    ] {
        let response = app.admin_post("/api/admin/students", &body).await;
        let reply = json_with_status(response, 422).await;
        assert!(reply["error"].is_string(), "{body}: {reply}");
    }
    assert_eq!(app.admin_json("/api/admin/students").await["total"], 0);
}

async fn registering_a_student_is_201_and_lists_them(app: TestApp) {
    let response = app
        .admin_post(
            "/api/admin/students",
            &json!({ "phone_number": "+1 555 222-0001", "name": "Marie Curie", "email": "marie@example.com" }),
        )
        .await;
    let body = json_with_status(response, 201).await;
    let student = &body["student"];
    assert_eq!(student["phone_number"], "15552220001", "stored as digits");
    assert_eq!(student["name"], "Marie Curie");
    assert_eq!(student["email"], "marie@example.com");
    rfc3339_utc(&student["created_at"], "created_at");

    let by_bsuid = register_student(&app, json!({ "user_id": "US.13491208655302741918" })).await;
    assert_eq!(by_bsuid["phone_number"], Value::Null);

    let list = app.admin_json("/api/admin/students").await;
    assert_eq!(list["total"], 2);
    let ids: BTreeSet<i64> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_i64().unwrap())
        .collect();
    let expected = BTreeSet::from([
        student["id"].as_i64().unwrap(),
        by_bsuid["id"].as_i64().unwrap(),
    ]);
    assert_eq!(ids, expected);
}

async fn duplicate_student_is_409(app: TestApp) {
    register_student(&app, json!({ "phone_number": "15552230001" })).await;
    register_student(&app, json!({ "user_id": "US.777000111" })).await;
    for body in [
        json!({ "phone_number": "15552230001" }),
        json!({ "phone_number": "+1 (555) 223-0001" }),
        json!({ "user_id": "US.777000111" }),
        json!({ "phone_number": "15552239999", "user_id": "US.777000111" }),
    ] {
        let response = app.admin_post("/api/admin/students", &body).await;
        let reply = json_with_status(response, 409).await;
        assert!(reply["error"].is_string(), "{body}: {reply}");
    }
    assert_eq!(app.admin_json("/api/admin/students").await["total"], 2);
}

async fn registering_a_student_converts_their_existing_lead(app: TestApp) {
    say(&app, "15552240001", "wamid.ST1", T0, "I want to enrol").await;
    say(&app, "15552240002", "wamid.ST2", T0, "just asking").await;
    let student = register_student(
        &app,
        json!({ "phone_number": "15552240001", "name": "Ada" }),
    )
    .await;

    let lead = app.lead("15552240001").await;
    assert_eq!(lead["converted_to_student"], true);
    assert_eq!(lead["student_id"], student["id"]);
    assert_eq!(app.lead("15552240002").await["converted_to_student"], false);
    let stats = app.stats().await;
    assert_eq!(stats["converted_leads"], 1);
    assert_eq!(stats["conversion_rate"], "50.0%");

    // A student's messages no longer count as lead activity.
    say(&app, "15552240001", "wamid.ST3", T0 + 60, "my homework").await;
    let lead = app.lead("15552240001").await;
    assert_eq!(lead["message_count"], 1);
    assert_eq!(lead["last_message"], "I want to enrol");
}

// --- dead letters ----------------------------------------------------------

async fn webhook_failures_list_dead_lettered_bodies(app: TestApp) {
    let empty = app.admin_json("/api/admin/webhook-failures").await;
    assert_eq!(empty["total"], 0);

    let raw = b"this is not JSON at all".to_vec();
    let sig = signature::sign(APP_SECRET.as_bytes(), &raw);
    let sent_at = Utc::now();
    assert_eq!(app.post_raw(raw, Some(&sig)).await.status(), 200);

    let failures = app.admin_json("/api/admin/webhook-failures").await;
    assert_eq!(failures["total"], 1, "{failures:#}");
    let item = &failures["items"][0];
    assert_eq!(item["body"], "this is not JSON at all");
    let reason = item["reason"].as_str().expect("reason");
    assert!(!reason.trim().is_empty());
    let received = rfc3339_utc(&item["received_at"], "received_at");
    let skew = (received - sent_at).num_seconds().abs();
    assert!(
        skew < 60,
        "received_at {received} is not about when it was sent ({sent_at})"
    );
    // It made no lead and no message.
    let stats = app.stats().await;
    assert_eq!(stats["total_leads"], 0);
    assert_eq!(stats["messages_total"], 0);
}

crate::on_both_databases!(
    admin_api_without_admin_token_configured_is_503_everywhere,
    missing_or_wrong_admin_token_is_401,
    unknown_admin_path_is_404_json,
    lead_list_defaults_to_50_and_pages_with_skip_and_limit,
    bad_lead_list_parameters_are_400_naming_the_parameter,
    converted_and_active_filters_select_leads,
    q_finds_leads_by_name_phone_and_message_text_ignoring_case,
    leads_are_listed_newest_whatsapp_activity_first,
    leads_in_the_list_have_the_documented_fields,
    stats_of_an_empty_database_are_zero,
    stats_count_leads_conversions_and_messages,
    lead_detail_of_an_unknown_id_is_404,
    lead_detail_with_a_non_numeric_id_is_400,
    lead_detail_shows_messages_oldest_first_by_whatsapp_timestamp,
    lead_detail_pages_older_messages_with_before,
    lead_detail_shows_the_newest_200_messages_by_default,
    converting_to_an_unknown_student_id_is_422,
    converting_without_a_body_creates_a_student_from_the_lead,
    converting_again_to_the_same_student_changes_nothing,
    converting_to_another_student_is_409,
    converting_an_unknown_lead_is_404,
    delete_deactivates_the_lead_and_keeps_it,
    hard_delete_removes_the_lead_and_its_messages,
    student_needs_a_phone_number_or_user_id,
    student_with_an_invalid_phone_number_is_422,
    registering_a_student_is_201_and_lists_them,
    duplicate_student_is_409,
    registering_a_student_converts_their_existing_lead,
    webhook_failures_list_dead_lettered_bodies,
);
