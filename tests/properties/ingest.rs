//! The ingest write path: any batch of valid messages, delivered at least
//! once, in any order, split into webhook bodies any way, leaves the leads
//! consistent with the messages stored.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use leadhook::config::{DatabaseTarget, SqliteSynchronous};
use leadhook::db::schema::{leads, messages, webhook_failures};
use leadhook::db::{build_pool, run_migrations, Attempt, DbConnection, DbPool};
use leadhook::ingest::{apply_all, Body, IngestReport};
use leadhook::leads::Lead;
use leadhook::whatsapp::payload::{parse, InboundMessage, ParsedBody};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;
use serde_json::{json, Value};

use crate::config;

/// 2026-05-17T06:40:00Z: every generated message is sent within a day of it.
const BASE_SECONDS: i64 = 1_779_000_000;
/// Most messages in one generated batch (each delivered 1 to 3 times).
const MAX_MESSAGES: usize = 25;
/// Message ids are drawn from this many, so ids repeat within a batch.
const ID_POOL: usize = 30;
const MAX_DELIVERIES: usize = MAX_MESSAGES * 3;

/// A person writing to the business: a phone number, a BSUID or both.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Person {
    phone: Option<String>,
    bsuid: Option<String>,
}

impl Person {
    /// True when `phone`/`bsuid` (a message's sender) could be this person.
    fn covers(&self, phone: Option<&str>, bsuid: Option<&str>) -> bool {
        (phone.is_none() || phone == self.phone.as_deref())
            && (bsuid.is_none() || bsuid == self.bsuid.as_deref())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    PhoneOnly,
    BsuidOnly,
    Both,
}

/// One to three persons. With `shared_phones`, phone numbers come from a pool of
/// two, so different BSUIDs come with the same (recycled) number;
/// otherwise every phone number and BSUID belongs to one person only.
fn persons(shared_phones: bool) -> impl Strategy<Value = Vec<Person>> {
    let who = prop_oneof![
        1 => Just(Who::PhoneOnly),
        1 => Just(Who::BsuidOnly),
        3 => Just(Who::Both),
    ];
    prop::collection::vec((who, 0..2usize), 1..=3).prop_map(move |people| {
        people
            .into_iter()
            .enumerate()
            .map(|(i, (who, slot))| {
                let phone = if shared_phones {
                    format!("4477009001{slot:02}")
                } else {
                    format!("1650555{:04}", 1000 + i)
                };
                Person {
                    phone: (who != Who::BsuidOnly).then_some(phone),
                    bsuid: (who != Who::PhoneOnly).then(|| format!("US.134912086553027{i:05}")),
                }
            })
            .collect()
    })
}

#[derive(Debug, Clone)]
enum Kind {
    Text(String),
    Image(Option<String>),
    Reaction(&'static str),
    /// Latitude and longitude in thousandths of a degree, and a place name.
    Location(i32, i32, Option<String>),
    Unsupported(&'static str),
}

impl Kind {
    fn strategy() -> impl Strategy<Value = Kind> {
        prop_oneof![
            3 => "[A-Za-zé😀][A-Za-z0-9 é😀!?]{0,30}".prop_map(Kind::Text),
            1 => prop::option::of("[A-Za-z][A-Za-z ]{0,15}").prop_map(Kind::Image),
            1 => prop::sample::select(&["👍", "❤️", "😂"][..]).prop_map(Kind::Reaction),
            1 => (-90_000..=90_000, -180_000..=180_000, prop::option::of("[A-Za-z]{1,12}"))
                .prop_map(|(lat, lng, name)| Kind::Location(lat, lng, name)),
            1 => prop::sample::select(&["poll_creation", "ephemeral", "unknown"][..])
                .prop_map(Kind::Unsupported),
        ]
    }

    fn type_name(&self) -> &'static str {
        match self {
            Kind::Text(_) => "text",
            Kind::Image(_) => "image",
            Kind::Reaction(_) => "reaction",
            Kind::Location(..) => "location",
            Kind::Unsupported(t) => t,
        }
    }

    fn degrees(thousandths: i32) -> serde_json::Number {
        serde_json::Number::from_f64(f64::from(thousandths) / 1000.0).expect("finite")
    }

    /// The type's own object in Meta's JSON.
    fn object(&self) -> Value {
        match self {
            Kind::Text(body) => json!({"body": body}),
            Kind::Image(Some(caption)) => {
                json!({"caption": caption, "mime_type": "image/jpeg", "id": "1"})
            }
            Kind::Image(None) => json!({"mime_type": "image/jpeg", "id": "1"}),
            Kind::Reaction(emoji) => json!({"message_id": "wamid.earlier", "emoji": emoji}),
            Kind::Location(lat, lng, name) => json!({
                "latitude": Self::degrees(*lat), "longitude": Self::degrees(*lng), "name": name
            }),
            Kind::Unsupported(_) => json!({"anything": [1, 2, 3]}),
        }
    }

    /// The summary the contract specifies for it.
    fn summary(&self) -> String {
        match self {
            Kind::Text(body) => body.clone(),
            Kind::Image(Some(caption)) => caption.clone(),
            Kind::Image(None) => "[image]".to_owned(),
            Kind::Reaction(emoji) => format!("[reaction: {emoji}]"),
            Kind::Location(lat, lng, None) => {
                format!(
                    "[location: {},{}]",
                    Self::degrees(*lat),
                    Self::degrees(*lng)
                )
            }
            Kind::Location(lat, lng, Some(name)) => format!(
                "[location: {},{} {name}]",
                Self::degrees(*lat),
                Self::degrees(*lng)
            ),
            Kind::Unsupported(_) => "[unsupported]".to_owned(),
        }
    }
}

/// One message as generated; `person` and `shows` are resolved against the
/// pool (a person without a phone cannot show one).
#[derive(Debug, Clone)]
struct MsgSpec {
    id: usize,
    person: Index,
    /// 0: phone only, 1: BSUID only, 2: both (when the person has them).
    shows: u8,
    /// A BSUID-only sender's BSUID in `from`, as relays do.
    relay: bool,
    offset: u32,
    kind: Kind,
    name: Option<String>,
}

fn msg_spec() -> impl Strategy<Value = MsgSpec> {
    (
        0..ID_POOL,
        any::<Index>(),
        // Mostly one identifier, so separate leads form before a message
        // with both merges them.
        prop_oneof![2 => Just(0u8), 2 => Just(1u8), 1 => Just(2u8)],
        any::<bool>(),
        // Anywhere in a day, often one of a few instants, so ties occur.
        prop_oneof![
            2 => 0..86_400u32,
            1 => prop::sample::select(&[0u32, 1, 43_200, 86_399][..]),
        ],
        Kind::strategy(),
        // A profile name sometimes (its contact can add the sender's other
        // identifier, which would make most merges happen inside a body).
        prop::option::weighted(
            0.25,
            prop::sample::select(&["Ada", "Grace", "Linus", " Ken "][..]),
        ),
    )
        .prop_map(|(id, person, shows, relay, offset, kind, name)| MsgSpec {
            id,
            person,
            shows,
            relay,
            offset,
            kind,
            name: name.map(str::to_owned),
        })
}

/// A batch: the senders, the messages, and how they are delivered.
#[derive(Debug, Clone)]
struct Plan {
    persons: Vec<Person>,
    messages: Vec<MsgSpec>,
    /// How often each message is delivered (WhatsApp retries).
    copies: Vec<u8>,
    /// Fisher-Yates swaps that shuffle the deliveries.
    swaps: Vec<Index>,
    /// After which delivery a webhook body ends.
    breaks: Vec<bool>,
    /// Which entry/change of its body a delivery goes into.
    groups: Vec<u8>,
    /// After which body a write (one batch of the ingest queue) ends.
    write_breaks: Vec<bool>,
}

fn plan(shared_phones: bool) -> impl Strategy<Value = Plan> {
    (
        persons(shared_phones),
        prop::collection::vec(msg_spec(), 1..=MAX_MESSAGES),
        prop::collection::vec(prop_oneof![3 => Just(1u8), 1 => 2..=3u8], MAX_MESSAGES),
        prop::collection::vec(any::<Index>(), MAX_DELIVERIES),
        prop::collection::vec(prop::bool::weighted(0.3), MAX_DELIVERIES),
        prop::collection::vec(0..3u8, MAX_DELIVERIES),
        prop::collection::vec(prop::bool::weighted(0.4), MAX_DELIVERIES),
    )
        .prop_map(
            |(persons, messages, copies, swaps, breaks, groups, write_breaks)| Plan {
                persons,
                messages,
                copies,
                swaps,
                breaks,
                groups,
                write_breaks,
            },
        )
}

/// A message ready to be written into a body.
#[derive(Debug, Clone)]
struct Resolved {
    wamid: String,
    phone: Option<String>,
    bsuid: Option<String>,
    relay: bool,
    timestamp: i64,
    kind: Kind,
    name: Option<String>,
}

impl Resolved {
    fn new(spec: &MsgSpec, persons: &[Person]) -> Self {
        let person = &persons[spec.person.index(persons.len())];
        let (phone, bsuid) = match (&person.phone, &person.bsuid) {
            (Some(p), Some(b)) => match spec.shows {
                0 => (Some(p.clone()), None),
                1 => (None, Some(b.clone())),
                _ => (Some(p.clone()), Some(b.clone())),
            },
            (p, b) => (p.clone(), b.clone()),
        };
        Resolved {
            wamid: format!("wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQ{:04}", spec.id),
            phone,
            bsuid,
            relay: spec.relay,
            timestamp: BASE_SECONDS + i64::from(spec.offset),
            kind: spec.kind.clone(),
            name: spec.name.clone(),
        }
    }

