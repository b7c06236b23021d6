//! Stored WhatsApp messages: one row per WhatsApp message id, ever.

use chrono::NaiveDateTime;
use diesel::backend::Backend;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, HasSqlType, Nullable, Text, Timestamp};
use serde::Serialize;

use crate::db::reuse::{one_of, pieces};
use crate::db::schema::messages;
use crate::db::sql_time::SqlTime;
use crate::db::DbConnection;
use crate::with_conn;

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = messages)]
pub struct StoredMessage {
    pub id: i64,
    pub wamid: String,
    pub lead_id: Option<i64>,
    pub direction: String,
    pub phone_number: Option<String>,
    pub user_id: Option<String>,
    pub sender_name: Option<String>,
    pub business_phone_number_id: Option<String>,
    pub message_type: String,
    pub body: String,
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub wa_timestamp: NaiveDateTime,
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub received_at: NaiveDateTime,
    pub status: Option<String>,
    #[serde(serialize_with = "crate::time::rfc3339_opt")]
    pub status_updated_at: Option<NaiveDateTime>,
    /// Click-to-WhatsApp referral carried by this message, if any.
    pub referral_source_type: Option<String>,
    pub referral_source_id: Option<String>,
    pub referral_source_url: Option<String>,
    pub referral_headline: Option<String>,
}

// `None` is written as NULL rather than DEFAULT, so that SQLite can insert a
// batch of these in one multi-row statement.
#[derive(Debug, Insertable)]
#[diesel(table_name = messages, treat_none_as_default_value = false)]
pub struct NewMessage<'a> {
    pub wamid: &'a str,
    pub lead_id: Option<i64>,
    pub direction: &'a str,
    pub phone_number: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub sender_name: Option<&'a str>,
    pub business_phone_number_id: Option<&'a str>,
    pub message_type: &'a str,
    pub body: &'a str,
    pub wa_timestamp: SqlTime,
    pub received_at: SqlTime,
    pub referral_source_type: Option<&'a str>,
    pub referral_source_id: Option<&'a str>,
    pub referral_source_url: Option<&'a str>,
    pub referral_headline: Option<&'a str>,
}

/// Inserts the message unless its WhatsApp id is already stored; true when it
/// was new. The unique index on `wamid` makes this hold across restarts and
/// replicas, not just within one process.
pub fn insert_if_new(conn: &mut DbConnection, new: &NewMessage<'_>) -> QueryResult<bool> {
    let inserted = with_conn!(conn, c => diesel::insert_into(messages::table)
        .values(new)
        .on_conflict(messages::wamid)
        .do_nothing()
        .execute(c))?;
    Ok(inserted == 1)
}

/// Which of these WhatsApp ids are already stored.
pub fn known_wamids(
    conn: &mut DbConnection,
    wamids: &[&str],
) -> QueryResult<std::collections::HashSet<String>> {
    // The list is one bound parameter, however long.
    let found: Vec<String> = with_conn!(conn, c => messages::table
        .select(messages::wamid)
        .filter(one_of(messages::wamid, wamids))
        .load(c))?;
    Ok(found.into_iter().collect())
}

/// Inserts messages known to be new, several rows per statement. Returns how
/// many rows went in: fewer than given means some were not new after all.
pub fn insert_new(conn: &mut DbConnection, rows: &[NewMessage<'_>]) -> QueryResult<usize> {
    let mut inserted = 0;
    for piece in pieces(rows) {
        inserted += with_conn!(conn, c => InsertPiece(piece).execute(c))?;
    }
    Ok(inserted)
}

/// `INSERT INTO messages (…) VALUES (…), … ON CONFLICT (wamid) DO NOTHING`
/// for one piece of a batch (see [`pieces`]). A query node of its own rather
/// than diesel's multi-row insert, which is prepared afresh every time: the
/// text depends only on the number of rows, so each connection keeps one
/// prepared statement per piece size. Preparing the INSERT was a tenth of
/// the SQLite writer's instructions per message.
struct InsertPiece<'a>(&'a [NewMessage<'a>]);

impl QueryId for InsertPiece<'_> {
    type QueryId = ();
    // Keyed by its SQL text in diesel's cache.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<DB> QueryFragment<DB> for InsertPiece<'_>
where
    DB: Backend
        + HasSqlType<Text>
        + HasSqlType<Nullable<Text>>
        + HasSqlType<Nullable<BigInt>>
        + HasSqlType<Timestamp>,
    for<'b> &'b str: ToSql<Text, DB> + ToSql<Nullable<Text>, DB>,
    Option<i64>: ToSql<Nullable<BigInt>, DB>,
    SqlTime: ToSql<Timestamp, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql(
            "INSERT INTO messages (wamid, lead_id, direction, phone_number, user_id, \
             sender_name, business_phone_number_id, message_type, body, wa_timestamp, \
             received_at, referral_source_type, referral_source_id, referral_source_url, \
             referral_headline) VALUES ",
        );
        for (n, row) in self.0.iter().enumerate() {
            out.push_sql(if n == 0 { "(" } else { ", (" });
            // In the order of the column list above.
            out.push_bind_param::<Text, _>(&row.wamid)?;
            out.push_sql(", ");
            out.push_bind_param::<Nullable<BigInt>, _>(&row.lead_id)?;
            out.push_sql(", ");
            out.push_bind_param::<Text, _>(&row.direction)?;
            for text in [
                &row.phone_number,
                &row.user_id,
                &row.sender_name,
                &row.business_phone_number_id,
            ] {
                out.push_sql(", ");
                out.push_bind_param::<Nullable<Text>, _>(text)?;
            }
            out.push_sql(", ");
            out.push_bind_param::<Text, _>(&row.message_type)?;
            out.push_sql(", ");
            out.push_bind_param::<Text, _>(&row.body)?;
            out.push_sql(", ");
            out.push_bind_param::<Timestamp, _>(&row.wa_timestamp)?;
            out.push_sql(", ");
            out.push_bind_param::<Timestamp, _>(&row.received_at)?;
            for text in [
                &row.referral_source_type,
                &row.referral_source_id,
                &row.referral_source_url,
                &row.referral_headline,
            ] {
                out.push_sql(", ");
                out.push_bind_param::<Nullable<Text>, _>(text)?;
            }
            out.push_sql(")");
        }
        out.push_sql(" ON CONFLICT (wamid) DO NOTHING");
        Ok(())
    }
}

