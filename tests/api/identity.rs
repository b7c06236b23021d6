//! Who sent it: phone numbers, business-scoped user ids (BSUIDs) and
//! usernames; one person, one lead.

use futures::future::join_all;
use serde_json::{json, Value};

use crate::helpers::{json_with_status, TestApp};
use crate::payloads::{webhook, Msg, Sender, T0};
use crate::staff::{kinds, lead_by_id, note, patched};

const PHONE: &str = "15553330001";
const BSUID: &str = "US.13491208655302741918";

async fn send(app: &TestApp, sender: &Sender, id: &str, ts: i64, text: &str) -> Value {
    let response = app
        .post_webhook(&webhook(&[Msg::text(sender, id, ts, text)]))
        .await;
    json_with_status(response, 200).await
}

async fn merge_keeps_what_staff_recorded_on_either_lead(app: TestApp) {
    send(&app, &Sender::phone(PHONE), "wamid.S1", T0, "phone era").await;
    send(
        &app,
        &Sender::bsuid(BSUID),
        "wamid.S2",
        T0 + 10,
        "bsuid era",
    )
    .await;
    let phone_lead = app.lead_id(PHONE).await;
    let bsuid_lead = app.lead_id(BSUID).await;
    patched(
        &app,
        phone_lead,
        &json!({"tags": ["webinar"], "priority": "low"}),
    )
    .await;
    patched(
        &app,
        bsuid_lead,
        &json!({"tags": ["vip"], "status": "qualified", "priority": "high", "assigned_to": "alice"}),
    )
    .await;
    let response = note(
        &app,
        bsuid_lead,
        &json!({"author": "bob", "body": "call after 6"}),
    )
    .await;
    assert_eq!(response.status(), 201);

    send(
        &app,
        &Sender::both(PHONE, BSUID),
        "wamid.S3",
        T0 + 20,
        "both",
    )
    .await;
    let leads = app.leads().await;
    assert_eq!(leads.len(), 1, "{leads:#?}");
    let lead = lead_by_id(&app, phone_lead).await;
    assert_eq!(lead["tags"], json!(["vip", "webinar"]));
    assert_eq!(lead["status"], "qualified");
    assert_eq!(lead["priority"], "high");
    assert_eq!(lead["assigned_to"], "alice");
    let notes = app
        .admin_json(&format!("/api/admin/leads/{phone_lead}/notes"))
        .await;
    assert_eq!(notes["items"][0]["body"], "call after 6");
    assert!(kinds(&app, phone_lead)
        .await
        .contains(&"note_added".to_string()));
}

async fn bsuid_only_sender_gets_a_lead_without_phone(app: TestApp) {
    let sender = Sender::bsuid(BSUID)
        .named("Hidden Number")
        .username("ada.codes");
    let reply = send(&app, &sender, "wamid.U1", T0, "hello from a username").await;
    assert_eq!(reply["stored"], 1);
    let lead = app.lead(BSUID).await;
    assert_eq!(lead["phone_number"], Value::Null);
    assert_eq!(lead["user_id"], BSUID);
    assert_eq!(lead["username"], "ada.codes");
    assert_eq!(lead["sender_name"], "Hidden Number");
    assert_eq!(lead["message_count"], 1);
    // `q` finds it by username too.
    assert_eq!(app.lead("ada.codes").await["id"], lead["id"]);
}

async fn phone_and_bsuid_then_bsuid_then_phone_is_one_lead(app: TestApp) {
    send(&app, &Sender::both(PHONE, BSUID), "wamid.I1", T0, "both").await;
    send(
        &app,
        &Sender::bsuid(BSUID),
        "wamid.I2",
        T0 + 1,
        "bsuid only",
    )
    .await;
    send(
        &app,
        &Sender::phone(PHONE),
        "wamid.I3",
        T0 + 2,
        "phone only",
    )
    .await;
    let leads = app.leads().await;
    assert_eq!(leads.len(), 1, "{leads:#?}");
    assert_eq!(leads[0]["message_count"], 3);
    assert_eq!(leads[0]["phone_number"], PHONE);
    assert_eq!(leads[0]["user_id"], BSUID);
    assert_eq!(leads[0]["last_message"], "phone only");
}

async fn missing_identifier_is_attached_to_the_lead(app: TestApp) {
    send(&app, &Sender::phone(PHONE), "wamid.A1", T0, "phone first").await;
    send(
        &app,
        &Sender::both(PHONE, BSUID),
        "wamid.A2",
        T0 + 1,
        "now both",
    )
    .await;
    let leads = app.leads().await;
    assert_eq!(leads.len(), 1);
    assert_eq!(leads[0]["user_id"], BSUID);
    send(
        &app,
        &Sender::bsuid(BSUID),
        "wamid.A3",
        T0 + 2,
        "bsuid only",
    )
    .await;
    let leads = app.leads().await;
    assert_eq!(leads.len(), 1);
    assert_eq!(leads[0]["message_count"], 3);
}

