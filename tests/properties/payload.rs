//! `payload::parse` against arbitrary bytes, arbitrary JSON, and realistic
//! Meta bodies with hostile values in any field.

use leadhook::identity::{Bsuid, PhoneNumber};
use leadhook::whatsapp::payload::{parse, ParsedBody, PayloadError, MAX_SUMMARY_CHARS};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{json, Value};

use crate::config;
use crate::json::{any_json, at_mut, deep_chain, hostile_value, paths, realistic_body, remove};

/// Ids longer than this are rejected by the parser (documented in
/// `payload.rs`: real wamids are under 100 characters).
const MAX_ID_CHARS: usize = 256;
/// Message types are kept to this many characters.
const MAX_TYPE_CHARS: usize = 64;
/// A generous bound on a reject reason: it names a message by its (capped)
/// id and quotes at most 40 characters of a bad value.
const MAX_REASON_CHARS: usize = 1024;
/// Message types with a summary of their own; anything else is
/// `[unsupported]`.
const KNOWN_TYPES: &[&str] = &[
    "text",
    "image",
    "video",
    "audio",
    "sticker",
    "document",
    "location",
    "contacts",
    "interactive",
    "button",
    "reaction",
    "order",
    "system",
];
/// 2000-01-01T00:00:00Z and 2100-12-31T23:59:59Z.
const FIRST_SECOND: i64 = 946_684_800;
const LAST_SECOND: i64 = 4_133_980_799;

/// What must hold for everything `parse` returns, whatever came in.
fn check_invariants(parsed: &ParsedBody) -> Result<(), TestCaseError> {
    for m in &parsed.messages {
        prop_assert!(!m.wamid.trim().is_empty(), "empty wamid in {:?}", m);
        prop_assert!(m.wamid.chars().count() <= MAX_ID_CHARS, "long wamid");
        prop_assert!(
            m.sender.phone().is_some() || m.sender.bsuid().is_some(),
            "sender without identifier: {:?}",
            m
        );
        if let Some(p) = m.sender.phone() {
            prop_assert_eq!(&PhoneNumber::parse(p.as_str()), &Ok(p.clone()));
            prop_assert!(p.as_str().bytes().all(|b| b.is_ascii_digit()));
        }
        if let Some(b) = m.sender.bsuid() {
            prop_assert_eq!(&Bsuid::parse(b.as_str()), &Ok(b.clone()));
        }
        prop_assert!(
            m.summary.chars().count() <= MAX_SUMMARY_CHARS,
            "summary of {} chars",
            m.summary.chars().count()
        );
        prop_assert!(!m.message_type.is_empty());
        prop_assert!(m.message_type.chars().count() <= MAX_TYPE_CHARS);
        let secs = m.timestamp.timestamp();
        prop_assert!(
            (FIRST_SECOND..=LAST_SECOND).contains(&secs),
            "timestamp {}",
            m.timestamp
        );
        if let Some(change) = &m.changed_number {
            prop_assert!(change.new_phone.is_some() || change.new_bsuid.is_some());
        }
    }
    for s in &parsed.statuses {
        prop_assert!(!s.wamid.trim().is_empty());
        prop_assert!(s.wamid.chars().count() <= MAX_ID_CHARS);
        prop_assert!(!s.status.trim().is_empty());
    }
    for r in &parsed.rejects {
        prop_assert!(!r.reason.is_empty());
        prop_assert!(
            r.reason.chars().count() <= MAX_REASON_CHARS,
            "reject reason of {} chars",
            r.reason.chars().count()
        );
    }
    Ok(())
}

