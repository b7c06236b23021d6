//! Statements the write path runs on every batch, shaped so that each
//! connection prepares them once and then reuses them.
//!
//! diesel keeps a prepared statement only when its SQL text cannot vary
//! without bound, so it prepares afresh every `IN (?, ?, …)` list (one
//! placeholder per value), every multi-row statement and every raw SQL
//! query. On the SQLite writer that preparation was 12 % of the time spent
//! per batch (`perf`, BENCHMARKS.md "Sixth pass"). Two remedies:
//! - [`one_of`] looks a column up in a list bound as *one* parameter:
//!   `= ANY($1)` with an array on PostgreSQL (what diesel's `eq_any` does
//!   there too), `IN (SELECT value FROM json_each(?))` with a JSON array on
//!   SQLite. The text no longer depends on the list's length. On SQLite a
//!   list of up to eight values is written out instead, as equalities
//!   joined by OR: one text per length, and no Bloom filter or ephemeral
//!   index, which SQLite builds for every `IN (SELECT …)`.
//! - the grouped lead UPDATE (`leads::model::GroupedUpdate`) and the
//!   multi-row INSERTs of messages and new leads ([`InsertPiece`]) are query
//!   nodes of their own instead of `sql_query` or diesel's batch insert,
//!   which diesel caches by their text, and go out in pieces of seven sizes
//!   ([`pieces`]), so that there are few texts to keep. Preparing the
//!   message INSERT afresh was a tenth of the SQLite writer's instructions
//!   per message, the lead INSERT more than that again in a batch of new
//!   senders.
//!
//! [`Kept`] is raw SQL that diesel keeps prepared, keyed by its text, for
//! the statements of SQLite's search index thread.

use std::cell::OnceCell;
use std::marker::PhantomData;

use diesel::backend::Backend;
use diesel::expression::{
    is_aggregate, AppearsOnTable, Expression, TypedExpressionType, ValidGrouping,
};
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{Array, BigInt, Bool, HasSqlType, Nullable, Text};
use diesel::sqlite::Sqlite;
use diesel::{QueryResult, RunQueryDsl, SelectableExpression};

/// `column` equals one of `values`, with the values bound as one parameter.
pub fn one_of<'a, C>(column: C, values: &'a [&'a str]) -> OneOf<'a, C> {
    OneOf {
        column,
        values,
        json: OnceCell::new(),
    }
}

/// See [`one_of`].
#[derive(Debug, Clone)]
pub struct OneOf<'a, C> {
    column: C,
    values: &'a [&'a str],
    /// SQLite's JSON array of `values`, built at the first of the several
    /// passes over the query and kept in the node, which each pass borrows.
    json: OnceCell<String>,
}

impl<C> Expression for OneOf<'_, C> {
    type SqlType = Bool;
}

impl<C, QS> AppearsOnTable<QS> for OneOf<'_, C> where C: AppearsOnTable<QS> {}

impl<C, QS> SelectableExpression<QS> for OneOf<'_, C> where C: SelectableExpression<QS> {}

impl<C> ValidGrouping<()> for OneOf<'_, C> {
    type IsAggregate = is_aggregate::Never;
}

impl<C> QueryId for OneOf<'_, C> {
    type QueryId = ();
    // Keyed by its SQL text in diesel's cache, which is the same for every
    // list.
    const HAS_STATIC_QUERY_ID: bool = false;
}

/// Lists up to this long are written out as `(c = ? OR c = ? …)`, one text
/// per length; longer ones go through `json_each`.
const SPELLED_OUT_MAX: usize = 8;

