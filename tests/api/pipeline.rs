//! The sales pipeline of a lead: status, priority, value, tags, assignee,
//! follow-up, notes and the activity timeline that records every change.

use serde_json::{json, Value};

use crate::helpers::{json_with_status, TestApp};
use crate::staff::{self, kinds, lead_by_id, leads_from, note, patch, patched, refused, timeline};

async fn new_lead_starts_new_with_an_empty_pipeline(app: TestApp) {
    let [id] = leads_from(&app, &["15553330001"]).await[..] else {
        unreachable!()
    };
    let lead = lead_by_id(&app, id).await;
    assert_eq!(lead["status"], "new");
    assert_eq!(lead["priority"], "medium");
    assert_eq!(lead["tags"], json!([]));
    for field in [
        "value_minor",
        "value_currency",
        "assigned_to",
        "next_follow_up_at",
        "converted_at",
    ] {
        assert_eq!(lead[field], Value::Null, "{field}");
    }
    // The list shows the same fields.
    assert_eq!(app.lead("15553330001").await, lead);
    // The timeline starts with the first message, derived from the lead.
    let entries = timeline(&app, id).await;
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert_eq!(entries[0]["kind"], "first_contact");
    assert_eq!(entries[0]["id"], Value::Null);
    assert_eq!(entries[0]["detail"]["message"], "hello");
    assert_eq!(entries[0]["at"], lead["first_message_time"]);
}

async fn patch_changes_fields_and_records_each_on_the_timeline(app: TestApp) {
    let id = leads_from(&app, &["15553330002"]).await[0];
    let response = patch(
        &app,
        id,
        &json!({
            "status": "contacted",
            "priority": "high",
            "value": {"amount_minor": 150000, "currency": "EUR"},
            "tags": ["VIP", " evening classes ", "vip"],
            "assigned_to": "alice",
            "next_follow_up_at": "2026-11-23T10:00:00+01:00"
        }),
        Some("alice"),
    )
    .await;
    let lead = json_with_status(response, 200).await["lead"].clone();
    assert_eq!(lead["status"], "contacted");
    assert_eq!(lead["priority"], "high");
    assert_eq!(lead["value_minor"], 150000);
    assert_eq!(lead["value_currency"], "EUR");
    assert_eq!(lead["tags"], json!(["evening classes", "vip"]));
    assert_eq!(lead["assigned_to"], "alice");
    assert_eq!(lead["next_follow_up_at"], "2026-11-23T09:00:00Z");
    assert_eq!(lead_by_id(&app, id).await, lead);

    let entries = timeline(&app, id).await;
    let got: Vec<(&str, &Value, &Value)> = entries
        .iter()
        .map(|a| (a["kind"].as_str().unwrap(), &a["actor"], &a["detail"]))
        .collect();
    assert_eq!(got[0].0, "first_contact");
    let alice = json!("alice");
    let expected = [
        ("status_changed", json!({"from": "new", "to": "contacted"})),
        ("priority_changed", json!({"from": "medium", "to": "high"})),
        (
            "value_changed",
            json!({"from": null, "to": {"amount_minor": 150000, "currency": "EUR"}}),
        ),
        ("assigned", json!({"from": null, "to": "alice"})),
        (
            "follow_up_set",
            json!({"from": null, "to": "2026-11-23T09:00:00Z"}),
        ),
        (
            "tags_changed",
            json!({"added": ["evening classes", "vip"], "removed": []}),
        ),
    ];
    assert_eq!(got.len(), expected.len() + 1, "{entries:#?}");
    for ((kind, actor, detail), (want_kind, want_detail)) in got[1..].iter().zip(&expected) {
        assert_eq!((*kind, *actor, *detail), (*want_kind, &alice, want_detail));
    }

    // Clearing with null, replacing tags, without an actor.
    let lead = patched(
        &app,
        id,
        &json!({"value": null, "assigned_to": null, "next_follow_up_at": null, "remove_tags": ["vip"]}),
    )
    .await;
    assert_eq!(lead["value_minor"], Value::Null);
    assert_eq!(lead["value_currency"], Value::Null);
    assert_eq!(lead["assigned_to"], Value::Null);
    assert_eq!(lead["next_follow_up_at"], Value::Null);
    assert_eq!(lead["tags"], json!(["evening classes"]));
    let last = timeline(&app, id).await.pop().unwrap();
    assert_eq!(last["actor"], Value::Null);
    assert_eq!(last["detail"], json!({"added": [], "removed": ["vip"]}));
}