    fn message_json(&self) -> Value {
        let mut m = json!({
            "id": self.wamid,
            "timestamp": self.timestamp.to_string(),
            "type": self.kind.type_name(),
        });
        m[self.kind.type_name()] = self.kind.object();
        match (&self.phone, &self.bsuid) {
            (Some(p), Some(b)) => {
                m["from"] = json!(p);
                m["from_user_id"] = json!(b);
            }
            (Some(p), None) => m["from"] = json!(p),
            (None, Some(b)) if self.relay => m["from"] = json!(b),
            (None, Some(b)) => m["from_user_id"] = json!(b),
            (None, None) => unreachable!("every person has an identifier"),
        }
        m
    }

    fn contact_json(&self) -> Option<Value> {
        let name = self.name.as_ref()?;
        let mut c = json!({"profile": {"name": name}});
        if let Some(p) = &self.phone {
            c["wa_id"] = json!(p);
        }
        if let Some(b) = &self.bsuid {
            c["user_id"] = json!(b);
        }
        Some(c)
    }
}

/// The bodies of a plan, and for each body the messages in the order
/// `parse` must return them.
fn bodies(plan: &Plan) -> Vec<(Vec<u8>, Vec<Resolved>)> {
    let resolved: Vec<Resolved> = plan
        .messages
        .iter()
        .map(|m| Resolved::new(m, &plan.persons))
        .collect();
    let mut deliveries: Vec<usize> = (0..resolved.len())
        .flat_map(|i| std::iter::repeat_n(i, usize::from(plan.copies[i])))
        .collect();
    for i in (1..deliveries.len()).rev() {
        let j = plan.swaps[i].index(i + 1);
        deliveries.swap(i, j);
    }
    let mut out = Vec::new();
    let mut current: [Vec<usize>; 3] = Default::default();
    for (k, &d) in deliveries.iter().enumerate() {
        current[usize::from(plan.groups[k] % 3)].push(d);
        if plan.breaks[k] || k + 1 == deliveries.len() {
            out.push(body(&std::mem::take(&mut current), &resolved));
        }
    }
    out
}

fn body(groups: &[Vec<usize>; 3], resolved: &[Resolved]) -> (Vec<u8>, Vec<Resolved>) {
    let change = |group: &[usize]| {
        let messages: Vec<Value> = group.iter().map(|&i| resolved[i].message_json()).collect();
        let mut contacts: Vec<Value> = Vec::new();
        for c in group.iter().filter_map(|&i| resolved[i].contact_json()) {
            if !contacts.contains(&c) {
                contacts.push(c);
            }
        }
        json!({"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
            "contacts": contacts,
            "messages": messages,
        }})
    };
    // Group 0 and 1 are two changes of the first entry, group 2 a second entry.
    let mut entries = Vec::new();
    let first: Vec<Value> = groups[..2]
        .iter()
        .filter(|g| !g.is_empty())
        .map(|g| change(g))
        .collect();
    if !first.is_empty() {
        entries.push(json!({"id": "102290129340398", "changes": first}));
    }
    if !groups[2].is_empty() {
        entries.push(json!({"id": "102290129340399", "changes": [change(&groups[2])]}));
    }
    let root = json!({"object": "whatsapp_business_account", "entry": entries});
    let order = groups
        .iter()
        .flatten()
        .map(|&i| resolved[i].clone())
        .collect();
    (serde_json::to_vec_pretty(&root).expect("serialise"), order)
}

/// What a stored message looked like when first delivered.
#[derive(Debug, Clone)]
struct Stored {
    phone: Option<String>,
    bsuid: Option<String>,
    summary: String,
    timestamp: NaiveDateTime,
}

/// What the database holds after a batch.
struct Outcome {
    leads: Vec<Lead>,
    /// wamid → (lead id, body, WhatsApp timestamp).
    messages: BTreeMap<String, (Option<i64>, String, NaiveDateTime)>,
    failures: i64,
}

/// Parses every body (checking the parse against what was generated) and
/// applies them on a fresh SQLite database, several bodies per write as the
/// ingest queue groups concurrent webhooks (so both the set-based path and
/// the body-by-body path run). Returns the messages in application order and
/// what the database holds.
fn ingest(plan: &Plan) -> Result<(Vec<InboundMessage>, Outcome), TestCaseError> {
    let (_dir, pool) = fresh_database();
    let mut conn = pool.get().expect("connection");
    let mut applied = Vec::new();
    let mut pending: Vec<(Vec<u8>, ParsedBody)> = Vec::new();
    let all = bodies(plan);
    let count = all.len();
    for (n, (raw, expected)) in all.into_iter().enumerate() {
        let parsed = parse(&raw).expect("a generated body parses");
        prop_assert_eq!(&parsed.rejects, &vec![]);
        prop_assert_eq!(parsed.messages.len(), expected.len());
        for (m, want) in parsed.messages.iter().zip(&expected) {
            check_parsed(m, want, &plan.persons)?;
        }
        applied.extend(parsed.messages.iter().cloned());
        pending.push((raw, parsed));
        if plan.write_breaks[n] || n + 1 == count {
            for result in apply_write(&mut conn, &pending) {
                prop_assert!(result.is_ok(), "ingest failed: {:?}", result.err());
            }
            pending.clear();
        }
    }
    let outcome = read_back(&mut conn).expect("read back");
    Ok((applied, outcome))
}

/// A migrated SQLite database in a fresh temporary directory (deleted when
/// the returned guard drops).
fn fresh_database() -> (tempfile::TempDir, DbPool) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("properties.db");
    let target = DatabaseTarget::Sqlite(path.to_string_lossy().into_owned());
    let pool = build_pool(
        &target,
        SqliteSynchronous::Normal,
        2,
        Duration::from_secs(5),
        false,
    )
    .expect("pool");
    run_migrations(&mut pool.get().expect("connection")).expect("migrations");
    (dir, pool)
}

