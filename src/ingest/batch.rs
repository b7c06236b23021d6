//! The set-based write path: all bodies of a batch in a handful of
//! statements — one look-up of which messages are new, one of the senders'
//! students and leads, the lead changes worked out in memory, then one
//! multi-row insert of new leads, one update for the changed leads (per set
//! of changed columns) and one multi-row insert of the messages.
//!
//! It handles the everyday case: messages from known or new senders whose
//! identifiers do not move between leads. Anything else — an identity
//! change announced by a system message, two leads that turn out to be one
//! person, a recycled number, an identifier passing from one lead to another
//! inside the batch — makes [`apply`] decline (`Ok(None)`), and the caller
//! rolls back and applies the batch body by body, where those rules live.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDateTime;
use diesel::QueryResult;

use super::{apply_statuses_and_rejects, fold, Body, IngestReport};
use crate::db::DbConnection;
use crate::leads::model::{Lead, NewLead};
use crate::messages::{self, NewMessage};
use crate::students::Student;
use crate::whatsapp::payload::InboundMessage;

/// A lead as the batch sees it: one already stored, or one this batch creates.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum LeadRef {
    Stored(i64),
    Created(usize),
}

/// One new message and where it goes.
struct Placed<'a> {
    msg: &'a InboundMessage,
    /// `None` for messages from registered students.
    lead: Option<LeadRef>,
}

/// The leads of the batch's senders, indexed by identifier, with the
/// changes the batch makes to them.
#[derive(Default)]
struct Book {
    stored: HashMap<i64, Lead>,
    /// The stored leads as read: what differs from them is what gets written.
    originals: HashMap<i64, Lead>,
    /// Leads this batch creates, as rows without an id yet.
    created: Vec<Lead>,
    by_phone: HashMap<String, LeadRef>,
    by_bsuid: HashMap<String, LeadRef>,
    /// Identifiers a lead gave up in this batch: another lead taking one
    /// would need the updates ordered, which the per-body path does.
    released: HashSet<String>,
}

