//! Where leads come from and how engaged they are: click-to-WhatsApp
//! referrals and the receiving business number on the message and the lead
//! (first touch), the list's attribution filters, and the engagement score.

use serde_json::{json, Value};

use crate::helpers::{json_with_status, TestApp};
use crate::payloads::{body_of, change, value, Msg, Sender, T0};
use crate::sql;
use crate::staff::{expect_every_offset, ids_of, patched};

const AD: &str = "120226305854810726";
const OTHER_BUSINESS_NUMBER: &str = "209876543210987";

fn referral(source_type: &str, source_id: &str) -> Value {
    json!({
        "source_url": format!("https://fb.me/{source_id}"),
        "source_id": source_id,
        "source_type": source_type,
        "headline": "IELTS in 8 weeks",
        "body": "Evening classes, small groups.",
        "media_type": "image",
        "ctwa_clid": "ARAkLkA8rmlFeiCktEJQ"
    })
}

/// A body with these messages, received by `business_number`, the first
/// message carrying `referral` if given.
fn body(business_number: &str, messages: &[Msg], referral: Option<Value>) -> Value {
    let mut v = value(messages);
    v["metadata"]["phone_number_id"] = json!(business_number);
    if let Some(r) = referral {
        v["messages"][0]["referral"] = r;
    }
    body_of(vec![change("messages", v)])
}

