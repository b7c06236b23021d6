//! What admin staff do with leads: find, count, read, convert, deactivate,
//! delete. Reads take a pooled connection; writes run on the single writer
//! (through `crate::db::Database`) so they never race the webhook path.

use chrono::{Duration, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};
use serde::Serialize;

use crate::db::schema::{lead_counters, leads, messages};
use crate::db::DbConnection;
use crate::error::AppError;
use crate::leads::Lead;
use crate::messages::{self as stored, StoredMessage};
use crate::students::{NewStudent, Student};
use crate::time;
use crate::with_conn;

diesel::define_sql_function! {
    /// SQL `lower()`: both backends have it; PostgreSQL's `LIKE` is case-sensitive.
    fn lower(x: diesel::sql_types::Nullable<diesel::sql_types::Text>) -> diesel::sql_types::Nullable<diesel::sql_types::Text>;
}

/// Filters of the lead list, already validated by the HTTP layer.
#[derive(Debug, Default, Clone)]
pub struct LeadFilter {
    pub converted: Option<bool>,
    pub active: Option<bool>,
    /// Free text: phone, BSUID, username, name or message text.
    pub q: Option<String>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct LeadStats {
    pub total_leads: i64,
    pub active_leads: i64,
    pub converted_leads: i64,
    pub unconverted_leads: i64,
    pub conversion_rate: String,
    pub new_leads_today: i64,
    pub new_leads_7d: i64,
    pub messages_total: i64,
}

#[derive(Debug, Serialize)]
pub struct LeadDetail {
    pub lead: Lead,
    pub messages: Vec<StoredMessage>,
    /// Pass as `before` to read the page of older messages; `null` when none.
    pub older_before: Option<i64>,
}

/// `"28.9%"`: converted ÷ total with one decimal, `"0.0%"` when empty.
pub fn conversion_rate(converted: i64, total: i64) -> String {
    if total <= 0 {
        return "0.0%".to_string();
    }
    format!("{:.1}%", converted as f64 * 100.0 / total as f64)
}

/// `%text%` for `LIKE … ESCAPE '\'`, lower-cased, with wildcards escaped.
fn like_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for ch in text.to_lowercase().chars() {
        if matches!(ch, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(ch);
    }
    pattern.push('%');
    pattern
}

/// How `q` is looked up.
enum Search {
    /// Through the search indexes (see the `search_indexes` migrations).
    Indexed(IndexedSearch),
    /// A `LIKE` scan: SQLite's trigram index needs three characters or more.
    Scan(String),
}

/// A search condition in the backend's own SQL, with the term bound twice
/// (once for the lead's fields, once for its messages).
struct IndexedSearch {
    before: &'static str,
    between: &'static str,
    after: &'static str,
    term: String,
}

impl Search {
    fn for_backend(conn: &DbConnection, q: &str) -> Search {
        match conn {
            DbConnection::Sqlite(_) if q.chars().count() < 3 => Search::Scan(like_pattern(q)),
            DbConnection::Sqlite(_) => Search::Indexed(IndexedSearch {
                before: "(leads.id IN (SELECT rowid FROM leads_search WHERE leads_search MATCH ",
                between: ") OR leads.id IN (SELECT m.lead_id FROM messages m WHERE m.id IN \
                          (SELECT rowid FROM messages_search WHERE messages_search MATCH ",
                after: ")))",
                // An FTS5 phrase: matched as a substring by the trigram tokenizer.
                term: format!("\"{}\"", q.replace('"', "\"\"")),
            }),
            // The expression must stay the one the trigram index is built on.
            DbConnection::Postgres(_) => Search::Indexed(IndexedSearch {
                before: "(lower(coalesce(leads.phone_number, '') || ' ' || coalesce(leads.user_id, '') || ' ' || \
                         coalesce(leads.username, '') || ' ' || coalesce(leads.sender_name, '')) LIKE ",
                between: " ESCAPE '\\' OR leads.id IN (SELECT m.lead_id FROM messages m WHERE lower(m.body) LIKE ",
                after: " ESCAPE '\\'))",
                term: like_pattern(q),
            }),
        }
    }
}

/// Position in the lead list (newest activity first): the last row of the
/// previous page. Unlike `skip`, it costs the same on page 1 and page 20,000,
/// and rows arriving meanwhile neither repeat nor skip entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub last_message_time: NaiveDateTime,
    pub id: i64,
}

impl Cursor {
    fn after(lead: &Lead) -> Cursor {
        Cursor {
            last_message_time: lead.last_message_time,
            id: lead.id,
        }
    }

    /// `<microseconds since the epoch>_<id>`: opaque to clients.
    pub fn encode(&self) -> String {
        format!(
            "{}_{}",
            self.last_message_time.and_utc().timestamp_micros(),
            self.id
        )
    }

    pub fn decode(text: &str) -> Option<Cursor> {
        let (micros, id) = text.split_once('_')?;
        let time = chrono::DateTime::from_timestamp_micros(micros.parse().ok()?)?;
        Some(Cursor {
            last_message_time: time.naive_utc(),
            id: id.parse().ok()?,
        })
    }
}