/// Whether the envelope is one `parse` must accept, and if so how many
/// message and status items sit in `"field": "messages"` changes: each of
/// them must come out as a message, a status or a reject naming it
/// (authentic data is never dropped silently).
fn expected_items(root: &Value) -> Option<usize> {
    let root = root.as_object()?;
    if root.get("object").and_then(Value::as_str) != Some("whatsapp_business_account") {
        return None;
    }
    let entries = root.get("entry")?.as_array()?;
    let items = entries
        .iter()
        .filter_map(|e| e.get("changes")?.as_array())
        .flatten()
        .filter(|c| c.get("field").and_then(Value::as_str) == Some("messages"))
        .filter_map(|c| c.get("value")?.as_object())
        .map(|value| {
            ["messages", "statuses"]
                .iter()
                .filter_map(|k| value.get(*k)?.as_array())
                .map(Vec::len)
                .sum::<usize>()
        })
        .sum();
    Some(items)
}

/// Parses `root` serialised and checks the envelope verdict, the item
/// accounting and the output invariants.
fn parse_and_check(root: &Value) -> Result<(), TestCaseError> {
    let bytes = serde_json::to_vec(root).expect("a Value always serialises");
    let result = parse(&bytes);
    match (expected_items(root), &result) {
        (Some(items), Ok(parsed)) => {
            check_invariants(parsed)?;
            let item_rejects = parsed
                .rejects
                .iter()
                .filter(|r| r.reason.starts_with("message ") || r.reason.starts_with("status "))
                .count();
            prop_assert_eq!(
                parsed.messages.len() + parsed.statuses.len() + item_rejects,
                items,
                "items lost or invented: {:?}",
                parsed
            );
        }
        (None, Err(PayloadError::Shape(_))) => {}
        (expected, result) => {
            prop_assert!(
                false,
                "envelope verdict: expected {:?} items, got {:?}",
                expected,
                result
            );
        }
    }
    Ok(())
}

/// One edit of a realistic body.
#[derive(Debug, Clone)]
enum Edit {
    Replace(prop::sample::Index, Value),
    Remove(prop::sample::Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (any::<prop::sample::Index>(), hostile_value()).prop_map(|(at, v)| Edit::Replace(at, v)),
        1 => any::<prop::sample::Index>().prop_map(Edit::Remove),
    ]
}

fn apply_edit(root: &mut Value, edit: &Edit) {
    let all = paths(root);
    match edit {
        Edit::Replace(at, v) => {
            if let Some(slot) = at_mut(root, &all[at.index(all.len())]) {
                *slot = v.clone();
            }
        }
        Edit::Remove(at) => remove(root, &all[at.index(all.len())]),
    }
}

/// Wraps `inner` at one of the levels of a webhook body.
fn embed(level: u8, inner: Value) -> Value {
    let body = |messages: Value| {
        json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
            {"field": "messages", "value": {"messages": messages}}
        ]}]})
    };
    match level {
        0 => inner,
        1 => json!({"object": "whatsapp_business_account", "entry": inner}),
        2 => json!({"object": "whatsapp_business_account", "entry": [inner]}),
        3 => json!({"object": "whatsapp_business_account", "entry": [{"changes": [inner]}]}),
        4 => json!({"object": "whatsapp_business_account", "entry": [{"changes": [
            {"field": "messages", "value": inner}
        ]}]}),
        5 => body(json!([inner])),
        6 => body(
            json!([{"from": "16505551234", "id": "wamid.e", "timestamp": "1779000000",
                          "type": "text", "text": inner}]),
        ),
        _ => body(
            json!([{"from": inner, "id": "wamid.e", "timestamp": "1779000000",
                          "type": "interactive", "interactive": {"button_reply": {"title": "ok"}}}]),
        ),
    }
}

