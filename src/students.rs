//! The registry of students: a registered phone number or BSUID is no longer a
//! lead source.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use crate::db::reuse::one_of;
use crate::db::schema::students;
use crate::db::DbConnection;
use crate::with_conn;

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize)]
#[diesel(table_name = students)]
pub struct Student {
    pub id: i64,
    pub phone_number: Option<String>,
    pub user_id: Option<String>,
    pub parent_user_id: Option<String>,
    pub username: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = students)]
pub struct NewStudent<'a> {
    pub phone_number: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub parent_user_id: Option<&'a str>,
    pub username: Option<&'a str>,
    pub name: Option<&'a str>,
    pub email: Option<&'a str>,
    pub created_at: NaiveDateTime,
}

impl Student {
    pub fn find(conn: &mut DbConnection, id: i64) -> QueryResult<Option<Student>> {
        with_conn!(conn, c => students::table
            .find(id)
            .select(Student::as_select())
            .get_result(c)
            .optional())
    }

    /// The student registered under either identifier, if any.
    pub fn find_by_identity(
        conn: &mut DbConnection,
        phone: Option<&str>,
        user_id: Option<&str>,
    ) -> QueryResult<Option<Student>> {
        if phone.is_none() && user_id.is_none() {
            return Ok(None);
        }
        with_conn!(conn, c => students::table
            .filter(
                students::phone_number
                    .eq(phone)
                    .and(students::phone_number.is_not_null())
                    .or(students::user_id.eq(user_id).and(students::user_id.is_not_null())),
            )
            .select(Student::as_select())
            .get_result(c)
            .optional())
    }

    /// The phone numbers and BSUIDs among these that belong to a student.
    pub fn identities_among(
        conn: &mut DbConnection,
        phones: &[&str],
        user_ids: &[&str],
    ) -> QueryResult<Vec<(Option<String>, Option<String>)>> {
        with_conn!(conn, c => students::table
            .filter(one_of(students::phone_number, phones).or(one_of(students::user_id, user_ids)))
            .select((students::phone_number, students::user_id))
            .load(c))
    }

    pub fn insert(conn: &mut DbConnection, new: &NewStudent<'_>) -> QueryResult<Student> {
        with_conn!(conn, c => diesel::insert_into(students::table)
            .values(new)
            .returning(Student::as_returning())
            .get_result(c))
    }

    pub fn list(
        conn: &mut DbConnection,
        skip: i64,
        limit: i64,
    ) -> QueryResult<(Vec<Student>, i64)> {
        with_conn!(conn, c => {
            let total = students::table.count().get_result(c)?;
            let items = students::table
                .order(students::id.desc())
                .offset(skip)
                .limit(limit)
                .select(Student::as_select())
                .load(c)?;
            Ok((items, total))
        })
    }
}
