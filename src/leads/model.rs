//! The `leads` row and the queries that read and write single rows. Used by
//! the write path (`ingest`) and by the admin service.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use crate::db::schema::{leads, messages};
use crate::db::DbConnection;
use crate::with_conn;

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable, AsChangeset, Serialize)]
#[diesel(table_name = leads, treat_none_as_null = true)]
pub struct Lead {
    pub id: i64,
    pub phone_number: Option<String>,
    pub user_id: Option<String>,
    pub parent_user_id: Option<String>,
    pub username: Option<String>,
    pub sender_name: Option<String>,
    pub first_message: String,
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub first_message_time: NaiveDateTime,
    pub last_message: String,
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub last_message_time: NaiveDateTime,
    pub message_count: i64,
    pub is_active: bool,
    pub converted_to_student: bool,
    pub student_id: Option<i64>,
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub updated_at: NaiveDateTime,
    /// Pipeline stage: new, contacted, qualified, converted or lost.
    pub status: String,
    /// low, medium or high.
    pub priority: String,
    /// Deal value in minor units of `value_currency`; both or neither.
    pub value_minor: Option<i64>,
    pub value_currency: Option<String>,
    pub assigned_to: Option<String>,
    #[serde(serialize_with = "crate::time::rfc3339_opt")]
    pub next_follow_up_at: Option<NaiveDateTime>,
    #[serde(serialize_with = "crate::time::rfc3339_opt")]
    pub converted_at: Option<NaiveDateTime>,
    /// Click-to-WhatsApp attribution of the lead's first message (`ad`,
    /// `post`, …); all `None` for a lead that wrote on its own.
    pub source_type: Option<String>,
    pub source_id: Option<String>,
    pub source_url: Option<String>,
    pub source_headline: Option<String>,
    /// The business number (WhatsApp phone-number id) the lead first wrote to.
    pub business_phone_number_id: Option<String>,
    pub interactive_replies: i64,
    /// Engagement score computed on ingest (formula in the README).
    pub score: i64,
}

// `None` is written as NULL rather than DEFAULT, so that SQLite can insert a
// batch of these in one multi-row statement.
#[derive(Debug, Insertable)]
#[diesel(table_name = leads, treat_none_as_default_value = false)]
pub struct NewLead<'a> {
    pub phone_number: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub parent_user_id: Option<&'a str>,
    pub username: Option<&'a str>,
    pub sender_name: Option<&'a str>,
    pub first_message: &'a str,
    pub first_message_time: NaiveDateTime,
    pub last_message: &'a str,
    pub last_message_time: NaiveDateTime,
    pub message_count: i64,
    pub is_active: bool,
    pub converted_to_student: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub source_type: Option<&'a str>,
    pub source_id: Option<&'a str>,
    pub source_url: Option<&'a str>,
    pub source_headline: Option<&'a str>,
    pub business_phone_number_id: Option<&'a str>,
    pub interactive_replies: i64,
    pub score: i64,
}

impl<'a> From<&'a Lead> for NewLead<'a> {
    /// The insertable part of a lead built in memory; the pipeline fields
    /// take their database defaults.
    fn from(lead: &'a Lead) -> Self {
        NewLead {
            phone_number: lead.phone_number.as_deref(),
            user_id: lead.user_id.as_deref(),
            parent_user_id: lead.parent_user_id.as_deref(),
            username: lead.username.as_deref(),
            sender_name: lead.sender_name.as_deref(),
            first_message: &lead.first_message,
            first_message_time: lead.first_message_time,
            last_message: &lead.last_message,
            last_message_time: lead.last_message_time,
            message_count: lead.message_count,
            is_active: lead.is_active,
            converted_to_student: lead.converted_to_student,
            created_at: lead.created_at,
            updated_at: lead.updated_at,
            source_type: lead.source_type.as_deref(),
            source_id: lead.source_id.as_deref(),
            source_url: lead.source_url.as_deref(),
            source_headline: lead.source_headline.as_deref(),
            business_phone_number_id: lead.business_phone_number_id.as_deref(),
            interactive_replies: lead.interactive_replies,
            score: lead.score,
        }
    }
}

// Lookups by a unique key use `get_result`, not `first`: `first` adds a bound
// `LIMIT ?`, which makes SQLite re-prepare the statement on every call.
impl Lead {
    pub fn find(conn: &mut DbConnection, id: i64) -> QueryResult<Option<Lead>> {
        with_conn!(conn, c => leads::table.find(id).select(Lead::as_select()).get_result(c).optional())
    }