/// Applies the bodies, or returns `None` (having written nothing that the
/// caller's rollback would not undo) when the batch needs the per-body path.
pub fn apply(
    conn: &mut DbConnection,
    bodies: &[Body<'_>],
    now: NaiveDateTime,
) -> QueryResult<Option<Vec<IngestReport>>> {
    let mut reports: Vec<IngestReport> = bodies.iter().map(|_| IngestReport::default()).collect();

    // Messages seen earlier in the batch are redeliveries.
    let mut seen = HashSet::new();
    let mut candidates = Vec::new();
    for (index, body) in bodies.iter().enumerate() {
        for msg in &body.parsed.messages {
            if msg.changed_number.is_some() {
                return Ok(None);
            }
            if seen.insert(msg.wamid.as_str()) {
                candidates.push((index, msg));
            } else {
                reports[index].duplicates += 1;
            }
        }
    }

    let wamids: Vec<&str> = candidates.iter().map(|(_, m)| m.wamid.as_str()).collect();
    let known = messages::known_wamids(conn, &wamids)?;
    let mut fresh = Vec::with_capacity(candidates.len());
    for (index, msg) in candidates {
        if known.contains(&msg.wamid) {
            reports[index].duplicates += 1;
        } else {
            fresh.push((index, msg));
        }
    }

    let phones: Vec<&str> = unique(
        fresh
            .iter()
            .filter_map(|(_, m)| m.sender.phone().map(|p| p.as_str())),
    );
    let bsuids: Vec<&str> = unique(
        fresh
            .iter()
            .filter_map(|(_, m)| m.sender.bsuid().map(|b| b.as_str())),
    );
    let (student_phones, student_bsuids) = students_among(conn, &phones, &bsuids)?;
    let mut book = Book::default();
    if !phones.is_empty() || !bsuids.is_empty() {
        for lead in Lead::find_by_identities(conn, &phones, &bsuids)? {
            book.index(
                LeadRef::Stored(lead.id),
                lead.phone_number.as_deref(),
                lead.user_id.as_deref(),
            );
            book.originals.insert(lead.id, lead.clone());
            book.stored.insert(lead.id, lead);
        }
    }

    let mut placed = Vec::with_capacity(fresh.len());
    for (index, msg) in fresh {
        let report = &mut reports[index];
        report.stored.push(fold::conversation_entry(msg));
        let phone = msg.sender.phone().map(|p| p.as_str());
        let bsuid = msg.sender.bsuid().map(|b| b.as_str());
        let is_student = phone.is_some_and(|p| student_phones.contains(p))
            || bsuid.is_some_and(|b| student_bsuids.contains(b));
        if is_student {
            report.from_students += 1;
            placed.push(Placed { msg, lead: None });
            continue;
        }
        let Some((lead, created)) = book.place(msg, now) else {
            return Ok(None);
        };
        if created {
            report.leads_created += 1;
        }
        placed.push(Placed {
            msg,
            lead: Some(lead),
        });
    }

    // Existing leads first: they only take identifiers no stored lead holds,
    // and the new leads' identifiers are held by no stored lead either.
    // A lead the batch left as it was is not written.
    let changed: Vec<(&Lead, &Lead)> = book
        .stored
        .iter()
        .map(|(id, lead)| (&book.originals[id], lead))
        .collect();
    Lead::save_changes_many(conn, &changed)?;
    let created_ids = insert_created(conn, &book.created)?;
    let rows: Vec<NewMessage<'_>> = placed
        .iter()
        .map(|p| {
            let lead_id = p.lead.map(|lead| match lead {
                LeadRef::Stored(id) => id,
                LeadRef::Created(n) => created_ids[n],
            });
            fold::message_row(p.msg, lead_id, now)
        })
        .collect();
    if messages::insert_new(conn, &rows)? != rows.len() {
        // Someone stored one of these since we looked: let the per-body path
        // sort out which.
        return Ok(None);
    }
    for (index, body) in bodies.iter().enumerate() {
        apply_statuses_and_rejects(conn, body, now, &mut reports[index])?;
    }
    Ok(Some(reports))
}

fn unique<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = HashSet::new();
    items.filter(|i| seen.insert(*i)).collect()
}

fn students_among(
    conn: &mut DbConnection,
    phones: &[&str],
    bsuids: &[&str],
) -> QueryResult<(HashSet<String>, HashSet<String>)> {
    let mut by_phone = HashSet::new();
    let mut by_bsuid = HashSet::new();
    if phones.is_empty() && bsuids.is_empty() {
        return Ok((by_phone, by_bsuid));
    }
    for (phone, bsuid) in Student::identities_among(conn, phones, bsuids)? {
        by_phone.extend(phone);
        by_bsuid.extend(bsuid);
    }
    Ok((by_phone, by_bsuid))
}

/// Inserts the batch's new leads; their ids in creation order.
fn insert_created(conn: &mut DbConnection, created: &[Lead]) -> QueryResult<Vec<i64>> {
    if created.is_empty() {
        return Ok(Vec::new());
    }
    let new: Vec<NewLead<'_>> = created.iter().map(NewLead::from).collect();
    let rows = Lead::insert_many(conn, &new)?;
    // Every new lead has a BSUID or a phone number, each unique.
    let mut by_bsuid = HashMap::new();
    let mut by_phone = HashMap::new();
    for (id, phone, bsuid) in rows {
        if let Some(b) = bsuid {
            by_bsuid.insert(b, id);
        } else if let Some(p) = phone {
            by_phone.insert(p, id);
        }
    }
    created
        .iter()
        .map(|new| {
            let id = match (&new.user_id, &new.phone_number) {
                (Some(b), _) => by_bsuid.get(b),
                (None, Some(p)) => by_phone.get(p),
                (None, None) => None,
            };
            id.copied().ok_or(diesel::result::Error::NotFound)
        })
        .collect()
}

