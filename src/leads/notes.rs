//! Staff notes on a lead: append-only, each with its author and time.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;
use serde_json::json;

use crate::db::schema::lead_notes;
use crate::db::DbConnection;
use crate::error::AppError;
use crate::leads::activity::{self, Kind};
use crate::leads::service::lead_not_found;
use crate::leads::Lead;
use crate::with_conn;

pub const MAX_AUTHOR_CHARS: usize = 100;
pub const MAX_BODY_CHARS: usize = 5000;

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = lead_notes)]
pub struct Note {
    pub id: i64,
    pub lead_id: i64,
    pub author: String,
    pub body: String,
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub created_at: NaiveDateTime,
}

/// A note as submitted, validated: author 1–100 and body 1–5,000
/// characters, both trimmed.
#[derive(Debug, Clone)]
pub struct NewNote {
    pub author: String,
    pub body: String,
}

impl NewNote {
    pub fn new(author: Option<&str>, body: Option<&str>) -> Result<NewNote, AppError> {
        Ok(NewNote {
            author: required("author", author, MAX_AUTHOR_CHARS)?,
            body: required("body", body, MAX_BODY_CHARS)?,
        })
    }
}

fn required(field: &str, value: Option<&str>, max: usize) -> Result<String, AppError> {
    let text = value.map(str::trim).unwrap_or_default();
    let length = text.chars().count();
    if length == 0 || length > max {
        return Err(AppError::Unprocessable(format!(
            "{field} is required: a string of 1 to {max} characters"
        )));
    }
    Ok(text.to_string())
}

/// Adds the note and records it on the lead's timeline (its author is the
/// actor).
pub fn add(
    conn: &mut DbConnection,
    lead_id: i64,
    note: &NewNote,
    at: NaiveDateTime,
) -> Result<Note, AppError> {
    let mut lead = Lead::find(conn, lead_id)?.ok_or_else(|| lead_not_found(lead_id))?;
    let note: Note = with_conn!(conn, c => diesel::insert_into(lead_notes::table)
        .values((
            lead_notes::lead_id.eq(lead_id),
            lead_notes::author.eq(&note.author),
            lead_notes::body.eq(&note.body),
            lead_notes::created_at.eq(at),
        ))
        .returning(Note::as_returning())
        .get_result(c))?;
    activity::record(
        conn,
        lead_id,
        Kind::NoteAdded,
        Some(&note.author),
        json!({ "note_id": note.id, "body": note.body }),
        at,
    )?;
    lead.updated_at = at;
    lead.save(conn)?;
    Ok(note)
}

/// Every note of the lead, oldest first.
pub fn for_lead(conn: &mut DbConnection, lead_id: i64) -> QueryResult<Vec<Note>> {
    with_conn!(conn, c => lead_notes::table
        .filter(lead_notes::lead_id.eq(lead_id))
        .order(lead_notes::id)
        .select(Note::as_select())
        .load(c))
}