async fn patch_with_the_values_the_lead_has_records_nothing(app: TestApp) {
    let id = leads_from(&app, &["15553330003"]).await[0];
    let before = lead_by_id(&app, id).await;
    let lead = patched(
        &app,
        id,
        &json!({"status": "new", "priority": "medium", "tags": []}),
    )
    .await;
    assert_eq!(lead, before, "nothing changes, not even updated_at");
    assert_eq!(kinds(&app, id).await, ["first_contact"]);
}

async fn invalid_edits_are_422_naming_the_field_and_change_nothing(app: TestApp) {
    let id = leads_from(&app, &["15553330004"]).await[0];
    let before = lead_by_id(&app, id).await;
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"status": "won"}),
            "status must be one of new, contacted, qualified, converted, lost, got 'won'",
        ),
        (json!({"status": 3}), "status must be one of"),
        (
            json!({"priority": "urgent"}),
            "priority must be one of low, medium, high",
        ),
        (json!({"colour": "red"}), "unknown field 'colour'"),
        (
            json!({"status": "lost", "is_active": false}),
            "unknown field 'is_active'",
        ),
        (json!({"deactivate": true}), "unknown field 'deactivate'"),
        (json!({"value": 100}), "value must be {\"amount_minor\""),
        (
            json!({"value": {"amount_minor": -5, "currency": "EUR"}}),
            "value.amount_minor",
        ),
        (
            json!({"value": {"amount_minor": 1.5, "currency": "EUR"}}),
            "value.amount_minor",
        ),
        (
            json!({"value": {"amount_minor": 100, "currency": "eur"}}),
            "value.currency",
        ),
        (json!({"value": {"amount_minor": 100}}), "value.currency"),
        (
            json!({"value": {"amount_minor": 100, "currency": "EUR", "cents": 1}}),
            "value.cents",
        ),
        (json!({"tags": "vip"}), "tags must be an array"),
        (json!({"tags": ["a,b"]}), "tags: a tag may hold"),
        (json!({"add_tags": ["x".repeat(33)]}), "1 to 32 characters"),
        (json!({"tags": ["a"], "add_tags": ["b"]}), "not both"),
        (json!({"add_tags": ["a"], "remove_tags": ["A"]}), "in both"),
        (json!({"assigned_to": "  "}), "assigned_to must be"),
        (
            json!({"next_follow_up_at": "tomorrow"}),
            "next_follow_up_at must be an RFC 3339",
        ),
        (
            json!({"next_follow_up_at": "2026-11-23T10:00:00"}),
            "next_follow_up_at",
        ),
        (json!({}), "nothing to change"),
        (json!([{"status": "lost"}]), "body must be a JSON object"),
        (
            json!({"status": "converted"}),
            "status 'converted' is set by POST /api/admin/leads/",
        ),
    ];
    for (body, expected) in cases {
        let error = refused(&app, id, &body, 422).await;
        assert!(error.contains(expected), "{body}: {error}");
    }
    let too_many: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
    let error = refused(&app, id, &json!({"tags": too_many}), 422).await;
    assert!(error.contains("at most 20"), "{error}");

    assert_eq!(lead_by_id(&app, id).await, before);
    assert_eq!(kinds(&app, id).await, ["first_contact"]);

    let missing = json_with_status(
        patch(&app, 999_999, &json!({"status": "lost"}), None).await,
        404,
    )
    .await;
    assert!(missing["error"].as_str().unwrap().contains("999999"));
    let response = app
        .client
        .patch(app.url(&format!("/api/admin/leads/{id}")))
        .bearer_auth(crate::helpers::ADMIN_TOKEN)
        .body("{not json")
        .send()
        .await
        .unwrap();
    json_with_status(response, 422).await;
    let bad_id =
        json_with_status(patch(&app, -1, &json!({"status": "lost"}), None).await, 400).await;
    assert!(bad_id["error"].as_str().unwrap().contains("lead id"));
}

