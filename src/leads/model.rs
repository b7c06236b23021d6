//! The `leads` row and the queries that read and write single rows. Used by
//! the write path (`ingest`) and by the admin service.

use chrono::NaiveDateTime;
use diesel::backend::Backend;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, Bool, HasSqlType, Nullable, Text, Timestamp};
use serde::Serialize;

use crate::db::reuse::{one_of, pieces, BindRow, InsertPiece, RowValues};
use crate::db::schema::{leads, messages};
use crate::db::sql_time::SqlTime;
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
    #[diesel(deserialize_as = SqlTime)]
    pub first_message_time: NaiveDateTime,
    pub last_message: String,
    #[serde(serialize_with = "crate::time::rfc3339")]
    #[diesel(deserialize_as = SqlTime)]
    pub last_message_time: NaiveDateTime,
    pub message_count: i64,
    pub is_active: bool,
    pub converted_to_student: bool,
    pub student_id: Option<i64>,
    #[serde(serialize_with = "crate::time::rfc3339")]
    #[diesel(deserialize_as = SqlTime)]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "crate::time::rfc3339")]
    #[diesel(deserialize_as = SqlTime)]
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
    pub first_message_time: SqlTime,
    pub last_message: &'a str,
    pub last_message_time: SqlTime,
    pub message_count: i64,
    pub is_active: bool,
    pub converted_to_student: bool,
    pub created_at: SqlTime,
    pub updated_at: SqlTime,
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
            first_message_time: lead.first_message_time.into(),
            last_message: &lead.last_message,
            last_message_time: lead.last_message_time.into(),
            message_count: lead.message_count,
            is_active: lead.is_active,
            converted_to_student: lead.converted_to_student,
            created_at: lead.created_at.into(),
            updated_at: lead.updated_at.into(),
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
            .filter(one_of(leads::phone_number, phones).or(one_of(leads::user_id, user_ids)))
            .select(Lead::as_select())
            .load(c))
    }

    /// Inserts new leads, several rows per statement; returns the id, phone
    /// number and BSUID of each in no particular order (match them by their
    /// unique identifiers).
    pub fn insert_many(
        conn: &mut DbConnection,
        new: &[NewLead<'_>],
    ) -> QueryResult<Vec<InsertedLead>> {
        // A statement that stays prepared (see `db::reuse`).
        let mut inserted = Vec::with_capacity(new.len());
        for piece in pieces(new) {
            let insert =
                InsertPiece::new(INSERT_MANY, piece, " RETURNING id, phone_number, user_id")
                    .returning::<(BigInt, Nullable<Text>, Nullable<Text>)>();
            inserted.extend(
                with_conn!(conn, c => insert.load::<(i64, Option<String>, Option<String>)>(c))?,
            );
        }
        Ok(inserted)
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
        for (columns, rows) in &groups {
            // In pieces of a few sizes, so that each connection prepares
            // each statement once (see `db::reuse`).
            for piece in pieces(rows) {
                let update = GroupedUpdate {
                    columns,
                    rows: piece,
                };
                with_conn!(conn, c => update.execute(c))?;
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

/// A lead [`Lead::insert_many`] inserted: its id, phone number and BSUID.
pub type InsertedLead = (i64, Option<String>, Option<String>);

/// The head of [`Lead::insert_many`]'s statement.
const INSERT_MANY: &str = "INSERT INTO leads (phone_number, user_id, parent_user_id, username, \
     sender_name, first_message, first_message_time, last_message, last_message_time, \
     message_count, is_active, converted_to_student, created_at, updated_at, source_type, \
     source_id, source_url, source_headline, business_phone_number_id, interactive_replies, \
     score) VALUES ";

impl<DB> BindRow<DB> for NewLead<'_>
where
    DB: Backend
        + HasSqlType<Text>
        + HasSqlType<Nullable<Text>>
        + HasSqlType<BigInt>
        + HasSqlType<Bool>
        + HasSqlType<Timestamp>,
    str: ToSql<Text, DB>,
    for<'b> &'b str: ToSql<Nullable<Text>, DB>,
    i64: ToSql<BigInt, DB>,
    bool: ToSql<Bool, DB>,
    SqlTime: ToSql<Timestamp, DB>,
{
    /// In the order of [`INSERT_MANY`]'s column list.
    fn bind_row<'b>(&'b self, values: &mut RowValues<'_, '_, 'b, DB>) -> QueryResult<()> {
        values.bind_texts([
            &self.phone_number,
            &self.user_id,
            &self.parent_user_id,
            &self.username,
            &self.sender_name,
        ])?;
        values.bind::<Text, _>(self.first_message)?;
        values.bind::<Timestamp, _>(&self.first_message_time)?;
        values.bind::<Text, _>(self.last_message)?;
        values.bind::<Timestamp, _>(&self.last_message_time)?;
        values.bind::<BigInt, _>(&self.message_count)?;
        values.bind::<Bool, _>(&self.is_active)?;
        values.bind::<Bool, _>(&self.converted_to_student)?;
        values.bind::<Timestamp, _>(&self.created_at)?;
        values.bind::<Timestamp, _>(&self.updated_at)?;
        values.bind_texts([
            &self.source_type,
            &self.source_id,
            &self.source_url,
            &self.source_headline,
            &self.business_phone_number_id,
        ])?;
        values.bind::<BigInt, _>(&self.interactive_replies)?;
        values.bind::<BigInt, _>(&self.score)
    }
}

/// A lead's id and what changed in it.
type ChangedLead = (i64, LeadChanges);

/// `WITH v(id, a, b) AS (VALUES (…), …) UPDATE leads SET a = v.a, b = v.b
/// FROM v WHERE leads.id = v.id` for leads that changed the same columns;
/// the same text works on both databases. A query node of its own rather
/// than `sql_query`: diesel then sees that the text depends only on the
/// columns and the number of rows, and keeps the statement prepared.
struct GroupedUpdate<'a> {
    columns: &'a [&'static str],
    rows: &'a [ChangedLead],
}

impl QueryId for GroupedUpdate<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<DB> QueryFragment<DB> for GroupedUpdate<'_>
where
    DB: Backend + HasSqlType<BigInt>,
    i64: ToSql<BigInt, DB>,
    LeadChanges: PushChanges<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("WITH v(id");
        for column in self.columns {
            out.push_sql(", ");
            out.push_sql(column);
        }
        out.push_sql(") AS (VALUES ");
        for (n, (id, changes)) in self.rows.iter().enumerate() {
            out.push_sql(if n == 0 { "(" } else { ", (" });
            out.push_bind_param::<BigInt, _>(id)?;
            changes.push_changes(&mut out)?;
            out.push_sql(")");
        }
        out.push_sql(") UPDATE leads SET ");
        for (n, column) in self.columns.iter().enumerate() {
            if n > 0 {
                out.push_sql(", ");
            }
            out.push_sql(column);
            out.push_sql(" = v.");
            out.push_sql(column);
        }
        out.push_sql(" FROM v WHERE leads.id = v.id");
        Ok(())
    }
}

