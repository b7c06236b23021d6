//! An edit of a lead's pipeline fields — what `PATCH /leads/{id}` and the
//! bulk endpoint carry — validated from JSON, then applied to one lead with
//! a timeline entry per field that changed.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDateTime};
use serde_json::{json, Map, Value};

use crate::db::DbConnection;
use crate::error::AppError;
use crate::leads::activity::{self, Kind};
use crate::leads::pipeline::{check_transition, Priority, Status, Vocabulary};
use crate::leads::service::lead_not_found;
use crate::leads::{tags, Lead};

pub const MAX_ASSIGNEE_CHARS: usize = 100;

/// A deal value: an amount in minor units (cents) of an ISO 4217 currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Money {
    pub amount_minor: i64,
    pub currency: String,
}

impl Money {
    fn of(lead: &Lead) -> Option<Money> {
        match (lead.value_minor, &lead.value_currency) {
            (Some(amount_minor), Some(currency)) => Some(Money {
                amount_minor,
                currency: currency.clone(),
            }),
            _ => None,
        }
    }

    fn to_json(value: &Option<Money>) -> Value {
        match value {
            Some(m) => json!({ "amount_minor": m.amount_minor, "currency": m.currency }),
            None => Value::Null,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TagEdit {
    #[default]
    Keep,
    /// `tags`: the whole set.
    Replace(BTreeSet<String>),
    /// `add_tags` / `remove_tags`.
    Edit {
        add: BTreeSet<String>,
        remove: BTreeSet<String>,
    },
}

/// A validated edit. `None` leaves a field alone; `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeadChange {
    pub status: Option<Status>,
    pub priority: Option<Priority>,
    pub value: Option<Option<Money>>,
    pub tags: TagEdit,
    pub assigned_to: Option<Option<String>>,
    pub next_follow_up_at: Option<Option<NaiveDateTime>>,
    /// Bulk only: set `is_active = false`.
    pub deactivate: bool,
}

const EDIT_FIELDS: &[&str] = &[
    "status",
    "priority",
    "value",
    "tags",
    "add_tags",
    "remove_tags",
    "assigned_to",
    "next_follow_up_at",
];

fn unprocessable(message: impl Into<String>) -> AppError {
    AppError::Unprocessable(message.into())
}

impl LeadChange {
    /// Reads an edit from a JSON object. `extra` names fields the caller
    /// handles itself (the bulk endpoint's `ids`); `deactivate` is accepted
    /// only when `bulk` is set. Unknown fields are rejected, so a typo never
    /// passes as a no-op.
    pub fn from_json(
        body: &Map<String, Value>,
        bulk: bool,
        extra: &[&str],
    ) -> Result<LeadChange, AppError> {
        let mut change = LeadChange::default();
        let mut add = None;
        let mut remove = None;
        for (field, value) in body {
            match field.as_str() {
                "status" => change.status = Some(vocabulary("status", value)?),
                "priority" => change.priority = Some(vocabulary("priority", value)?),
                "value" => change.value = Some(money(value)?),
                "tags" => change.tags = TagEdit::Replace(tag_set("tags", value)?),
                "add_tags" => add = Some(tag_set("add_tags", value)?),
                "remove_tags" => remove = Some(tag_set("remove_tags", value)?),
                "assigned_to" => change.assigned_to = Some(assignee(value)?),
                "next_follow_up_at" => {
                    change.next_follow_up_at = Some(nullable(value, |v| {
                        v.as_str().and_then(parse_instant).ok_or_else(|| {
                            unprocessable(format!(
                                "next_follow_up_at must be an RFC 3339 time with an offset \
                                 (e.g. \"2026-11-23T09:00:00Z\") or null, got {v}"
                            ))
                        })
                    })?)
                }
                "deactivate" if bulk => {
                    change.deactivate = match value {
                        Value::Bool(true) => true,
                        other => {
                            return Err(unprocessable(format!(
                                "deactivate must be true (leave it out otherwise), got {other}"
                            )))
                        }
                    }
                }
                name if extra.contains(&name) => {}
                unknown => {
                    let mut allowed: Vec<&str> = extra.to_vec();
                    allowed.extend(EDIT_FIELDS);
                    if bulk {
                        allowed.push("deactivate");
                    }
                    return Err(unprocessable(format!(
                        "unknown field '{unknown}'; allowed fields: {}",
                        allowed.join(", ")
                    )));
                }
            }
        }
        if add.is_some() || remove.is_some() {
            if change.tags != TagEdit::Keep {
                return Err(unprocessable(
                    "send either tags (the whole set) or add_tags/remove_tags, not both",
                ));
            }
            let (add, remove) = (add.unwrap_or_default(), remove.unwrap_or_default());
            if let Some(both) = add.intersection(&remove).next() {
                return Err(unprocessable(format!(
                    "tag '{both}' is in both add_tags and remove_tags"
                )));
            }
            change.tags = TagEdit::Edit { add, remove };
        }
        if change == LeadChange::default() {
            let mut fields: Vec<&str> = EDIT_FIELDS.to_vec();
            if bulk {
                fields.push("deactivate");
            }
            return Err(unprocessable(format!(
                "nothing to change: send at least one of {}",
                fields.join(", ")
            )));
        }
        Ok(change)
    }
}

/// An RFC 3339 time with an explicit offset, as UTC at microsecond precision
/// (what both databases store).
pub fn parse_instant(text: &str) -> Option<NaiveDateTime> {
    let parsed = DateTime::parse_from_rfc3339(text.trim()).ok()?;
    DateTime::from_timestamp_micros(parsed.timestamp_micros()).map(|t| t.naive_utc())
}

fn vocabulary<V: Vocabulary>(field: &str, value: &Value) -> Result<V, AppError> {
    match value.as_str() {
        Some(text) => V::parse_field(field, text).map_err(unprocessable),
        None => Err(unprocessable(format!(
            "{field} must be one of {}, got {value}",
            V::allowed()
        ))),
    }
}

fn nullable<T>(
    value: &Value,
    parse: impl FnOnce(&Value) -> Result<T, AppError>,
) -> Result<Option<T>, AppError> {
    match value {
        Value::Null => Ok(None),
        v => parse(v).map(Some),
    }
}

fn money(value: &Value) -> Result<Option<Money>, AppError> {
    const SHAPE: &str = "value must be {\"amount_minor\": <whole number ≥ 0>, \"currency\": \
                         <ISO 4217 code, 3 uppercase letters>} or null";
    nullable(value, |v| {
        let object = v
            .as_object()
            .ok_or_else(|| unprocessable(format!("{SHAPE}, got {v}")))?;
        if let Some(unknown) = object
            .keys()
            .find(|k| !matches!(k.as_str(), "amount_minor" | "currency"))
        {
            return Err(unprocessable(format!(
                "{SHAPE}; unknown field value.{unknown}"
            )));
        }
        let amount_minor = object
            .get("amount_minor")
            .and_then(Value::as_i64)
            .filter(|n| *n >= 0)
            .ok_or_else(|| {
                unprocessable(format!(
                    "value.amount_minor must be a whole number ≥ 0 (minor units, e.g. cents), got {}",
                    object.get("amount_minor").unwrap_or(&Value::Null)
                ))
            })?;
        let currency = object
            .get("currency")
            .and_then(Value::as_str)
            .filter(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()))
            .ok_or_else(|| {
                unprocessable(format!(
                    "value.currency must be an ISO 4217 code of 3 uppercase letters (e.g. \"EUR\"), got {}",
                    object.get("currency").unwrap_or(&Value::Null)
                ))
            })?;
        Ok(Money {
            amount_minor,
            currency: currency.to_string(),
        })
    })
}

fn tag_set(field: &str, value: &Value) -> Result<BTreeSet<String>, AppError> {
    let items = value.as_array().ok_or_else(|| {
        unprocessable(format!(
            "{field} must be an array of tag strings, got {value}"
        ))
    })?;
    if items.len() > tags::MAX_TAGS_PER_LEAD {
        return Err(unprocessable(format!(
            "{field} holds {} tags; at most {}",
            items.len(),
            tags::MAX_TAGS_PER_LEAD
        )));
    }
    items
        .iter()
        .map(|item| match item.as_str() {
            Some(text) => tags::normalise(text).map_err(|e| unprocessable(format!("{field}: {e}"))),
            None => Err(unprocessable(format!(
                "{field} must be an array of tag strings, got {item} in it"
            ))),
        })
        .collect()
}

fn assignee(value: &Value) -> Result<Option<String>, AppError> {
    nullable(value, |v| {
        v.as_str()
            .map(str::trim)
            .filter(|s| (1..=MAX_ASSIGNEE_CHARS).contains(&s.chars().count()))
            .map(str::to_string)
            .ok_or_else(|| {
                unprocessable(format!(
                    "assigned_to must be a staff id of 1 to {MAX_ASSIGNEE_CHARS} characters, \
                     or null to unassign, got {v}"
                ))
            })
    })
}

/// Who made a change, and whether it came through the bulk endpoint; both
/// go into every timeline entry it writes.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub actor: Option<String>,
    pub bulk: bool,
}

