//! Reading an authentic webhook body into domain values.
//!
//! Meta's JSON is walked as a [`serde_json::Value`] rather than strict serde
//! structs on purpose: Meta adds fields and message types without notice,
//! relays bend types (numbers for strings), and one odd message must never
//! cost the other messages in the same body. Whatever cannot be read becomes
//! a [`Reject`] with a reason; only a body that is not a WhatsApp webhook at
//! all is an error, which the caller dead-letters whole.
//!
//! Positions in reject reasons are zero-based indexes into the JSON arrays.

use std::fmt;

use chrono::{DateTime, Datelike, Utc};
use serde_json::{Map, Value};

use crate::identity::{Bsuid, PhoneNumber, SenderId};

type Object = Map<String, Value>;

/// Longest summary kept; longer texts are cut at a character boundary.
pub const MAX_SUMMARY_CHARS: usize = 4096;
/// Longest message or status id accepted. Real wamids are under 100
/// characters; anything far longer is not one, and would bloat the unique
/// index it is stored in.
const MAX_ID_CHARS: usize = 256;
/// Longest message type or status kept (Meta's are short words).
const MAX_TYPE_CHARS: usize = 64;
/// Longest profile name or username kept.
const MAX_NAME_CHARS: usize = 256;
/// Longest referral URL kept.
const MAX_URL_CHARS: usize = 2048;
/// Longest raw value quoted back in a reject reason.
const MAX_QUOTED_CHARS: usize = 40;
/// The only `object` a WhatsApp Business Account webhook carries.
const EXPECTED_OBJECT: &str = "whatsapp_business_account";
/// The only change `field` that carries inbound messages and statuses.
const MESSAGES_FIELD: &str = "messages";
/// Inclusive range of plausible message years; anything else is a broken
/// clock or a milliseconds value, and would corrupt first/last ordering.
const YEARS: std::ops::RangeInclusive<i32> = 2000..=2100;
/// System message types that announce a new identity for the sender.
const IDENTITY_CHANGES: [&str; 2] = ["user_changed_number", "user_changed_user_id"];

/// Everything leadhook could read from one webhook body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedBody {
    /// Inbound messages, in body order.
    pub messages: Vec<InboundMessage>,
    /// Delivery statuses of outbound messages, in body order.
    pub statuses: Vec<StatusUpdate>,
    /// Parts of the body that could not be read, with the reason.
    pub rejects: Vec<Reject>,
}

/// One message a person sent to the business.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMessage {
    /// `messages[].id`, the `wamid.…` that makes redelivery idempotent.
    pub wamid: String,
    /// Who sent it: BSUID and/or phone number.
    pub sender: SenderId,
    /// Parent BSUID (`CC.ENT.…`) when Meta sent a valid one.
    pub parent_user_id: Option<String>,
    /// `contacts[].profile.username` of the sender, when non-empty.
    pub username: Option<String>,
    /// `contacts[].profile.name` of the sender, trimmed, when non-empty.
    pub profile_name: Option<String>,
    /// `value.metadata.phone_number_id`: which business number received it.
    pub business_phone_number_id: Option<String>,
    /// `messages[].type` as sent, or `"unknown"` when absent.
    pub message_type: String,
    /// Human-readable text of the message, at most [`MAX_SUMMARY_CHARS`].
    pub summary: String,
    /// WhatsApp's `timestamp` (when the person sent it).
    pub timestamp: DateTime<Utc>,
    /// Set for `system` messages that announce a new number or BSUID.
    pub changed_number: Option<ChangedNumber>,
    /// `messages[].referral`: the click-to-WhatsApp ad or post that started
    /// the conversation.
    pub referral: Option<Referral>,
}

/// Where a click-to-WhatsApp conversation came from (`messages[].referral`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referral {
    /// `source_type`: `ad`, `post`, … (`unknown` when absent).
    pub source_type: String,
    pub source_id: Option<String>,
    pub source_url: Option<String>,
    pub headline: Option<String>,
}

/// The new identity announced by a `user_changed_number` (or
/// `user_changed_user_id`) system message. At least one field is set.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChangedNumber {
    /// `system.wa_id` (`system.new_wa_id` before Graph API v12).
    pub new_phone: Option<PhoneNumber>,
    /// `system.user_id`: the BSUID that goes with the new identity.
    pub new_bsuid: Option<Bsuid>,
}

/// A delivery status (`sent`, `delivered`, `read`, `failed`, …) of a message
/// the business sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate {
    /// `statuses[].id`: the wamid of the outbound message.
    pub wamid: String,
    /// `statuses[].status` as sent.
    pub status: String,
    /// When the status happened, if the timestamp was readable.
    pub timestamp: Option<DateTime<Utc>>,
    /// `recipient_id` (phone), else `recipient_user_id` (BSUID).
    pub recipient: Option<String>,
}

/// A part of an authentic body that leadhook could not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// Names the message (by wamid or position) and what was wrong.
    pub reason: String,
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// The body as a whole is not a WhatsApp webhook leadhook understands.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    /// Not parseable as JSON (including nesting beyond serde_json's limit).
    #[error("body is not JSON: {0}")]
    NotJson(String),
    /// JSON, but not shaped like a WhatsApp Business Account webhook.
    #[error("body is not a WhatsApp webhook: {0}")]
    Shape(String),
}

/// Parses a signature-checked webhook body. Never panics.
pub fn parse(body: &[u8]) -> Result<ParsedBody, PayloadError> {
    let root: Value =
        serde_json::from_slice(body).map_err(|e| PayloadError::NotJson(e.to_string()))?;
    let root = root
        .as_object()
        .ok_or_else(|| shape("the top level is not a JSON object"))?;
    check_object_kind(root)?;
    let entries = root
        .get("entry")
        .and_then(Value::as_array)
        .ok_or_else(|| shape("there is no \"entry\" array"))?;
    let mut parsed = ParsedBody::default();
    for (index, entry) in entries.iter().enumerate() {
        read_entry(index, entry, &mut parsed);
    }
    Ok(parsed)
}

fn shape(why: impl Into<String>) -> PayloadError {
    PayloadError::Shape(why.into())
}

/// Only WhatsApp Business Account webhooks are understood; a Page or
/// Instagram webhook aimed at this URL is somebody's misconfiguration.
fn check_object_kind(root: &Object) -> Result<(), PayloadError> {
    match root.get("object") {
        Some(Value::String(kind)) if kind == EXPECTED_OBJECT => Ok(()),
        Some(Value::String(kind)) => Err(shape(format!(
            "\"object\" is {}, expected {EXPECTED_OBJECT:?}",
            quote(kind)
        ))),
        _ => Err(shape(format!(
            "\"object\" is missing, expected {EXPECTED_OBJECT:?}"
        ))),
    }
}