/// Applies bodies as one write of the ingest queue does when it is alone in
/// the writer's batch: set-based without a savepoint in a transaction of its
/// own, and when that declines, rolled back and applied again guarded.
fn apply_write(
    conn: &mut DbConnection,
    bodies: &[(Vec<u8>, ParsedBody)],
) -> Vec<Result<IngestReport, diesel::result::Error>> {
    let bodies: Vec<Body<'_>> = bodies
        .iter()
        .map(|(raw, parsed)| Body { parsed, raw })
        .collect();
    conn.transaction(|c| apply_all(c, &bodies, Attempt::Unguarded))
        .or_else(|_| conn.transaction(|c| apply_all(c, &bodies, Attempt::Guarded)))
        .expect("the write commits")
}

/// The parser read the generated message faithfully. Its sender may have
/// gained an identifier from the contact of the same person (Meta lists one
/// contact per sender), never one no person has.
fn check_parsed(
    m: &InboundMessage,
    want: &Resolved,
    persons: &[Person],
) -> Result<(), TestCaseError> {
    prop_assert_eq!(&m.wamid, &want.wamid);
    prop_assert_eq!(m.timestamp.timestamp(), want.timestamp);
    prop_assert_eq!(&m.summary, &want.kind.summary());
    prop_assert_eq!(m.message_type.as_str(), want.kind.type_name());
    let phone = m.sender.phone().map(|p| p.as_str());
    let bsuid = m.sender.bsuid().map(|b| b.as_str());
    prop_assert!(
        want.phone.is_none() || want.phone.as_deref() == phone,
        "{:?} {:?}",
        m,
        want
    );
    prop_assert!(
        want.bsuid.is_none() || want.bsuid.as_deref() == bsuid,
        "{:?} {:?}",
        m,
        want
    );
    prop_assert!(
        persons.iter().any(|p| p.covers(phone, bsuid)),
        "{:?} {:?}",
        m,
        want
    );
    Ok(())
}