async fn phone_lead_and_bsuid_lead_merge_when_a_message_shows_both(app: TestApp) {
    send(
        &app,
        &Sender::phone(PHONE).named("Phone Era"),
        "wamid.M1",
        T0 + 10,
        "phone-era message",
    )
    .await;
    send(
        &app,
        &Sender::phone(PHONE),
        "wamid.M2",
        T0 + 20,
        "phone-era second",
    )
    .await;
    send(
        &app,
        &Sender::bsuid(BSUID).username("newname"),
        "wamid.M3",
        T0 + 5,
        "bsuid-era but oldest",
    )
    .await;
    assert_eq!(app.leads().await.len(), 2);
    let older_id = app.lead(PHONE).await["id"].clone();

    let reply = send(
        &app,
        &Sender::both(PHONE, BSUID),
        "wamid.M4",
        T0 + 30,
        "both, newest",
    )
    .await;
    assert_eq!(reply["stored"], 1);
    let leads = app.leads().await;
    assert_eq!(leads.len(), 1, "{leads:#?}");
    let lead = &leads[0];
    assert_eq!(lead["id"], older_id, "merged into the older lead");
    assert_eq!(lead["message_count"], 4);
    assert_eq!(lead["phone_number"], PHONE);
    assert_eq!(lead["user_id"], BSUID);
    assert_eq!(lead["username"], "newname");
    assert_eq!(lead["first_message"], "bsuid-era but oldest");
    assert_eq!(lead["last_message"], "both, newest");
    let detail = app
        .admin_json(&format!("/api/admin/leads/{older_id}"))
        .await;
    let bodies: Vec<&str> = detail["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(
        bodies,
        [
            "bsuid-era but oldest",
            "phone-era message",
            "phone-era second",
            "both, newest"
        ]
    );
    assert_eq!(app.stats().await["messages_total"], 4);
    // The merged-away lead's message is searched as the surviving lead's.
    let found = app.admin_json("/api/admin/leads?q=bsuid-era").await;
    assert_eq!(found["total"], 1, "{found:#}");
    assert_eq!(found["items"][0]["id"], older_id, "{found:#}");
    // So are its username and BSUID: found once, on the surviving lead.
    for q in ["newname", BSUID] {
        let found = app.admin_json(&format!("/api/admin/leads?q={q}")).await;
        assert_eq!(found["total"], 1, "q={q}: {found:#}");
        assert_eq!(found["items"][0]["id"], older_id, "q={q}: {found:#}");
    }
}

async fn merge_keeps_conversion_and_student_link(app: TestApp) {
    send(
        &app,
        &Sender::bsuid(BSUID),
        "wamid.K1",
        T0,
        "bsuid lead, older",
    )
    .await;
    send(
        &app,
        &Sender::phone(PHONE),
        "wamid.K2",
        T0 + 1,
        "phone lead, newer",
    )
    .await;
    // The phone lead converts to a student registered under another number.
    let student = app
        .admin_post(
            "/api/admin/students",
            &json!({"phone_number": "15553330555", "name": "Enrolled"}),
        )
        .await;
    let student_id = json_with_status(student, 201).await["student"]["id"].clone();
    let phone_lead = app.lead(PHONE).await;
    let converted = app
        .admin_post(
            &format!("/api/admin/leads/{}/convert", phone_lead["id"]),
            &json!({"student_id": student_id}),
        )
        .await;
    json_with_status(converted, 200).await;
    let bsuid_lead_id = app.lead(BSUID).await["id"].clone();

    let reply = send(
        &app,
        &Sender::both(PHONE, BSUID),
        "wamid.K3",
        T0 + 2,
        "both",
    )
    .await;
    assert_eq!(reply["stored"], 1);
    let leads = app.leads().await;
    assert_eq!(leads.len(), 1, "{leads:#?}");
    let lead = &leads[0];
    assert_eq!(lead["id"], bsuid_lead_id, "kept the older lead");
    assert_eq!(lead["converted_to_student"], true);
    assert_eq!(lead["student_id"], student_id);
    assert_eq!(lead["message_count"], 3);
    assert_eq!(app.stats().await["converted_leads"], 1);
}

async fn message_from_a_student_registered_by_bsuid_changes_no_lead(app: TestApp) {
    send(&app, &Sender::bsuid(BSUID), "wamid.J1", T0, "bsuid lead").await;
    let lead = app.lead(BSUID).await;
    let converted = app
        .admin_post(
            &format!("/api/admin/leads/{}/convert", lead["id"]),
            &json!({}),
        )
        .await;
    let student_id = json_with_status(converted, 200).await["student"]["id"].clone();
    let reply = send(
        &app,
        &Sender::both(PHONE, BSUID),
        "wamid.J2",
        T0 + 2,
        "both",
    )
    .await;
    assert_eq!(reply["stored"], 1);
    let lead = app.lead(BSUID).await;
    assert_eq!(lead["message_count"], 1);
    assert_eq!(lead["student_id"], student_id);
}