impl<C: QueryFragment<Sqlite>> QueryFragment<Sqlite> for OneOf<'_, C> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        // SQLite builds a 10,000-byte Bloom filter and an ephemeral index
        // for each `IN (SELECT …)` it runs, and an ephemeral index for an
        // `IN (?, ?)` list. For the few values of a small batch, equalities
        // joined by OR (each an index lookup) cost the writer 26 % fewer
        // instructions for a batch of one message, 12 % for four
        // (callgrind, BENCHMARKS.md "Fourteenth pass").
        if (1..=SPELLED_OUT_MAX).contains(&self.values.len()) {
            out.push_sql("(");
            for (i, value) in self.values.iter().enumerate() {
                if i > 0 {
                    out.push_sql(" OR ");
                }
                self.column.walk_ast(out.reborrow())?;
                out.push_sql(" = ");
                out.push_bind_param::<Text, _>(value)?;
            }
            out.push_sql(")");
            return Ok(());
        }
        self.column.walk_ast(out.reborrow())?;
        out.push_sql(" IN (SELECT value FROM json_each(");
        let json = self.json.get_or_init(|| {
            serde_json::to_string(self.values).expect("a list of strings is valid JSON")
        });
        out.push_bind_param::<Text, _>(json)?;
        out.push_sql("))");
        Ok(())
    }
}

impl<C: QueryFragment<Pg>> QueryFragment<Pg> for OneOf<'_, C> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.column.walk_ast(out.reborrow())?;
        out.push_sql(" = ANY(");
        out.push_bind_param::<Array<Text>, _>(&self.values)?;
        out.push_sql(")");
        Ok(())
    }
}

/// Raw SQL that diesel keeps prepared on its connection, keyed by its text,
/// unlike `sql_query`, which it prepares at every execution. For the SQLite
/// statements of the search index thread, whose text is fixed per table but
/// names the attached files: preparing them again at each pass was 43 % of
/// that thread's instructions when passes are small (callgrind).
pub struct Kept<'a> {
    sql: String,
    binds: Vec<KeptBind<'a>>,
}

enum KeptBind<'a> {
    BigInt(i64),
    Text(&'a str),
}

/// See [`Kept`].
pub fn kept<'a>(sql: impl Into<String>) -> Kept<'a> {
    Kept {
        sql: sql.into(),
        binds: Vec::new(),
    }
}

impl<'a> Kept<'a> {
    /// Binds the next `?` to an integer.
    pub fn bind_int(mut self, value: i64) -> Self {
        self.binds.push(KeptBind::BigInt(value));
        self
    }

    /// Binds the next `?` to a text.
    pub fn bind_text(mut self, value: &'a str) -> Self {
        self.binds.push(KeptBind::Text(value));
        self
    }
}

impl QueryId for Kept<'_> {
    type QueryId = ();
    // Keyed by its SQL text in diesel's cache.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Kept<'_> {
    // Rows are read by name (`QueryableByName`), as with `sql_query`.
    type SqlType = diesel::sql_types::Untyped;
}

impl QueryFragment<Sqlite> for Kept<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        // diesel writes each placeholder as it binds: the text goes out in
        // the pieces between the `?`s (none of these statements has a `?`
        // inside a string literal).
        let mut pieces = self.sql.split('?');
        out.push_sql(pieces.next().unwrap_or_default());
        let mut binds = self.binds.iter();
        for piece in pieces {
            match binds.next() {
                Some(KeptBind::BigInt(value)) => out.push_bind_param::<BigInt, _>(value)?,
                Some(KeptBind::Text(value)) => out.push_bind_param::<Text, _>(value)?,
                None => return Err(unbound(&self.sql)),
            }
            out.push_sql(piece);
        }
        match binds.next() {
            Some(_) => Err(unbound(&self.sql)),
            None => Ok(()),
        }
    }
}

fn unbound(sql: &str) -> diesel::result::Error {
    diesel::result::Error::QueryBuilderError(
        format!("placeholders and bound values differ in number: {sql}").into(),
    )
}

impl<Conn> RunQueryDsl<Conn> for Kept<'_> {}

/// A row that an [`InsertPiece`] binds.
pub trait BindRow<DB: Backend> {
    /// Binds the row's values in the order of the statement's column list.
    fn bind_row<'b>(&'b self, values: &mut RowValues<'_, '_, 'b, DB>) -> QueryResult<()>;
}