/// A timestamp value and whether the contract accepts it.
fn timestamp_case() -> impl Strategy<Value = Value> {
    let near = |edge: i64| (edge - 3)..=(edge + 3);
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        near(FIRST_SECOND).prop_map(Value::from),
        near(LAST_SECOND).prop_map(Value::from),
        near(FIRST_SECOND).prop_map(|s| Value::from(s.to_string())),
        near(LAST_SECOND).prop_map(|s| Value::from(s.to_string())),
        (FIRST_SECOND..=LAST_SECOND).prop_map(|s| Value::from(s as f64)),
        (FIRST_SECOND..=LAST_SECOND).prop_map(|s| Value::from(s as f64 + 0.5)),
        (FIRST_SECOND..=LAST_SECOND).prop_map(|s| Value::from(s * 1000)), // milliseconds
        (FIRST_SECOND..=LAST_SECOND).prop_map(|s| Value::from(format!(" {s}\t"))),
        (FIRST_SECOND..=LAST_SECOND).prop_map(|s| Value::from(format!("{s}.0"))),
        (FIRST_SECOND..=LAST_SECOND).prop_map(|s| Value::from(format!("+{s}"))),
        (-5_000_000_000i64..0).prop_map(Value::from),
        (-5_000_000_000i64..0).prop_map(|s| Value::from(s.to_string())),
        any::<f64>().prop_map(Value::from),
        Just(json!(1e300)),
        Just(json!(-1e300)),
        Just(json!("1e9")),
        Just(json!("abc")),
        Just(json!("")),
        Just(json!(null)),
        Just(json!(true)),
        Just(json!([1_779_000_000])),
        Just(json!({"seconds": 1_779_000_000})),
        Just(json!("99999999999999999999999")),
        "(?s).{0,20}".prop_map(Value::from),
    ]
}

/// The contract's verdict on a timestamp value: whole Unix seconds, as a
/// string or a number, in the years 2000 to 2100.
fn timestamp_ok(value: &Value) -> bool {
    let seconds = match value {
        Value::String(s) => s.trim().parse::<i64>().ok(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Some(i),
            (None, Some(_), _) => None, // above i64::MAX
            (None, None, Some(f)) if f.fract() == 0.0 && f.abs() < 1e15 => Some(f as i64),
            _ => None,
        },
        _ => None,
    };
    seconds.is_some_and(|s| (FIRST_SECOND..=LAST_SECOND).contains(&s))
}