async fn merge_takes_the_number_the_message_shows(app: TestApp) {
    let old_number = "15553330111";
    send(
        &app,
        &Sender::both(old_number, BSUID),
        "wamid.PN1",
        T0 + 50,
        "bsuid lead with old number",
    )
    .await;
    send(
        &app,
        &Sender::phone(PHONE),
        "wamid.PN2",
        T0,
        "phone-only lead",
    )
    .await;
    send(
        &app,
        &Sender::both(PHONE, BSUID),
        "wamid.PN3",
        T0 + 10,
        "both",
    )
    .await;
    let leads = app.leads().await;
    assert_eq!(leads.len(), 1, "{leads:#?}");
    assert_eq!(leads[0]["phone_number"], PHONE);
    assert_eq!(leads[0]["user_id"], BSUID);
    assert_eq!(leads[0]["message_count"], 3);
    assert_eq!(leads[0]["last_message"], "bsuid lead with old number");
}

async fn converting_a_username_lead_registers_the_student_by_bsuid(app: TestApp) {
    let sender = Sender::bsuid(BSUID).named("Ada").username("ada.codes");
    send(&app, &sender, "wamid.UC1", T0, "sign me up").await;
    let lead = app.lead(BSUID).await;
    let converted = app
        .admin_post(
            &format!("/api/admin/leads/{}/convert", lead["id"]),
            &json!({}),
        )
        .await;
    let student = json_with_status(converted, 200).await["student"].clone();
    assert_eq!(student["user_id"], BSUID);
    assert_eq!(student["phone_number"], Value::Null);
    assert_eq!(student["username"], "ada.codes");
    assert_eq!(student["name"], "Ada");
    let students = app.admin_json("/api/admin/students").await;
    assert_eq!(students["items"][0]["user_id"], BSUID);
}

async fn merge_racing_with_concurrent_deliveries_ends_as_one_lead(app: TestApp) {
    let mut bodies = Vec::new();
    for i in 0..30i64 {
        let sender = match i % 3 {
            0 => Sender::phone(PHONE),
            1 => Sender::bsuid(BSUID),
            _ => Sender::both(PHONE, BSUID),
        };
        bodies.push(webhook(&[Msg::text(
            &sender,
            &format!("wamid.RACE{i}"),
            T0 + i,
            &format!("m{i}"),
        )]));
    }
    // Every message twice, all at once.
    let all: Vec<&Value> = bodies.iter().chain(bodies.iter()).collect();
    let responses = join_all(all.into_iter().map(|b| app.post_webhook(b))).await;
    assert!(
        responses.iter().all(|r| r.status() == 200),
        "no 503 from a merge"
    );
    let leads = app.leads().await;
    assert_eq!(leads.len(), 1, "{leads:#?}");
    assert_eq!(leads[0]["message_count"], 30);
    assert_eq!(leads[0]["first_message"], "m0");
    assert_eq!(leads[0]["last_message"], "m29");
    assert_eq!(app.stats().await["messages_total"], 30);
}

async fn bsuid_in_from_is_taken_as_the_bsuid(app: TestApp) {
    let mut body = webhook(&[Msg::text(&Sender::bsuid(BSUID), "wamid.F1", T0, "relayed")]);
    let value = &mut body["entry"][0]["changes"][0]["value"];
    let message = &mut value["messages"][0];
    message.as_object_mut().unwrap().remove("from_user_id");
    message["from"] = json!(BSUID);
    value["contacts"] = json!([{"profile": {"name": "Relay"}, "wa_id": BSUID}]);
    json_with_status(app.post_webhook(&body).await, 200).await;
    let lead = app.lead(BSUID).await;
    assert_eq!(lead["user_id"], BSUID);
    assert_eq!(lead["phone_number"], Value::Null);
}