fn read_back(conn: &mut DbConnection) -> QueryResult<Outcome> {
    let leads = leadhook::with_conn!(conn, c => leads::table
        .select(Lead::as_select())
        .order(leads::id)
        .load(c))?;
    let rows: Vec<(String, Option<i64>, String, NaiveDateTime)> = leadhook::with_conn!(conn, c => messages::table
        .select((messages::wamid, messages::lead_id, messages::body, messages::wa_timestamp))
        .load(c))?;
    let failures = leadhook::with_conn!(conn, c => webhook_failures::table.count().get_result(c))?;
    Ok(Outcome {
        leads,
        messages: rows
            .into_iter()
            .map(|(wamid, lead, body, at)| (wamid, (lead, body, at)))
            .collect(),
        failures,
    })
}

/// The first delivery of each id decides what is stored; later deliveries
/// of the id (retries, or another message reusing it) change nothing.
fn first_deliveries(applied: &[InboundMessage]) -> BTreeMap<String, Stored> {
    let mut stored = BTreeMap::new();
    for m in applied {
        stored.entry(m.wamid.clone()).or_insert_with(|| Stored {
            phone: m.sender.phone().map(|p| p.as_str().to_owned()),
            bsuid: m.sender.bsuid().map(|b| b.as_str().to_owned()),
            summary: m.summary.clone(),
            timestamp: m.timestamp.naive_utc(),
        });
    }
    stored
}