impl<Conn> RunQueryDsl<Conn> for InsertPiece<'_> {}

pub fn set_lead(conn: &mut DbConnection, wamid: &str, lead_id: i64) -> QueryResult<()> {
    with_conn!(conn, c => diesel::update(messages::table.filter(messages::wamid.eq(wamid)))
        .set(messages::lead_id.eq(lead_id))
        .execute(c))?;
    Ok(())
}

/// Moves every message of one lead to another (used when two leads merge).
pub fn move_to_lead(conn: &mut DbConnection, from: i64, to: i64) -> QueryResult<usize> {
    with_conn!(conn, c => diesel::update(messages::table.filter(messages::lead_id.eq(from)))
        .set(messages::lead_id.eq(to))
        .execute(c))
}

/// Records a delivery status on the outbound message it belongs to; true when
/// such a message exists.
pub fn apply_status(
    conn: &mut DbConnection,
    wamid: &str,
    status: &str,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    let updated = with_conn!(conn, c => diesel::update(
            messages::table
                .filter(messages::wamid.eq(wamid))
                .filter(messages::direction.eq("outbound")),
        )
        .set((messages::status.eq(status), messages::status_updated_at.eq(at)))
        .execute(c))?;
    Ok(updated > 0)
}

/// A page of one lead's messages, oldest first: the newest `limit` of those
/// before message `before` (by WhatsApp timestamp, then id).
pub fn page_for_lead(
    conn: &mut DbConnection,
    lead_id: i64,
    before: Option<&StoredMessage>,
    limit: i64,
) -> QueryResult<Vec<StoredMessage>> {
    let mut page: Vec<StoredMessage> = with_conn!(conn, c => {
        let mut query = messages::table
            .filter(messages::lead_id.eq(lead_id))
            .select(StoredMessage::as_select())
            .into_boxed();
        if let Some(b) = before {
            query = query.filter(
                messages::wa_timestamp.lt(b.wa_timestamp).or(messages::wa_timestamp
                    .eq(b.wa_timestamp)
                    .and(messages::id.lt(b.id))),
            );
        }
        query
            .order((messages::wa_timestamp.desc(), messages::id.desc()))
            .limit(limit)
            .load(c)
    })?;
    page.reverse();
    Ok(page)
}

pub fn find(conn: &mut DbConnection, id: i64) -> QueryResult<Option<StoredMessage>> {
    with_conn!(conn, c => messages::table
        .find(id)
        .select(StoredMessage::as_select())
        .get_result(c)
        .optional())
}

/// The first and the last message over these leads: by WhatsApp timestamp,
/// and by arrival (id) among equal timestamps.
pub fn first_and_last(
    conn: &mut DbConnection,
    lead_ids: &[i64],
) -> QueryResult<(Option<StoredMessage>, Option<StoredMessage>)> {
    with_conn!(conn, c => {
        let of_leads = || {
            messages::table
                .filter(messages::lead_id.eq_any(lead_ids.to_vec()))
                .select(StoredMessage::as_select())
        };
        let first = of_leads()
            .order((messages::wa_timestamp.asc(), messages::id.asc()))
            .first(c)
            .optional()?;
        let last = of_leads()
            .order((messages::wa_timestamp.desc(), messages::id.desc()))
            .first(c)
            .optional()?;
        QueryResult::Ok((first, last))
    })
}