async fn message_without_any_identifier_is_dead_lettered(app: TestApp) {
    let mut body = webhook(&[
        Msg::text(&Sender::phone(PHONE), "wamid.X1", T0, "fine"),
        Msg::text(&Sender::default(), "wamid.X2", T0, "from nobody"),
    ]);
    body["entry"][0]["changes"][0]["value"]["contacts"] =
        json!([{"profile": {"name": "A"}, "wa_id": PHONE}]);
    let reply = json_with_status(app.post_webhook(&body).await, 200).await;
    assert_eq!(reply["stored"], 1);
    assert_eq!(reply["dead_lettered"], 1);
    let failures = app.admin_json("/api/admin/webhook-failures").await;
    assert_eq!(failures["total"], 1);
    assert!(failures["items"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("wamid.X2"));
    assert_eq!(app.lead(PHONE).await["message_count"], 1);
}

async fn student_registered_by_bsuid_creates_no_lead(app: TestApp) {
    let created = app
        .admin_post(
            "/api/admin/students",
            &json!({"user_id": BSUID, "name": "Username Student"}),
        )
        .await;
    json_with_status(created, 201).await;
    send(
        &app,
        &Sender::bsuid(BSUID),
        "wamid.SB1",
        T0,
        "I'm a student",
    )
    .await;
    send(
        &app,
        &Sender::both(PHONE, BSUID),
        "wamid.SB2",
        T0 + 1,
        "with my number",
    )
    .await;
    assert_eq!(app.stats().await["total_leads"], 0);
    assert_eq!(app.stats().await["messages_total"], 2);
}

async fn recycled_phone_number_moves_to_the_new_person(app: TestApp) {
    let other = "US.99999999999999999999";
    send(
        &app,
        &Sender::both(PHONE, BSUID),
        "wamid.Y1",
        T0,
        "original owner",
    )
    .await;
    send(
        &app,
        &Sender::both(PHONE, other),
        "wamid.Y2",
        T0 + 1,
        "new owner of the number",
    )
    .await;
    let leads = app.leads().await;
    assert_eq!(leads.len(), 2);
    let old = app.lead(BSUID).await;
    let new = app.lead(other).await;
    assert_eq!(old["phone_number"], Value::Null);
    assert_eq!(new["phone_number"], PHONE);
    assert_eq!(old["message_count"], 1);
    assert_eq!(new["message_count"], 1);
}

async fn user_changed_number_records_the_new_number(app: TestApp) {
    let new_phone = "15553339999";
    send(
        &app,
        &Sender::both(PHONE, BSUID).named("Mover"),
        "wamid.CN1",
        T0,
        "hi",
    )
    .await;
    let system = Msg::typed(
        &Sender::both(PHONE, BSUID),
        "wamid.CN2",
        T0 + 10,
        "system",
        Some(
            json!({"body": "Mover changed from 15553330001 to 15553339999", "new_wa_id": new_phone, "type": "user_changed_number"}),
        ),
    );
    json_with_status(app.post_webhook(&webhook(&[system])).await, 200).await;
    let lead = app.lead(BSUID).await;
    assert_eq!(lead["phone_number"], new_phone);
    assert_eq!(lead["message_count"], 2);
    assert!(lead["last_message"]
        .as_str()
        .unwrap()
        .starts_with("[system: "));
    // Messages from the new number land on the same lead.
    send(
        &app,
        &Sender::phone(new_phone),
        "wamid.CN3",
        T0 + 20,
        "from my new number",
    )
    .await;
    assert_eq!(app.leads().await.len(), 1);
    assert_eq!(app.lead(BSUID).await["message_count"], 3);
}

async fn conversations_are_keyed_by_bsuid_when_known(app: TestApp) {
    send(
        &app,
        &Sender::both(PHONE, BSUID).username("ada"),
        "wamid.CK1",
        T0,
        "one",
    )
    .await;
    send(&app, &Sender::bsuid(BSUID), "wamid.CK2", T0 + 1, "two").await;
    let convos = app.admin_json("/api/admin/conversations").await;
    assert_eq!(convos["total"], 1, "{convos:#}");
    let c = &convos["items"][0];
    assert_eq!(c["key"], BSUID);
    assert_eq!(c["user_id"], BSUID);
    assert_eq!(c["phone_number"], PHONE);
    assert_eq!(c["username"], "ada");
    assert_eq!(c["message_count"], 2);
}

crate::on_both_databases!(
    merge_keeps_what_staff_recorded_on_either_lead,
    bsuid_only_sender_gets_a_lead_without_phone,
    phone_and_bsuid_then_bsuid_then_phone_is_one_lead,
    missing_identifier_is_attached_to_the_lead,
    phone_lead_and_bsuid_lead_merge_when_a_message_shows_both,
    merge_keeps_conversion_and_student_link,
    message_from_a_student_registered_by_bsuid_changes_no_lead,
    converting_a_username_lead_registers_the_student_by_bsuid,
    merge_takes_the_number_the_message_shows,
    merge_racing_with_concurrent_deliveries_ends_as_one_lead,
    bsuid_in_from_is_taken_as_the_bsuid,
    message_without_any_identifier_is_dead_lettered,
    student_registered_by_bsuid_creates_no_lead,
    recycled_phone_number_moves_to_the_new_person,
    user_changed_number_records_the_new_number,
    conversations_are_keyed_by_bsuid_when_known,
);
