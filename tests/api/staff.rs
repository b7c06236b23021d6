//! Requests of the lead-management endpoints, as staff tools send them.

use serde_json::Value;

use crate::helpers::{json_with_status, TestApp, ADMIN_TOKEN};
use crate::payloads::{text_from, T0};

/// A request to an admin path with a JSON body and an optional `X-Actor`.
pub async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: &Value,
    actor: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .client
        .request(method, app.url(path))
        .bearer_auth(ADMIN_TOKEN)
        .json(body);
    if let Some(actor) = actor {
        request = request.header("X-Actor", actor);
    }
    request.send().await.expect("admin request")
}

pub async fn patch(app: &TestApp, id: i64, body: &Value, actor: Option<&str>) -> reqwest::Response {
    send(
        app,
        reqwest::Method::PATCH,
        &format!("/api/admin/leads/{id}"),
        body,
        actor,
    )
    .await
}

/// PATCH that must succeed; the updated lead.
pub async fn patched(app: &TestApp, id: i64, body: &Value) -> Value {
    json_with_status(patch(app, id, body, None).await, 200).await["lead"].clone()
}

/// PATCH that must be refused with `status`; the error text.
pub async fn refused(app: &TestApp, id: i64, body: &Value, status: u16) -> String {
    let answer = json_with_status(patch(app, id, body, None).await, status).await;
    answer["error"].as_str().expect("error text").to_string()
}

pub async fn bulk(app: &TestApp, body: &Value, actor: Option<&str>) -> reqwest::Response {
    send(
        app,
        reqwest::Method::POST,
        "/api/admin/leads/bulk",
        body,
        actor,
    )
    .await
}

pub async fn note(app: &TestApp, id: i64, body: &Value) -> reqwest::Response {
    app.admin_post(&format!("/api/admin/leads/{id}/notes"), body)
        .await
}

/// The lead's timeline, oldest first.
pub async fn timeline(app: &TestApp, id: i64) -> Vec<Value> {
    app.admin_json(&format!("/api/admin/leads/{id}/activity"))
        .await["items"]
        .as_array()
        .expect("items")
        .clone()
}

/// Kinds of the timeline entries, oldest first.
pub async fn kinds(app: &TestApp, id: i64) -> Vec<String> {
    timeline(app, id)
        .await
        .iter()
        .map(|a| a["kind"].as_str().expect("kind").to_string())
        .collect()
}

/// The lead as the detail endpoint shows it.
pub async fn lead_by_id(app: &TestApp, id: i64) -> Value {
    app.admin_json(&format!("/api/admin/leads/{id}")).await["lead"].clone()
}

/// Creates one lead per phone number (one message each, `T0 + i` apart) and
/// returns their ids in that order.
pub async fn leads_from(app: &TestApp, phones: &[&str]) -> Vec<i64> {
    let mut ids = Vec::new();
    for (i, phone) in phones.iter().enumerate() {
        let body = text_from(phone, &format!("wamid.{phone}"), T0 + i as i64, "hello");
        assert_eq!(app.post_webhook(&body).await.status(), 200);
        ids.push(app.lead_id(phone).await);
    }
    ids
}

/// Ids of the list page (up to 500 leads) for `query`, in order, checked
/// against the page's total.
pub async fn listed_ids(app: &TestApp, query: &str) -> Vec<i64> {
    let page = app
        .admin_json(&format!("/api/admin/leads?limit=500&{query}"))
        .await;
    let ids = ids_of(&page);
    assert_eq!(page["total"], ids.len(), "{query}: total and items agree");
    ids
}

/// Checks that a page at every offset into the list `query` selects, from 1
/// to one past its end, is that slice of the list read in one piece, with
/// the same total; returns the list.
pub async fn expect_every_offset(app: &TestApp, query: &str) -> Vec<i64> {
    let all = listed_ids(app, query).await;
    let count = all.len();
    for limit in [1, 3] {
        for skip in 1..=count + 1 {
            let page = app
                .admin_json(&format!(
                    "/api/admin/leads?skip={skip}&limit={limit}&{query}"
                ))
                .await;
            assert_eq!(
                ids_of(&page),
                all[skip.min(count)..(skip + limit).min(count)],
                "{query} skip={skip} limit={limit}"
            );
            assert_eq!(page["total"], count, "{query} skip={skip} limit={limit}");
        }
    }
    all
}

/// Ids of a list page, in order.
pub fn ids_of(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|lead| lead["id"].as_i64().expect("id"))
        .collect()
}
