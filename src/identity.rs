//! Who a person is on WhatsApp: a phone number, a business-scoped user id
//! (BSUID), or both.
//!
//! Since 2026 WhatsApp users can adopt a username and hide their phone
//! number, so the phone number is no longer a reliable key. Every inbound
//! message carries a BSUID instead (`US.13491208655302741918`), and the phone
//! number only while Meta still shares it. These newtypes parse raw wire
//! strings once, at the edge, so the rest of leadhook never has to guess
//! whether a string is a phone number or a BSUID.

use std::fmt;
use std::str::FromStr;

/// Longest raw value quoted back in an error message: wire values can be
/// arbitrarily long, and an error line should stay readable.
const MAX_QUOTED: usize = 40;

/// Why a raw value is not a valid identifier.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    /// The value is not 6 to 15 digits once separators are removed.
    #[error("not a phone number: {0:?}")]
    NotAPhoneNumber(String),
    /// The value is not `CC.<alphanumerics>` or `CC.ENT.<alphanumerics>`.
    #[error("not a business-scoped user id: {0:?}")]
    NotABsuid(String),
    /// Neither identifier could be found for a sender.
    #[error("message has neither a phone number nor a business-scoped user id")]
    NoIdentifier,
}

/// Shortens a raw value for quoting in an error (char-boundary safe).
fn quoted(raw: &str) -> String {
    let mut chars = raw.chars();
    let mut out: String = chars.by_ref().take(MAX_QUOTED).collect();
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

/// A phone number as WhatsApp shares it: digits only, international form
/// without the leading `+` (`16505551234`).
///
/// Parsing accepts the usual human spellings (`+1 (650) 555-1234`) because
/// admins type numbers in by hand when registering students; the stored form
/// is always the bare digits so the same number always compares equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Fewest digits accepted: shorter strings are codes, not numbers.
    pub const MIN_DIGITS: usize = 6;
    /// Most digits an E.164 number can have.
    pub const MAX_DIGITS: usize = 15;

    /// Parses a phone number, tolerating one leading `+` and the separators
    /// space, `-`, `.`, `(` and `)`.
    pub fn parse(s: &str) -> Result<Self, IdentityError> {
        let reject = || IdentityError::NotAPhoneNumber(quoted(s));
        let trimmed = s.trim();
        let unsigned = trimmed.strip_prefix('+').unwrap_or(trimmed);
        let mut digits = String::with_capacity(unsigned.len());
        for c in unsigned.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(reject()),
            }
        }
        if (Self::MIN_DIGITS..=Self::MAX_DIGITS).contains(&digits.len()) {
            Ok(Self(digits))
        } else {
            Err(reject())
        }
    }

    /// The digits, without `+`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digits, without `+`, by value.
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A business-scoped user id: `CC.` followed by 1 to 128 ASCII
/// alphanumerics, where `CC` is an upper-case ISO country code
/// (`US.13491208655302741918`). Parent BSUIDs shared across linked business
/// portfolios have `ENT.` after the country code (`US.ENT.11815799212886844830`)
/// and are accepted too.
///
/// The tail keeps its case: Meta says to store and send BSUIDs back exactly
/// as received.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bsuid(String);

impl Bsuid {
    /// Longest alphanumeric tail Meta documents.
    pub const MAX_TAIL: usize = 128;

    /// Parses a BSUID or parent BSUID, ignoring surrounding whitespace.
    pub fn parse(s: &str) -> Result<Self, IdentityError> {
        let trimmed = s.trim();
        if is_bsuid(trimmed) {
            Ok(Self(trimmed.to_owned()))
        } else {
            Err(IdentityError::NotABsuid(quoted(s)))
        }
    }

    /// True for a parent BSUID (`CC.ENT.…`), which identifies the person
    /// across linked business portfolios rather than within one.
    pub fn is_parent(&self) -> bool {
        self.0.get(2..7) == Some(".ENT.")
    }

    /// The id exactly as received (trimmed).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id exactly as received (trimmed), by value.
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// `CC.<tail>` or `CC.ENT.<tail>` with a valid tail.
fn is_bsuid(s: &str) -> bool {
    let Some((country, rest)) = s.split_once('.') else {
        return false;
    };
    let country_ok = country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase());
    let tail = rest.strip_prefix("ENT.").unwrap_or(rest);
    country_ok && is_bsuid_tail(tail)
}