/// The values of one row of an [`InsertPiece`], separated as they are bound.
pub struct RowValues<'p, 'a, 'b, DB: Backend> {
    out: &'p mut AstPass<'a, 'b, DB>,
    first: bool,
}

impl<'b, DB: Backend> RowValues<'_, '_, 'b, DB> {
    /// Binds the next value as SQL type `ST`.
    pub fn bind<ST, U>(&mut self, value: &'b U) -> QueryResult<()>
    where
        DB: HasSqlType<ST>,
        U: ToSql<ST, DB> + ?Sized,
    {
        if !std::mem::take(&mut self.first) {
            self.out.push_sql(", ");
        }
        self.out.push_bind_param::<ST, U>(value)
    }

    /// Binds the next values, each as a nullable text.
    pub fn bind_texts<const N: usize>(&mut self, texts: [&'b Option<&str>; N]) -> QueryResult<()>
    where
        DB: HasSqlType<Nullable<Text>>,
        Option<&'b str>: ToSql<Nullable<Text>, DB>,
    {
        texts
            .into_iter()
            .try_for_each(|text| self.bind::<Nullable<Text>, _>(text))
    }
}

/// `{head}(…), (…), …{tail}` for one piece of rows (see [`pieces`]), e.g.
/// `INSERT INTO t (a, b) VALUES ` and ` ON CONFLICT DO NOTHING` around the
/// rows. The text depends only on the number of rows, so diesel keeps it
/// prepared. `ST` is what a `RETURNING` tail returns ([`Self::returning`]).
pub struct InsertPiece<'a, R, ST = ()> {
    head: &'static str,
    rows: &'a [R],
    tail: &'static str,
    returns: PhantomData<fn() -> ST>,
}

impl<'a, R> InsertPiece<'a, R> {
    pub fn new(head: &'static str, rows: &'a [R], tail: &'static str) -> Self {
        InsertPiece {
            head,
            rows,
            tail,
            returns: PhantomData,
        }
    }

    /// The same statement, loading rows of SQL type `ST` (the tail's
    /// `RETURNING` list).
    pub fn returning<ST>(self) -> InsertPiece<'a, R, ST> {
        InsertPiece {
            head: self.head,
            rows: self.rows,
            tail: self.tail,
            returns: PhantomData,
        }
    }
}

impl<R, ST> QueryId for InsertPiece<'_, R, ST> {
    type QueryId = ();
    // Keyed by its SQL text in diesel's cache.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<R, ST, DB> QueryFragment<DB> for InsertPiece<'_, R, ST>
where
    DB: Backend,
    R: BindRow<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql(self.head);
        for (n, row) in self.rows.iter().enumerate() {
            out.push_sql(if n == 0 { "(" } else { ", (" });
            row.bind_row(&mut RowValues {
                out: &mut out,
                first: true,
            })?;
            out.push_sql(")");
        }
        out.push_sql(self.tail);
        Ok(())
    }
}

impl<R, ST: TypedExpressionType> Query for InsertPiece<'_, R, ST> {
    type SqlType = ST;
}

impl<R, ST, Conn> RunQueryDsl<Conn> for InsertPiece<'_, R, ST> {}

/// `rows` in pieces whose lengths are powers of two up to 64, largest first
/// (37 rows go out as 32, 4 and 1): a multi-row statement then has at most
/// seven texts, and 64 rows keep it far below either database's limit on
/// bound parameters.
pub fn pieces<T>(rows: &[T]) -> impl Iterator<Item = &[T]> {
    const MOST: usize = 64;
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let len = if rest.len() >= MOST {
            MOST
        } else {
            1 << rest.len().ilog2()
        };
        let (piece, after) = rest.split_at(len);
        rest = after;
        Some(piece)
    })
}

#[cfg(test)]
mod tests {
    use diesel::prelude::*;