/// The result of applying an edit to one lead.
#[derive(Debug)]
pub enum Outcome {
    Updated(Lead),
    /// Every field already had the requested value.
    Unchanged(Lead),
}

/// Applies the edit to the lead: every rule is checked before anything is
/// written, so an edit is applied to a lead entirely or not at all.
pub fn apply(
    conn: &mut DbConnection,
    id: i64,
    change: &LeadChange,
    origin: &Origin,
    at: NaiveDateTime,
) -> Result<Outcome, AppError> {
    let mut lead = Lead::find(conn, id)?.ok_or_else(|| lead_not_found(id))?;
    if let Some(status) = change.status {
        check_transition(id, &lead.status, status)?;
    }
    let current_tags: BTreeSet<String> = tags::for_lead(conn, id)?.into_iter().collect();
    let wanted_tags = match &change.tags {
        TagEdit::Keep => current_tags.clone(),
        TagEdit::Replace(set) => set.clone(),
        TagEdit::Edit { add, remove } => current_tags
            .union(add)
            .filter(|t| !remove.contains(*t))
            .cloned()
            .collect(),
    };
    if wanted_tags.len() > tags::MAX_TAGS_PER_LEAD {
        return Err(unprocessable(format!(
            "lead {id} would have {} tags; at most {}",
            wanted_tags.len(),
            tags::MAX_TAGS_PER_LEAD
        )));
    }

    let mut events: Vec<(Kind, Value)> = Vec::new();
    if let Some(status) = change.status.filter(|s| s.name() != lead.status) {
        events.push((
            Kind::StatusChanged,
            json!({ "from": lead.status, "to": status.name() }),
        ));
        lead.status = status.name().to_string();
    }
    if let Some(priority) = change.priority.filter(|p| p.name() != lead.priority) {
        events.push((
            Kind::PriorityChanged,
            json!({ "from": lead.priority, "to": priority.name() }),
        ));
        lead.priority = priority.name().to_string();
    }
    if let Some(value) = change.value.as_ref().filter(|v| **v != Money::of(&lead)) {
        events.push((
            Kind::ValueChanged,
            json!({ "from": Money::to_json(&Money::of(&lead)), "to": Money::to_json(value) }),
        ));
        lead.value_minor = value.as_ref().map(|m| m.amount_minor);
        lead.value_currency = value.as_ref().map(|m| m.currency.clone());
    }
    if let Some(assignee) = change
        .assigned_to
        .as_ref()
        .filter(|a| **a != lead.assigned_to)
    {
        events.push((
            Kind::Assigned,
            json!({ "from": lead.assigned_to, "to": assignee }),
        ));
        lead.assigned_to = assignee.clone();
    }
    if let Some(when) = change
        .next_follow_up_at
        .filter(|w| *w != lead.next_follow_up_at)
    {
        let show = |t: Option<NaiveDateTime>| t.map(|t| crate::time::to_rfc3339(&t));
        events.push((
            Kind::FollowUpSet,
            json!({ "from": show(lead.next_follow_up_at), "to": show(when) }),
        ));
        lead.next_follow_up_at = when;
    }
    if change.deactivate && lead.is_active {
        events.push((Kind::Deactivated, json!({})));
        lead.is_active = false;
    }
    if wanted_tags != current_tags {
        let (added, removed) = tags::set(conn, id, &wanted_tags)?;
        events.push((
            Kind::TagsChanged,
            json!({ "added": added, "removed": removed }),
        ));
    }
    if events.is_empty() {
        return Ok(Outcome::Unchanged(lead));
    }
    lead.updated_at = at;
    lead.save(conn)?;
    for (kind, mut detail) in events {
        if origin.bulk {
            detail["bulk"] = Value::Bool(true);
        }
        activity::record(conn, id, kind, origin.actor.as_deref(), detail, at)?;
    }
    Ok(Outcome::Updated(lead))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: Value) -> Result<LeadChange, AppError> {
        LeadChange::from_json(body.as_object().unwrap(), false, &[])
    }

    fn message(result: Result<LeadChange, AppError>) -> String {
        match result {
            Err(AppError::Unprocessable(m)) => m,
            other => panic!("expected 422, got {other:?}"),
        }
    }

    #[test]
    fn reads_every_field() {
        let change = parse(json!({
            "status": "contacted", "priority": "high",
            "value": {"amount_minor": 150000, "currency": "EUR"},
            "add_tags": [" VIP "], "assigned_to": " alice ",
            "next_follow_up_at": "2026-11-23T10:00:00+01:00"
        }))
        .unwrap();
        assert_eq!(change.status, Some(Status::Contacted));
        assert_eq!(change.priority, Some(Priority::High));
        assert_eq!(change.value.unwrap().unwrap().amount_minor, 150000);
        assert_eq!(change.assigned_to, Some(Some("alice".into())));
        assert_eq!(
            change.next_follow_up_at.unwrap().unwrap().to_string(),
            "2026-11-23 09:00:00"
        );
        assert!(matches!(change.tags, TagEdit::Edit { ref add, .. } if add.contains("vip")));
        let cleared = parse(json!({"value": null, "assigned_to": null})).unwrap();
        assert_eq!(cleared.value, Some(None));
        assert_eq!(cleared.assigned_to, Some(None));
    }

    #[test]
    fn rejections_name_the_field() {
        assert!(message(parse(json!({"status": "won"}))).contains("new, contacted, qualified"));
        assert!(message(parse(json!({"colour": "red"}))).contains("unknown field 'colour'"));
        assert!(message(parse(json!({"deactivate": true}))).contains("'deactivate'"));
        assert!(message(parse(
            json!({"value": {"amount_minor": -1, "currency": "EUR"}})
        ))
        .contains("value.amount_minor"));
        assert!(message(parse(
            json!({"value": {"amount_minor": 1, "currency": "eur"}})
        ))
        .contains("value.currency"));
        assert!(message(parse(json!({"value": 5}))).contains("value must be"));
        assert!(message(parse(json!({"next_follow_up_at": "tomorrow"}))).contains("RFC 3339"));
        assert!(message(parse(json!({"assigned_to": ""}))).contains("assigned_to"));
        assert!(message(parse(json!({"tags": ["a"], "add_tags": ["b"]}))).contains("not both"));
        assert!(message(parse(json!({}))).contains("nothing to change"));
    }
}
