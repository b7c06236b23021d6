//! The per-lead activity timeline: an append-only row for every change staff
//! make (`lead_activity`), read back together with the lead's first contact.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;
use serde_json::{json, Value};

use crate::db::schema::lead_activity;
use crate::db::DbConnection;
use crate::leads::Lead;
use crate::with_conn;

/// What happened. Stored by name in `lead_activity.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The lead's first message; derived from the lead, never stored.
    FirstContact,
    StatusChanged,
    PriorityChanged,
    ValueChanged,
    TagsChanged,
    Assigned,
    FollowUpSet,
    NoteAdded,
    Converted,
    Deactivated,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::FirstContact => "first_contact",
            Kind::StatusChanged => "status_changed",
            Kind::PriorityChanged => "priority_changed",
            Kind::ValueChanged => "value_changed",
            Kind::TagsChanged => "tags_changed",
            Kind::Assigned => "assigned",
            Kind::FollowUpSet => "follow_up_set",
            Kind::NoteAdded => "note_added",
            Kind::Converted => "converted",
            Kind::Deactivated => "deactivated",
        }
    }
}

/// One entry of the timeline. `id` is `null` for the derived first contact.
#[derive(Debug, Clone, Serialize)]
pub struct Activity {
    pub id: Option<i64>,
    pub kind: String,
    pub actor: Option<String>,
    pub detail: Value,
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub at: NaiveDateTime,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = lead_activity)]
struct Row {
    id: i64,
    kind: String,
    actor: Option<String>,
    detail: String,
    created_at: NaiveDateTime,
}

impl From<Row> for Activity {
    fn from(row: Row) -> Activity {
        Activity {
            id: Some(row.id),
            kind: row.kind,
            actor: row.actor,
            // Written by `record` only, so always JSON; kept as text if not.
            detail: serde_json::from_str(&row.detail).unwrap_or(Value::String(row.detail)),
            at: row.created_at,
        }
    }
}

/// Appends an entry to the lead's timeline.
pub fn record(
    conn: &mut DbConnection,
    lead_id: i64,
    kind: Kind,
    actor: Option<&str>,
    detail: Value,
    at: NaiveDateTime,
) -> QueryResult<()> {
    let detail = detail.to_string();
    with_conn!(conn, c => diesel::insert_into(lead_activity::table)
        .values((
            lead_activity::lead_id.eq(lead_id),
            lead_activity::kind.eq(kind.name()),
            lead_activity::actor.eq(actor),
            lead_activity::detail.eq(&detail),
            lead_activity::created_at.eq(at),
        ))
        .execute(c))?;
    Ok(())
}

/// A page of a lead's timeline, oldest first.
#[derive(Debug, Serialize)]
pub struct Timeline {
    pub items: Vec<Activity>,
    /// Pass as `before` to read the older page; `null` when this page
    /// reaches back to the first contact.
    pub older_before: Option<i64>,
}

/// The newest `limit` entries older than the entry `before` (if given),
/// oldest first; the page that reaches the beginning starts with the lead's
/// first contact.
pub fn timeline(
    conn: &mut DbConnection,
    lead: &Lead,
    before: Option<i64>,
    limit: i64,
) -> QueryResult<Timeline> {
    let mut rows: Vec<Row> = with_conn!(conn, c => {
        let mut query = lead_activity::table
            .filter(lead_activity::lead_id.eq(lead.id))
            .into_boxed();
        if let Some(before) = before {
            query = query.filter(lead_activity::id.lt(before));
        }
        // One extra row tells whether an older page exists.
        query
            .order(lead_activity::id.desc())
            .limit(limit + 1)
            .select(Row::as_select())
            .load(c)
    })?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    rows.reverse();
    let mut items: Vec<Activity> = rows.into_iter().map(Activity::from).collect();
    let older_before = if more {
        items.first().and_then(|a| a.id)
    } else {
        items.insert(0, first_contact(lead));
        None
    };
    Ok(Timeline {
        items,
        older_before,
    })
}

/// The lead's first message as a timeline entry. Derived on reading so that
/// the webhook path writes nothing extra, and so that a merge, which
/// recomputes the first message, is reflected.
fn first_contact(lead: &Lead) -> Activity {
    Activity {
        id: None,
        kind: Kind::FirstContact.name().into(),
        actor: None,
        detail: json!({
            "message": lead.first_message,
            "lead_created_at": crate::time::to_rfc3339(&lead.created_at),
        }),
        at: lead.first_message_time,
    }
}
