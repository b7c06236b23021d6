//! Who a message belongs to: finding the sender's one lead by BSUID and phone
//! number, and the rarer identity events — attaching a newly seen identifier,
//! merging two leads that turn out to be one person, moving a recycled phone
//! number to its new owner, and `user_changed_number`.

use std::collections::BTreeSet;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::QueryResult;

use super::fold::rescore;
use super::IngestReport;
use crate::db::schema::{lead_activity, lead_notes};
use crate::db::DbConnection;
use crate::identity::SenderId;
use crate::leads::model::Lead;
use crate::leads::tags;
use crate::messages;
use crate::whatsapp::payload::ChangedNumber;
use crate::with_conn;

/// Finds the one lead of this sender, reconciling identifiers on the way.
/// `None` means the sender has no lead yet; the caller creates it.
pub fn resolve_lead(
    conn: &mut DbConnection,
    sender: &SenderId,
    now: NaiveDateTime,
    report: &mut IngestReport,
) -> QueryResult<Option<Lead>> {
    let bsuid = sender.bsuid().map(|b| b.as_str());
    let phone = sender.phone().map(|p| p.as_str());
    let by_bsuid = match bsuid {
        Some(b) => Lead::find_by_user_id(conn, b)?,
        None => None,
    };
    let by_phone = match phone {
        Some(p) => Lead::find_by_phone(conn, p)?,
        None => None,
    };
    match (by_bsuid, by_phone) {
        (None, None) => Ok(None),
        (Some(mut lead), None) => {
            // Same BSUID, a phone number this lead does not have yet (or a
            // new one): the BSUID is the person, the number follows them.
            if let Some(p) = phone {
                if lead.phone_number.as_deref() != Some(p) {
                    lead.phone_number = Some(p.to_string());
                    lead.save(conn)?;
                }
            }
            Ok(Some(lead))
        }
        (None, Some(mut lead)) => match (bsuid, lead.user_id.as_deref()) {
            (Some(b), None) => {
                lead.user_id = Some(b.to_string());
                lead.save(conn)?;
                Ok(Some(lead))
            }
            (Some(_), Some(_)) => {
                // The number belongs to a lead with another BSUID: the number
                // was recycled. It moves to the new person's (new) lead.
                release_phone(conn, &mut lead, now)?;
                Ok(None)
            }
            (None, _) => Ok(Some(lead)),
        },
        (Some(a), Some(b)) if a.id == b.id => Ok(Some(a)),
        (Some(mut owner), Some(mut other)) => {
            if other.user_id.is_none() {
                // A phone-only lead from before and a BSUID-only lead since:
                // one person. Merge into the older lead.
                report.leads_merged += 1;
                let mut lead = merge(conn, owner, other, now)?;
                // The number this message shows is the person's current one,
                // whichever lead it came from.
                if lead.phone_number.as_deref() != phone {
                    lead.phone_number = phone.map(str::to_string);
                    lead.save(conn)?;
                }
                Ok(Some(lead))
            } else {
                release_phone(conn, &mut other, now)?;
                owner.phone_number = phone.map(str::to_string);
                owner.save(conn)?;
                Ok(Some(owner))
            }
        }
    }
}

fn release_phone(conn: &mut DbConnection, lead: &mut Lead, now: NaiveDateTime) -> QueryResult<()> {
    lead.phone_number = None;
    lead.updated_at = now;
    lead.save(conn)
}

/// Pipeline stages from least to most advanced; a merge keeps the more
/// advanced one (`lost` is a decision, so it counts as advanced as `qualified`).
fn stage_rank(status: &str) -> u8 {
    match status {
        "new" => 0,
        "contacted" => 1,
        "qualified" | "lost" => 2,
        "converted" => 3,
        _ => 0,
    }
}

fn priority_rank(priority: &str) -> u8 {
    match priority {
        "high" => 2,
        "medium" => 1,
        _ => 0,
    }
}