/// Where a change sits in the body, for reject reasons.
#[derive(Debug, Clone, Copy)]
struct Position {
    entry: usize,
    change: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "change {} of entry {}", self.change, self.entry)
    }
}

impl ParsedBody {
    fn reject(&mut self, reason: String) {
        self.rejects.push(Reject { reason });
    }
}

fn read_entry(index: usize, entry: &Value, out: &mut ParsedBody) {
    let Some(entry) = entry.as_object() else {
        return out.reject(format!("entry {index}: not an object"));
    };
    let Some(changes) = entry.get("changes").and_then(Value::as_array) else {
        return out.reject(format!("entry {index}: there is no \"changes\" array"));
    };
    for (change, value) in changes.iter().enumerate() {
        let at = Position {
            entry: index,
            change,
        };
        read_change(at, value, out);
    }
}

/// The parts of a change's `value` that every message in it shares.
struct ChangeContext<'a> {
    at: Position,
    business_phone_number_id: Option<String>,
    contacts: Vec<&'a Object>,
    /// True when the change holds exactly one message: only then can an
    /// unmatched lone contact be taken to be its sender.
    sole_message: bool,
}

fn read_change(at: Position, change: &Value, out: &mut ParsedBody) {
    let Some(change) = change.as_object() else {
        return out.reject(format!("{at}: not an object"));
    };
    match change.get("field").and_then(Value::as_str) {
        Some(MESSAGES_FIELD) => {}
        Some(other) => {
            // Template status updates, account updates and the like are
            // acknowledged and ignored by contract.
            log::debug!("{at}: ignoring webhook field {}", quote(other));
            return;
        }
        None => return out.reject(format!("{at}: there is no \"field\"")),
    }
    let Some(value) = change.get("value").and_then(Value::as_object) else {
        return out.reject(format!("{at}: \"value\" is not an object"));
    };
    let ctx = ChangeContext {
        at,
        business_phone_number_id: value
            .get("metadata")
            .and_then(|m| id_value(m.get("phone_number_id"))),
        contacts: objects_in(value.get("contacts")),
        sole_message: value
            .get("messages")
            .and_then(Value::as_array)
            .is_some_and(|m| m.len() == 1),
    };
    for_each_item(
        value,
        "messages",
        at,
        out,
        |index, raw, out| match read_message(&ctx, index, raw) {
            Ok(message) => out.messages.push(message),
            Err(reason) => out.reject(reason),
        },
    );
    for_each_item(
        value,
        "statuses",
        at,
        out,
        |index, raw, out| match read_status(at, index, raw) {
            Ok(status) => out.statuses.push(status),
            Err(reason) => out.reject(reason),
        },
    );
}

/// Calls `read` for every item of the array `value[key]`; an absent or
/// `null` key is simply empty, any other non-array is a reject.
fn for_each_item(
    value: &Object,
    key: &str,
    at: Position,
    out: &mut ParsedBody,
    mut read: impl FnMut(usize, &Value, &mut ParsedBody),
) {
    match value.get(key) {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (index, item) in items.iter().enumerate() {
                read(index, item, out);
            }
        }
        Some(_) => out.reject(format!("{at}: {key:?} is not an array")),
    }
}

/// The objects in an optional array; anything else yields nothing.
fn objects_in(value: Option<&Value>) -> Vec<&Object> {
    value
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_object).collect())
        .unwrap_or_default()
}

fn read_message(
    ctx: &ChangeContext<'_>,
    index: usize,
    raw: &Value,
) -> Result<InboundMessage, String> {
    let at = || format!("message #{index} of {}", ctx.at);
    let msg = raw
        .as_object()
        .ok_or_else(|| format!("{}: not an object", at()))?;
    let wamid = id_value(msg.get("id")).ok_or_else(|| format!("{}: missing id", at()))?;
    if wamid.chars().count() > MAX_ID_CHARS {
        return Err(format!(
            "{}: id is longer than {MAX_ID_CHARS} characters",
            at()
        ));
    }
    let named = |why: String| format!("message {wamid}: {why}");
    let timestamp = parse_timestamp(msg.get("timestamp")).map_err(named)?;
    let message_type = message_type_of(msg);

    let own_from = id_value(msg.get("from"));
    let own_user_id = id_value(msg.get("from_user_id"));
    let contact = find_contact(
        &ctx.contacts,
        ctx.sole_message,
        own_from.as_deref(),
        own_user_id.as_deref(),
    );
    let from = own_from
        .or_else(|| contact.and_then(|c| id_value(c.get("wa_id"))))
        .or_else(|| previous_id_in_system_body(&message_type, msg));
    let user_id = own_user_id.or_else(|| contact.and_then(|c| id_value(c.get("user_id"))));
    let sender = SenderId::from_wire(from.as_deref(), user_id.as_deref())
        .map_err(|e| named(e.to_string()))?;

    Ok(InboundMessage {
        parent_user_id: parent_user_id_of(msg, contact),
        username: profile_field(contact, "username")
            .or_else(|| non_empty(msg.get("username")).map(|u| cap(u, MAX_NAME_CHARS))),
        profile_name: profile_field(contact, "name"),
        business_phone_number_id: ctx.business_phone_number_id.clone(),
        summary: cap(&summarize(&message_type, msg), MAX_SUMMARY_CHARS),
        changed_number: changed_number_of(&message_type, msg),
        referral: referral_of(msg),
        message_type,
        timestamp,
        sender,
        wamid,
    })
}

/// The referral of a message from an ad or post. Meta sends it as an object;
/// anything else (or an empty object) is taken as no referral rather than a
/// reason to refuse the message.
fn referral_of(msg: &Object) -> Option<Referral> {
    let referral = msg.get("referral")?.as_object()?;
    let text = |key: &str, max: usize| non_empty(referral.get(key)).map(|v| cap(v, max));
    let source_id = id_value(referral.get("source_id")).map(|v| cap(&v, MAX_ID_CHARS));
    let source_url = text("source_url", MAX_URL_CHARS);
    let headline = text("headline", MAX_NAME_CHARS);
    let source_type = text("source_type", MAX_TYPE_CHARS);
    if source_type.is_none() && source_id.is_none() && source_url.is_none() && headline.is_none() {
        return None;
    }
    Some(Referral {
        source_type: source_type.unwrap_or_else(|| "unknown".to_string()),
        source_id,
        source_url,
        headline,
    })
}

fn read_status(at: Position, index: usize, raw: &Value) -> Result<StatusUpdate, String> {
    let here = || format!("status #{index} of {at}");
    let status = raw
        .as_object()
        .ok_or_else(|| format!("{}: not an object", here()))?;
    let wamid = id_value(status.get("id")).ok_or_else(|| format!("{}: missing id", here()))?;
    if wamid.chars().count() > MAX_ID_CHARS {
        return Err(format!(
            "{}: id is longer than {MAX_ID_CHARS} characters",
            here()
        ));
    }
    let kind =
        non_empty(status.get("status")).ok_or_else(|| format!("status {wamid}: missing status"))?;
    Ok(StatusUpdate {
        status: cap(kind, MAX_TYPE_CHARS),
        timestamp: parse_timestamp(status.get("timestamp")).ok(),
        recipient: id_value(status.get("recipient_id"))
            .or_else(|| id_value(status.get("recipient_user_id"))),
        wamid,
    })
}