fn is_bsuid_tail(tail: &str) -> bool {
    (1..=Bsuid::MAX_TAIL).contains(&tail.len()) && tail.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Who sent a message: a BSUID, a phone number, or both — never neither.
///
/// The representation makes "neither" impossible, so code holding a
/// `SenderId` never needs a fallback for a sender without identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SenderId {
    ids: SenderIds,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum SenderIds {
    Bsuid(Bsuid),
    Phone(PhoneNumber),
    Both(Bsuid, PhoneNumber),
}

impl SenderId {
    /// Combines already-parsed identifiers; fails only when both are absent.
    pub fn new(bsuid: Option<Bsuid>, phone: Option<PhoneNumber>) -> Result<Self, IdentityError> {
        let ids = match (bsuid, phone) {
            (Some(b), Some(p)) => SenderIds::Both(b, p),
            (Some(b), None) => SenderIds::Bsuid(b),
            (None, Some(p)) => SenderIds::Phone(p),
            (None, None) => return Err(IdentityError::NoIdentifier),
        };
        Ok(Self { ids })
    }

    /// Builds a sender from raw wire values.
    ///
    /// `from` is `messages[].from` or `contacts[].wa_id`: normally a phone
    /// number, but relays sometimes put the BSUID there when Meta withheld
    /// the number, so a BSUID-shaped value is taken as the BSUID and never
    /// stored as a phone number. `user_id` is `messages[].from_user_id` or
    /// `contacts[].user_id` and must be a BSUID. When both carry BSUIDs that
    /// differ, the explicit `user_id` wins: it is the field Meta defines for
    /// it. Values that parse as neither are ignored rather than failing the
    /// message, because the other identifier may still identify the sender.
    pub fn from_wire(from: Option<&str>, user_id: Option<&str>) -> Result<Self, IdentityError> {
        let (from_bsuid, phone) = match from.map(str::trim).filter(|s| !s.is_empty()) {
            Some(raw) => match Bsuid::parse(raw) {
                Ok(b) => (Some(b), None),
                Err(_) => (None, PhoneNumber::parse(raw).ok()),
            },
            None => (None, None),
        };
        let explicit = user_id.and_then(|raw| Bsuid::parse(raw).ok());
        if let (Some(e), Some(f)) = (&explicit, &from_bsuid) {
            if e != f {
                log::debug!("sender carries two different BSUIDs; using the explicit user id");
            }
        }
        Self::new(explicit.or(from_bsuid), phone)
    }

    /// The sender's BSUID, when known.
    pub fn bsuid(&self) -> Option<&Bsuid> {
        match &self.ids {
            SenderIds::Bsuid(b) | SenderIds::Both(b, _) => Some(b),
            SenderIds::Phone(_) => None,
        }
    }

    /// The sender's phone number, when WhatsApp shared it.
    pub fn phone(&self) -> Option<&PhoneNumber> {
        match &self.ids {
            SenderIds::Phone(p) | SenderIds::Both(_, p) => Some(p),
            SenderIds::Bsuid(_) => None,
        }
    }

    /// Key of the live conversation: the BSUID when known, else the phone
    /// number. The BSUID wins because it is present on every message and,
    /// unlike a phone number, is never recycled to another person.
    pub fn conversation_key(&self) -> &str {
        match &self.ids {
            SenderIds::Bsuid(b) | SenderIds::Both(b, _) => b.as_str(),
            SenderIds::Phone(p) => p.as_str(),
        }
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Bsuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for PhoneNumber {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Bsuid {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for PhoneNumber {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl FromStr for Bsuid {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for PhoneNumber {
    type Error = IdentityError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl TryFrom<String> for Bsuid {
    type Error = IdentityError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

/// Serialised as the bare string; deserialising validates, so a value read
/// back from JSON is as trustworthy as one built with `parse`.
impl serde::Serialize for PhoneNumber {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for PhoneNumber {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Bsuid {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Bsuid {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BSUID: &str = "US.13491208655302741918";
    const PARENT: &str = "US.ENT.11815799212886844830";

    fn phone(s: &str) -> PhoneNumber {
        PhoneNumber::parse(s).expect("test phone number parses")
    }

    fn bsuid(s: &str) -> Bsuid {
        Bsuid::parse(s).expect("test BSUID parses")
    }

    #[test]
    fn phone_accepts_wire_digits_unchanged() {
        assert_eq!(phone("16505551234").as_str(), "16505551234");
    }

    #[test]
    fn phone_strips_plus_and_human_separators() {
        assert_eq!(phone("+1 (650) 555-1234").as_str(), "16505551234");
        assert_eq!(phone("  +44 20.7946.0958 ").as_str(), "442079460958");
        assert_eq!(phone("+1 (650) 555-1234"), phone("16505551234"));
    }

    #[test]
    fn phone_length_bounds_are_inclusive() {
        assert_eq!(phone("123456").as_str(), "123456");
        assert_eq!(phone("123456789012345").as_str(), "123456789012345");
        assert!(PhoneNumber::parse("12345").is_err());
        assert!(PhoneNumber::parse("1234567890123456").is_err());
        // Separators do not count towards the length.
        assert!(PhoneNumber::parse("1-2-3-4-5").is_err());
    }

    #[test]
    fn phone_rejects_letters_bsuids_and_misplaced_plus() {
        for raw in [
            "",
            "   ",
            "+",
            "1650555123a",
            BSUID,
            "1650+5551234",
            "++16505551234",
            "16505551234 ext 2",
            "１６５０５５５１２３４", // full-width digits are not ASCII digits
        ] {
            assert_eq!(
                PhoneNumber::parse(raw),
                Err(IdentityError::NotAPhoneNumber(quoted(raw))),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn phone_into_inner_and_display_give_digits() {
        let p = phone("+49 30 1234567");
        assert_eq!(p.to_string(), "49301234567");
        assert_eq!(p.into_inner(), "49301234567");
    }

    #[test]
    fn bsuid_accepts_documented_examples() {
        assert_eq!(bsuid(BSUID).as_str(), BSUID);
        assert_eq!(bsuid("BR.1502576394655843").as_str(), "BR.1502576394655843");
        assert!(!bsuid(BSUID).is_parent());
    }

    #[test]
    fn bsuid_accepts_parent_ids() {
        let parent = bsuid(PARENT);
        assert_eq!(parent.as_str(), PARENT);
        assert!(parent.is_parent());
    }

    #[test]
    fn bsuid_trims_and_keeps_tail_case() {
        assert_eq!(bsuid("  IN.AbCdEf123 \n").as_str(), "IN.AbCdEf123");
    }

    #[test]
    fn bsuid_tail_length_bounds() {
        let longest = format!("US.{}", "a".repeat(128));
        assert_eq!(bsuid(&longest).as_str(), longest);
        assert!(Bsuid::parse(&format!("US.{}", "a".repeat(129))).is_err());
        assert!(Bsuid::parse("US.").is_err());
        assert!(Bsuid::parse("US.ENT.").is_err());
    }

    #[test]
    fn bsuid_rejects_malformed_values() {
        for raw in [
            "",
            "16505551234",
            "us.13491208655302741918",
            "USA.1349",
            "U.1349",
            "US13491208655302741918",
            "US.1349-1208",
            "US.1349.1208",
            "US.ENT.ENT.1181",
            "US.ent.1181",
            "US. 1349",
            "ÜS.1349",
            "US.ÄBC",
        ] {
            assert_eq!(
                Bsuid::parse(raw),
                Err(IdentityError::NotABsuid(quoted(raw))),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn bsuid_shaped_like_ent_tail_is_a_plain_bsuid() {
        // "ENT" alone is just an alphanumeric tail, not a parent marker.
        let b = bsuid("US.ENT");
        assert!(!b.is_parent());
    }

    #[test]
    fn errors_quote_long_values_shortened() {
        let long = "x".repeat(500);
        let message = PhoneNumber::parse(&long).unwrap_err().to_string();
        assert!(message.starts_with("not a phone number: \"xxx"));
        assert!(message.chars().count() < 80, "{message}");
        assert_eq!(
            Bsuid::parse("nope").unwrap_err().to_string(),
            "not a business-scoped user id: \"nope\""
        );
    }

    #[test]
    fn sender_new_requires_an_identifier() {
        assert_eq!(SenderId::new(None, None), Err(IdentityError::NoIdentifier));
        assert_eq!(
            IdentityError::NoIdentifier.to_string(),
            "message has neither a phone number nor a business-scoped user id"
        );
        let s = SenderId::new(None, Some(phone("16505551234"))).expect("phone only");
        assert_eq!(s.phone().map(PhoneNumber::as_str), Some("16505551234"));
        assert_eq!(s.bsuid(), None);
    }

    #[test]
    fn sender_from_wire_phone_and_bsuid() {
        let s = SenderId::from_wire(Some("16505551234"), Some(BSUID)).expect("both");
        assert_eq!(s.phone(), Some(&phone("16505551234")));
        assert_eq!(s.bsuid(), Some(&bsuid(BSUID)));
        assert_eq!(s.conversation_key(), BSUID);
    }

    #[test]
    fn sender_from_wire_bsuid_only() {
        let s = SenderId::from_wire(None, Some(BSUID)).expect("bsuid only");
        assert_eq!(s.phone(), None);
        assert_eq!(s.conversation_key(), BSUID);
    }

    #[test]
    fn sender_from_wire_phone_only_keys_on_phone() {
        let s = SenderId::from_wire(Some("+1 650 555 1234"), None).expect("phone only");
        assert_eq!(s.bsuid(), None);
        assert_eq!(s.conversation_key(), "16505551234");
    }

    #[test]
    fn sender_from_wire_bsuid_in_from_is_never_a_phone() {
        let s = SenderId::from_wire(Some(BSUID), None).expect("relay put BSUID in from");
        assert_eq!(s.phone(), None);
        assert_eq!(s.bsuid(), Some(&bsuid(BSUID)));
    }

    #[test]
    fn sender_from_wire_explicit_user_id_wins_over_bsuid_in_from() {
        let s = SenderId::from_wire(Some("GB.777"), Some(BSUID)).expect("two BSUIDs");
        assert_eq!(s.bsuid(), Some(&bsuid(BSUID)));
        assert_eq!(s.phone(), None);
    }

    #[test]
    fn sender_from_wire_ignores_garbage_but_keeps_the_other_id() {
        let s = SenderId::from_wire(Some("not-a-number"), Some(BSUID)).expect("bsuid remains");
        assert_eq!(s.phone(), None);
        assert_eq!(s.bsuid(), Some(&bsuid(BSUID)));

        let s = SenderId::from_wire(Some("16505551234"), Some("garbage")).expect("phone remains");
        assert_eq!(s.bsuid(), None);
        assert_eq!(s.phone(), Some(&phone("16505551234")));
    }

    #[test]
    fn sender_from_wire_phone_in_user_id_is_not_a_bsuid() {
        assert_eq!(
            SenderId::from_wire(None, Some("16505551234")),
            Err(IdentityError::NoIdentifier)
        );
    }

    #[test]
    fn sender_from_wire_without_anything_usable_fails() {
        for (from, user_id) in [
            (None, None),
            (Some(""), Some("")),
            (Some("   "), None),
            (Some("abc"), Some("xyz")),
        ] {
            assert_eq!(
                SenderId::from_wire(from, user_id),
                Err(IdentityError::NoIdentifier),
                "{from:?} {user_id:?}"
            );
        }
    }

    #[test]
    fn serde_round_trip_validates() {
        let p = phone("16505551234");
        let json = serde_json::to_string(&p).expect("serialise");
        assert_eq!(json, "\"16505551234\"");
        assert_eq!(serde_json::from_str::<PhoneNumber>(&json).expect("back"), p);
        assert!(serde_json::from_str::<PhoneNumber>("\"abc\"").is_err());

        let b = bsuid(PARENT);
        let json = serde_json::to_string(&b).expect("serialise");
        assert_eq!(serde_json::from_str::<Bsuid>(&json).expect("back"), b);
        assert!(serde_json::from_str::<Bsuid>("\"16505551234\"").is_err());
    }

    #[test]
    fn from_str_and_try_from_agree_with_parse() {
        assert_eq!(
            "+1 650 555 1234".parse::<PhoneNumber>(),
            PhoneNumber::parse("16505551234")
        );
        assert_eq!(Bsuid::try_from(BSUID.to_owned()), Bsuid::parse(BSUID));
    }
}
