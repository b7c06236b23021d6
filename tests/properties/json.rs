//! JSON strategies shared by the parser properties: arbitrary values biased
//! towards Meta's vocabulary, deep chains, and hostile field values.

use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// Keys Meta's webhooks use, so random objects often hit real code paths.
pub const META_KEYS: &[&str] = &[
    "object",
    "entry",
    "id",
    "changes",
    "field",
    "value",
    "messaging_product",
    "metadata",
    "phone_number_id",
    "display_phone_number",
    "contacts",
    "profile",
    "name",
    "username",
    "wa_id",
    "user_id",
    "parent_user_id",
    "messages",
    "statuses",
    "from",
    "from_user_id",
    "from_parent_user_id",
    "timestamp",
    "type",
    "text",
    "body",
    "image",
    "video",
    "audio",
    "sticker",
    "document",
    "caption",
    "filename",
    "location",
    "latitude",
    "longitude",
    "interactive",
    "button_reply",
    "list_reply",
    "title",
    "button",
    "reaction",
    "emoji",
    "order",
    "product_items",
    "system",
    "new_wa_id",
    "formatted_name",
    "first_name",
    "last_name",
    "status",
    "recipient_id",
    "recipient_user_id",
];

/// String values Meta's webhooks use.
pub const META_STRINGS: &[&str] = &[
    "whatsapp_business_account",
    "messages",
    "whatsapp",
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
    "unsupported",
    "user_changed_number",
    "user_changed_user_id",
    "delivered",
    "read",
    "16505551234",
    "+1 (650) 555-1234",
    "US.13491208655302741918",
    "US.ENT.11815799212886844830",
    "BR.1502576394655843",
    "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQUE1RjQ4NDlCNzM2MEJGNzgyMQA=",
    "1779000000",
    "946684799",
    "4133980800",
    "-1",
    "1779000000.5",
    "abc",
    "",
    "   ",
    "User A changed from 16505551234 to 16505559999",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(META_KEYS).prop_map(str::to_owned),
        1 => "(?s).{0,12}",
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from), // NaN and infinities become null
        (-2_000_000_000i64..5_000_000_000).prop_map(Value::from),
        (946_684_000i64..4_133_990_000).prop_map(|s| Value::from(s as f64)),
        (0.0f64..5e9).prop_map(Value::from),
        Just(json!(1e300)),
        Just(json!(-0.0)),
        Just(json!(u64::MAX)),
        Just(json!(i64::MIN)),
    ]
}

fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(META_STRINGS).prop_map(str::to_owned),
        2 => any::<String>(),
        1 => "[0-9 +().-]{0,20}",
        1 => "[A-Z]{2}\\.(ENT\\.)?[A-Za-z0-9]{0,130}",
        1 => "[ \t\r\n\u{a0}\u{2028}\u{feff}]{0,5}",
    ]
}

/// A JSON scalar of any kind.
pub fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::from),
        3 => number(),
        4 => string().prop_map(Value::from),
    ]
}

/// Arbitrary JSON: nested objects and arrays up to `depth` levels.
pub fn any_json(depth: u32) -> impl Strategy<Value = Value> {
    scalar().prop_recursive(depth, 256, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A value wrapped in a chain of `0..=max` arrays and single-key objects:
/// reaches depths that `prop_recursive` rarely builds.
pub fn deep_chain(max: usize) -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(prop::option::of(key()), 0..=max),
        any_json(2),
    )
        .prop_map(|(wrappers, leaf)| {
            wrappers
                .into_iter()
                .fold(leaf, |inner, wrapper| match wrapper {
                    Some(k) => Value::Object(Map::from_iter([(k, inner)])),
                    None => json!([inner]),
                })
        })
}

/// A value of the wrong type (or a right-typed but absurd value) for any
/// field of a webhook: numbers out of range, floats, huge numbers, `"abc"`,
/// objects, arrays, null, empty and whitespace strings, long strings.
pub fn hostile_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => scalar(),
        2 => any_json(4),
        1 => Just(json!([])),
        1 => Just(json!({})),
        1 => Just(json!([null])),
        1 => "(?s).{300,3000}".prop_map(Value::from),
        1 => (1usize..5000).prop_map(|n| Value::from("9".repeat(n))),
    ]
}

