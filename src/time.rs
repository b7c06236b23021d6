//! Timestamps: stored as UTC `NaiveDateTime` (the one type both backends
//! share), shown in JSON as RFC 3339 with a `Z`.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use serde::Serializer;

/// The current time at microsecond precision, as both databases store it
/// (so a value read back compares equal to the one written).
pub fn now() -> NaiveDateTime {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros())
        .unwrap_or(now)
        .naive_utc()
}

pub fn to_rfc3339(t: &NaiveDateTime) -> String {
    t.and_utc().to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

pub fn from_utc(t: DateTime<Utc>) -> NaiveDateTime {
    t.naive_utc()
}

/// `#[serde(serialize_with = "crate::time::rfc3339")]`
pub fn rfc3339<S: Serializer>(t: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&to_rfc3339(t))
}

/// `#[serde(serialize_with = "crate::time::rfc3339_opt")]`
pub fn rfc3339_opt<S: Serializer>(t: &Option<NaiveDateTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&to_rfc3339(t)),
        None => s.serialize_none(),
    }
}
