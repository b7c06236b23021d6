//! `GET /api/admin/analytics`: series per day and week, breakdowns, the
//! median time to conversion, the default range and parameter errors.
//!
//! Leads and messages arrive by webhook; their dates, pipeline status and
//! attribution are then set in the database (ingest does not fill the
//! attribution yet, and analytics of "now" would depend on the clock).

use serde_json::{json, Value};

use crate::helpers::{json_with_status, TestApp};
use crate::on_both_databases;
use crate::payloads::{text_from, webhook, Msg, Sender, T0};
use crate::sql;

const N1: &str = "111111111111111";
const N2: &str = "222222222222222";

/// One lead as the test arranges it.
struct Arranged {
    phone: &'static str,
    created: &'static str,
    status: &'static str,
    source: Option<&'static str>,
    number: &'static str,
    converted: Option<&'static str>,
    /// (message type, received at) of each message.
    messages: &'static [(&'static str, &'static str)],
}

/// Week of Monday 2026-10-05 and week of Monday 2026-10-12 (the range), and
/// a lead before and one right after it.
const LEADS: &[Arranged] = &[
    Arranged {
        phone: "15550000001",
        created: "2026-10-05 10:00:00",
        status: "converted",
        source: Some("ad"),
        number: N1,
        // One day after the first message.
        converted: Some("2026-10-06 10:00:00"),
        messages: &[
            ("text", "2026-10-05 10:00:00"),
            ("text", "2026-10-05 11:00:00"),
            ("image", "2026-10-06 08:00:00"),
        ],
    },
    Arranged {
        phone: "15550000002",
        created: "2026-10-06 09:00:00",
        status: "contacted",
        source: None,
        number: N1,
        converted: None,
        messages: &[("text", "2026-10-06 09:00:00")],
    },
    Arranged {
        phone: "15550000003",
        created: "2026-10-13 12:00:00",
        status: "converted",
        source: Some("post"),
        number: N2,
        // Three hours after the first message.
        converted: Some("2026-10-13 15:00:00"),
        messages: &[
            ("text", "2026-10-13 12:00:00"),
            ("button", "2026-10-13 12:30:00"),
        ],
    },
    // Arrived before the range, converted inside it (24 days later).
    Arranged {
        phone: "15550000004",
        created: "2026-09-20 00:00:00",
        status: "converted",
        source: None,
        number: N2,
        converted: Some("2026-10-14 00:00:00"),
        messages: &[("text", "2026-09-20 00:00:00")],
    },
    // The range ends just before it.
    Arranged {
        phone: "15550000005",
        created: "2026-10-19 00:00:00",
        status: "new",
        source: None,
        number: N1,
        converted: None,
        messages: &[("text", "2026-10-19 00:00:00")],
    },
];

fn quoted(value: Option<&str>) -> String {
    value.map_or("NULL".to_string(), |v| format!("'{v}'"))
}

/// Posts every lead's messages by webhook, then sets dates, status and
/// attribution in the database.
async fn arrange(app: &TestApp) {
    let mut sql = String::new();
    for (l, lead) in LEADS.iter().enumerate() {
        let sender = Sender::phone(lead.phone).named("Ada");
        for (m, (kind, received)) in lead.messages.iter().enumerate() {
            let id = format!("wamid.analytics.{l}.{m}");
            let content = match *kind {
                "text" => json!({ "body": "hello" }),
                "image" => json!({ "id": "media-1", "mime_type": "image/jpeg" }),
                _ => json!({ "text": "Yes", "payload": "yes" }),
            };
            let msg = Msg::typed(&sender, &id, T0 + m as i64, kind, Some(content));
            json_with_status(app.post_webhook(&webhook(&[msg])).await, 200).await;
            sql.push_str(&format!(
                "UPDATE messages SET received_at = '{received}', business_phone_number_id = '{}' \
                 WHERE wamid = '{id}';\n",
                lead.number
            ));
        }
        sql.push_str(&format!(
            "UPDATE leads SET created_at = '{created}', first_message_time = '{created}', \
             status = '{status}', source_type = {source}, business_phone_number_id = '{number}', \
             converted_at = {converted} WHERE phone_number = '{phone}';\n",
            created = lead.created,
            status = lead.status,
            source = quoted(lead.source),
            number = lead.number,
            converted = quoted(lead.converted),
            phone = lead.phone,
        ));
    }
    sql::execute(app.backend, &app.database_url(), &sql);
}