/// A lead as identifiers plus the ids of the messages on it.
type Shape = (Option<String>, Option<String>, BTreeSet<String>);

/// The invariants that hold for every pool: exactly-once storage, counts,
/// first/last by WhatsApp timestamp, unique identifiers.
fn check_invariants(
    stored: &BTreeMap<String, Stored>,
    db: &Outcome,
) -> Result<BTreeMap<i64, BTreeSet<String>>, TestCaseError> {
    prop_assert_eq!(db.failures, 0, "nothing was dead-lettered");
    // Every distinct id is stored once, as first delivered, on a lead.
    prop_assert_eq!(
        db.messages.keys().collect::<Vec<_>>(),
        stored.keys().collect::<Vec<_>>()
    );
    let lead_ids: BTreeSet<i64> = db.leads.iter().map(|l| l.id).collect();
    let mut on_lead: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
    for (wamid, (lead, body, at)) in &db.messages {
        let want = &stored[wamid];
        prop_assert_eq!(body, &want.summary, "{} stored as first delivered", wamid);
        prop_assert_eq!(at, &want.timestamp, "{}", wamid);
        let lead = lead.ok_or_else(|| TestCaseError::fail(format!("{wamid} has no lead")))?;
        prop_assert!(
            lead_ids.contains(&lead),
            "{} points at a missing lead",
            wamid
        );
        on_lead.entry(lead).or_default().insert(wamid.clone());
    }

    let total: i64 = db.leads.iter().map(|l| l.message_count).sum();
    prop_assert_eq!(total, stored.len() as i64, "total message_count");
    let mut phones = BTreeSet::new();
    let mut bsuids = BTreeSet::new();
    for lead in &db.leads {
        let ids = on_lead.get(&lead.id).cloned().unwrap_or_default();
        prop_assert_eq!(
            lead.message_count,
            ids.len() as i64,
            "message_count of {:?}",
            lead
        );
        prop_assert!(!ids.is_empty(), "lead without messages: {:?}", lead);
        prop_assert!(
            lead.phone_number.is_some() || lead.user_id.is_some(),
            "{:?}",
            lead
        );
        if let Some(p) = &lead.phone_number {
            prop_assert!(phones.insert(p.clone()), "two leads with phone {}", p);
        }
        if let Some(b) = &lead.user_id {
            prop_assert!(bsuids.insert(b.clone()), "two leads with BSUID {}", b);
        }
        // first/last: the message with the least/greatest WhatsApp
        // timestamp (any of them on a tie).
        let times = ids.iter().map(|w| stored[w].timestamp);
        let (least, greatest) = (times.clone().min(), times.max());
        let summaries_at = |t: Option<NaiveDateTime>| -> Vec<&str> {
            ids.iter()
                .filter(|w| Some(stored[*w].timestamp) == t)
                .map(|w| stored[w].summary.as_str())
                .collect()
        };
        prop_assert_eq!(
            Some(lead.last_message_time),
            greatest,
            "last time of {:?}",
            lead
        );
        prop_assert!(
            summaries_at(greatest).contains(&lead.last_message.as_str()),
            "last_message {:?} of lead {} is not one of {:?}",
            lead.last_message,
            lead.id,
            summaries_at(greatest)
        );
        prop_assert_eq!(
            Some(lead.first_message_time),
            least,
            "first time of {:?}",
            lead
        );
        prop_assert!(
            summaries_at(least).contains(&lead.first_message.as_str()),
            "first_message {:?} of lead {} is not one of {:?}",
            lead.first_message,
            lead.id,
            summaries_at(least)
        );
    }
    Ok(on_lead)
}

