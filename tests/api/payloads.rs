//! Builders of Meta-shaped webhook bodies for the black-box tests.

use serde_json::{json, Value};

pub const BUSINESS_NUMBER_ID: &str = "106540352242922";

/// Who writes: a phone number, a BSUID, or both.
#[derive(Debug, Clone, Default)]
pub struct Sender {
    pub phone: Option<String>,
    pub bsuid: Option<String>,
    pub name: Option<String>,
    pub username: Option<String>,
}

impl Sender {
    pub fn phone(phone: &str) -> Sender {
        Sender {
            phone: Some(phone.into()),
            ..Default::default()
        }
    }
    pub fn bsuid(bsuid: &str) -> Sender {
        Sender {
            bsuid: Some(bsuid.into()),
            ..Default::default()
        }
    }
    pub fn both(phone: &str, bsuid: &str) -> Sender {
        Sender {
            phone: Some(phone.into()),
            bsuid: Some(bsuid.into()),
            ..Default::default()
        }
    }
    pub fn named(mut self, name: &str) -> Sender {
        self.name = Some(name.into());
        self
    }
    pub fn username(mut self, username: &str) -> Sender {
        self.username = Some(username.into());
        self
    }

    fn contact(&self) -> Value {
        let mut profile = json!({ "name": self.name.clone().unwrap_or_default() });
        if let Some(u) = &self.username {
            profile["username"] = json!(u);
        }
        let mut contact = json!({ "profile": profile });
        if let Some(p) = &self.phone {
            contact["wa_id"] = json!(p);
        }
        if let Some(b) = &self.bsuid {
            contact["user_id"] = json!(b);
        }
        contact
    }
}

/// One inbound message: the sender, id, WhatsApp timestamp and its typed part
/// (`"type"` plus the object of that type).
#[derive(Debug, Clone)]
pub struct Msg {
    pub sender: Sender,
    pub id: String,
    pub timestamp: i64,
    pub kind: String,
    pub content: Option<Value>,
}

/// A fixed, recent base time so timestamps are deterministic.
pub const T0: i64 = 1_763_000_000;

impl Msg {
    pub fn text(sender: &Sender, id: &str, timestamp: i64, body: &str) -> Msg {
        Msg::typed(sender, id, timestamp, "text", Some(json!({ "body": body })))
    }

    pub fn typed(
        sender: &Sender,
        id: &str,
        timestamp: i64,
        kind: &str,
        content: Option<Value>,
    ) -> Msg {
        Msg {
            sender: sender.clone(),
            id: id.into(),
            timestamp,
            kind: kind.into(),
            content,
        }
    }

    fn to_json(&self) -> Value {
        let mut m = json!({
            "id": self.id,
            "timestamp": self.timestamp.to_string(),
            "type": self.kind,
        });
        if let Some(p) = &self.sender.phone {
            m["from"] = json!(p);
        }
        if let Some(b) = &self.sender.bsuid {
            m["from_user_id"] = json!(b);
        }
        if let Some(c) = &self.content {
            m[self.kind.as_str()] = c.clone();
        }
        m
    }
}

/// A `messages` change value holding these messages and their contacts.
pub fn value(messages: &[Msg]) -> Value {
    let mut contacts: Vec<Value> = Vec::new();
    for m in messages {
        let c = m.sender.contact();
        if !contacts.contains(&c) {
            contacts.push(c);
        }
    }
    json!({
        "messaging_product": "whatsapp",
        "metadata": { "display_phone_number": "15550001111", "phone_number_id": BUSINESS_NUMBER_ID },
        "contacts": contacts,
        "messages": messages.iter().map(Msg::to_json).collect::<Vec<_>>(),
    })
}

/// A whole webhook body with one entry and one change.
pub fn webhook(messages: &[Msg]) -> Value {
    body_of(vec![change("messages", value(messages))])
}

pub fn change(field: &str, value: Value) -> Value {
    json!({ "field": field, "value": value })
}

/// A body with one entry per given change.
pub fn body_of(changes: Vec<Value>) -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": changes
            .into_iter()
            .map(|c| json!({ "id": "102290129340398", "changes": [c] }))
            .collect::<Vec<_>>(),
    })
}

/// One text message from a phone number: the most common case.
pub fn text_from(phone: &str, id: &str, timestamp: i64, body: &str) -> Value {
    webhook(&[Msg::text(
        &Sender::phone(phone).named("Ada Lovelace"),
        id,
        timestamp,
        body,
    )])
}
