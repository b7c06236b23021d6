//! What admin staff do with leads: count, read, convert, deactivate,
//! delete. Reads take a pooled connection; writes run on the single writer
//! (through `crate::db::Database`) so they never race the webhook path.

use chrono::{Duration, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::json;

use crate::db::schema::leads;
use crate::db::DbConnection;
use crate::error::AppError;
use crate::leads::activity::{self, Kind};
use crate::leads::filter::{counters, Totals};
use crate::leads::pipeline::{Status, Vocabulary};
use crate::leads::view::{self, LeadView};
use crate::leads::Lead;
use crate::messages::{self as stored, StoredMessage};
use crate::students::{NewStudent, Student};
use crate::time;
use crate::with_conn;

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
    pub lead: LeadView,
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

pub fn stats(conn: &mut DbConnection) -> QueryResult<LeadStats> {
    let now = Utc::now().naive_utc();
    let today = now.date().and_hms_opt(0, 0, 0).unwrap_or(now);
    let week_ago = now - Duration::days(7);
    let Totals {
        leads: total,
        active,
        converted,
        messages: messages_total,
    } = counters(conn)?;
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
        lead: view::one(conn, lead)?,
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
/// nothing; to another student is a conflict. The lead's status becomes
/// `converted`, stamped with `converted_at`.
pub fn convert(
    conn: &mut DbConnection,
    id: i64,
    student_id: Option<i64>,
    actor: Option<&str>,
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
    mark_converted(conn, &mut lead, student.id, actor, json!({}), time::now())?;
    Ok((lead, student))
}

/// Links the lead to the student and moves it to `converted`, on the
/// timeline too.
fn mark_converted(
    conn: &mut DbConnection,
    lead: &mut Lead,
    student_id: i64,
    actor: Option<&str>,
    mut detail: serde_json::Value,
    now: NaiveDateTime,
) -> QueryResult<()> {
    detail["student_id"] = json!(student_id);
    detail["from_status"] = json!(lead.status);
    lead.converted_to_student = true;
    lead.student_id = Some(student_id);
    lead.status = Status::Converted.name().to_string();
    lead.converted_at = Some(now);
    lead.updated_at = now;
    lead.save(conn)?;
    activity::record(conn, lead.id, Kind::Converted, actor, detail, now)
}

pub fn deactivate(conn: &mut DbConnection, id: i64, actor: Option<&str>) -> Result<Lead, AppError> {
    let mut lead = Lead::find(conn, id)?.ok_or_else(|| lead_not_found(id))?;
    if lead.is_active {
        let now = time::now();
        lead.is_active = false;
        lead.updated_at = now;
        lead.save(conn)?;
        activity::record(conn, id, Kind::Deactivated, actor, json!({}), now)?;
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
        let detail = json!({ "via": "student_registration" });
        mark_converted(conn, &mut lead, student.id, None, detail, now)?;
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
}