impl Book {
    fn index(&mut self, lead: LeadRef, phone: Option<&str>, bsuid: Option<&str>) {
        if let Some(p) = phone {
            self.by_phone.insert(p.to_string(), lead);
        }
        if let Some(b) = bsuid {
            self.by_bsuid.insert(b.to_string(), lead);
        }
    }

    /// Finds or creates (`true`) the lead of `msg` and counts the message on
    /// it; `None` when that takes an identity rule of the per-body path.
    fn place(&mut self, msg: &InboundMessage, now: NaiveDateTime) -> Option<(LeadRef, bool)> {
        let phone = msg.sender.phone().map(|p| p.as_str());
        let bsuid = msg.sender.bsuid().map(|b| b.as_str());
        let by_bsuid = bsuid.and_then(|b| self.by_bsuid.get(b).copied());
        let by_phone = phone.and_then(|p| self.by_phone.get(p).copied());
        let lead = match (by_bsuid, by_phone) {
            (None, None) => {
                if [phone, bsuid]
                    .iter()
                    .flatten()
                    .any(|i| self.released.contains(*i))
                {
                    return None;
                }
                let lead = LeadRef::Created(self.created.len());
                self.created.push(fold::start_lead(msg, now));
                self.index(lead, phone, bsuid);
                return Some((lead, true));
            }
            (Some(lead), None) => {
                // The BSUID is the person; a number not seen before follows them.
                if let Some(p) = phone {
                    if self.released.contains(p) {
                        return None;
                    }
                    self.take_phone(lead, p);
                }
                lead
            }
            (None, Some(lead)) => match bsuid {
                Some(b) => {
                    if self.bsuid_of(lead).is_some() || self.released.contains(b) {
                        // A recycled number (the lead has another BSUID).
                        return None;
                    }
                    self.take_bsuid(lead, b);
                    lead
                }
                None => lead,
            },
            (Some(a), Some(b)) if a == b => a,
            // Two leads for one message: a merge or a recycled number.
            (Some(_), Some(_)) => return None,
        };
        fold::fold_message(self.row(lead), msg, now);
        Some((lead, false))
    }

    fn row(&mut self, lead: LeadRef) -> &mut Lead {
        match lead {
            LeadRef::Stored(id) => self.stored.get_mut(&id).expect("indexed lead"),
            LeadRef::Created(n) => &mut self.created[n],
        }
    }

    fn bsuid_of(&self, lead: LeadRef) -> Option<&str> {
        match lead {
            LeadRef::Stored(id) => self.stored[&id].user_id.as_deref(),
            LeadRef::Created(n) => self.created[n].user_id.as_deref(),
        }
    }

    fn take_phone(&mut self, lead: LeadRef, phone: &str) {
        let old = self.row(lead).phone_number.replace(phone.to_string());
        if let Some(old) = old.filter(|o| o != phone) {
            self.by_phone.remove(&old);
            self.released.insert(old);
        }
        self.by_phone.insert(phone.to_string(), lead);
    }

    fn take_bsuid(&mut self, lead: LeadRef, bsuid: &str) {
        self.row(lead).user_id = Some(bsuid.to_string());
        self.by_bsuid.insert(bsuid.to_string(), lead);
    }
}

#[cfg(test)]
mod tests {
    use diesel::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::db::{schema::leads, test_pool, DbPool};
    use crate::whatsapp::payload::{parse, ParsedBody};

