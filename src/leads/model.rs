//! The `leads` row and the queries that read and write single rows. Used by
//! the write path (`ingest`) and by the admin service.

use chrono::NaiveDateTime;
use diesel::backend::Backend;
use diesel::prelude::*;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, Bool, HasSqlType, Nullable, Text, Timestamp};
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
    /// row as it was read): see [`Lead::save_changes_many`].
    pub fn save_changes(&self, before: &Lead, conn: &mut DbConnection) -> QueryResult<()> {
        Lead::save_changes_many(conn, &[(before, self)])
    }

    /// Writes the changes of many leads, each pair being the row as read and
    /// as it is now. An UPDATE rewrites only the indexes of the columns it
    /// sets, and on the write path that index upkeep is most of the cost, so
    /// each lead gets only its changed columns. Leads that changed the same
    /// columns (on the write path nearly all: last message, its time, the
    /// count) share one statement, `WITH v(id, …) AS (VALUES …) UPDATE leads
    /// … FROM v`: one round trip and one statement to prepare instead of
    /// one per lead.
    pub fn save_changes_many(conn: &mut DbConnection, pairs: &[(&Lead, &Lead)]) -> QueryResult<()> {
        let mut groups: Vec<(Vec<&'static str>, Vec<ChangedLead>)> = Vec::new();
        for (before, after) in pairs {
            let changes = LeadChanges::between(before, after);
            let columns = changes.columns();
            if columns.is_empty() {
                continue;
            }
            match groups.iter_mut().find(|(c, _)| *c == columns) {
                Some((_, rows)) => rows.push((after.id, changes)),
                None => groups.push((columns, vec![(after.id, changes)])),
            }
        }
        let postgres = matches!(conn, DbConnection::Postgres(_));
        for (columns, rows) in &groups {
            // Well under either database's limit on bound parameters.
            for chunk in rows.chunks(UPDATE_CHUNK_ROWS) {
                let sql = grouped_update_sql(columns, chunk.len(), postgres);
                with_conn!(conn, c => {
                    let mut query = diesel::sql_query(sql).into_boxed();
                    for (id, changes) in chunk {
                        query = changes.bind(query.bind::<BigInt, _>(*id));
                    }
                    query.execute(c)
                })?;
            }
        }
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

/// A lead's id and what changed in it.
type ChangedLead = (i64, LeadChanges);

/// Rows per grouped UPDATE: well under SQLite's 32,766 and PostgreSQL's
/// 65,535 bound parameters even when every column changed.
const UPDATE_CHUNK_ROWS: usize = 200;

/// `WITH v(id, a, b) AS (VALUES (…), …) UPDATE leads SET a = v.a, b = v.b
/// FROM v WHERE leads.id = v.id`, with `rows` rows of placeholders in the
/// backend's style. The same text works on both databases.
fn grouped_update_sql(columns: &[&str], rows: usize, postgres: bool) -> String {
    let mut sql = format!("WITH v(id, {}) AS (VALUES ", columns.join(", "));
    let mut n = 0;
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..=columns.len() {
            if column > 0 {
                sql.push_str(", ");
            }
            n += 1;
            if postgres {
                sql.push_str(&format!("${n}"));
            } else {
                sql.push('?');
            }
        }
        sql.push(')');
    }
    sql.push_str(") UPDATE leads SET ");
    let sets: Vec<String> = columns.iter().map(|c| format!("{c} = v.{c}")).collect();
    sql.push_str(&sets.join(", "));
    sql.push_str(" FROM v WHERE leads.id = v.id");
    sql
}

/// Declares [`LeadChanges`] over the listed columns of [`Lead`], each with
/// its SQL type.
macro_rules! lead_changes {
    ($($field:ident: $ty:ty => $st:ty),* $(,)?) => {
        /// The columns of a lead that changed; `None` leaves a column out of
        /// the UPDATE.
        #[derive(Default)]
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

            /// The changed columns, in declaration order.
            fn columns(&self) -> Vec<&'static str> {
                let mut columns = Vec::new();
                $(
                    if self.$field.is_some() {
                        columns.push(stringify!($field));
                    }
                )*
                columns
            }

            /// Binds the changed values, in the order of [`Self::columns`].
            fn bind<'f, DB>(
                &'f self,
                mut query: BoxedSqlQuery<'f, DB, SqlQuery>,
            ) -> BoxedSqlQuery<'f, DB, SqlQuery>
            where
                DB: Backend $(+ HasSqlType<$st>)*,
                $($ty: ToSql<$st, DB>,)*
            {
                $(
                    if let Some(value) = &self.$field {
                        query = query.bind::<$st, _>(value);
                    }
                )*
                query
            }
        }
    };
}