/// One page of the lead list.
#[derive(Debug)]
pub struct LeadPage {
    pub items: Vec<Lead>,
    pub total: i64,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
}

/// A page of leads, newest activity first (from `skip`, or after `cursor`),
/// and how many match in all.
pub fn list(
    conn: &mut DbConnection,
    filter: &LeadFilter,
    cursor: Option<Cursor>,
    skip: i64,
    limit: i64,
) -> QueryResult<LeadPage> {
    let search = filter.q.as_deref().map(|q| Search::for_backend(conn, q));
    let total = count_from_counters(conn, filter)?;
    let (items, counted) = with_conn!(conn, c => {
        // Built twice (count and page): a boxed query cannot be cloned.
        let build = || {
            let mut query = leads::table.into_boxed();
            if let Some(converted) = filter.converted {
                query = query.filter(leads::converted_to_student.eq(converted));
            }
            if let Some(active) = filter.active {
                query = query.filter(leads::is_active.eq(active));
            }
            match &search {
                Some(Search::Indexed(sql)) => {
                    query = query.filter(
                        diesel::dsl::sql::<Bool>(sql.before)
                            .bind::<Text, _>(sql.term.clone())
                            .sql(sql.between)
                            .bind::<Text, _>(sql.term.clone())
                            .sql(sql.after),
                    );
                }
                Some(Search::Scan(p)) => {
                    let in_messages = messages::table
                        .filter(messages::lead_id.eq(leads::id.nullable()))
                        .filter(lower(messages::body.nullable()).like(p).escape('\\'));
                    query = query.filter(
                        lower(leads::phone_number).like(p).escape('\\')
                            .or(lower(leads::user_id).like(p).escape('\\'))
                            .or(lower(leads::username).like(p).escape('\\'))
                            .or(lower(leads::sender_name).like(p).escape('\\'))
                            .or(diesel::dsl::exists(in_messages)),
                    );
                }
                None => {}
            }
            query
        };
        let counted: Option<i64> = if total_needs_query(filter) {
            Some(build().count().get_result(c)?)
        } else {
            None
        };
        let mut page = build();
        if let Some(at) = cursor {
            // The `<=` bound alone is what lets the activity index start at
            // the cursor; the `OR` then drops the rows already shown.
            page = page.filter(leads::last_message_time.le(at.last_message_time));
            page = page.filter(
                leads::last_message_time.lt(at.last_message_time).or(leads::last_message_time
                    .eq(at.last_message_time)
                    .and(leads::id.lt(at.id))),
            );
        }
        let items: Vec<Lead> = page
            .order((leads::last_message_time.desc(), leads::id.desc()))
            .offset(skip)
            .limit(limit)
            .select(Lead::as_select())
            .load(c)?;
        QueryResult::Ok((items, counted))
    })?;
    let next = if items.len() as i64 == limit {
        items.last().map(Cursor::after)
    } else {
        None
    };
    Ok(LeadPage {
        total: counted.or(total).unwrap_or_default(),
        items,
        next,
    })
}

/// The running totals (see the `lead_counters` migration).
fn counters(conn: &mut DbConnection) -> QueryResult<(i64, i64, i64, i64)> {
    with_conn!(conn, c => lead_counters::table
        .find(1)
        .select((
            lead_counters::leads,
            lead_counters::active,
            lead_counters::converted,
            lead_counters::messages,
        ))
        .first(c))
}

/// Whether the list total must be counted row by row: the running totals
/// answer an unfiltered list and a single `active`/`converted` filter.
fn total_needs_query(filter: &LeadFilter) -> bool {
    filter.q.is_some() || (filter.active.is_some() && filter.converted.is_some())
}

fn count_from_counters(conn: &mut DbConnection, filter: &LeadFilter) -> QueryResult<Option<i64>> {
    if total_needs_query(filter) {
        return Ok(None);
    }
    let (leads, active, converted, _) = counters(conn)?;
    Ok(Some(match (filter.active, filter.converted) {
        (Some(true), _) => active,
        (Some(false), _) => leads - active,
        (_, Some(true)) => converted,
        (_, Some(false)) => leads - converted,
        (None, None) => leads,
    }))
}

pub fn stats(conn: &mut DbConnection) -> QueryResult<LeadStats> {
    let now = Utc::now().naive_utc();
    let today = now.date().and_hms_opt(0, 0, 0).unwrap_or(now);
    let week_ago = now - Duration::days(7);
    let (total, active, converted, messages_total) = counters(conn)?;
    // Range counts on the created_at index: only the newest leads are read.
    let (today_count, week_count) = with_conn!(conn, c => {
        let today_count: i64 = leads::table.filter(leads::created_at.ge(today)).count().get_result(c)?;
        let week_count: i64 = leads::table.filter(leads::created_at.ge(week_ago)).count().get_result(c)?;
        QueryResult::Ok((today_count, week_count))
    })?;
    Ok(LeadStats {
        total_leads: total,
        active_leads: active,
        converted_leads: converted,
        unconverted_leads: total - converted,
        conversion_rate: conversion_rate(converted, total),
        new_leads_today: today_count,
        new_leads_7d: week_count,
        messages_total,
    })
}