    pub fn find_by_user_id(conn: &mut DbConnection, user_id: &str) -> QueryResult<Option<Lead>> {
        with_conn!(conn, c => leads::table
            .filter(leads::user_id.eq(user_id))
            .select(Lead::as_select())
            .get_result(c)
            .optional())
    }

    pub fn find_by_phone(conn: &mut DbConnection, phone: &str) -> QueryResult<Option<Lead>> {
        with_conn!(conn, c => leads::table
            .filter(leads::phone_number.eq(phone))
            .select(Lead::as_select())
            .get_result(c)
            .optional())
    }

    /// Every lead holding one of these phone numbers or BSUIDs.
    pub fn find_by_identities(
        conn: &mut DbConnection,
        phones: &[&str],
        user_ids: &[&str],
    ) -> QueryResult<Vec<Lead>> {
        with_conn!(conn, c => leads::table
            .filter(leads::phone_number.eq_any(phones).or(leads::user_id.eq_any(user_ids)))
            .select(Lead::as_select())
            .load(c))
    }

    /// Inserts several new leads in one statement; the rows come back in no
    /// particular order (match them by their unique identifiers).
    pub fn insert_many(conn: &mut DbConnection, new: &[NewLead<'_>]) -> QueryResult<Vec<Lead>> {
        with_conn!(conn, c => diesel::insert_into(leads::table)
            .values(new)
            .returning(Lead::as_returning())
            .get_results(c))
    }

    pub fn insert(conn: &mut DbConnection, new: &NewLead<'_>) -> QueryResult<Lead> {
        with_conn!(conn, c => diesel::insert_into(leads::table)
            .values(new)
            .returning(Lead::as_returning())
            .get_result(c))
    }

    /// Writes every column of the row back (the write path changes several
    /// at once and runs on the single writer, so no concurrent update can be
    /// overwritten).
    pub fn save(&self, conn: &mut DbConnection) -> QueryResult<()> {
        with_conn!(conn, c => diesel::update(leads::table.find(self.id)).set(self).execute(c))?;
        Ok(())
    }

    /// Writes only the columns in which `self` differs from `before` (the
    /// row as it was read): an UPDATE then rewrites only the indexes of those
    /// columns, which on the write path is most of its cost.
    pub fn save_changes(&self, before: &Lead, conn: &mut DbConnection) -> QueryResult<()> {
        let changes = LeadChanges::between(before, self);
        if changes.is_empty() {
            return Ok(());
        }
        with_conn!(conn, c => diesel::update(leads::table.find(self.id)).set(&changes).execute(c))?;
        Ok(())
    }

    /// Deletes the lead and its stored messages.
    pub fn delete_with_messages(conn: &mut DbConnection, id: i64) -> QueryResult<usize> {
        with_conn!(conn, c => {
            diesel::delete(messages::table.filter(messages::lead_id.eq(id))).execute(c)?;
            diesel::delete(leads::table.find(id)).execute(c)
        })
    }
}

/// Declares [`LeadChanges`] over the listed columns of [`Lead`].
macro_rules! lead_changes {
    ($($field:ident: $ty:ty),* $(,)?) => {
        /// The columns of a lead that changed; `None` leaves a column out of
        /// the UPDATE.
        #[derive(Default, AsChangeset)]
        #[diesel(table_name = leads)]
        struct LeadChanges {
            $($field: Option<$ty>,)*
        }

        impl LeadChanges {
            fn between(before: &Lead, after: &Lead) -> LeadChanges {
                let mut changes = LeadChanges::default();
                $(
                    if before.$field != after.$field {
                        changes.$field = Some(after.$field.clone());
                    }
                )*
                changes
            }

            fn is_empty(&self) -> bool {
                true $(&& self.$field.is_none())*
            }
        }
    };
}

lead_changes!(
    phone_number: Option<String>,
    user_id: Option<String>,
    parent_user_id: Option<String>,
    username: Option<String>,
    sender_name: Option<String>,
    first_message: String,
    first_message_time: NaiveDateTime,
    last_message: String,
    last_message_time: NaiveDateTime,
    message_count: i64,
    is_active: bool,
    converted_to_student: bool,
    student_id: Option<i64>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    status: String,
    priority: String,
    value_minor: Option<i64>,
    value_currency: Option<String>,
    assigned_to: Option<String>,
    next_follow_up_at: Option<NaiveDateTime>,
    converted_at: Option<NaiveDateTime>,
    source_type: Option<String>,
    source_id: Option<String>,
    source_url: Option<String>,
    source_headline: Option<String>,
    business_phone_number_id: Option<String>,
    interactive_replies: i64,
    score: i64,
);