/// Merges two leads of one person into the older one, in the caller's
/// transaction: counts added, first/last and attribution recomputed from the
/// stored messages, messages, tags, notes and activity moved, conversion and
/// student link kept, both identifiers kept, the staff's work on either lead
/// kept (the more advanced stage, the higher priority, whichever value,
/// assignee and follow-up is set, the earlier follow-up when both are).
fn merge(conn: &mut DbConnection, a: Lead, b: Lead, now: NaiveDateTime) -> QueryResult<Lead> {
    let (mut keep, gone) = if (a.created_at, a.id) <= (b.created_at, b.id) {
        (a, b)
    } else {
        (b, a)
    };
    // First and last over both leads' stored messages, by WhatsApp timestamp
    // and, on equal timestamps, by arrival (the same rule as for one lead).
    let (first, last) = messages::first_and_last(conn, &[keep.id, gone.id])?;
    let gone_is_newer = last.as_ref().is_some_and(|m| m.lead_id == Some(gone.id));
    messages::move_to_lead(conn, gone.id, keep.id)?;
    move_staff_records(conn, gone.id, keep.id)?;
    // Delete first: the kept lead is about to take over its unique identifiers.
    Lead::delete_with_messages(conn, gone.id)?;

    keep.message_count += gone.message_count;
    keep.interactive_replies += gone.interactive_replies;
    if let Some(m) = first {
        keep.first_message = m.body;
        keep.first_message_time = m.wa_timestamp;
        keep.source_type = m.referral_source_type;
        keep.source_id = m.referral_source_id;
        keep.source_url = m.referral_source_url;
        keep.source_headline = m.referral_headline;
        if m.business_phone_number_id.is_some() {
            keep.business_phone_number_id = m.business_phone_number_id;
        }
    }
    if let Some(m) = last {
        keep.last_message = m.body;
        keep.last_message_time = m.wa_timestamp;
    }
    for (mine, theirs) in [
        (&mut keep.phone_number, gone.phone_number),
        (&mut keep.user_id, gone.user_id),
        (&mut keep.parent_user_id, gone.parent_user_id),
        (&mut keep.username, gone.username),
        (&mut keep.sender_name, gone.sender_name),
    ] {
        if theirs.is_some() && (mine.is_none() || gone_is_newer) {
            *mine = theirs;
        }
    }
    keep.is_active |= gone.is_active;
    if !keep.converted_to_student && gone.converted_to_student {
        keep.converted_to_student = true;
        keep.student_id = gone.student_id;
    }
    if stage_rank(&gone.status) > stage_rank(&keep.status) {
        keep.status = gone.status;
    }
    keep.converted_at = earliest(keep.converted_at, gone.converted_at);
    if priority_rank(&gone.priority) > priority_rank(&keep.priority) {
        keep.priority = gone.priority;
    }
    if keep.value_minor.is_none() {
        keep.value_minor = gone.value_minor;
        keep.value_currency = gone.value_currency;
    }
    if keep.assigned_to.is_none() {
        keep.assigned_to = gone.assigned_to;
    }
    keep.next_follow_up_at = earliest(keep.next_follow_up_at, gone.next_follow_up_at);
    keep.updated_at = now;
    rescore(&mut keep, false);
    keep.save(conn)?;
    Ok(keep)
}

fn earliest(a: Option<NaiveDateTime>, b: Option<NaiveDateTime>) -> Option<NaiveDateTime> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

/// Moves what staff recorded on a lead (tags, notes, activity) to another.
fn move_staff_records(conn: &mut DbConnection, from: i64, to: i64) -> QueryResult<()> {
    let mut union: BTreeSet<String> = tags::for_lead(conn, to)?.into_iter().collect();
    union.extend(tags::for_lead(conn, from)?);
    tags::set(conn, to, &union)?;
    with_conn!(conn, c => {
        diesel::update(lead_notes::table.filter(lead_notes::lead_id.eq(from)))
            .set(lead_notes::lead_id.eq(to))
            .execute(c)?;
        diesel::update(lead_activity::table.filter(lead_activity::lead_id.eq(from)))
            .set(lead_activity::lead_id.eq(to))
            .execute(c)?;
        QueryResult::Ok(())
    })
}

/// `user_changed_number`: the person's lead takes the new number (and new
/// BSUID, if given); its history stays. Returns that lead, on which the
/// system message itself is then counted.
pub fn apply_number_change(
    conn: &mut DbConnection,
    sender: &SenderId,
    change: &ChangedNumber,
    now: NaiveDateTime,
    report: &mut IngestReport,
) -> QueryResult<Option<Lead>> {
    let Some(mut lead) = resolve_lead(conn, sender, now, report)? else {
        return Ok(None);
    };
    if let Some(new_phone) = change.new_phone.as_ref().map(|p| p.as_str()) {
        if lead.phone_number.as_deref() != Some(new_phone) {
            if let Some(mut holder) = Lead::find_by_phone(conn, new_phone)? {
                release_phone(conn, &mut holder, now)?;
            }
            lead.phone_number = Some(new_phone.to_string());
        }
    }
    if let Some(new_bsuid) = change.new_bsuid.as_ref().map(|b| b.as_str()) {
        if lead.user_id.as_deref() != Some(new_bsuid) {
            if let Some(holder) = Lead::find_by_user_id(conn, new_bsuid)? {
                // The new BSUID already wrote to us: that lead is this person.
                report.leads_merged += 1;
                lead.save(conn)?;
                lead = merge(conn, lead, holder, now)?;
            }
            lead.user_id = Some(new_bsuid.to_string());
        }
    }
    lead.updated_at = now;
    lead.save(conn)?;
    Ok(Some(lead))
}