async fn converting_sets_converted_and_freezes_the_status(app: TestApp) {
    let ids = leads_from(&app, &["15553330005", "15553330006"]).await;
    patched(&app, ids[0], &json!({"status": "qualified"})).await;
    let response = staff::send(
        &app,
        reqwest::Method::POST,
        &format!("/api/admin/leads/{}/convert", ids[0]),
        &json!({}),
        Some("bob"),
    )
    .await;
    let converted = json_with_status(response, 200).await;
    let lead = &converted["lead"];
    assert_eq!(lead["status"], "converted");
    assert_eq!(lead["converted_to_student"], true);
    assert!(lead["converted_at"].is_string(), "{lead}");
    let last = timeline(&app, ids[0]).await.pop().unwrap();
    assert_eq!(last["kind"], "converted");
    assert_eq!(last["actor"], "bob");
    assert_eq!(last["detail"]["student_id"], converted["student"]["id"]);
    assert_eq!(last["detail"]["from_status"], "qualified");

    // Converted is permanent; other fields stay editable.
    for status in ["lost", "new"] {
        let error = refused(&app, ids[0], &json!({"status": status}), 409).await;
        assert!(error.contains("converted"), "{error}");
    }
    let lead = patched(
        &app,
        ids[0],
        &json!({"status": "converted", "priority": "low"}),
    )
    .await;
    assert_eq!(
        (lead["status"].as_str(), lead["priority"].as_str()),
        (Some("converted"), Some("low"))
    );
    // Converting again is a no-op that keeps the first conversion time.
    let again = app
        .admin_post(&format!("/api/admin/leads/{}/convert", ids[0]), &json!({}))
        .await;
    assert_eq!(
        json_with_status(again, 200).await["lead"]["converted_at"],
        lead["converted_at"]
    );

    // Registering a student converts that person's lead the same way.
    let response = app
        .admin_post(
            "/api/admin/students",
            &json!({"phone_number": "15553330006", "name": "Eve"}),
        )
        .await;
    json_with_status(response, 201).await;
    let lead = lead_by_id(&app, ids[1]).await;
    assert_eq!(lead["status"], "converted");
    assert!(lead["converted_at"].is_string());
    let last = timeline(&app, ids[1]).await.pop().unwrap();
    assert_eq!(
        (last["kind"].as_str(), &last["detail"]["via"]),
        (Some("converted"), &json!("student_registration"))
    );
}

async fn a_lost_lead_can_be_reopened(app: TestApp) {
    let id = leads_from(&app, &["15553330007"]).await[0];
    assert_eq!(
        patched(&app, id, &json!({"status": "lost"})).await["status"],
        "lost"
    );
    let lead = patched(&app, id, &json!({"status": "contacted"})).await;
    assert_eq!(lead["status"], "contacted");
    assert_eq!(lead["converted_at"], Value::Null);
    let changes: Vec<Value> = timeline(&app, id)
        .await
        .into_iter()
        .filter(|a| a["kind"] == "status_changed")
        .map(|a| a["detail"].clone())
        .collect();
    assert_eq!(
        changes,
        [
            json!({"from": "new", "to": "lost"}),
            json!({"from": "lost", "to": "contacted"})
        ]
    );
}