fn shapes(db: &Outcome, on_lead: &BTreeMap<i64, BTreeSet<String>>) -> Vec<Shape> {
    let mut shapes: Vec<Shape> = db
        .leads
        .iter()
        .map(|l| {
            (
                l.phone_number.clone(),
                l.user_id.clone(),
                on_lead.get(&l.id).cloned().unwrap_or_default(),
            )
        })
        .collect();
    shapes.sort();
    shapes
}

/// With every phone number and BSUID belonging to one person: a person
/// whose two identifiers ever came together in a stored message has exactly
/// one lead, with both identifiers and all their messages; otherwise their
/// phone-only and BSUID-only messages sit on (at most) two separate leads.
fn expected_shapes_for_distinct_persons(
    persons: &[Person],
    stored: &BTreeMap<String, Stored>,
) -> Vec<Shape> {
    let mut shapes = Vec::new();
    for person in persons {
        let mine: Vec<(&String, &Stored)> = stored
            .iter()
            .filter(|(_, s)| person.covers(s.phone.as_deref(), s.bsuid.as_deref()))
            .collect();
        let ids = |keep: &dyn Fn(&Stored) -> bool| -> BTreeSet<String> {
            mine.iter()
                .filter(|(_, s)| keep(s))
                .map(|(w, _)| (*w).clone())
                .collect()
        };
        if mine
            .iter()
            .any(|(_, s)| s.phone.is_some() && s.bsuid.is_some())
        {
            shapes.push((person.phone.clone(), person.bsuid.clone(), ids(&|_| true)));
        } else {
            let by_phone = ids(&|s| s.phone.is_some());
            let by_bsuid = ids(&|s| s.bsuid.is_some());
            if !by_phone.is_empty() {
                shapes.push((person.phone.clone(), None, by_phone));
            }
            if !by_bsuid.is_empty() {
                shapes.push((None, person.bsuid.clone(), by_bsuid));
            }
        }
    }
    shapes.sort();
    shapes
}

/// README's identity rules as a reference model over identifiers:
/// 3. found by BSUID first, then phone; a missing identifier is attached;
/// 4. a BSUID lead and a phone-only lead of one message merge (into the
///    older, keeping both identifiers and all messages);
/// 5. a phone held by a lead with another BSUID moves to the sender's lead.
#[derive(Debug, Default)]
struct Model {
    leads: Vec<ModelLead>,
    created: usize,
    seen: BTreeSet<String>,
}

#[derive(Debug)]
struct ModelLead {
    /// Creation order: the smaller is the older lead.
    created: usize,
    phone: Option<String>,
    bsuid: Option<String>,
    wamids: BTreeSet<String>,
}