async fn post(app: &TestApp, body: &Value) {
    let response = app.post_webhook(body).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

async fn list(app: &TestApp, query: &str) -> Vec<Value> {
    let page = app
        .admin_json(&format!("/api/admin/leads?limit=500&{query}"))
        .await;
    page["items"].as_array().expect("items").clone()
}

async fn ids(app: &TestApp, query: &str) -> Vec<i64> {
    ids_of(
        &app.admin_json(&format!("/api/admin/leads?limit=500&{query}"))
            .await,
    )
}

async fn lead_of(app: &TestApp, phone: &str) -> Value {
    let items = list(app, &format!("q={phone}")).await;
    assert_eq!(items.len(), 1, "one lead for {phone}: {items:?}");
    items[0].clone()
}

async fn ad_referral_is_stored_on_the_message_and_the_lead(app: TestApp) {
    let ada = Sender::both("15551230001", "US.1000000000000000001").named("Ada");
    post(
        &app,
        &body(
            crate::payloads::BUSINESS_NUMBER_ID,
            &[Msg::text(&ada, "wamid.ad-1", T0, "Is the May group full?")],
            Some(referral("ad", AD)),
        ),
    )
    .await;
    // A later message without a referral keeps the lead's first-touch source.
    post(
        &app,
        &body(
            crate::payloads::BUSINESS_NUMBER_ID,
            &[Msg::text(&ada, "wamid.ad-2", T0 + 60, "And the price?")],
            None,
        ),
    )
    .await;

    let lead = lead_of(&app, "15551230001").await;
    assert_eq!(lead["source_type"], "ad");
    assert_eq!(lead["source_id"], AD);
    assert_eq!(lead["source_url"], format!("https://fb.me/{AD}"));
    assert_eq!(lead["source_headline"], "IELTS in 8 weeks");
    assert_eq!(
        lead["business_phone_number_id"],
        crate::payloads::BUSINESS_NUMBER_ID
    );

    let id = lead["id"].as_i64().unwrap();
    let detail = app.admin_json(&format!("/api/admin/leads/{id}")).await;
    let messages = detail["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["referral_source_type"], "ad");
    assert_eq!(messages[0]["referral_source_id"], AD);
    assert_eq!(messages[0]["referral_headline"], "IELTS in 8 weeks");
    assert_eq!(messages[1]["referral_source_type"], Value::Null);
}

async fn an_older_message_delivered_late_becomes_the_source(app: TestApp) {
    let bob = Sender::phone("15551230002");
    // The first message to arrive is organic, but the one that came from the
    // ad was written earlier and is delivered later (a WhatsApp retry).
    post(
        &app,
        &body(
            crate::payloads::BUSINESS_NUMBER_ID,
            &[Msg::text(&bob, "wamid.late-2", T0 + 60, "hello?")],
            None,
        ),
    )
    .await;
    assert_eq!(
        lead_of(&app, "15551230002").await["source_type"],
        Value::Null
    );
    post(
        &app,
        &body(
            crate::payloads::BUSINESS_NUMBER_ID,
            &[Msg::text(&bob, "wamid.late-1", T0, "from the ad")],
            Some(referral("post", "post-77")),
        ),
    )
    .await;
    let lead = lead_of(&app, "15551230002").await;
    assert_eq!(lead["first_message"], "from the ad");
    assert_eq!(lead["source_type"], "post");
    assert_eq!(lead["source_id"], "post-77");
}

async fn the_list_filters_by_source_and_business_number(app: TestApp) {
    let from_ad = Sender::phone("15551230011");
    let from_post = Sender::phone("15551230012");
    let organic = Sender::phone("15551230013");
    let other_number = Sender::phone("15551230014");
    let main = crate::payloads::BUSINESS_NUMBER_ID;
    post(
        &app,
        &body(
            main,
            &[Msg::text(&from_ad, "wamid.f1", T0, "a")],
            Some(referral("ad", AD)),
        ),
    )
    .await;
    post(
        &app,
        &body(
            main,
            &[Msg::text(&from_post, "wamid.f2", T0 + 1, "b")],
            Some(referral("post", "p1")),
        ),
    )
    .await;
    post(
        &app,
        &body(main, &[Msg::text(&organic, "wamid.f3", T0 + 2, "c")], None),
    )
    .await;
    post(
        &app,
        &body(
            OTHER_BUSINESS_NUMBER,
            &[Msg::text(&other_number, "wamid.f4", T0 + 3, "d")],
            None,
        ),
    )
    .await;

    let id = |items: &[Value], phone: &str| -> i64 {
        items
            .iter()
            .find(|l| l["phone_number"] == phone)
            .and_then(|l| l["id"].as_i64())
            .expect("lead listed")
    };
    let all = list(&app, "").await;
    assert_eq!(all.len(), 4);
    assert_eq!(ids(&app, "source=ad").await, [id(&all, "15551230011")]);
    assert_eq!(ids(&app, "source=post").await, [id(&all, "15551230012")]);
    assert_eq!(
        ids(&app, "source=organic").await,
        [id(&all, "15551230014"), id(&all, "15551230013")]
    );
    assert_eq!(
        ids(&app, &format!("source_id={AD}")).await,
        [id(&all, "15551230011")]
    );
    assert_eq!(
        ids(&app, &format!("business_number={OTHER_BUSINESS_NUMBER}")).await,
        [id(&all, "15551230014")]
    );
    assert_eq!(ids(&app, &format!("business_number={main}")).await.len(), 3);
    assert_eq!(
        ids(&app, &format!("business_number={main}&source=organic")).await,
        [id(&all, "15551230013")]
    );
    // Blank values are refused, naming the parameter.
    for param in ["source", "source_id", "business_number"] {
        let response = app.admin_get(&format!("/api/admin/leads?{param}=")).await;
        let error = json_with_status(response, 400).await;
        assert!(error["error"].as_str().unwrap().contains(param), "{error}");
    }
}

async fn the_score_follows_the_documented_formula(app: TestApp) {
    let main = crate::payloads::BUSINESS_NUMBER_ID;
    // One organic message: 4 points.
    let quiet = Sender::phone("15551230021");
    post(
        &app,
        &body(main, &[Msg::text(&quiet, "wamid.s1", T0, "hi")], None),
    )
    .await;
    assert_eq!(lead_of(&app, "15551230021").await["score"], 4);

    // From an ad (20), two interactive replies (2 × 10), four messages
    // (4 × 4), the last within a day of the one before (10): 66.
    let keen = Sender::phone("15551230022");
    post(
        &app,
        &body(
            main,
            &[Msg::text(&keen, "wamid.s2", T0, "hi")],
            Some(referral("ad", AD)),
        ),
    )
    .await;
    let button = json!({"payload": "YES", "text": "Yes"});
    let list_reply =
        json!({"type": "list_reply", "list_reply": {"id": "may", "title": "May group"}});
    post(
        &app,
        &body(
            main,
            &[Msg::typed(
                &keen,
                "wamid.s3",
                T0 + 60,
                "button",
                Some(button),
            )],
            None,
        ),
    )
    .await;
    post(
        &app,
        &body(
            main,
            &[Msg::typed(
                &keen,
                "wamid.s4",
                T0 + 120,
                "interactive",
                Some(list_reply),
            )],
            None,
        ),
    )
    .await;
    post(
        &app,
        &body(
            main,
            &[Msg::text(&keen, "wamid.s5", T0 + 180, "thanks")],
            None,
        ),
    )
    .await;
    let lead = lead_of(&app, "15551230022").await;
    assert_eq!(lead["interactive_replies"], 2);
    assert_eq!(lead["score"], 66);

    // Coming back two days later is not a live conversation: the 10 goes.
    post(
        &app,
        &body(
            main,
            &[Msg::text(
                &keen,
                "wamid.s6",
                T0 + 2 * 86_400,
                "still there?",
            )],
            None,
        ),
    )
    .await;
    assert_eq!(lead_of(&app, "15551230022").await["score"], 20 + 20 + 20);

    // A redelivery changes nothing.
    post(
        &app,
        &body(
            main,
            &[Msg::text(
                &keen,
                "wamid.s6",
                T0 + 2 * 86_400,
                "still there?",
            )],
            None,
        ),
    )
    .await;
    assert_eq!(lead_of(&app, "15551230022").await["score"], 60);

    let by_score = ids(&app, "sort=score").await;
    assert_eq!(by_score.len(), 2);
    assert_eq!(
        by_score[0],
        lead_of(&app, "15551230022").await["id"].as_i64().unwrap()
    );
}

/// The list's total for a status, a source or a business number alone is
/// read from per-value counts the database keeps, and a page at an offset
/// starts at the day the per-day counts say it lands in; the page's items
/// come from the leads themselves. After new leads, pipeline changes, a
/// changed source, business number and time, a hard delete and a reset,
/// each total still equals its items and the expected count, and each
/// offset gives its slice of the list.
async fn a_value_filter_counts_exactly_through_every_change(app: TestApp) {
    let main = crate::payloads::BUSINESS_NUMBER_ID;
    // Nine leads: three from an ad, two from a post, four organic; six
    // to the main number, three to the other.
    for i in 0..9u32 {
        let sender = Sender::phone(&format!("155512301{i:02}"));
        let number = if i % 3 == 2 {
            OTHER_BUSINESS_NUMBER
        } else {
            main
        };
        let source = match i {
            0..=2 => Some(referral("ad", AD)),
            3..=4 => Some(referral("post", "p1")),
            _ => None,
        };
        // Over three days, for the pages at an offset (`lead_activity_days`).
        let at = T0 + i as i64 * 30_000;
        let message = Msg::text(&sender, &format!("wamid.VC{i}"), at, "hi");
        post(&app, &body(number, &[message], source)).await;
    }
    let lead = |i: u32| {
        let app = &app;
        async move { app.lead_id(&format!("155512301{i:02}")).await }
    };
    let filters = [
        "status=new",
        "status=contacted",
        "status=contacted,qualified,lost",
        "source=ad",
        "source=post",
        "source=organic",
        &format!("business_number={main}"),
        &format!("business_number={OTHER_BUSINESS_NUMBER}"),
    ]
    .map(|f| f.to_string());
    assert_eq!(value_totals(&app, &filters).await, [9, 0, 0, 3, 2, 4, 6, 3]);

    patched(&app, lead(0).await, &json!({"status": "contacted"})).await;
    patched(&app, lead(1).await, &json!({"status": "lost"})).await;
    patched(&app, lead(5).await, &json!({"status": "contacted"})).await;
    patched(&app, lead(5).await, &json!({"status": "qualified"})).await;
    assert_eq!(value_totals(&app, &filters).await, [6, 1, 3, 3, 2, 4, 6, 3]);
    // A new day's message moves a lead to the front, keeping its values.
    let again = Msg::text(
        &Sender::phone("15551230103"),
        "wamid.VC3b",
        T0 + 300_000,
        "hi",
    );
    post(&app, &body(main, &[again], None)).await;
    assert_eq!(value_totals(&app, &filters).await, [6, 1, 3, 3, 2, 4, 6, 3]);

    // What the API does not change: a lead's source and number, and a
    // hard delete (as a merge of two leads does).
    let sql = |statements: &str| sql::execute(app.backend, &app.database_url(), statements);
    let (first, organic, other) = (lead(0).await, lead(6).await, lead(8).await);
    sql(&format!(
        "UPDATE leads SET source_type = NULL WHERE id = {first};
         UPDATE leads SET source_type = 'ad', business_phone_number_id = '{main}',
                          last_message_time = '2026-01-02 03:04:05' WHERE id = {organic};
         UPDATE leads SET business_phone_number_id = NULL WHERE id = {other};"
    ));
    assert_eq!(value_totals(&app, &filters).await, [6, 1, 3, 3, 2, 4, 6, 2]);
    sql(&format!(
        "DELETE FROM leads WHERE id IN ({first}, {organic});"
    ));
    assert_eq!(value_totals(&app, &filters).await, [5, 0, 2, 2, 2, 3, 4, 2]);

    let reset = json!({"confirm": "delete all leads"});
    json_with_status(app.admin_post("/api/admin/reset", &reset).await, 200).await;
    assert_eq!(value_totals(&app, &filters).await, [0; 8]);
    let message = Msg::text(&Sender::phone("15551230199"), "wamid.VC99", T0 + 99, "hi");
    post(&app, &body(main, &[message], Some(referral("ad", AD)))).await;
    assert_eq!(value_totals(&app, &filters).await, [1, 0, 0, 1, 0, 0, 1, 0]);
}

/// Each filter's total, checked against the number of its items, and its
/// page at every offset against the list.
async fn value_totals(app: &TestApp, filters: &[String]) -> Vec<usize> {
    let mut totals = Vec::new();
    for filter in filters {
        totals.push(expect_every_offset(app, filter).await.len());
    }
    totals
}

crate::on_both_databases!(
    ad_referral_is_stored_on_the_message_and_the_lead,
    an_older_message_delivered_late_becomes_the_source,
    the_list_filters_by_source_and_business_number,
    the_score_follows_the_documented_formula,
    a_value_filter_counts_exactly_through_every_change,
);