/// A realistic Meta webhook: two entries, several changes, contacts, every
/// message type the parser knows, statuses and a non-message field.
pub fn realistic_body() -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                            "contacts": [
                                {"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234", "user_id": "US.13491208655302741918"},
                                {"profile": {"name": "Marina Costa", "username": "@marina.costa"}, "user_id": "BR.1502576394655843", "parent_user_id": "BR.ENT.99120004471385"}
                            ],
                            "messages": [
                                {"from": "16505551234", "from_user_id": "US.13491208655302741918", "id": "wamid.p.text", "timestamp": "1779012345", "type": "text", "text": {"body": "Hi! How much is the course?"}},
                                {"from_user_id": "BR.1502576394655843", "from_parent_user_id": "BR.ENT.99120004471385", "id": "wamid.p.image", "timestamp": "1779012346", "type": "image", "image": {"caption": "My certificate", "mime_type": "image/jpeg", "sha256": "abc", "id": "1234"}},
                                {"from": "16505551234", "id": "wamid.p.location", "timestamp": "1779012347", "type": "location", "location": {"latitude": 37.44, "longitude": -122.16, "name": "Philz Coffee"}},
                                {"from": "16505551234", "id": "wamid.p.document", "timestamp": "1779012348", "type": "document", "document": {"filename": "cv.pdf"}},
                                {"from": "16505551234", "id": "wamid.p.interactive", "timestamp": "1779012349", "type": "interactive", "interactive": {"type": "button_reply", "button_reply": {"id": "b1", "title": "Yes"}}},
                                {"from": "16505551234", "id": "wamid.p.button", "timestamp": "1779012350", "type": "button", "button": {"text": "Stop", "payload": "stop"}},
                                {"from": "16505551234", "id": "wamid.p.reaction", "timestamp": "1779012351", "type": "reaction", "reaction": {"message_id": "wamid.x", "emoji": "👍"}},
                                {"from": "16505551234", "id": "wamid.p.contacts", "timestamp": "1779012352", "type": "contacts", "contacts": [{"name": {"formatted_name": "Ada Lovelace", "first_name": "Ada"}, "phones": [{"phone": "+44 20 7946 0958"}]}]},
                                {"from": "16505551234", "id": "wamid.p.order", "timestamp": "1779012353", "type": "order", "order": {"catalog_id": "1", "product_items": [{"product_retailer_id": "A", "quantity": 1}]}},
                                {"from": "16505551234", "id": "wamid.p.unknown", "timestamp": "1779012354", "type": "poll_creation", "poll_creation": {"question": "?"}}
                            ],
                            "statuses": [
                                {"id": "wamid.out.1", "status": "delivered", "timestamp": "1779012360", "recipient_id": "16505551234"}
                            ]
                        }
                    },
                    {"field": "account_update", "value": {"event": "VERIFIED_ACCOUNT"}}
                ]
            },
            {
                "id": "102290129340399",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"display_phone_number": "15550783882", "phone_number_id": 298_765_432_101_234_u64},
                            "messages": [
                                {"from": "16505551234", "id": "wamid.p.system", "timestamp": 1_779_012_400, "type": "system", "system": {"body": "User A changed from 16505551234 to 16505559999", "wa_id": "16505559999", "type": "user_changed_number"}},
                                {"from": "US.13491208655302741918", "id": "wamid.p.relay", "timestamp": "1779012401", "type": "sticker", "sticker": {"id": "5"}}
                            ]
                        }
                    }
                ]
            }
        ]
    })
}

/// A step into a JSON value: an object key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// Every path in `value` (the root is the empty path), depth first.
pub fn paths(value: &Value) -> Vec<Vec<Step>> {
    fn walk(value: &Value, here: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
        out.push(here.clone());
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    here.push(Step::Key(k.clone()));
                    walk(v, here, out);
                    here.pop();
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    here.push(Step::Index(i));
                    walk(v, here, out);
                    here.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, &mut Vec::new(), &mut out);
    out
}

/// The value at `path`, mutably.
pub fn at_mut<'a>(value: &'a mut Value, path: &[Step]) -> Option<&'a mut Value> {
    path.iter().try_fold(value, |v, step| match step {
        Step::Key(k) => v.get_mut(k.as_str()),
        Step::Index(i) => v.get_mut(*i),
    })
}

/// Removes the value at `path` (the key from its object, the item from its
/// array); removing the root makes it `null`.
pub fn remove(value: &mut Value, path: &[Step]) {
    let Some((last, parent)) = path.split_last() else {
        *value = Value::Null;
        return;
    };
    match (at_mut(value, parent), last) {
        (Some(Value::Object(map)), Step::Key(k)) => {
            map.remove(k);
        }
        (Some(Value::Array(items)), Step::Index(i)) if *i < items.len() => {
            items.remove(*i);
        }
        _ => {}
    }
}