fn bucket<'a>(report: &'a Value, start: &str) -> &'a Value {
    report["buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .find(|b| b["start"] == start)
        .unwrap_or_else(|| panic!("no bucket starting {start}: {report:#}"))
}

async fn weekly_series_and_breakdowns(app: TestApp) {
    arrange(&app).await;
    let report = app
        .admin_json("/api/admin/analytics?from=2026-10-05&to=2026-10-18&bucket=week")
        .await;
    assert_eq!(report["from"], "2026-10-05T00:00:00Z");
    assert_eq!(report["to"], "2026-10-19T00:00:00Z");
    assert_eq!(report["bucket"], "week");
    assert_eq!(
        report["totals"],
        json!({
            "new_leads": 3, "new_leads_converted": 2, "conversion_rate": "66.7%",
            "conversions": 3, "messages": 6, "average_messages_per_lead": 2.0,
            // Of one day, three hours and 24 days.
            "median_seconds_to_conversion": 86_400,
        })
    );
    assert_eq!(
        report["buckets"],
        json!([
            {"start": "2026-10-05", "new_leads": 2, "new_leads_converted": 1, "conversion_rate": "50.0%",
             "conversions": 1, "messages": 4},
            {"start": "2026-10-12", "new_leads": 1, "new_leads_converted": 1, "conversion_rate": "100.0%",
             "conversions": 2, "messages": 2},
        ])
    );
    assert_eq!(
        report["by_status"],
        json!([
            {"status": "new", "leads": 0}, {"status": "contacted", "leads": 1},
            {"status": "qualified", "leads": 0}, {"status": "converted", "leads": 2},
            {"status": "lost", "leads": 0},
        ])
    );
    assert_eq!(
        report["by_source"],
        json!([
            {"source": "ad", "leads": 1, "converted": 1, "conversion_rate": "100.0%"},
            {"source": "organic", "leads": 1, "converted": 0, "conversion_rate": "0.0%"},
            {"source": "post", "leads": 1, "converted": 1, "conversion_rate": "100.0%"},
        ])
    );
    assert_eq!(
        report["by_message_type"],
        json!([
            {"message_type": "text", "messages": 4},
            {"message_type": "button", "messages": 1},
            {"message_type": "image", "messages": 1},
        ])
    );
    assert_eq!(
        report["by_business_number"],
        json!([
            {"business_phone_number_id": N1, "leads": 2, "converted": 1, "messages": 4},
            {"business_phone_number_id": N2, "leads": 1, "converted": 1, "messages": 2},
        ])
    );
}

