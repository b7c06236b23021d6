//! The write path of webhook events: everything webhook bodies change in the
//! database, applied by the single writer.
//!
//! Concurrent bodies are collected by the [`queue`] into one write. That
//! write first tries the set-based [`batch`] path (a handful of statements for
//! the whole batch); a batch that needs identity reconciliation, or fails,
//! is rolled back and applied body by body with [`apply`], each body in its
//! own savepoint so one bad body cannot sink the others.
//!
//! For each inbound message: store it unless its WhatsApp id is known (then
//! nothing else happens), skip registered students, find the sender's lead
//! (see [`identity`]) and fold the message into it (see [`fold`]).

pub mod batch;
pub mod fold;
pub mod identity;
pub mod queue;

use chrono::NaiveDateTime;
use diesel::{Connection, QueryResult};

use crate::conversations::NewMessage as ConversationEntry;
use crate::db::{Attempt, DbConnection};
use crate::failures;
use crate::leads::model::{Lead, NewLead};
use crate::messages;
use crate::students::Student;
use crate::time;
use crate::whatsapp::payload::{InboundMessage, ParsedBody};

pub use queue::Ingestor;

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

/// A parsed webhook body and the raw bytes it came from (kept for the
/// dead-letter table).
pub struct Body<'a> {
    pub parsed: &'a ParsedBody,
    pub raw: &'a [u8],
}

/// Applies several bodies in the caller's transaction, one answer per body
/// in the same order.
///
/// Guarded, a batch the set-based path declines or fails is rolled back to a
/// savepoint and applied body by body. Unguarded (no savepoint), such a batch is an
/// `Err`: the writer then rolls the transaction back and calls again, guarded.
pub fn apply_all(
    conn: &mut DbConnection,
    bodies: &[Body<'_>],
    attempt: Attempt,
) -> QueryResult<Vec<QueryResult<IngestReport>>> {
    let now = time::now();
    let set_based = |c: &mut DbConnection| match batch::apply(c, bodies, now)? {
        Some(reports) => Ok(reports),
        None => Err(diesel::result::Error::RollbackTransaction),
    };
    let fast = match attempt {
        // A failure goes back to the writer, which rolls back and calls again.
        Attempt::Unguarded => Ok(set_based(conn)?),
        Attempt::Guarded => conn.transaction(set_based),
    };
    Ok(match fast {
        Ok(reports) => reports.into_iter().map(Ok).collect(),
        Err(e) => {
            if !matches!(e, diesel::result::Error::RollbackTransaction) {
                log::debug!("batch ingest failed ({e}); applying body by body");
            }
            bodies
                .iter()
                .map(|body| conn.transaction(|c| apply(c, body, now)))
                .collect()
        }
    })
}

/// Applies one body, message by message. Messages the parser rejected are
/// dead-lettered together with the raw body, so an operator can see exactly
/// what came.
pub fn apply(
    conn: &mut DbConnection,
    body: &Body<'_>,
    now: NaiveDateTime,
) -> QueryResult<IngestReport> {
    let mut report = IngestReport::default();
    for message in &body.parsed.messages {
        apply_message(conn, message, now, &mut report)?;
    }
    apply_statuses_and_rejects(conn, body, now, &mut report)?;
    Ok(report)
}

/// The parts of a body that are not inbound messages; the same on both paths.
fn apply_statuses_and_rejects(
    conn: &mut DbConnection,
    body: &Body<'_>,
    now: NaiveDateTime,
    report: &mut IngestReport,
) -> QueryResult<()> {
    for status in &body.parsed.statuses {
        let at = status.timestamp.map(time::from_utc).unwrap_or(now);
        if messages::apply_status(conn, &status.wamid, &status.status, at)? {
            report.statuses_applied += 1;
        } else {
            report.statuses_ignored += 1;
        }
    }
    let rejects = &body.parsed.rejects;
    if !rejects.is_empty() {
        let reasons: Vec<&str> = rejects.iter().map(|r| r.reason.as_str()).collect();
        failures::record(conn, &reasons.join("; "), body.raw, now)?;
        report.dead_lettered = rejects.len();
    }
    Ok(())
}

fn apply_message(
    conn: &mut DbConnection,
    msg: &InboundMessage,
    now: NaiveDateTime,
    report: &mut IngestReport,
) -> QueryResult<()> {
    if !messages::insert_if_new(conn, &fold::message_row(msg, None, now))? {
        report.duplicates += 1;
        return Ok(());
    }
    report.stored.push(fold::conversation_entry(msg));

    let phone = msg.sender.phone().map(|p| p.as_str());
    let user_id = msg.sender.bsuid().map(|b| b.as_str());
    if Student::find_by_identity(conn, phone, user_id)?.is_some() {
        report.from_students += 1;
        return Ok(());
    }

    let existing = match &msg.changed_number {
        Some(change) => identity::apply_number_change(conn, &msg.sender, change, now, report)?,
        None => identity::resolve_lead(conn, &msg.sender, now, report)?,
    };
    let lead = match existing {
        Some(mut lead) => {
            let before = lead.clone();
            fold::fold_message(&mut lead, msg, now);
            lead.save_changes(&before, conn)?;
            lead
        }
        None => {
            report.leads_created += 1;
            Lead::insert(conn, &NewLead::from(&fold::start_lead(msg, now)))?
        }
    };
    messages::set_lead(conn, &msg.wamid, lead.id)
}