async fn notes_are_appended_with_author_and_time(app: TestApp) {
    let id = leads_from(&app, &["15553330008"]).await[0];
    let first = note(
        &app,
        id,
        &json!({"author": " alice ", "body": "Called; wants evening classes."}),
    )
    .await;
    let first = json_with_status(first, 201).await["note"].clone();
    assert_eq!(first["author"], "alice");
    assert_eq!(first["lead_id"], id);
    assert!(first["created_at"].as_str().unwrap().ends_with('Z'));
    let second = note(
        &app,
        id,
        &json!({"author": "bob", "body": "Sent the brochure"}),
    )
    .await;
    json_with_status(second, 201).await;

    let notes = app
        .admin_json(&format!("/api/admin/leads/{id}/notes"))
        .await["items"]
        .clone();
    let bodies: Vec<&str> = notes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["body"].as_str().unwrap())
        .collect();
    assert_eq!(
        bodies,
        ["Called; wants evening classes.", "Sent the brochure"]
    );
    let entries = timeline(&app, id).await;
    let noted: Vec<(&Value, &Value)> = entries
        .iter()
        .filter(|a| a["kind"] == "note_added")
        .map(|a| (&a["actor"], &a["detail"]["note_id"]))
        .collect();
    assert_eq!(
        noted,
        [
            (&json!("alice"), &first["id"]),
            (&json!("bob"), &notes[1]["id"])
        ]
    );

    for (body, expected) in [
        (json!({"body": "no author"}), "author is required"),
        (json!({"author": "alice"}), "body is required"),
        (
            json!({"author": "alice", "body": "   "}),
            "body is required",
        ),
        (
            json!({"author": "alice", "body": "x".repeat(5001)}),
            "1 to 5000 characters",
        ),
        (
            json!({"author": "a".repeat(101), "body": "hi"}),
            "author is required",
        ),
        (
            json!({"author": "alice", "body": "hi", "pinned": true}),
            "unknown field 'pinned'",
        ),
    ] {
        let answer = json_with_status(note(&app, id, &body).await, 422).await;
        assert!(
            answer["error"].as_str().unwrap().contains(expected),
            "{answer}"
        );
    }
    json_with_status(
        note(&app, 999_999, &json!({"author": "a", "body": "b"})).await,
        404,
    )
    .await;
    let missing = app.admin_get("/api/admin/leads/999999/notes").await;
    json_with_status(missing, 404).await;
    assert_eq!(
        app.admin_json(&format!("/api/admin/leads/{id}/notes"))
            .await["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

async fn deactivation_and_hard_delete_and_the_timeline(app: TestApp) {
    let ids = leads_from(&app, &["15553330009", "15553330010"]).await;
    let response = staff::send(
        &app,
        reqwest::Method::DELETE,
        &format!("/api/admin/leads/{}", ids[0]),
        &json!(null),
        Some("carol"),
    )
    .await;
    let lead = json_with_status(response, 200).await["lead"].clone();
    assert_eq!(
        (
            lead["is_active"].as_bool(),
            lead["tags"].as_array().map(Vec::len)
        ),
        (Some(false), Some(0))
    );
    let last = timeline(&app, ids[0]).await.pop().unwrap();
    assert_eq!(
        (last["kind"].as_str(), last["actor"].as_str()),
        (Some("deactivated"), Some("carol"))
    );

    // A hard delete takes the lead's notes, tags and timeline with it.
    patched(&app, ids[1], &json!({"tags": ["x"]})).await;
    json_with_status(
        note(&app, ids[1], &json!({"author": "a", "body": "gone soon"})).await,
        201,
    )
    .await;
    json_with_status(
        app.admin_delete(&format!("/api/admin/leads/{}?hard=true", ids[1]))
            .await,
        200,
    )
    .await;
    json_with_status(
        app.admin_get(&format!("/api/admin/leads/{}/activity", ids[1]))
            .await,
        404,
    )
    .await;
    let found = app.admin_json("/api/admin/leads?q=gone%20soon").await;
    assert_eq!(found["total"], 0);
}

async fn the_timeline_pages_back_with_before(app: TestApp) {
    let id = leads_from(&app, &["15553330011"]).await[0];
    for priority in ["low", "high", "medium", "low", "high"] {
        patched(&app, id, &json!({"priority": priority})).await;
    }
    let path = format!("/api/admin/leads/{id}/activity");
    let newest = app.admin_json(&format!("{path}?limit=2")).await;
    let newest_details: Vec<&Value> = newest["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["detail"]["to"])
        .collect();
    assert_eq!(newest_details, [&json!("low"), &json!("high")]);
    let mut seen = newest["items"].as_array().unwrap().len();
    let mut before = newest["older_before"].as_i64().expect("an older page");
    loop {
        let page = app
            .admin_json(&format!("{path}?limit=2&before={before}"))
            .await;
        seen += page["items"].as_array().unwrap().len();
        match page["older_before"].as_i64() {
            Some(b) => before = b,
            None => {
                assert_eq!(page["items"][0]["kind"], "first_contact");
                break;
            }
        }
    }
    assert_eq!(seen, 6);
    let bad = app.admin_get(&format!("{path}?limit=0")).await;
    json_with_status(bad, 400).await;
    json_with_status(app.admin_get("/api/admin/leads/999999/activity").await, 404).await;
}

async fn lead_management_endpoints_need_the_admin_token(app: TestApp) {
    let id = leads_from(&app, &["15553330012"]).await[0];
    let endpoints = [
        (reqwest::Method::PATCH, format!("/api/admin/leads/{id}")),
        (
            reqwest::Method::POST,
            format!("/api/admin/leads/{id}/notes"),
        ),
        (reqwest::Method::GET, format!("/api/admin/leads/{id}/notes")),
        (
            reqwest::Method::GET,
            format!("/api/admin/leads/{id}/activity"),
        ),
        (reqwest::Method::POST, "/api/admin/leads/bulk".to_string()),
        (reqwest::Method::POST, "/api/admin/reset".to_string()),
    ];
    for (method, path) in endpoints {
        for token in [None, Some("wrong")] {
            let mut request = app
                .client
                .request(method.clone(), app.url(&path))
                .json(&json!({"status": "lost", "ids": [id], "author": "a", "body": "b", "confirm": "delete all leads"}));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 401, "{method} {path} with {token:?}");
        }
    }
    assert_eq!(lead_by_id(&app, id).await["status"], "new");
    assert_eq!(kinds(&app, id).await, ["first_contact"]);
}

crate::on_both_databases!(
    lead_management_endpoints_need_the_admin_token,
    new_lead_starts_new_with_an_empty_pipeline,
    patch_changes_fields_and_records_each_on_the_timeline,
    patch_with_the_values_the_lead_has_records_nothing,
    invalid_edits_are_422_naming_the_field_and_change_nothing,
    converting_sets_converted_and_freezes_the_status,
    a_lost_lead_can_be_reopened,
    notes_are_appended_with_author_and_time,
    deactivation_and_hard_delete_and_the_timeline,
    the_timeline_pages_back_with_before,
);