/// An identifier-like value: a non-empty trimmed string, or an integer that
/// a relay sent unquoted.
fn id_value(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_owned),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

/// A string whose trimmed form is non-empty, returned untrimmed.
fn non_empty(value: Option<&Value>) -> Option<&str> {
    value
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

/// Unix seconds, as a string (Meta) or a number (some relays), within
/// [`YEARS`].
fn parse_timestamp(value: Option<&Value>) -> Result<DateTime<Utc>, String> {
    let seconds = match value {
        None | Some(Value::Null) => return Err("missing timestamp".to_owned()),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        Some(Value::Number(n)) => n.as_i64().or_else(|| whole_seconds(n.as_f64())),
        Some(_) => None,
    };
    let bad = || match value {
        Some(Value::String(s)) => format!("bad timestamp {}", quote(s)),
        Some(other) => format!("bad timestamp {}", quote(&other.to_string())),
        None => "missing timestamp".to_owned(),
    };
    let time = seconds
        .and_then(|s| DateTime::from_timestamp(s, 0))
        .ok_or_else(bad)?;
    if YEARS.contains(&time.year()) {
        Ok(time)
    } else {
        Err(format!(
            "{} is outside the years {} to {}",
            bad(),
            YEARS.start(),
            YEARS.end()
        ))
    }
}

/// A float that holds a whole number of seconds (`1779017003.0`).
fn whole_seconds(value: Option<f64>) -> Option<i64> {
    let v = value?;
    // The range check keeps the cast exact; NaN fails every comparison.
    let in_range = v.fract() == 0.0 && v >= i64::MIN as f64 && v < i64::MAX as f64;
    in_range.then_some(v as i64)
}

fn message_type_of(msg: &Object) -> String {
    match msg.get("type").and_then(Value::as_str) {
        Some(kind) if !kind.is_empty() => cap(kind, MAX_TYPE_CHARS),
        _ => "unknown".to_owned(),
    }
}

/// The contact entry that belongs to the message's sender.
///
/// Matched by `user_id` or `wa_id`. When nothing matches and the change has
/// exactly one message and one contact (the usual case: Meta sends one
/// contact per sender), that contact is used, unless its ids plainly belong
/// to someone else. With several messages an unmatched one is never guessed
/// onto another sender's contact.
fn find_contact<'a>(
    contacts: &[&'a Object],
    sole_message: bool,
    from: Option<&str>,
    user_id: Option<&str>,
) -> Option<&'a Object> {
    let sender_ids = [from, user_id];
    let matches = |contact: &Object| {
        let contact_ids = [
            id_value(contact.get("wa_id")),
            id_value(contact.get("user_id")),
        ];
        sender_ids.iter().flatten().any(|mine| {
            contact_ids
                .iter()
                .flatten()
                .any(|theirs| same_wire_id(mine, theirs))
        })
    };
    if let Some(found) = contacts.iter().find(|c| matches(c)) {
        return Some(found);
    }
    match contacts {
        [only] if sole_message && !contradicts(only, from, user_id) => Some(only),
        _ => None,
    }
}

/// True when the contact carries an id of the same kind that differs.
fn contradicts(contact: &Object, from: Option<&str>, user_id: Option<&str>) -> bool {
    let differs = |mine: Option<&str>, key: &str| match (mine, id_value(contact.get(key))) {
        (Some(mine), Some(theirs)) => !same_wire_id(mine, &theirs),
        _ => false,
    };
    differs(from, "wa_id") || differs(user_id, "user_id")
}

/// Equal as sent, or the same phone number spelled differently.
fn same_wire_id(a: &str, b: &str) -> bool {
    a == b
        || matches!(
            (PhoneNumber::parse(a), PhoneNumber::parse(b)),
            (Ok(x), Ok(y)) if x == y
        )
}

/// `from_parent_user_id`, else the contact's `parent_user_id`, if valid.
fn parent_user_id_of(msg: &Object, contact: Option<&Object>) -> Option<String> {
    id_value(msg.get("from_parent_user_id"))
        .or_else(|| contact.and_then(|c| id_value(c.get("parent_user_id"))))
        .and_then(|raw| Bsuid::parse(&raw).ok())
        .map(Bsuid::into_inner)
}

/// `contact.profile.<key>`, trimmed, non-empty, capped.
fn profile_field(contact: Option<&Object>, key: &str) -> Option<String> {
    let value = contact?.get("profile")?.get(key);
    non_empty(value).map(|s| cap(s.trim(), MAX_NAME_CHARS))
}

/// Identity-change system messages carry no `contacts`, and Meta omits
/// `from` for username users; their body still names the previous id
/// ("User X changed from <old> to <new>"), which is then the sender.
fn previous_id_in_system_body(message_type: &str, msg: &Object) -> Option<String> {
    if message_type != "system" {
        return None;
    }
    let system = msg.get("system")?;
    let kind = system.get("type").and_then(Value::as_str)?;
    if !IDENTITY_CHANGES.contains(&kind) {
        return None;
    }
    let body = system.get("body").and_then(Value::as_str)?;
    let (_, after) = body.rsplit_once(" changed from ")?;
    let (previous, _) = after.split_once(" to ")?;
    Some(previous.trim().to_owned()).filter(|p| !p.is_empty())
}

/// The new identity announced by an identity-change system message.
fn changed_number_of(message_type: &str, msg: &Object) -> Option<ChangedNumber> {
    if message_type != "system" {
        return None;
    }
    let system = msg.get("system")?.as_object()?;
    let kind = system.get("type").and_then(Value::as_str)?;
    if !IDENTITY_CHANGES.contains(&kind) {
        return None;
    }
    // `wa_id` since Graph API v12, `new_wa_id` before. A relay may put a
    // BSUID there when the number is withheld: never take it as a phone.
    let new_wa = id_value(system.get("wa_id")).or_else(|| id_value(system.get("new_wa_id")));
    let wa_bsuid = new_wa.as_deref().and_then(|raw| Bsuid::parse(raw).ok());
    let new_phone = match wa_bsuid {
        Some(_) => None,
        None => new_wa
            .as_deref()
            .and_then(|raw| PhoneNumber::parse(raw).ok()),
    };
    let new_bsuid = id_value(system.get("user_id"))
        .and_then(|raw| Bsuid::parse(&raw).ok())
        .or(wa_bsuid);
    (new_phone.is_some() || new_bsuid.is_some()).then_some(ChangedNumber {
        new_phone,
        new_bsuid,
    })
}