async fn daily_series_fills_empty_days(app: TestApp) {
    arrange(&app).await;
    let report = app
        .admin_json("/api/admin/analytics?from=2026-10-05T00:00:00Z&to=2026-10-19T00:00:00Z")
        .await;
    assert_eq!(report["bucket"], "day");
    let buckets = report["buckets"].as_array().expect("buckets");
    let starts: Vec<&str> = buckets
        .iter()
        .map(|b| b["start"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(starts.len(), 14, "{starts:?}");
    assert_eq!(starts[0], "2026-10-05");
    assert_eq!(starts[13], "2026-10-18");
    assert_eq!(
        bucket(&report, "2026-10-06"),
        &json!({"start": "2026-10-06", "new_leads": 1, "new_leads_converted": 0,
                "conversion_rate": "0.0%", "conversions": 1, "messages": 2})
    );
    assert_eq!(bucket(&report, "2026-10-14")["conversions"], 1);
    assert_eq!(
        bucket(&report, "2026-10-09"),
        &json!({"start": "2026-10-09", "new_leads": 0, "new_leads_converted": 0,
                "conversion_rate": "0.0%", "conversions": 0, "messages": 0})
    );
    let sum = |field: &str| {
        buckets
            .iter()
            .map(|b| b[field].as_i64().unwrap_or(0))
            .sum::<i64>()
    };
    assert_eq!(sum("new_leads"), 3);
    assert_eq!(sum("conversions"), 3);
    assert_eq!(sum("messages"), 6);

    // Bounds inside a day count to the microsecond: `from` is included,
    // `to` is not.
    let part = app
        .admin_json("/api/admin/analytics?from=2026-10-05T10:30:00Z&to=2026-10-13T12:00:00Z")
        .await;
    assert_eq!(part["totals"]["new_leads"], 1);
    assert_eq!(part["totals"]["messages"], 3);
    assert_eq!(part["totals"]["conversions"], 1);
    assert_eq!(part["buckets"].as_array().map(Vec::len), Some(9));
    let shifted = app
        .admin_json("/api/admin/analytics?from=2026-10-05T12:30:00%2B02:00&to=2026-10-13T12:00:00Z")
        .await;
    assert_eq!(shifted["from"], "2026-10-05T10:30:00Z");
    assert_eq!(shifted["totals"], part["totals"]);
}

async fn median_of_an_even_count_and_empty_ranges(app: TestApp) {
    arrange(&app).await;
    // The conversions of 13 and 14 October: three hours and 24 days.
    let report = app
        .admin_json("/api/admin/analytics?from=2026-10-13&to=2026-10-14")
        .await;
    assert_eq!(report["totals"]["conversions"], 2);
    assert_eq!(
        report["totals"]["median_seconds_to_conversion"],
        (3 * 3600 + 24 * 86_400) / 2
    );
    // A range with nothing in it: zeros, and nulls where a mean or median
    // has nothing to average.
    let empty = app
        .admin_json("/api/admin/analytics?from=2026-08-03&to=2026-08-16&bucket=week")
        .await;
    assert_eq!(
        empty["totals"],
        json!({"new_leads": 0, "new_leads_converted": 0, "conversion_rate": "0.0%",
               "conversions": 0, "messages": 0, "average_messages_per_lead": null,
               "median_seconds_to_conversion": null})
    );
    assert_eq!(empty["buckets"].as_array().map(Vec::len), Some(2));
    assert_eq!(empty["by_source"], json!([]));
    assert_eq!(empty["by_status"].as_array().map(Vec::len), Some(5));
}

async fn default_range_is_the_last_30_days(app: TestApp) {
    json_with_status(
        app.post_webhook(&text_from("15550000009", "wamid.today", T0, "hi"))
            .await,
        200,
    )
    .await;
    let report = app.admin_json("/api/admin/analytics").await;
    let buckets = report["buckets"].as_array().expect("buckets");
    assert_eq!(buckets.len(), 30);
    let today = chrono::Utc::now().date_naive().to_string();
    assert_eq!(buckets[29]["start"], today.as_str());
    assert_eq!(buckets[29]["new_leads"], 1);
    assert_eq!(buckets[29]["messages"], 1);
    assert_eq!(report["totals"]["new_leads"], 1);
    assert_eq!(report["totals"]["average_messages_per_lead"], 1.0);
    assert_eq!(
        report["by_message_type"],
        json!([{"message_type": "text", "messages": 1}])
    );
}

async fn bad_parameters_are_named(app: TestApp) {
    for (query, parameter) in [
        ("bucket=month", "bucket"),
        ("from=yesterday", "from"),
        ("to=2026-02-30", "to"),
        ("from=2026-10-05T10:00:00", "from"),
        ("from=2026-10-10&to=2026-10-01", "from"),
        ("from=2026-10-10&to=2026-10-10T00:00:00Z", "from"),
        ("from=2025-01-01&to=2026-10-01", "from"),
    ] {
        let body = json_with_status(
            app.admin_get(&format!("/api/admin/analytics?{query}"))
                .await,
            400,
        )
        .await;
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.starts_with(parameter), "{query}: {error}");
    }
    // A year is allowed.
    json_with_status(
        app.admin_get("/api/admin/analytics?from=2025-10-01&to=2026-09-30&bucket=week")
            .await,
        200,
    )
    .await;
    assert_eq!(app.get("/api/admin/analytics").await.status(), 401);
}

on_both_databases!(
    weekly_series_and_breakdowns,
    daily_series_fills_empty_days,
    median_of_an_even_count_and_empty_ranges,
    default_range_is_the_last_30_days,
    bad_parameters_are_named,
);