    fn text(wamid: &str, phone: Option<&str>, bsuid: Option<&str>, at: i64) -> ParsedBody {
        let mut message = json!({
            "id": wamid, "timestamp": at.to_string(), "type": "text", "text": {"body": wamid}
        });
        if let Some(p) = phone {
            message["from"] = json!(p);
        }
        if let Some(b) = bsuid {
            message["from_user_id"] = json!(b);
        }
        let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
            "field": "messages",
            "value": {"metadata": {"phone_number_id": "106540352242922"}, "messages": [message]}
        }]}]});
        parse(body.to_string().as_bytes()).unwrap()
    }

    /// Runs the set-based path alone (in a transaction that is kept).
    fn run(pool: &DbPool, bodies: &[ParsedBody]) -> Option<Vec<IngestReport>> {
        let mut conn = pool.get().unwrap();
        let bodies: Vec<Body<'_>> = bodies
            .iter()
            .map(|parsed| Body { parsed, raw: b"{}" })
            .collect();
        conn.transaction(|c| apply(c, &bodies, crate::time::now()))
            .unwrap()
    }

    fn lead_rows(pool: &DbPool) -> Vec<(Option<String>, Option<String>, i64)> {
        let mut conn = pool.get().unwrap();
        crate::with_conn!(&mut *conn, c => leads::table
            .select((leads::phone_number, leads::user_id, leads::message_count))
            .order(leads::id)
            .load(c))
        .unwrap()
    }

    const T: i64 = 1_779_012_345;

    #[test]
    fn everyday_batches_take_the_set_based_path() {
        let dir = tempfile::tempdir().unwrap();
        let pool = test_pool(&dir);
        let first = [
            text("w1", Some("16505550001"), Some("US.1000000000000000001"), T),
            text("w2", Some("16505550002"), None, T),
            // Same sender twice and a redelivery inside one batch.
            text(
                "w3",
                Some("16505550001"),
                Some("US.1000000000000000001"),
                T + 1,
            ),
            text("w1", Some("16505550001"), Some("US.1000000000000000001"), T),
        ];
        let reports = run(&pool, &first).expect("no identity rule needed");
        assert_eq!(reports.iter().map(|r| r.leads_created).sum::<usize>(), 2);
        assert_eq!(reports[3].duplicates, 1);
        // Known senders, an identifier attached, a redelivery of a stored message.
        let second = [
            text("w4", None, Some("US.1000000000000000001"), T + 2),
            text(
                "w5",
                Some("16505550002"),
                Some("US.1000000000000000002"),
                T + 2,
            ),
            text("w2", Some("16505550002"), None, T),
        ];
        let reports = run(&pool, &second).expect("no identity rule needed");
        assert_eq!(reports[2].duplicates, 1);
        assert_eq!(
            lead_rows(&pool),
            [
                (
                    Some("16505550001".into()),
                    Some("US.1000000000000000001".into()),
                    3
                ),
                (
                    Some("16505550002".into()),
                    Some("US.1000000000000000002".into()),
                    2
                ),
            ]
        );
    }

    #[test]
    fn identity_rules_are_left_to_the_per_body_path() {
        let dir = tempfile::tempdir().unwrap();
        let pool = test_pool(&dir);
        run(
            &pool,
            &[
                text("w1", Some("16505550001"), None, T),
                text("w2", None, Some("US.1000000000000000001"), T),
                text("w3", Some("16505550003"), Some("US.1000000000000000003"), T),
            ],
        )
        .unwrap();
        // Phone-only and BSUID-only leads shown to be one person: a merge.
        assert!(run(
            &pool,
            &[text(
                "w4",
                Some("16505550001"),
                Some("US.1000000000000000001"),
                T
            )]
        )
        .is_none());
        // A number held by a lead with another BSUID: recycled.
        assert!(run(
            &pool,
            &[text(
                "w5",
                Some("16505550003"),
                Some("US.1000000000000000009"),
                T
            )]
        )
        .is_none());
        // A number moving between leads inside one batch.
        assert!(run(
            &pool,
            &[
                text("w6", Some("16505550007"), Some("US.1000000000000000003"), T),
                text("w7", Some("16505550003"), Some("US.1000000000000000008"), T),
            ]
        )
        .is_none());
    }
}