/// The text summary of a message. Known types whose own object is missing
/// or unreadable summarise as `[<type>]`; unknown types as `[unsupported]`.
fn summarize(kind: &str, msg: &Object) -> String {
    let own = msg.get(kind).and_then(Value::as_object);
    let summary = match kind {
        "text" => own
            .and_then(|o| non_empty(o.get("body")))
            .map(str::to_owned),
        "image" | "video" | "audio" | "sticker" => own.and_then(caption),
        "document" => own.and_then(document_summary),
        "location" => own.and_then(location_summary),
        "contacts" => contacts_summary(msg.get("contacts")),
        "interactive" => own.and_then(interactive_summary),
        "button" => own
            .and_then(|o| non_empty(o.get("text")))
            .map(str::to_owned),
        "reaction" => own.map(reaction_summary),
        "order" => own.map(order_summary),
        "system" => own
            .and_then(|o| non_empty(o.get("body")))
            .map(|body| format!("[system: {body}]")),
        _ => return "[unsupported]".to_owned(),
    };
    summary.unwrap_or_else(|| format!("[{kind}]"))
}

fn caption(media: &Object) -> Option<String> {
    non_empty(media.get("caption")).map(str::to_owned)
}

fn document_summary(document: &Object) -> Option<String> {
    caption(document).or_else(|| {
        non_empty(document.get("filename")).map(|name| format!("[document: {}]", name.trim()))
    })
}

fn location_summary(location: &Object) -> Option<String> {
    let lat = coordinate(location.get("latitude"))?;
    let lng = coordinate(location.get("longitude"))?;
    Some(match non_empty(location.get("name")) {
        Some(name) => format!("[location: {lat},{lng} {}]", name.trim()),
        None => format!("[location: {lat},{lng}]"),
    })
}

/// A coordinate as sent: a JSON number, or a numeric string from a relay.
fn coordinate(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .map(|_| s.to_owned())
        }
        _ => None,
    }
}

fn contacts_summary(cards: Option<&Value>) -> Option<String> {
    let names: Vec<String> = objects_in(cards)
        .into_iter()
        .filter_map(card_name)
        .collect();
    (!names.is_empty()).then(|| format!("[contacts: {}]", names.join(", ")))
}

/// `name.formatted_name`, else first and last name joined.
fn card_name(card: &Object) -> Option<String> {
    let name = card.get("name")?.as_object()?;
    if let Some(formatted) = non_empty(name.get("formatted_name")) {
        return Some(formatted.trim().to_owned());
    }
    let parts: Vec<&str> = ["first_name", "last_name"]
        .iter()
        .filter_map(|key| non_empty(name.get(*key)).map(str::trim))
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

fn interactive_summary(interactive: &Object) -> Option<String> {
    ["button_reply", "list_reply"].iter().find_map(|key| {
        let reply = interactive.get(*key)?;
        non_empty(reply.get("title")).map(str::to_owned)
    })
}

fn reaction_summary(reaction: &Object) -> String {
    match non_empty(reaction.get("emoji")) {
        Some(emoji) => format!("[reaction: {emoji}]"),
        None => "[reaction removed]".to_owned(),
    }
}

fn order_summary(order: &Object) -> String {
    match order
        .get("product_items")
        .and_then(Value::as_array)
        .map(Vec::len)
    {
        Some(1) => "[order: 1 item]".to_owned(),
        Some(count) => format!("[order: {count} items]"),
        None => "[order]".to_owned(),
    }
}

/// At most `max` characters of `s`, cut at a character boundary.
fn cap(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((end, _)) => s[..end].to_owned(),
        None => s.to_owned(),
    }
}