impl Model {
    fn apply(&mut self, m: &InboundMessage) {
        if !self.seen.insert(m.wamid.clone()) {
            return;
        }
        let phone = m.sender.phone().map(|p| p.as_str().to_owned());
        let bsuid = m.sender.bsuid().map(|b| b.as_str().to_owned());
        let by_bsuid = bsuid
            .as_ref()
            .and_then(|b| self.leads.iter().position(|l| l.bsuid.as_ref() == Some(b)));
        let by_phone = phone
            .as_ref()
            .and_then(|p| self.leads.iter().position(|l| l.phone.as_ref() == Some(p)));
        let at = match (by_bsuid, by_phone) {
            (None, None) => self.create(phone, bsuid),
            (Some(i), None) => {
                if phone.is_some() {
                    self.leads[i].phone = phone;
                }
                i
            }
            (None, Some(j)) => match (&bsuid, &self.leads[j].bsuid) {
                (Some(_), None) => {
                    self.leads[j].bsuid = bsuid;
                    j
                }
                (Some(_), Some(_)) => {
                    self.leads[j].phone = None;
                    self.create(phone, bsuid)
                }
                (None, _) => j,
            },
            (Some(i), Some(j)) if i == j => i,
            (Some(i), Some(j)) if self.leads[j].bsuid.is_none() => {
                let (keep, gone) = if self.leads[i].created < self.leads[j].created {
                    (i, j)
                } else {
                    (j, i)
                };
                let keep = if keep > gone { keep - 1 } else { keep };
                let gone = self.leads.remove(gone);
                let lead = &mut self.leads[keep];
                lead.wamids.extend(gone.wamids);
                lead.phone = phone;
                lead.bsuid = bsuid;
                keep
            }
            (Some(i), Some(j)) => {
                self.leads[j].phone = None;
                self.leads[i].phone = phone;
                i
            }
        };
        self.leads[at].wamids.insert(m.wamid.clone());
    }

    fn create(&mut self, phone: Option<String>, bsuid: Option<String>) -> usize {
        self.created += 1;
        self.leads.push(ModelLead {
            created: self.created,
            phone,
            bsuid,
            wamids: BTreeSet::new(),
        });
        self.leads.len() - 1
    }

    fn shapes(self) -> Vec<Shape> {
        let mut shapes: Vec<Shape> = self
            .leads
            .into_iter()
            .map(|l| (l.phone, l.bsuid, l.wamids))
            .collect();
        shapes.sort();
        shapes
    }
}

