//! Stored WhatsApp messages: one row per WhatsApp message id, ever.

use chrono::NaiveDateTime;
use diesel::backend::Backend;
use diesel::prelude::*;
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, HasSqlType, Nullable, Text, Timestamp};
use serde::Serialize;

use crate::db::reuse::{one_of, pieces, BindRow, InsertPiece, RowValues};
use crate::db::schema::messages;
use crate::db::sql_time::SqlTime;
use crate::db::{self, DbConnection};
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
    // A statement that stays prepared (see `db::reuse`), whose foreign key
    // checks keep their plans too.
    db::with_cached_plans(conn, |conn| {
        let mut inserted = 0;
        for piece in pieces(rows) {
            let insert = InsertPiece::new(INSERT_NEW, piece, " ON CONFLICT (wamid) DO NOTHING");
            inserted += with_conn!(conn, c => insert.execute(c))?;
        }
        Ok(inserted)
    })
}

impl<DB> BindRow<DB> for NewMessage<'_>
where
    DB: Backend
        + HasSqlType<Text>
        + HasSqlType<Nullable<Text>>
        + HasSqlType<Nullable<BigInt>>
        + HasSqlType<Timestamp>,
    str: ToSql<Text, DB>,
    for<'b> &'b str: ToSql<Nullable<Text>, DB>,
    Option<i64>: ToSql<Nullable<BigInt>, DB>,
    SqlTime: ToSql<Timestamp, DB>,
{
    /// In the order of [`INSERT_NEW`]'s column list.
    fn bind_row<'b>(&'b self, values: &mut RowValues<'_, '_, 'b, DB>) -> QueryResult<()> {
        values.bind::<Text, _>(self.wamid)?;
        values.bind::<Nullable<BigInt>, _>(&self.lead_id)?;
        values.bind::<Text, _>(self.direction)?;
        values.bind_texts([
            &self.phone_number,
            &self.user_id,
            &self.sender_name,
            &self.business_phone_number_id,
        ])?;
        values.bind::<Text, _>(self.message_type)?;
        values.bind::<Text, _>(self.body)?;
        values.bind::<Timestamp, _>(&self.wa_timestamp)?;
        values.bind::<Timestamp, _>(&self.received_at)?;
        values.bind_texts([
            &self.referral_source_type,
            &self.referral_source_id,
            &self.referral_source_url,
            &self.referral_headline,
        ])?;
        Ok(())
    }
}

/// The head of [`insert_new`]'s statement.
const INSERT_NEW: &str = "INSERT INTO messages (wamid, lead_id, direction, phone_number, \
     user_id, sender_name, business_phone_number_id, message_type, body, wa_timestamp, \
     received_at, referral_source_type, referral_source_id, referral_source_url, \
     referral_headline) VALUES ";

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