/// A raw value shortened and quoted for a reason text.
fn quote(raw: &str) -> String {
    let short = cap(raw, MAX_QUOTED_CHARS);
    if short.len() < raw.len() {
        format!("{short:?}…")
    } else {
        format!("{short:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../../tests/fixtures/whatsapp/", $name, ".json"))
        };
    }

    const ALL_FIXTURES: [&str; 20] = [
        fixture!("text"),
        fixture!("text_legacy"),
        fixture!("bsuid_only"),
        fixture!("bsuid_in_from"),
        fixture!("media"),
        fixture!("location"),
        fixture!("contacts"),
        fixture!("interactive"),
        fixture!("button"),
        fixture!("reaction"),
        fixture!("order"),
        fixture!("system_user_changed_number"),
        fixture!("system_user_changed_number_legacy"),
        fixture!("system_user_changed_user_id"),
        fixture!("unsupported"),
        fixture!("statuses"),
        fixture!("non_messages_fields"),
        fixture!("multi_entry"),
        fixture!("partial_rejects"),
        fixture!("odd_type_objects"),
    ];

    const SHEENA_PHONE: &str = "16505551234";
    const SHEENA_BSUID: &str = "US.13491208655302741918";
    const MARINA_BSUID: &str = "BR.1502576394655843";
    const MARINA_PARENT: &str = "BR.ENT.99120004471385";
    const BUSINESS_NUMBER_ID: &str = "106540352242922";

    fn parsed(body: &str) -> ParsedBody {
        parse(body.as_bytes()).expect("fixture parses")
    }

    /// Parses a body that must yield messages and nothing else.
    fn messages_only(body: &str) -> Vec<InboundMessage> {
        let p = parsed(body);
        assert_eq!(p.rejects, vec![], "unexpected rejects");
        assert_eq!(p.statuses, vec![], "unexpected statuses");
        p.messages
    }

    fn summaries(messages: &[InboundMessage]) -> Vec<(&str, &str)> {
        messages
            .iter()
            .map(|m| (m.wamid.as_str(), m.summary.as_str()))
            .collect()
    }

    fn reasons(p: &ParsedBody) -> Vec<&str> {
        p.rejects.iter().map(|r| r.reason.as_str()).collect()
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).expect("valid test timestamp")
    }

    fn phone(s: &str) -> PhoneNumber {
        PhoneNumber::parse(s).expect("test phone")
    }

    fn bsuid(s: &str) -> Bsuid {
        Bsuid::parse(s).expect("test BSUID")
    }

    /// A minimal body around one change `value`.
    fn body_with_value(value: Value) -> String {
        serde_json::json!({
            "object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}]
        })
        .to_string()
    }

    /// A minimal body with one message from Sheena.
    fn body_with_message(message: Value) -> String {
        body_with_value(serde_json::json!({
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": BUSINESS_NUMBER_ID},
            "messages": [message]
        }))
    }

    fn text_message(id: &str, timestamp: Value) -> Value {
        serde_json::json!({
            "from": SHEENA_PHONE, "id": id, "timestamp": timestamp,
            "type": "text", "text": {"body": "hi"}
        })
    }

    #[test]
    fn text_with_phone_and_bsuid() {
        let messages = messages_only(fixture!("text"));
        assert_eq!(messages.len(), 1);
        let m = &messages[0];
        assert_eq!(
            m.wamid,
            "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQUE1RjQ4NDlCNzM2MEJGNzgyMQA="
        );
        assert_eq!(m.sender.phone(), Some(&phone(SHEENA_PHONE)));
        assert_eq!(m.sender.bsuid(), Some(&bsuid(SHEENA_BSUID)));
        assert_eq!(m.sender.conversation_key(), SHEENA_BSUID);
        assert_eq!(m.parent_user_id, None);
        assert_eq!(m.username, None);
        assert_eq!(m.profile_name.as_deref(), Some("Sheena Nelson"));
        assert_eq!(
            m.business_phone_number_id.as_deref(),
            Some(BUSINESS_NUMBER_ID)
        );
        assert_eq!(m.message_type, "text");
        assert_eq!(m.summary, "Hi! How much is the IELTS preparation course?");
        assert_eq!(m.timestamp, at(1_779_012_345));
        assert_eq!(m.changed_number, None);
    }

    #[test]
    fn click_to_whatsapp_referral_is_kept() {
        let messages = messages_only(fixture!("referral_ad"));
        let referral = messages[0].referral.as_ref().expect("a referral");
        assert_eq!(referral.source_type, "ad");
        assert_eq!(referral.source_id.as_deref(), Some("120226305854810726"));
        assert_eq!(
            referral.source_url.as_deref(),
            Some("https://fb.me/3cr4Wqqkv")
        );
        assert_eq!(referral.headline.as_deref(), Some("IELTS in 8 weeks"));
        assert_eq!(messages[0].summary, "Can I still join the May group?");
        // A message without one has none.
        assert_eq!(messages_only(fixture!("text"))[0].referral, None);
    }

    #[test]
    fn odd_referrals_are_ignored_not_refused() {
        for referral in [
            serde_json::json!("ad"),
            serde_json::json!({}),
            serde_json::json!({"source_type": "  "}),
        ] {
            let mut message = text_message("wamid.R1", serde_json::json!("1779012345"));
            message["referral"] = referral;
            let parsed = parse(body_with_message(message).as_bytes()).unwrap();
            assert!(parsed.rejects.is_empty());
            assert_eq!(parsed.messages[0].referral, None);
        }
        let mut message = text_message("wamid.R2", serde_json::json!("1779012345"));
        message["referral"] = serde_json::json!({"source_id": 42});
        let parsed = parse(body_with_message(message).as_bytes()).unwrap();
        let referral = parsed.messages[0].referral.as_ref().unwrap();
        assert_eq!(referral.source_type, "unknown");
        assert_eq!(referral.source_id.as_deref(), Some("42"));
    }

    #[test]
    fn legacy_text_without_bsuid_keys_on_phone() {
        let messages = messages_only(fixture!("text_legacy"));
        let m = &messages[0];
        assert_eq!(m.sender.bsuid(), None);
        assert_eq!(m.sender.phone(), Some(&phone(SHEENA_PHONE)));
        assert_eq!(m.sender.conversation_key(), SHEENA_PHONE);
        assert_eq!(m.profile_name.as_deref(), Some("Sheena Nelson"));
        assert_eq!(m.summary, "Do you have evening classes?");
        assert_eq!(m.timestamp.to_rfc3339(), "2025-02-12T00:43:44+00:00");
    }

    #[test]
    fn username_user_without_phone_is_identified_by_bsuid() {
        let messages = messages_only(fixture!("bsuid_only"));
        let m = &messages[0];
        assert_eq!(m.sender.phone(), None);
        assert_eq!(m.sender.bsuid(), Some(&bsuid(MARINA_BSUID)));
        assert_eq!(m.sender.conversation_key(), MARINA_BSUID);
        assert_eq!(m.parent_user_id.as_deref(), Some(MARINA_PARENT));
        assert_eq!(m.username.as_deref(), Some("@marina.costa"));
        assert_eq!(m.profile_name.as_deref(), Some("Marina Costa"));
        assert_eq!(m.summary, "Oi! Is there a trial lesson for Spanish?");
    }

    #[test]
    fn bsuid_put_in_from_by_a_relay_is_a_bsuid_not_a_phone() {
        let messages = messages_only(fixture!("bsuid_in_from"));
        let m = &messages[0];
        assert_eq!(m.sender.phone(), None);
        assert_eq!(m.sender.bsuid(), Some(&bsuid(MARINA_BSUID)));
        // The contact is still matched through its wa_id.
        assert_eq!(m.username.as_deref(), Some("@marina.costa"));
        assert_eq!(m.profile_name.as_deref(), Some("Marina Costa"));
    }

    #[test]
    fn media_summaries_prefer_captions() {
        let messages = messages_only(fixture!("media"));
        assert_eq!(
            summaries(&messages),
            vec![
                ("wamid.media.image.caption", "My certificate from last year"),
                ("wamid.media.image.plain", "[image]"),
                ("wamid.media.video", "[video]"),
                ("wamid.media.audio", "[audio]"),
                (
                    "wamid.media.document.filename",
                    "[document: IELTS_results_2025.pdf]"
                ),
                ("wamid.media.document.caption", "Here is my CV"),
                ("wamid.media.document.bare", "[document]"),
                ("wamid.media.sticker", "[sticker]"),
            ]
        );
        let types: Vec<&str> = messages.iter().map(|m| m.message_type.as_str()).collect();
        assert_eq!(
            types,
            ["image", "image", "video", "audio", "document", "document", "document", "sticker"]
        );
    }

    #[test]
    fn location_summaries_with_and_without_name() {
        let messages = messages_only(fixture!("location"));
        assert_eq!(
            summaries(&messages),
            vec![
                (
                    "wamid.location.named",
                    "[location: 37.44216251373291,-122.16153621673584 Philz Coffee]"
                ),
                ("wamid.location.pin", "[location: 37.4845,-122.1483]"),
            ]
        );
    }

    #[test]
    fn contacts_summary_lists_formatted_names() {
        let messages = messages_only(fixture!("contacts"));
        assert_eq!(messages[0].summary, "[contacts: Pablo Morales, Ana Lima]");
        // The shared cards are not the sender's contact entry.
        assert_eq!(messages[0].profile_name.as_deref(), Some("Sheena Nelson"));
        assert_eq!(messages[0].sender.phone(), Some(&phone(SHEENA_PHONE)));
    }

    #[test]
    fn interactive_summaries_use_reply_titles() {
        let messages = messages_only(fixture!("interactive"));
        assert_eq!(
            summaries(&messages),
            vec![
                ("wamid.interactive.button", "Book a trial lesson"),
                ("wamid.interactive.list", "IELTS evening group"),
                ("wamid.interactive.flow", "[interactive]"),
            ]
        );
    }

    #[test]
    fn template_button_summary_is_its_text() {
        let messages = messages_only(fixture!("button"));
        assert_eq!(
            summaries(&messages),
            vec![("wamid.button.template", "Yes, call me")]
        );
    }

    #[test]
    fn reaction_summaries() {
        let messages = messages_only(fixture!("reaction"));
        assert_eq!(
            summaries(&messages),
            vec![
                ("wamid.reaction.thumbs", "[reaction: 👍]"),
                ("wamid.reaction.removed", "[reaction removed]"),
            ]
        );
    }

    #[test]
    fn order_summary_counts_items() {
        let messages = messages_only(fixture!("order"));
        assert_eq!(messages[0].summary, "[order: 2 items]");
        assert!(messages[0].summary.starts_with("[order"));
    }

    #[test]
    fn user_changed_number_records_new_phone_and_bsuid() {
        let messages = messages_only(fixture!("system_user_changed_number"));
        let m = &messages[0];
        assert_eq!(m.message_type, "system");
        assert_eq!(
            m.summary,
            "[system: User Sheena Nelson changed from 16505551234 to 12195555358]"
        );
        // The sender is the old identity; the new one is in changed_number.
        assert_eq!(m.sender.phone(), Some(&phone(SHEENA_PHONE)));
        assert_eq!(m.sender.bsuid(), Some(&bsuid(SHEENA_BSUID)));
        assert_eq!(
            m.changed_number,
            Some(ChangedNumber {
                new_phone: Some(phone("12195555358")),
                new_bsuid: Some(bsuid("US.20087765432109876543")),
            })
        );
        // System messages carry no contacts.
        assert_eq!(m.profile_name, None);
    }

    #[test]
    fn legacy_user_changed_number_uses_new_wa_id() {
        let messages = messages_only(fixture!("system_user_changed_number_legacy"));
        let m = &messages[0];
        assert_eq!(m.sender.conversation_key(), SHEENA_PHONE);
        assert_eq!(
            m.changed_number,
            Some(ChangedNumber {
                new_phone: Some(phone("12195555358")),
                new_bsuid: None,
            })
        );
    }

    #[test]
    fn user_changed_user_id_records_new_bsuid_only() {
        let messages = messages_only(fixture!("system_user_changed_user_id"));
        let m = &messages[0];
        assert_eq!(m.sender.bsuid(), Some(&bsuid(MARINA_BSUID)));
        assert_eq!(m.sender.phone(), None);
        assert_eq!(
            m.changed_number,
            Some(ChangedNumber {
                new_phone: None,
                new_bsuid: Some(bsuid("BR.7730011122233344")),
            })
        );
        // system.parent_user_id is the *new* parent: not the sender's.
        assert_eq!(m.parent_user_id, None);
    }

    #[test]
    fn identity_change_without_sender_fields_falls_back_to_the_body() {
        let body = body_with_message(serde_json::json!({
            "id": "wamid.system.no-from", "timestamp": "1781500000", "type": "system",
            "system": {
                "body": "User @marina.costa changed from BR.1502576394655843 to BR.7730011122233344",
                "user_id": "BR.7730011122233344",
                "type": "user_changed_user_id"
            }
        }));
        let messages = messages_only(&body);
        assert_eq!(messages[0].sender.bsuid(), Some(&bsuid(MARINA_BSUID)));
        assert_eq!(
            messages[0]
                .changed_number
                .as_ref()
                .and_then(|c| c.new_bsuid.as_ref()),
            Some(&bsuid("BR.7730011122233344"))
        );
    }

    #[test]
    fn other_system_messages_have_no_changed_number() {
        let body = body_with_message(serde_json::json!({
            "from": SHEENA_PHONE, "id": "wamid.system.identity", "timestamp": "1779100000",
            "type": "system",
            "system": {"body": "Sheena's security code changed", "identity": "abc", "type": "customer_identity_changed"}
        }));
        let messages = messages_only(&body);
        assert_eq!(
            messages[0].summary,
            "[system: Sheena's security code changed]"
        );
        assert_eq!(messages[0].changed_number, None);
    }

    #[test]
    fn unsupported_and_unknown_types_are_recorded() {
        let messages = messages_only(fixture!("unsupported"));
        assert_eq!(
            summaries(&messages),
            vec![
                ("wamid.unsupported.edit", "[unsupported]"),
                ("wamid.unknown.legacy", "[unsupported]"),
                ("wamid.request-welcome", "[unsupported]"),
            ]
        );
        let types: Vec<&str> = messages.iter().map(|m| m.message_type.as_str()).collect();
        assert_eq!(types, ["unsupported", "unknown", "request_welcome"]);
    }

    #[test]
    fn statuses_are_read_with_phone_or_bsuid_recipient() {
        let p = parsed(fixture!("statuses"));
        assert_eq!(p.messages, vec![]);
        assert_eq!(p.rejects, vec![]);
        type Seen<'a> = (&'a str, Option<&'a str>, Option<DateTime<Utc>>);
        let seen: Vec<Seen<'_>> = p
            .statuses
            .iter()
            .map(|s| (s.status.as_str(), s.recipient.as_deref(), s.timestamp))
            .collect();
        assert_eq!(
            seen,
            vec![
                ("sent", Some(SHEENA_PHONE), Some(at(1_779_014_000))),
                ("delivered", Some(SHEENA_PHONE), Some(at(1_779_014_003))),
                ("read", Some(MARINA_BSUID), Some(at(1_779_014_100))),
                ("failed", Some("447700900123"), Some(at(1_779_014_200))),
            ]
        );
        assert_eq!(
            p.statuses[0].wamid,
            "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBJPVVRCT1VORDAwMDAwMDAxAA=="
        );
    }

    #[test]
    fn status_with_bad_timestamp_keeps_the_status() {
        let body = body_with_value(serde_json::json!({
            "statuses": [
                {"id": "wamid.s1", "status": "read", "timestamp": "soon"},
                {"id": "wamid.s2"},
                {"status": "sent"}
            ]
        }));
        let p = parsed(&body);
        assert_eq!(
            p.statuses,
            vec![StatusUpdate {
                wamid: "wamid.s1".to_owned(),
                status: "read".to_owned(),
                timestamp: None,
                recipient: None,
            }]
        );
        assert_eq!(
            reasons(&p),
            vec![
                "status wamid.s2: missing status",
                "status #2 of change 0 of entry 0: missing id",
            ]
        );
    }

    #[test]
    fn fields_other_than_messages_are_ignored_silently() {
        let p = parsed(fixture!("non_messages_fields"));
        assert_eq!(p, ParsedBody::default());
    }

    #[test]
    fn multi_entry_multi_change_bodies_are_read_in_order() {
        let p = parsed(fixture!("multi_entry"));
        assert_eq!(p.rejects, vec![]);
        /// wamid, conversation key, name, username, business number id.
        type Seen<'a> = (
            &'a str,
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
        );
        let seen: Vec<Seen<'_>> = p
            .messages
            .iter()
            .map(|m| {
                (
                    m.wamid.as_str(),
                    m.sender.conversation_key(),
                    m.profile_name.as_deref(),
                    m.username.as_deref(),
                    m.business_phone_number_id.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                (
                    "wamid.multi.e0c0m0",
                    SHEENA_BSUID,
                    Some("Sheena Nelson"),
                    None,
                    Some(BUSINESS_NUMBER_ID)
                ),
                (
                    "wamid.multi.e0c0m1",
                    MARINA_BSUID,
                    Some("Marina Costa"),
                    Some("@marina.costa"),
                    Some(BUSINESS_NUMBER_ID)
                ),
                (
                    "wamid.multi.e1c0m0",
                    "GB.90210335577881",
                    Some("Oliver Hughes"),
                    None,
                    Some("298765432101234")
                ),
            ]
        );
        assert_eq!(p.messages[1].parent_user_id.as_deref(), Some(MARINA_PARENT));
        assert_eq!(p.messages[1].sender.phone(), None);
        assert_eq!(p.statuses.len(), 1);
        assert_eq!(p.statuses[0].status, "delivered");
    }

    #[test]
    fn bad_messages_are_rejected_and_the_rest_still_parsed() {
        let p = parsed(fixture!("partial_rejects"));
        let kept: Vec<&str> = p.messages.iter().map(|m| m.wamid.as_str()).collect();
        assert_eq!(
            kept,
            ["wamid.partial.good-sheena", "wamid.partial.good-oliver"]
        );
        assert_eq!(p.messages[1].timestamp, at(1_779_017_003));
        assert_eq!(p.messages[1].profile_name.as_deref(), Some("Oliver Hughes"));
        assert_eq!(
            reasons(&p),
            vec![
                "message wamid.partial.nobody: message has neither a phone number nor a business-scoped user id",
                "message #2 of change 0 of entry 0: missing id",
                "message wamid.partial.bad-timestamp: bad timestamp \"yesterday\"",
                "message wamid.partial.far-future: bad timestamp \"5000000000\" is outside the years 2000 to 2100",
                "message wamid.partial.last-century: bad timestamp \"946684799\" is outside the years 2000 to 2100",
                "message #6 of change 0 of entry 0: not an object",
            ]
        );
    }

    #[test]
    fn known_types_with_odd_objects_summarise_as_their_type() {
        let messages = messages_only(fixture!("odd_type_objects"));
        assert_eq!(
            summaries(&messages),
            vec![
                ("wamid.odd.text-string", "[text]"),
                ("wamid.odd.text-missing", "[text]"),
                ("wamid.odd.image-null", "[image]"),
                ("wamid.odd.document-number", "[document]"),
                ("wamid.odd.location-no-longitude", "[location]"),
                ("wamid.odd.interactive-empty", "[interactive]"),
                ("wamid.odd.button-no-text", "[button]"),
                ("wamid.odd.contacts-empty", "[contacts]"),
                ("wamid.odd.system-no-body", "[system]"),
                ("wamid.odd.reaction-missing", "[reaction]"),
                ("wamid.odd.order-missing", "[order]"),
                ("wamid.odd.no-type", "[unsupported]"),
                ("wamid.odd.poll", "[unsupported]"),
                ("wamid.odd.type-number", "[unsupported]"),
            ]
        );
        let untyped: Vec<&str> = messages[11..]
            .iter()
            .map(|m| m.message_type.as_str())
            .collect();
        assert_eq!(untyped, ["unknown", "poll_creation", "unknown"]);
    }

    #[test]
    fn envelope_errors_fail_the_whole_body() {
        let not_json = [&b""[..], b"not json", b"{\"object\":", b"\xff\xfe"];
        for body in not_json {
            assert!(
                matches!(parse(body), Err(PayloadError::NotJson(_))),
                "{body:?}"
            );
        }
        let wrong_shape = [
            "[]",
            "\"whatsapp_business_account\"",
            "42",
            "{}",
            r#"{"object":"whatsapp_business_account"}"#,
            r#"{"object":"whatsapp_business_account","entry":{}}"#,
            r#"{"object":"page","entry":[]}"#,
            r#"{"object":7,"entry":[]}"#,
            r#"{"entry":[]}"#,
        ];
        for body in wrong_shape {
            assert!(
                matches!(parse(body.as_bytes()), Err(PayloadError::Shape(_))),
                "{body}"
            );
        }
    }

    #[test]
    fn envelope_error_texts_say_what_is_wrong() {
        let err = parse(br#"{"object":"instagram","entry":[]}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "body is not a WhatsApp webhook: \"object\" is \"instagram\", expected \"whatsapp_business_account\""
        );
        let err = parse(br#"{"object":"whatsapp_business_account"}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "body is not a WhatsApp webhook: there is no \"entry\" array"
        );
        assert!(parse(b"nope")
            .unwrap_err()
            .to_string()
            .starts_with("body is not JSON: "));
    }

    #[test]
    fn deep_nesting_is_not_json_rather_than_a_crash() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(
            parse(deep.as_bytes()),
            Err(PayloadError::NotJson(_))
        ));
        let deep_inside = format!(
            r#"{{"object":"whatsapp_business_account","entry":[{}]}}"#,
            "{\"a\":".repeat(5_000) + "1" + &"}".repeat(5_000)
        );
        assert!(matches!(
            parse(deep_inside.as_bytes()),
            Err(PayloadError::NotJson(_))
        ));
    }

    #[test]
    fn empty_entry_array_is_an_empty_result() {
        let p = parse(br#"{"object":"whatsapp_business_account","entry":[]}"#).expect("ok");
        assert_eq!(p, ParsedBody::default());
    }

    #[test]
    fn malformed_entries_and_changes_are_rejected_individually() {
        let good = serde_json::json!({
            "field": "messages",
            "value": {"messages": [text_message("wamid.good", "1779000000".into())]}
        });
        let body = serde_json::json!({
            "object": "whatsapp_business_account",
            "entry": [
                "not an entry",
                {"id": "1"},
                {"id": "2", "changes": [
                    5,
                    {"value": {}},
                    {"field": "messages", "value": []},
                    {"field": "messages", "value": {"messages": {}, "statuses": "x"}},
                    {"field": "messages", "value": {"messages": null, "contacts": "odd"}},
                    good
                ]}
            ]
        })
        .to_string();
        let p = parsed(&body);
        assert_eq!(p.messages.len(), 1);
        assert_eq!(p.messages[0].wamid, "wamid.good");
        assert_eq!(
            reasons(&p),
            vec![
                "entry 0: not an object",
                "entry 1: there is no \"changes\" array",
                "change 0 of entry 2: not an object",
                "change 1 of entry 2: there is no \"field\"",
                "change 2 of entry 2: \"value\" is not an object",
                "change 3 of entry 2: \"messages\" is not an array",
                "change 3 of entry 2: \"statuses\" is not an array",
            ]
        );
    }

    #[test]
    fn timestamp_bounds_are_years_2000_to_2100_inclusive() {
        let cases: [(Value, bool); 9] = [
            ("946684800".into(), true),   // 2000-01-01T00:00:00Z
            ("4133980799".into(), true),  // 2100-12-31T23:59:59Z
            ("4133980800".into(), false), // 2101-01-01T00:00:00Z
            ("946684799".into(), false),
            (" 1779000000 ".into(), true),
            (1_779_000_000.0.into(), true),
            (1_779_000_000.5.into(), false),
            ("-1".into(), false),
            ("1779000000000".into(), false), // milliseconds
        ];
        for (timestamp, ok) in cases {
            let body = body_with_message(text_message("wamid.t", timestamp.clone()));
            let p = parsed(&body);
            assert_eq!(p.messages.len() == 1, ok, "{timestamp}");
            assert_eq!(p.rejects.len() == 1, !ok, "{timestamp}");
        }
        for timestamp in [Value::Null, serde_json::json!(true), serde_json::json!({})] {
            let body = body_with_message(text_message("wamid.t", timestamp.clone()));
            assert_eq!(parsed(&body).rejects.len(), 1, "{timestamp}");
        }
        let body = body_with_message(
            serde_json::json!({"from": SHEENA_PHONE, "id": "wamid.t", "type": "text"}),
        );
        assert_eq!(
            reasons(&parsed(&body)),
            vec!["message wamid.t: missing timestamp"]
        );
    }

    #[test]
    fn summaries_are_capped_at_a_char_boundary() {
        let long: String = "é".repeat(MAX_SUMMARY_CHARS + 10);
        let body = body_with_message(serde_json::json!({
            "from": SHEENA_PHONE, "id": "wamid.long", "timestamp": "1779000000",
            "type": "text", "text": {"body": long}
        }));
        let messages = messages_only(&body);
        assert_eq!(messages[0].summary.chars().count(), MAX_SUMMARY_CHARS);
        assert!(long.starts_with(&messages[0].summary));
    }

    #[test]
    fn overlong_ids_are_rejected() {
        let id = format!("wamid.{}", "A".repeat(MAX_ID_CHARS));
        let body = body_with_message(text_message(&id, "1779000000".into()));
        assert_eq!(
            reasons(&parsed(&body)),
            vec!["message #0 of change 0 of entry 0: id is longer than 256 characters"]
        );
    }

    #[test]
    fn sole_contact_supplies_missing_sender_ids() {
        let body = body_with_value(serde_json::json!({
            "contacts": [{"profile": {"name": "  Marina Costa  ", "username": ""}, "user_id": MARINA_BSUID}],
            "messages": [{"id": "wamid.sole", "timestamp": "1779000000", "type": "text", "text": {"body": "hi"}}]
        }));
        let messages = messages_only(&body);
        assert_eq!(messages[0].sender.bsuid(), Some(&bsuid(MARINA_BSUID)));
        assert_eq!(messages[0].profile_name.as_deref(), Some("Marina Costa"));
        assert_eq!(messages[0].username, None);
        assert_eq!(messages[0].business_phone_number_id, None);
    }

    #[test]
    fn sole_contact_of_someone_else_is_not_used() {
        let body = body_with_value(serde_json::json!({
            "contacts": [{"profile": {"name": "Oliver Hughes"}, "wa_id": "447700900123", "user_id": "GB.90210335577881"}],
            "messages": [text_message("wamid.other", "1779000000".into())]
        }));
        let messages = messages_only(&body);
        assert_eq!(messages[0].profile_name, None);
        assert_eq!(messages[0].sender.bsuid(), None);
        assert_eq!(messages[0].sender.phone(), Some(&phone(SHEENA_PHONE)));
    }

    #[test]
    fn contact_matches_a_differently_spelled_phone() {
        let body = body_with_value(serde_json::json!({
            "contacts": [
                {"profile": {"name": "Oliver Hughes"}, "wa_id": "447700900123"},
                {"profile": {"name": "Sheena Nelson"}, "wa_id": "+1 650 555 1234"}
            ],
            "messages": [text_message("wamid.spelled", "1779000000".into())]
        }));
        let messages = messages_only(&body);
        assert_eq!(messages[0].profile_name.as_deref(), Some("Sheena Nelson"));
    }

    #[test]
    fn invalid_parent_user_id_is_dropped() {
        let body = body_with_message(serde_json::json!({
            "from_user_id": MARINA_BSUID, "from_parent_user_id": "not a bsuid",
            "id": "wamid.parent", "timestamp": "1779000000", "type": "text", "text": {"body": "hi"}
        }));
        let messages = messages_only(&body);
        assert_eq!(messages[0].parent_user_id, None);
        assert_eq!(messages[0].sender.bsuid(), Some(&bsuid(MARINA_BSUID)));
    }

    #[test]
    fn numeric_ids_from_relays_are_accepted() {
        let body = body_with_value(serde_json::json!({
            "metadata": {"phone_number_id": 106_540_352_242_922_u64},
            "messages": [{"from": 16_505_551_234_u64, "id": "wamid.num", "timestamp": 1_779_000_000, "type": "text", "text": {"body": "hi"}}]
        }));
        let messages = messages_only(&body);
        assert_eq!(messages[0].sender.phone(), Some(&phone(SHEENA_PHONE)));
        assert_eq!(
            messages[0].business_phone_number_id.as_deref(),
            Some(BUSINESS_NUMBER_ID)
        );
    }

    #[test]
    fn every_fixture_parses_without_rejects_except_the_reject_fixture() {
        for (index, body) in ALL_FIXTURES.iter().enumerate() {
            let p = parsed(body);
            let expect_rejects = *body == fixture!("partial_rejects");
            assert_eq!(!p.rejects.is_empty(), expect_rejects, "fixture #{index}");
        }
    }

    #[test]
    fn truncated_and_mangled_bodies_never_panic() {
        for body in ALL_FIXTURES {
            let bytes = body.as_bytes();
            for end in (0..bytes.len()).step_by(7) {
                let _ = parse(&bytes[..end]);
            }
            // Swap every kind of scalar for other kinds, keeping valid JSON.
            for (from, to) in [
                ("\"", "'"),
                ("{", "["),
                (": \"", ": 1, \"x\": \""),
                (": \"", ": null, \"y\": \""),
                (": {", ": [], \"z\": {"),
                (": [", ": \"\", \"w\": ["),
            ] {
                let mangled = body.replace(from, to);
                let _ = parse(mangled.as_bytes());
            }
        }
    }

    #[test]
    fn reject_displays_its_reason() {
        let reject = Reject {
            reason: "message wamid.X: missing timestamp".to_owned(),
        };
        assert_eq!(reject.to_string(), "message wamid.X: missing timestamp");
    }
}
