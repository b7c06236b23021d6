//! The dead-letter table: authentic webhook bodies leadhook could not fully
//! understand, kept with the reason so nothing is dropped silently.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use crate::db::schema::webhook_failures;
use crate::db::DbConnection;
use crate::with_conn;

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = webhook_failures)]
pub struct WebhookFailure {
    pub id: i64,
    pub reason: String,
    pub body: String,
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub received_at: NaiveDateTime,
}

pub fn record(
    conn: &mut DbConnection,
    reason: &str,
    body: &[u8],
    at: NaiveDateTime,
) -> QueryResult<()> {
    let text = String::from_utf8_lossy(body);
    let reason = if matches!(text, std::borrow::Cow::Owned(_)) {
        format!("{reason} (body is not valid UTF-8; invalid bytes shown as U+FFFD)")
    } else {
        reason.to_string()
    };
    with_conn!(conn, c => diesel::insert_into(webhook_failures::table)
        .values((
            webhook_failures::reason.eq(&reason),
            webhook_failures::body.eq(text.as_ref()),
            webhook_failures::received_at.eq(at),
        ))
        .execute(c))?;
    Ok(())
}

pub fn list(
    conn: &mut DbConnection,
    skip: i64,
    limit: i64,
) -> QueryResult<(Vec<WebhookFailure>, i64)> {
    with_conn!(conn, c => {
        let total = webhook_failures::table.count().get_result(c)?;
        let items = webhook_failures::table
            .order(webhook_failures::id.desc())
            .offset(skip)
            .limit(limit)
            .select(WebhookFailure::as_select())
            .load(c)?;
        Ok((items, total))
    })
}