proptest! {
    #![proptest_config(config(512))]

    /// Any bytes at all: no panic; whatever comes out is well-formed.
    #[test]
    fn parse_never_panics_on_arbitrary_bytes(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..2048),
            "(?s).{0,512}".prop_map(String::into_bytes),
        ]
    ) {
        if let Ok(parsed) = parse(&bytes) {
            check_invariants(&parsed)?;
        }
    }

    /// A realistic body with bytes flipped, inserted, deleted or cut off.
    #[test]
    fn parse_never_panics_on_mangled_bytes_of_a_real_body(
        edits in prop::collection::vec(
            (any::<prop::sample::Index>(), 0..4u8, any::<u8>()), 1..8),
    ) {
        let mut bytes = serde_json::to_vec_pretty(&realistic_body()).expect("serialise");
        for (at, kind, byte) in edits {
            let i = at.index(bytes.len() + 1);
            match kind {
                0 if i < bytes.len() => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                2 if i < bytes.len() => { bytes.remove(i); }
                _ => bytes.truncate(i),
            }
        }
        if let Ok(parsed) = parse(&bytes) {
            check_invariants(&parsed)?;
        }
    }

    /// Arbitrary JSON (nested up to ~40 levels, or chains up to 200 deep,
    /// past serde_json's recursion limit) at any level of a webhook body:
    /// no panic, the envelope verdict is exact, every message and status
    /// item is accounted for, and the output invariants hold.
    #[test]
    fn parse_handles_arbitrary_json_at_any_level(
        level in 0..8u8,
        inner in prop_oneof![
            3 => any_json(40),
            2 => deep_chain(40),
            1 => deep_chain(200),
        ],
    ) {
        let root = embed(level, inner);
        // Serialising and dropping a 200-deep value is fine; parsing it is
        // what serde_json's recursion limit (128) protects.
        let bytes = serde_json::to_vec(&root).expect("serialise");
        match parse(&bytes) {
            Ok(parsed) => check_invariants(&parsed)?,
            Err(PayloadError::NotJson(_)) => {
                // Only nesting beyond serde_json's limit makes valid JSON
                // "not JSON".
                prop_assert!(depth(&root) > 100, "valid JSON refused: {}", depth(&root));
            }
            Err(PayloadError::Shape(_)) => {}
        }
        if depth(&root) <= 100 {
            parse_and_check(&root)?;
        }
    }

    /// A realistic Meta body with 1 to 4 fields replaced by values of the
    /// wrong type (ids as numbers, arrays or null, timestamps out of range,
    /// negative, fractional, huge or "abc", objects for strings, strings for
    /// arrays, …) or removed: no panic, exact envelope verdict, every item
    /// accounted for, invariants hold.
    #[test]
    fn parse_survives_hostile_values_in_any_field(
        edits in prop::collection::vec(edit(), 1..=4),
    ) {
        let mut root = realistic_body();
        for e in &edits {
            apply_edit(&mut root, e);
        }
        parse_and_check(&root)?;
    }

    /// Unknown message types are recorded with the `[unsupported]` summary
    /// (and their type, capped), never an error; known types always get a
    /// summary of their own shape.
    #[test]
    fn unknown_message_types_are_recorded(
        kind in prop_oneof![
            any::<String>(),
            prop::sample::select(KNOWN_TYPES).prop_map(str::to_owned),
            "[a-z_]{1,100}",
        ],
        own in any_json(3),
    ) {
        // The type's own object must not overwrite the fields every message has.
        prop_assume!(!["from", "id", "timestamp", "type"].contains(&kind.as_str()));
        let mut message = json!({"from": "16505551234", "id": "wamid.kind",
                                 "timestamp": "1779000000", "type": kind});
        message[kind.as_str()] = own;
        let root = embed(5, message);
        parse_and_check(&root)?;
        let parsed = parse(&serde_json::to_vec(&root).expect("serialise")).expect("envelope ok");
        prop_assert_eq!(parsed.messages.len(), 1, "{:?}", parsed.rejects);
        let m = &parsed.messages[0];
        if kind.is_empty() {
            prop_assert_eq!(m.message_type.as_str(), "unknown");
        } else {
            let capped: String = kind.chars().take(MAX_TYPE_CHARS).collect();
            prop_assert_eq!(&m.message_type, &capped);
        }
        if KNOWN_TYPES.contains(&kind.as_str()) {
            prop_assert_ne!(m.summary.as_str(), "[unsupported]");
        } else {
            prop_assert_eq!(m.summary.as_str(), "[unsupported]");
        }
    }

    /// A message is accepted exactly when its timestamp is whole Unix
    /// seconds (string or number) within the years 2000 to 2100; otherwise
    /// it is rejected with a reason, never dropped and never a panic.
    #[test]
    fn timestamps_are_accepted_exactly_within_2000_to_2100(ts in timestamp_case()) {
        let message = json!({"from": "16505551234", "id": "wamid.ts", "timestamp": ts,
                             "type": "text", "text": {"body": "hi"}});
        let root = embed(5, message);
        parse_and_check(&root)?;
        let parsed = parse(&serde_json::to_vec(&root).expect("serialise")).expect("envelope ok");
        let ok = timestamp_ok(&ts);
        prop_assert_eq!(parsed.messages.len(), usize::from(ok), "{} -> {:?}", ts, parsed);
        prop_assert_eq!(parsed.rejects.len(), usize::from(!ok), "{} -> {:?}", ts, parsed);
        if ok {
            let expected = match &ts {
                Value::String(s) => s.trim().parse::<i64>().ok(),
                other => other.as_f64().map(|f| f as i64),
            };
            prop_assert_eq!(Some(parsed.messages[0].timestamp.timestamp()), expected);
        }
    }
}