lead_changes!(
    phone_number: Option<String> => Nullable<Text>,
    user_id: Option<String> => Nullable<Text>,
    parent_user_id: Option<String> => Nullable<Text>,
    username: Option<String> => Nullable<Text>,
    sender_name: Option<String> => Nullable<Text>,
    first_message: String => Text,
    first_message_time: NaiveDateTime => Timestamp,
    last_message: String => Text,
    last_message_time: NaiveDateTime => Timestamp,
    message_count: i64 => BigInt,
    is_active: bool => Bool,
    converted_to_student: bool => Bool,
    student_id: Option<i64> => Nullable<BigInt>,
    created_at: NaiveDateTime => Timestamp,
    updated_at: NaiveDateTime => Timestamp,
    status: String => Text,
    priority: String => Text,
    value_minor: Option<i64> => Nullable<BigInt>,
    value_currency: Option<String> => Nullable<Text>,
    assigned_to: Option<String> => Nullable<Text>,
    next_follow_up_at: Option<NaiveDateTime> => Nullable<Timestamp>,
    converted_at: Option<NaiveDateTime> => Nullable<Timestamp>,
    source_type: Option<String> => Nullable<Text>,
    source_id: Option<String> => Nullable<Text>,
    source_url: Option<String> => Nullable<Text>,
    source_headline: Option<String> => Nullable<Text>,
    business_phone_number_id: Option<String> => Nullable<Text>,
    interactive_replies: i64 => BigInt,
    score: i64 => BigInt,
);

#[cfg(test)]
mod tests {
    use chrono::{Duration, NaiveDate};

    use super::*;
    use crate::db::test_pool;

    fn stored_leads(conn: &mut DbConnection, n: usize) -> Vec<Lead> {
        let t = NaiveDate::from_ymd_opt(2026, 1, 1)
            .and_then(|d| d.and_hms_opt(9, 0, 0))
            .expect("a time");
        let phones: Vec<String> = (0..n).map(|i| format!("1555{i:07}")).collect();
        let rows: Vec<NewLead<'_>> = phones
            .iter()
            .map(|phone| NewLead {
                phone_number: Some(phone),
                user_id: None,
                parent_user_id: None,
                username: None,
                sender_name: None,
                first_message: "hi",
                first_message_time: t,
                last_message: "hi",
                last_message_time: t,
                message_count: 1,
                is_active: true,
                converted_to_student: false,
                created_at: t,
                updated_at: t,
                source_type: None,
                source_id: None,
                source_url: None,
                source_headline: None,
                business_phone_number_id: None,
                interactive_replies: 0,
                score: 4,
            })
            .collect();
        let mut leads = Lead::insert_many(conn, &rows).expect("inserted");
        leads.sort_by_key(|l| l.id);
        leads
    }

    #[test]
    fn changes_of_many_leads_are_written_in_groups_and_nothing_else_moves() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let pool = test_pool(&dir);
        let conn: &mut DbConnection = &mut pool.get().expect("a connection");
        // More leads than one statement takes, in three sets of changed columns
        // and one set left alone.
        let before = stored_leads(conn, 450);
        let mut after = before.clone();
        for (i, lead) in after.iter_mut().enumerate() {
            match i % 4 {
                0 => {
                    lead.last_message = format!("message {i}");
                    lead.last_message_time += Duration::seconds(i as i64);
                    lead.message_count += 1;
                }
                1 => {
                    lead.status = "contacted".into();
                    lead.value_minor = Some(i as i64);
                    lead.value_currency = Some("EUR".into());
                }
                2 => {
                    lead.sender_name = Some(format!("Name {i}"));
                    lead.next_follow_up_at = Some(lead.created_at + Duration::days(1));
                    lead.is_active = false;
                }
                _ => {}
            }
        }
        let pairs: Vec<(&Lead, &Lead)> = before.iter().zip(&after).collect();
        Lead::save_changes_many(conn, &pairs).expect("saved");

        for expected in &after {
            let stored = Lead::find(conn, expected.id)
                .expect("read")
                .expect("a lead");
            assert_eq!(&stored, expected);
        }
        let (_, active, _, _) = crate::leads::filter::counters(conn).expect("counters");
        let deactivated = (0..450).filter(|i| i % 4 == 2).count() as i64;
        assert_eq!(
            active,
            450 - deactivated,
            "the counter triggers saw the deactivations"
        );
    }

    #[test]
    fn grouped_update_numbers_postgres_placeholders_across_rows() {
        assert_eq!(
            grouped_update_sql(&["score", "status"], 2, true),
            "WITH v(id, score, status) AS (VALUES ($1, $2, $3), ($4, $5, $6)) \
             UPDATE leads SET score = v.score, status = v.status FROM v WHERE leads.id = v.id"
        );
        assert_eq!(
            grouped_update_sql(&["score"], 1, false),
            "WITH v(id, score) AS (VALUES (?, ?)) UPDATE leads SET score = v.score \
             FROM v WHERE leads.id = v.id"
        );
    }
}