proptest! {
    #![proptest_config(config(128))]

    /// Senders with their own phone number and/or BSUID (phone-only,
    /// BSUID-only and both, so merges happen), ids drawn with repeats,
    /// each message delivered 1-3 times, shuffled and split into bodies:
    /// every lead's message_count is the number of distinct ids on it and
    /// they add up to the distinct ids delivered, first/last follow the
    /// WhatsApp timestamp, no phone or BSUID is on two leads, and each
    /// person has exactly the leads the identity rules give.
    #[test]
    fn ingest_keeps_leads_consistent_for_any_delivery_order(plan in plan(false)) {
        let (applied, db) = ingest(&plan)?;
        let stored = first_deliveries(&applied);
        let on_lead = check_invariants(&stored, &db)?;
        prop_assert_eq!(
            shapes(&db, &on_lead),
            expected_shapes_for_distinct_persons(&plan.persons, &stored)
        );
    }

    /// README: "On equal timestamps the later arrival is the last
    /// message." For every lead, `last_message` is the summary of the
    /// message that arrived last among those with the greatest timestamp
    /// (also when the tied messages were on two leads that merged).
    #[test]
    fn equal_timestamps_the_later_arrival_is_last(plan in plan(false)) {
        let (applied, db) = ingest(&plan)?;
        let stored = first_deliveries(&applied);
        let on_lead = check_invariants(&stored, &db)?;
        let mut seen = BTreeSet::new();
        let arrival: Vec<&str> = applied
            .iter()
            .filter(|m| seen.insert(m.wamid.as_str()))
            .map(|m| m.wamid.as_str())
            .collect();
        for lead in &db.leads {
            let ids = &on_lead[&lead.id];
            let latest = arrival
                .iter()
                .rev()
                .find(|w| ids.contains(**w) && stored[**w].timestamp == lead.last_message_time)
                .expect("the lead's last time is one of its messages'");
            prop_assert_eq!(
                &lead.last_message,
                &stored[*latest].summary,
                "lead {} should end with {} (arrived last at {})",
                lead.id,
                latest,
                lead.last_message_time
            );
        }
    }

    /// Phone numbers shared between persons with different BSUIDs (a
    /// recycled number): the same invariants hold, each BSUID has one lead,
    /// a phone number sits on the lead of the BSUID that most recently (by
    /// arrival) came with it, or on a BSUID-less lead if none ever did, and
    /// the leads are exactly those of the README's identity rules.
    #[test]
    fn recycled_numbers_follow_the_bsuid(plan in plan(true)) {
        let (applied, db) = ingest(&plan)?;
        let stored = first_deliveries(&applied);
        let on_lead = check_invariants(&stored, &db)?;

        let mut holder: BTreeMap<&str, Option<&str>> = BTreeMap::new();
        let mut seen = BTreeSet::new();
        for m in &applied {
            if !seen.insert(m.wamid.as_str()) {
                continue; // a redelivery changes nothing
            }
            if let Some(p) = m.sender.phone() {
                let with = m.sender.bsuid().map(|b| b.as_str());
                let slot = holder.entry(p.as_str()).or_insert(None);
                if with.is_some() {
                    *slot = with;
                }
            }
        }
        for (phone, bsuid) in &holder {
            let lead = db.leads.iter().find(|l| l.phone_number.as_deref() == Some(*phone));
            prop_assert!(lead.is_some(), "nobody holds {}", phone);
            prop_assert_eq!(lead.and_then(|l| l.user_id.as_deref()), *bsuid, "holder of {}", phone);
        }

        let mut model = Model::default();
        for m in &applied {
            model.apply(m);
        }
        prop_assert_eq!(shapes(&db, &on_lead), model.shapes());
    }
}

/// A body with one text message from `phone` and/or `bsuid`.
fn text_body(
    id: &str,
    phone: Option<&str>,
    bsuid: Option<&str>,
    seconds: i64,
    text: &str,
) -> Vec<u8> {
    let mut message = json!({"id": id, "timestamp": seconds.to_string(), "type": "text",
                             "text": {"body": text}});
    if let Some(p) = phone {
        message["from"] = json!(p);
    }
    if let Some(b) = bsuid {
        message["from_user_id"] = json!(b);
    }
    serde_json::to_vec(
        &json!({"object": "whatsapp_business_account", "entry": [{"id": "1",
        "changes": [{"field": "messages", "value": {"messages": [message]}}]}]}),
    )
    .expect("serialise")
}

/// The minimal case of `equal_timestamps_the_later_arrival_is_last`: a
/// phone-only lead and a BSUID-only lead whose last messages have the same
/// timestamp merge when an older message shows both identifiers. The
/// BSUID-only lead's message arrived later, so by README it is the last.
#[test]
fn merge_keeps_the_later_arrival_as_last_on_equal_timestamps() {
    const PHONE: &str = "16505551234";
    const BSUID: &str = "US.13491208655302741918";
    let (_dir, pool) = fresh_database();
    let mut conn = pool.get().expect("connection");
    for raw in [
        text_body("wamid.1", Some(PHONE), None, BASE_SECONDS, "first arrival"),
        text_body("wamid.2", None, Some(BSUID), BASE_SECONDS, "second arrival"),
        text_body(
            "wamid.3",
            Some(PHONE),
            Some(BSUID),
            BASE_SECONDS - 60,
            "older, both ids",
        ),
    ] {
        let parsed = parse(&raw).expect("parses");
        for result in apply_write(&mut conn, &[(raw, parsed)]) {
            result.expect("applies");
        }
    }
    let db = read_back(&mut conn).expect("read back");
    assert_eq!(db.leads.len(), 1, "{:?}", db.leads);
    let lead = &db.leads[0];
    assert_eq!(lead.message_count, 3);
    assert_eq!(lead.first_message, "older, both ids");
    assert_eq!(lead.last_message, "second arrival", "{lead:?}");
}