impl<Conn> RunQueryDsl<Conn> for GroupedUpdate<'_> {}

/// Binds what changed in a lead, for [`GroupedUpdate`].
trait PushChanges<DB: Backend> {
    /// Pushes `, value` for each changed column, in the order of
    /// [`LeadChanges::columns`].
    fn push_changes<'b>(&'b self, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()>;
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
                        changes.$field = Some(after.$field.clone().into());
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

        }

        impl<DB> PushChanges<DB> for LeadChanges
        where
            DB: Backend $(+ HasSqlType<$st>)*,
            $($ty: ToSql<$st, DB>,)*
        {
            fn push_changes<'b>(&'b self, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()> {
                $(
                    if let Some(value) = &self.$field {
                        out.push_sql(", ");
                        out.push_bind_param::<$st, _>(value)?;
                    }
                )*
                Ok(())
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
    first_message_time: SqlTime => Timestamp,
    last_message: String => Text,
    last_message_time: SqlTime => Timestamp,
    message_count: i64 => BigInt,
    is_active: bool => Bool,
    converted_to_student: bool => Bool,
    student_id: Option<i64> => Nullable<BigInt>,
    created_at: SqlTime => Timestamp,
    updated_at: SqlTime => Timestamp,
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
                first_message_time: t.into(),
                last_message: "hi",
                last_message_time: t.into(),
                message_count: 1,
                is_active: true,
                converted_to_student: false,
                created_at: t.into(),
                updated_at: t.into(),
                source_type: None,
                source_id: None,
                source_url: None,
                source_headline: None,
                business_phone_number_id: None,
                interactive_replies: 0,
                score: 4,
            })
            .collect();
        let mut ids: Vec<i64> = Lead::insert_many(conn, &rows)
            .expect("inserted")
            .into_iter()
            .map(|(id, _, _)| id)
            .collect();
        ids.sort_unstable();
        ids.into_iter()
            .map(|id| Lead::find(conn, id).expect("found").expect("stored"))
            .collect()
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
        let active = crate::leads::filter::counters(conn)
            .expect("counters")
            .active;
        let deactivated = (0..450).filter(|i| i % 4 == 2).count() as i64;
        assert_eq!(
            active,
            450 - deactivated,
            "the counter triggers saw the deactivations"
        );
    }

    #[test]
    fn grouped_update_numbers_postgres_placeholders_across_rows() {
        let changed = |id, score: i64, status: &str| {
            (
                id,
                LeadChanges {
                    score: Some(score),
                    status: Some(status.into()),
                    ..LeadChanges::default()
                },
            )
        };
        let rows = [changed(7, 10, "new"), changed(9, 20, "won")];
        let update = GroupedUpdate {
            columns: &["status", "score"],
            rows: &rows,
        };
        let sql = diesel::debug_query::<diesel::pg::Pg, _>(&update).to_string();
        assert_eq!(
            sql,
            "WITH v(id, status, score) AS (VALUES ($1, $2, $3), ($4, $5, $6)) \
             UPDATE leads SET status = v.status, score = v.score FROM v WHERE leads.id = v.id \
             -- binds: [7, \"new\", 10, 9, \"won\", 20]"
        );
        let rows = [changed(7, 10, "new")];
        let update = GroupedUpdate {
            columns: &["status", "score"],
            rows: &rows,
        };
        let sql = diesel::debug_query::<diesel::sqlite::Sqlite, _>(&update).to_string();
        assert!(
            sql.starts_with("WITH v(id, status, score) AS (VALUES (?, ?, ?)) UPDATE leads SET"),
            "{sql}"
        );
    }
}