/// Nesting depth of a value (a scalar is 0).
fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn text_body_with(text: &str) -> String {
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{{"field":"messages","value":{{"messages":[{{"from":"16505551234","id":"wamid.deep","timestamp":"1779000000","type":"text","text":{{"body":{text}}}}}]}}}}]}}]}}"#
    )
}

#[test]
fn ten_thousand_deep_nesting_is_not_json_and_does_not_overflow() {
    const DEEP: usize = 10_000;
    let arrays = format!("{}{}", "[".repeat(DEEP), "]".repeat(DEEP));
    let objects = format!("{}1{}", r#"{"a":"#.repeat(DEEP), "}".repeat(DEEP));
    let mixed = format!(
        "{}null{}",
        r#"[{"entry":"#.repeat(DEEP / 2),
        "}]".repeat(DEEP / 2)
    );
    let unclosed = "[".repeat(DEEP);
    let cases = [
        arrays.clone(),
        objects.clone(),
        mixed,
        unclosed,
        text_body_with(&arrays),
        text_body_with(&objects),
        format!(r#"{{"object":"whatsapp_business_account","entry":{arrays}}}"#),
    ];
    for (i, body) in cases.iter().enumerate() {
        assert!(
            matches!(parse(body.as_bytes()), Err(PayloadError::NotJson(_))),
            "case {i}"
        );
    }
}

#[test]
fn a_megabyte_text_body_is_stored_capped() {
    let long = "é".repeat(1 << 20); // 2 MiB of UTF-8, 1 Mi characters
    let body = text_body_with(&serde_json::to_string(&long).expect("serialise"));
    let parsed = parse(body.as_bytes()).expect("envelope ok");
    assert_eq!(parsed.rejects, vec![]);
    assert_eq!(parsed.messages.len(), 1);
    let summary = &parsed.messages[0].summary;
    assert_eq!(summary.chars().count(), MAX_SUMMARY_CHARS);
    assert!(long.starts_with(summary.as_str()));
}

#[test]
fn a_hundred_kilobyte_wamid_is_rejected_not_stored() {
    let wamid = format!("wamid.{}", "A".repeat(100 * 1024));
    let message = json!({"from": "16505551234", "id": wamid, "timestamp": "1779000000",
                         "type": "text", "text": {"body": "hi"}});
    let status = json!({"id": wamid, "status": "read", "timestamp": "1779000000"});
    let root = json!({"object": "whatsapp_business_account", "entry": [{"changes": [
        {"field": "messages", "value": {"messages": [message], "statuses": [status]}}
    ]}]});
    let parsed = parse(&serde_json::to_vec(&root).expect("serialise")).expect("envelope ok");
    assert_eq!(parsed.messages, vec![]);
    assert_eq!(parsed.statuses, vec![]);
    assert_eq!(parsed.rejects.len(), 2);
    for r in &parsed.rejects {
        assert!(r.reason.contains("longer than 256"), "{}", r.reason);
        assert!(r.reason.len() < 200, "{}", r.reason);
    }
}

/// Every field of the realistic body, one at a time, replaced by a 100 KiB
/// string (of digits, so it also looks like a number to lenient readers):
/// far past every cap, yet small enough to try all ~190 fields in debug.
#[test]
fn megabyte_strings_in_every_field_never_panic() {
    let huge = Value::from("7".repeat(100 * 1024));
    let template = realistic_body();
    for path in paths(&template) {
        let mut root = template.clone();
        *at_mut(&mut root, &path).expect("path exists") = huge.clone();
        let bytes = serde_json::to_vec(&root).expect("serialise");
        let result = parse(&bytes);
        match (expected_items(&root), result) {
            (Some(_), Ok(parsed)) => {
                check_invariants(&parsed).unwrap_or_else(|e| panic!("{path:?}: {e}"));
            }
            (None, Err(PayloadError::Shape(_))) => {}
            (expected, got) => panic!("{path:?}: expected {expected:?}, got {got:?}"),
        }
    }
}
