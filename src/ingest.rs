//! The write path of webhook events: everything one webhook body changes in
//! the database, applied inside one transaction of the single writer.
//!
//! For each inbound message: store it unless its WhatsApp id is known (then
//! nothing else happens), skip registered students, find the sender's lead by
//! BSUID then phone number (attaching the missing identifier, merging two
//! leads that turn out to be one person, or moving a recycled phone number to
//! its new owner) and fold the message into the lead's counters.

use chrono::NaiveDateTime;
use diesel::QueryResult;

use crate::conversations::{ConversationMessage, NewMessage as ConversationEntry};
use crate::db::DbConnection;
use crate::failures;
use crate::identity::SenderId;
use crate::leads::model::{Lead, NewLead};
use crate::messages::{self, NewMessage};
use crate::students::Student;
use crate::time;
use crate::whatsapp::payload::{InboundMessage, ParsedBody};

/// What one body changed; `stored` feeds the conversation store after commit.
#[derive(Debug, Default)]
pub struct IngestReport {
    pub stored: Vec<ConversationEntry>,
    pub duplicates: usize,
    pub from_students: usize,
    pub leads_created: usize,
    pub leads_merged: usize,
    pub statuses_applied: usize,
    pub statuses_ignored: usize,
    pub dead_lettered: usize,
}

/// Applies a parsed body. Messages the parser rejected are dead-lettered
/// together with the raw body, so an operator can see exactly what came.
pub fn apply(conn: &mut DbConnection, body: &ParsedBody, raw: &[u8]) -> QueryResult<IngestReport> {
    let now = time::now();
    let mut report = IngestReport::default();
    for message in &body.messages {
        apply_message(conn, message, now, &mut report)?;
    }
    for status in &body.statuses {
        let at = status.timestamp.map(time::from_utc).unwrap_or(now);
        if messages::apply_status(conn, &status.wamid, &status.status, at)? {
            report.statuses_applied += 1;
        } else {
            report.statuses_ignored += 1;
        }
    }
    if !body.rejects.is_empty() {
        let reasons: Vec<&str> = body.rejects.iter().map(|r| r.reason.as_str()).collect();
        failures::record(conn, &reasons.join("; "), raw, now)?;
        report.dead_lettered = body.rejects.len();
    }
    Ok(report)
}

fn apply_message(
    conn: &mut DbConnection,
    msg: &InboundMessage,
    now: NaiveDateTime,
    report: &mut IngestReport,
) -> QueryResult<()> {
    let phone = msg.sender.phone().map(|p| p.as_str());
    let user_id = msg.sender.bsuid().map(|b| b.as_str());
    let wa_time = time::from_utc(msg.timestamp);
    let new = NewMessage {
        wamid: &msg.wamid,
        direction: "inbound",
        phone_number: phone,
        user_id,
        sender_name: msg.profile_name.as_deref(),
        business_phone_number_id: msg.business_phone_number_id.as_deref(),
        message_type: &msg.message_type,
        body: &msg.summary,
        wa_timestamp: wa_time,
        received_at: now,
    };
    if !messages::insert_if_new(conn, &new)? {
        report.duplicates += 1;
        return Ok(());
    }
    report.stored.push(conversation_entry(msg));

    if Student::find_by_identity(conn, phone, user_id)?.is_some() {
        report.from_students += 1;
        return Ok(());
    }

    let existing = match &msg.changed_number {
        Some(change) => apply_number_change(conn, &msg.sender, change, now, report)?,
        None => resolve_lead(conn, &msg.sender, now, report)?,
    };
    let lead = match existing {
        Some(mut lead) => {
            fold_message(&mut lead, msg, wa_time, now);
            lead.save(conn)?;
            lead
        }
        None => {
            report.leads_created += 1;
            Lead::insert(conn, &new_lead(msg, wa_time, now))?
        }
    };
    messages::set_lead(conn, &msg.wamid, lead.id)
}

fn conversation_entry(msg: &InboundMessage) -> ConversationEntry {
    ConversationEntry {
        key: msg.sender.conversation_key().to_string(),
        phone_number: msg.sender.phone().map(|p| p.as_str().to_string()),
        user_id: msg.sender.bsuid().map(|b| b.as_str().to_string()),
        username: msg.username.clone(),
        sender_name: msg.profile_name.clone(),
        message: ConversationMessage {
            wamid: msg.wamid.clone(),
            message_type: msg.message_type.clone(),
            text: msg.summary.clone(),
            timestamp: msg.timestamp,
        },
    }
}

fn new_lead<'a>(
    msg: &'a InboundMessage,
    wa_time: NaiveDateTime,
    now: NaiveDateTime,
) -> NewLead<'a> {
    NewLead {
        phone_number: msg.sender.phone().map(|p| p.as_str()),
        user_id: msg.sender.bsuid().map(|b| b.as_str()),
        parent_user_id: msg.parent_user_id.as_deref(),
        username: msg.username.as_deref(),
        sender_name: msg.profile_name.as_deref(),
        first_message: &msg.summary,
        first_message_time: wa_time,
        last_message: &msg.summary,
        last_message_time: wa_time,
        message_count: 1,
        is_active: true,
        converted_to_student: false,
        created_at: now,
        updated_at: now,
    }
}

/// Counts a new message on its lead. First and last follow WhatsApp's
/// timestamps, so a late-arriving older message never becomes `last_message`;
/// profile details follow the newest message that carries them.
fn fold_message(lead: &mut Lead, msg: &InboundMessage, wa_time: NaiveDateTime, now: NaiveDateTime) {
    let is_newest = wa_time >= lead.last_message_time;
    lead.message_count += 1;
    if wa_time < lead.first_message_time {
        lead.first_message = msg.summary.clone();
        lead.first_message_time = wa_time;
    }
    if is_newest {
        lead.last_message = msg.summary.clone();
        lead.last_message_time = wa_time;
    }
    refresh_profile(lead, msg, is_newest);
    lead.is_active = true;
    lead.updated_at = now;
}

fn refresh_profile(lead: &mut Lead, msg: &InboundMessage, is_newest: bool) {
    let take = |current: &mut Option<String>, incoming: &Option<String>| {
        if let Some(value) = incoming.as_ref().filter(|v| !v.trim().is_empty()) {
            if is_newest || current.is_none() {
                *current = Some(value.clone());
            }
        }
    };
    take(&mut lead.sender_name, &msg.profile_name);
    take(&mut lead.username, &msg.username);
    take(&mut lead.parent_user_id, &msg.parent_user_id);
}

/// Finds the one lead of this sender, reconciling identifiers on the way.
/// `None` means the sender has no lead yet; the caller creates it.
fn resolve_lead(
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

/// Merges two leads of one person into the older one, in the caller's
/// transaction: counts added, first/last recomputed by timestamp, messages
/// moved, conversion and student link kept, both identifiers kept.
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
    // Delete first: the kept lead is about to take over its unique identifiers.
    Lead::delete_with_messages(conn, gone.id)?;

    keep.message_count += gone.message_count;
    if let Some(m) = first {
        keep.first_message = m.body;
        keep.first_message_time = m.wa_timestamp;
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
    keep.updated_at = now;
    keep.save(conn)?;
    Ok(keep)
}

/// `user_changed_number`: the person's lead takes the new number (and new
/// BSUID, if given); its history stays. Returns that lead, on which the
/// system message itself is then counted.
fn apply_number_change(
    conn: &mut DbConnection,
    sender: &SenderId,
    change: &crate::whatsapp::payload::ChangedNumber,
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