    use super::{kept, one_of, pieces, SPELLED_OUT_MAX};
    use crate::db::schema::students;
    use crate::db::{test_pool, DbConnection};

    /// The phone numbers among `wanted` that a student has, looked up with
    /// [`one_of`] beside another condition (which must still hold).
    fn students_among(conn: &mut DbConnection, wanted: &[&str], name: &str) -> Vec<String> {
        let DbConnection::Sqlite(c) = conn else {
            unreachable!("a SQLite test pool")
        };
        let mut found: Vec<String> = students::table
            .filter(students::name.eq(name))
            .filter(one_of(students::phone_number, wanted))
            .select(students::phone_number.assume_not_null())
            .load(c)
            .unwrap();
        found.sort();
        found
    }

    #[derive(diesel::QueryableByName, Debug, PartialEq)]
    struct Pair {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
        #[diesel(sql_type = diesel::sql_types::Text)]
        t: String,
    }

    #[test]
    fn kept_sql_binds_each_placeholder_in_order_and_refuses_a_mismatch() {
        let mut c = diesel::SqliteConnection::establish(":memory:").unwrap();
        let sql = "SELECT ? + 1 AS n, ? AS t";
        for n in [1, 41] {
            let row: Pair = kept(sql)
                .bind_int(n)
                .bind_text("x")
                .get_result(&mut c)
                .unwrap();
            assert_eq!(
                row,
                Pair {
                    n: n + 1,
                    t: "x".into()
                }
            );
        }
        assert!(kept(sql).bind_int(1).get_result::<Pair>(&mut c).is_err());
        assert!(kept(sql)
            .bind_int(1)
            .bind_text("x")
            .bind_int(2)
            .get_result::<Pair>(&mut c)
            .is_err());
    }

    #[test]
    fn one_of_finds_the_same_rows_whether_spelled_out_or_through_json() {
        let dir = tempfile::tempdir().unwrap();
        let pool = test_pool(&dir);
        let mut conn = pool.get().unwrap();
        let DbConnection::Sqlite(c) = &mut *conn else {
            unreachable!("a SQLite test pool")
        };
        for i in 0..20 {
            diesel::sql_query(format!(
                "INSERT INTO students (name, phone_number, created_at) \
                 VALUES ('{}', '1555000{i:04}', '2026-01-01 00:00:00')",
                if i % 2 == 0 { "even" } else { "odd" }
            ))
            .execute(c)
            .unwrap();
        }
        let phones: Vec<String> = (0..30).map(|i| format!("1555000{i:04}")).collect();
        // Every length around the switch from OR-ed equalities to json_each.
        for len in [0, 1, 2, SPELLED_OUT_MAX, SPELLED_OUT_MAX + 1, 30] {
            let wanted: Vec<&str> = phones[..len].iter().map(String::as_str).collect();
            let expected: Vec<String> = (0..len.min(20))
                .filter(|i| i % 2 == 0)
                .map(|i| phones[i].clone())
                .collect();
            assert_eq!(
                students_among(&mut conn, &wanted, "even"),
                expected,
                "{len} values"
            );
        }
    }

    fn sizes(rows: usize) -> Vec<usize> {
        let rows: Vec<usize> = (0..rows).collect();
        let mut sizes = Vec::new();
        let mut next = 0;
        for piece in pieces(&rows) {
            // In order, each row once.
            assert_eq!(piece[0], next);
            next += piece.len();
            sizes.push(piece.len());
        }
        assert_eq!(next, rows.len());
        sizes
    }

    #[test]
    fn pieces_are_powers_of_two_that_add_up() {
        assert_eq!(sizes(0), Vec::<usize>::new());
        assert_eq!(sizes(1), [1]);
        assert_eq!(sizes(37), [32, 4, 1]);
        assert_eq!(sizes(64), [64]);
        assert_eq!(sizes(200), [64, 64, 64, 8]);
        for rows in 0..300 {
            assert!(sizes(rows).iter().all(|p| p.is_power_of_two() && *p <= 64));
        }
    }
}