pub fn detail(
    conn: &mut DbConnection,
    id: i64,
    before: Option<i64>,
    limit: i64,
) -> Result<LeadDetail, AppError> {
    let lead = Lead::find(conn, id)?.ok_or_else(|| lead_not_found(id))?;
    let cursor = match before {
        Some(message_id) => match stored::find(conn, message_id)? {
            Some(m) if m.lead_id == Some(id) => Some(m),
            _ => {
                return Err(AppError::BadRequest(format!(
                    "before={message_id} is not a message of lead {id}"
                )))
            }
        },
        None => None,
    };
    // One extra row tells whether an older page exists.
    let mut page = stored::page_for_lead(conn, id, cursor.as_ref(), limit + 1)?;
    let older_before = if page.len() as i64 > limit {
        page.remove(0);
        page.first().map(|m| m.id)
    } else {
        None
    };
    Ok(LeadDetail {
        lead,
        messages: page,
        older_before,
    })
}

pub fn lead_not_found(id: i64) -> AppError {
    AppError::NotFound(format!("no lead with id {id}"))
}

/// Marks the lead converted and links the student: the given one (which must
/// exist), else the one registered under the lead's phone or BSUID, else a new
/// one made from the lead. Converting again to the same student changes
/// nothing; to another student is a conflict.
pub fn convert(
    conn: &mut DbConnection,
    id: i64,
    student_id: Option<i64>,
) -> Result<(Lead, Student), AppError> {
    let mut lead = Lead::find(conn, id)?.ok_or_else(|| lead_not_found(id))?;
    let student = match student_id {
        Some(sid) => Student::find(conn, sid)?
            .ok_or_else(|| AppError::Unprocessable(format!("no student with id {sid}")))?,
        None => match lead.student_id {
            Some(existing) => Student::find(conn, existing)?.ok_or_else(|| {
                AppError::Internal(format!("lead {id} links missing student {existing}"))
            })?,
            None => match Student::find_by_identity(
                conn,
                lead.phone_number.as_deref(),
                lead.user_id.as_deref(),
            )? {
                Some(s) => s,
                None => Student::insert(
                    conn,
                    &NewStudent {
                        phone_number: lead.phone_number.as_deref(),
                        user_id: lead.user_id.as_deref(),
                        parent_user_id: lead.parent_user_id.as_deref(),
                        username: lead.username.as_deref(),
                        name: lead.sender_name.as_deref(),
                        email: None,
                        created_at: time::now(),
                    },
                )?,
            },
        },
    };
    match lead.student_id {
        Some(existing) if lead.converted_to_student && existing == student.id => {
            return Ok((lead, student))
        }
        Some(existing) if lead.converted_to_student => {
            return Err(AppError::Conflict(format!(
                "lead {id} is already converted to student {existing}"
            )))
        }
        _ => {}
    }
    lead.converted_to_student = true;
    lead.student_id = Some(student.id);
    lead.updated_at = time::now();
    lead.save(conn)?;
    Ok((lead, student))
}

pub fn deactivate(conn: &mut DbConnection, id: i64) -> Result<Lead, AppError> {
    let mut lead = Lead::find(conn, id)?.ok_or_else(|| lead_not_found(id))?;
    if lead.is_active {
        lead.is_active = false;
        lead.updated_at = time::now();
        lead.save(conn)?;
    }
    Ok(lead)
}

pub fn hard_delete(conn: &mut DbConnection, id: i64) -> Result<(), AppError> {
    match Lead::delete_with_messages(conn, id)? {
        0 => Err(lead_not_found(id)),
        _ => Ok(()),
    }
}

/// Links the existing lead(s) of a newly registered student to it: the person
/// has converted, and no further message of theirs updates a lead.
pub fn link_student(
    conn: &mut DbConnection,
    student: &Student,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    let by_bsuid = match student.user_id.as_deref() {
        Some(u) => Lead::find_by_user_id(conn, u)?,
        None => None,
    };
    let by_phone = match student.phone_number.as_deref() {
        Some(p) => Lead::find_by_phone(conn, p)?,
        None => None,
    };
    let mut linked = 0;
    let same_lead = matches!((&by_bsuid, &by_phone), (Some(a), Some(b)) if a.id == b.id);
    let by_phone = if same_lead { None } else { by_phone };
    for mut lead in by_bsuid.into_iter().chain(by_phone) {
        if lead.converted_to_student {
            continue;
        }
        lead.converted_to_student = true;
        lead.student_id = Some(student.id);
        lead.updated_at = now;
        lead.save(conn)?;
        linked += 1;
    }
    Ok(linked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversion_rate_has_one_decimal() {
        assert_eq!(conversion_rate(0, 0), "0.0%");
        assert_eq!(conversion_rate(13, 45), "28.9%");
        assert_eq!(conversion_rate(1, 1), "100.0%");
        assert_eq!(conversion_rate(1, 3), "33.3%");
    }

    #[test]
    fn like_pattern_escapes_wildcards() {
        assert_eq!(like_pattern("Ada_50%"), "%ada\\_50\\%%");
    }
}
