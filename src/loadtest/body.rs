//! Signed webhook requests: built (and signed) before the clock starts, so
//! the load generator spends its measured time on sockets, not on JSON and
//! HMAC.
//!
//! Every request is a complete HTTP/1.1 POST (head and body) carrying one
//! inbound WhatsApp text message in the shape Meta sends, including the 2026
//! username/BSUID fields, from one of `senders` stable people. Each message
//! has an id no other request of any run has (`wamid.LT<run><phase><seq>`),
//! so the server must store every one exactly once, and the admin API's
//! message count can be checked against the number of `200` answers.

use std::fmt::Write as _;
use std::sync::Arc;

use super::content::{self, DISPLAY_PHONE_NUMBER, PHONE_NUMBER_ID, TEXTS, WABA_ID};
use crate::whatsapp::signature;

/// Which part of a run a request belongs to. Part of the message id, so a
/// warm-up request and a measured request never share an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Warmup,
    Measure,
}

impl Phase {
    fn tag(self) -> char {
        match self {
            Phase::Warmup => 'W',
            Phase::Measure => 'M',
        }
    }
}

/// How a sender shows up in the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenderKind {
    /// Phone number and BSUID (most people in 2026).
    PhoneAndBsuid,
    /// BSUID and username only: the phone number is withheld.
    UsernameOnly,
    /// Phone number only: a pre-BSUID payload (still sent by some relays).
    PhoneOnly,
}

/// Sender `k`'s kind: 60 % phone and BSUID, 30 % username users, 10 %
/// legacy phone-only payloads.
pub fn sender_kind(k: u64) -> SenderKind {
    match k % 10 {
        0..=5 => SenderKind::PhoneAndBsuid,
        6..=8 => SenderKind::UsernameOnly,
        _ => SenderKind::PhoneOnly,
    }
}

/// Sender `k`'s phone number: US 555 range, 13 digits, unique per `k`.
pub fn sender_phone(k: u64) -> String {
    format!("15552{:08}", k % 100_000_000)
}

/// Sender `k`'s BSUID: `US.` and 20 digits, unique per `k`.
pub fn sender_bsuid(k: u64) -> String {
    format!("US.72{:018}", k)
}

/// What sender `k`'s bodies identify it by, as its kind sends them: its
/// phone number (`wa_id` and `from`) and its BSUID (`user_id` and
/// `from_user_id`).
pub fn sender_identities(k: u64) -> (Option<String>, Option<String>) {
    let kind = sender_kind(k);
    (
        (kind != SenderKind::UsernameOnly).then(|| sender_phone(k)),
        (kind != SenderKind::PhoneOnly).then(|| sender_bsuid(k)),
    )
}

/// The most senders the identifiers above keep distinct.
pub const MAX_SENDERS: u64 = 100_000_000;

/// Builds the signed requests of one run.
pub struct RequestFactory {
    secret: Vec<u8>,
    /// Request line and fixed headers, up to the signature header.
    head_prefix: String,
    /// Distinguishes this run's message ids from every other run's.
    run_tag: String,
    senders: u64,
    /// `TEXTS`, each already a JSON string literal (quotes included).
    texts_json: Vec<String>,
}

impl RequestFactory {
    /// `host` is the Host header value, `path` the webhook's path.
    pub fn new(secret: &[u8], host: &str, path: &str, senders: u64) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let run = content::mix(nanos ^ (u64::from(std::process::id()) << 40));
        Self::with_run_tag(secret, host, path, senders, format!("{run:016X}"))
    }

    /// As [`RequestFactory::new`] with a chosen run tag (tests).
    pub fn with_run_tag(
        secret: &[u8],
        host: &str,
        path: &str,
        senders: u64,
        run_tag: String,
    ) -> Self {
        let head_prefix = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: facebookexternalua\r\n\
             Accept: */*\r\nContent-Type: application/json\r\n"
        );
        Self {
            secret: secret.to_vec(),
            head_prefix,
            run_tag,
            senders: senders.max(1),
            texts_json: TEXTS
                .iter()
                .map(|t| serde_json::Value::from(*t).to_string())
                .collect(),
        }
    }

    /// The message id of request `seq` of `phase`.
    pub fn wamid(&self, phase: Phase, seq: u64) -> String {
        format!("wamid.LT{}{}{seq:012X}", self.run_tag, phase.tag())
    }

    /// Which sender writes request `seq` of `phase`: spread uniformly over
    /// the senders, deterministically.
    pub fn sender_of(&self, phase: Phase, seq: u64) -> u64 {
        content::mix(seq.wrapping_mul(2).wrapping_add(phase as u64)) % self.senders
    }

    /// The webhook body of request `seq` of `phase`, with the given Unix
    /// timestamp (seconds).
    pub fn body(&self, phase: Phase, seq: u64, unix_secs: i64, out: &mut String) {
        let k = self.sender_of(phase, seq);
        let (phone, bsuid) = sender_identities(k);
        let name = content::name(k);
        let text = &self.texts_json[(content::mix(seq ^ 0xA5A5) % TEXTS.len() as u64) as usize];
        let wamid = self.wamid(phase, seq);
        out.clear();
        // Names come from a fixed list without quotes or backslashes except
        // the apostrophe, which JSON does not escape; multi-byte UTF-8 is
        // written as is, as Meta does.
        let _ = write!(
            out,
            "{{\"object\":\"whatsapp_business_account\",\"entry\":[{{\"id\":\"{WABA_ID}\",\"changes\":[{{\"value\":{{\
             \"messaging_product\":\"whatsapp\",\"metadata\":{{\"display_phone_number\":\"{DISPLAY_PHONE_NUMBER}\",\
             \"phone_number_id\":\"{PHONE_NUMBER_ID}\"}},\"contacts\":[{{\"profile\":{{\"name\":\"{name}\""
        );
        // Only a username user withholds the number.
        if phone.is_none() {
            let _ = write!(out, ",\"username\":\"{}\"", content::username(k));
        }
        out.push('}');
        if let Some(phone) = &phone {
            let _ = write!(out, ",\"wa_id\":\"{phone}\"");
        }
        if let Some(bsuid) = &bsuid {
            let _ = write!(out, ",\"user_id\":\"{bsuid}\"");
        }
        out.push_str("}],\"messages\":[{");
        if let Some(phone) = &phone {
            let _ = write!(out, "\"from\":\"{phone}\",");
        }
        if let Some(bsuid) = &bsuid {
            let _ = write!(out, "\"from_user_id\":\"{bsuid}\",");
        }
        let _ = write!(
            out,
            "\"id\":\"{wamid}\",\"timestamp\":\"{unix_secs}\",\"text\":{{\"body\":{text}}},\"type\":\"text\"}}]}},\
             \"field\":\"messages\"}}]}}]}}"
        );
    }

    /// Appends the complete HTTP request `seq` of `phase` to `out`; `scratch`
    /// is reused for the body.
    pub fn request_into(
        &self,
        phase: Phase,
        seq: u64,
        unix_secs: i64,
        scratch: &mut String,
        out: &mut Vec<u8>,
    ) {
        self.body(phase, seq, unix_secs, scratch);
        let sig = signature::sign(&self.secret, scratch.as_bytes());
        out.extend_from_slice(self.head_prefix.as_bytes());
        out.extend_from_slice(b"X-Hub-Signature-256: ");
        out.extend_from_slice(sig.as_bytes());
        out.extend_from_slice(b"\r\nContent-Length: ");
        out.extend_from_slice(scratch.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(scratch.as_bytes());
    }

    /// One request, built now (the on-the-fly path).
    pub fn request(&self, phase: Phase, seq: u64) -> Vec<u8> {
        let mut scratch = String::with_capacity(1024);
        let mut out = Vec::with_capacity(1280);
        self.request_into(phase, seq, unix_now(), &mut scratch, &mut out);
        out
    }
}

pub fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Pre-built requests `0..len()` of the measured phase, back to back in one
/// buffer (one allocation, not a million).
#[derive(Default)]
pub struct Pool {
    bytes: Vec<u8>,
    /// `ends[i]` is where request `i` ends in `bytes`.
    ends: Vec<usize>,
}

impl Pool {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Bytes held.
    pub fn size(&self) -> usize {
        self.bytes.len()
    }

    pub fn get(&self, i: u64) -> Option<&[u8]> {
        let i = usize::try_from(i).ok()?;
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some(&self.bytes[start..end])
    }

    fn push_built(&mut self, other: Pool) {
        let base = self.bytes.len();
        self.bytes.extend_from_slice(&other.bytes);
        self.ends.extend(other.ends.iter().map(|e| e + base));
    }

    /// Extends the pool to `target` requests of the measured phase, building
    /// on all cores (the clock is not running, and the server is idle).
    pub fn fill_to(&mut self, factory: &Arc<RequestFactory>, target: usize) {
        if target <= self.len() {
            return;
        }
        let from = self.len() as u64;
        let count = (target - self.len()) as u64;
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(16) as u64;
        let per = count.div_ceil(threads);
        let now = unix_now();
        let parts: Vec<Pool> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let lo = from + t * per;
                    let hi = (lo + per).min(from + count);
                    let factory = factory.clone();
                    scope.spawn(move || {
                        let mut part = Pool::default();
                        part.bytes.reserve((hi.saturating_sub(lo) as usize) * 1100);
                        let mut scratch = String::with_capacity(1024);
                        for seq in lo..hi {
                            factory.request_into(
                                Phase::Measure,
                                seq,
                                now,
                                &mut scratch,
                                &mut part.bytes,
                            );
                            part.ends.push(part.bytes.len());
                        }
                        part
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_default())
                .collect()
        });
        for part in parts {
            self.push_built(part);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::whatsapp::payload;
    use std::collections::HashSet;

    fn factory() -> Arc<RequestFactory> {
        Arc::new(RequestFactory::with_run_tag(
            b"s3cret",
            "127.0.0.1:8080",
            "/api/webhook/whatsapp",
            1000,
            "00000000DEADBEEF".into(),
        ))
    }

    /// Splits a built request into head and body, checking the framing.
    fn split(request: &[u8]) -> (String, Vec<u8>) {
        let at = request
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("head ends");
        let head = String::from_utf8(request[..at].to_vec()).unwrap();
        let body = request[at + 4..].to_vec();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(length, body.len());
        (head, body)
    }

    #[test]
    fn every_request_is_correctly_signed_and_understood_by_leadhook() {
        let f = factory();
        for seq in 0..200 {
            let request = f.request(Phase::Measure, seq);
            let (head, body) = split(&request);
            assert!(head.starts_with("POST /api/webhook/whatsapp HTTP/1.1\r\n"));
            let sig = head
                .lines()
                .find_map(|l| l.strip_prefix("X-Hub-Signature-256: "))
                .unwrap();
            signature::verify(b"s3cret", &body, sig).unwrap();
            // leadhook's own parser reads exactly one text message with the
            // expected id and a sender, and rejects nothing.
            let parsed = payload::parse(&body).unwrap();
            assert!(parsed.rejects.is_empty(), "{:?}", parsed.rejects);
            assert_eq!(parsed.messages.len(), 1);
            let m = &parsed.messages[0];
            assert_eq!(m.wamid, f.wamid(Phase::Measure, seq));
            assert_eq!(m.message_type, "text");
            assert!(TEXTS.contains(&m.summary.as_str()), "{}", m.summary);
            assert_eq!(m.business_phone_number_id.as_deref(), Some(PHONE_NUMBER_ID));
            let k = f.sender_of(Phase::Measure, seq);
            assert_eq!(m.profile_name.as_deref(), Some(content::name(k).as_str()));
        }
    }

    #[test]
    fn all_three_sender_shapes_occur() {
        let f = factory();
        let kinds: HashSet<_> = (0..100)
            .map(|seq| sender_kind(f.sender_of(Phase::Measure, seq)) as u8)
            .collect();
        assert_eq!(kinds.len(), 3);
        // A username user's body carries no phone number at all.
        let seq = (0..)
            .find(|s| sender_kind(f.sender_of(Phase::Measure, *s)) == SenderKind::UsernameOnly)
            .unwrap();
        let mut body = String::new();
        f.body(Phase::Measure, seq, 1_767_225_600, &mut body);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let value = &v["entry"][0]["changes"][0]["value"];
        assert!(value["messages"][0].get("from").is_none());
        assert!(value["contacts"][0].get("wa_id").is_none());
        assert!(value["contacts"][0]["profile"]["username"].is_string());
        assert!(value["messages"][0]["from_user_id"].is_string());
    }

    #[test]
    fn ids_are_unique_across_requests_phases_and_runs() {
        let f = factory();
        let mut ids = HashSet::new();
        for seq in 0..50_000 {
            assert!(ids.insert(f.wamid(Phase::Measure, seq)));
        }
        for seq in 0..1_000 {
            assert!(ids.insert(f.wamid(Phase::Warmup, seq)));
        }
        let a = RequestFactory::new(b"s", "h", "/", 10);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = RequestFactory::new(b"s", "h", "/", 10);
        assert_ne!(a.wamid(Phase::Measure, 0), b.wamid(Phase::Measure, 0));
    }

    #[test]
    fn senders_are_spread_over_the_range() {
        let f = factory();
        let used: HashSet<u64> = (0..20_000)
            .map(|s| f.sender_of(Phase::Measure, s))
            .collect();
        assert!(used.iter().all(|k| *k < 1000));
        assert!(used.len() > 990, "{}", used.len());
        assert_ne!(sender_phone(1), sender_phone(2));
        assert_ne!(sender_bsuid(1), sender_bsuid(2));
        assert!(crate::identity::PhoneNumber::parse(&sender_phone(MAX_SENDERS - 1)).is_ok());
    }

    #[test]
    fn pool_holds_exactly_the_requests_it_was_filled_with() {
        let f = factory();
        let mut pool = Pool::default();
        pool.fill_to(&f, 37);
        pool.fill_to(&f, 101);
        assert_eq!(pool.len(), 101);
        assert!(pool.get(101).is_none());
        for seq in [0u64, 1, 36, 37, 100] {
            let (_, body) = split(pool.get(seq).unwrap());
            let parsed = payload::parse(&body).unwrap();
            assert_eq!(parsed.messages[0].wamid, f.wamid(Phase::Measure, seq));
        }
    }

    /// `scripts/every-sender-a-student.sql` (the messages-alone bound in
    /// BENCHMARKS.md) must register each of the default 10,000 senders
    /// under exactly the identifiers its kind sends, and no other sender.
    #[test]
    fn the_ablation_script_registers_every_default_sender_as_a_student() {
        use crate::students::Student;
        use diesel::connection::SimpleConnection;

        let dir = tempfile::tempdir().unwrap();
        let pool = crate::db::test_pool(&dir);
        let mut conn = pool.get().unwrap();
        conn.batch_execute(include_str!("../../scripts/every-sender-a-student.sql"))
            .unwrap();
        for k in 0..10_000 {
            let (phone, bsuid) = sender_identities(k);
            let student = Student::find_by_identity(&mut conn, phone.as_deref(), bsuid.as_deref())
                .unwrap()
                .unwrap_or_else(|| panic!("sender {k} is not a student"));
            assert_eq!(
                (student.phone_number, student.user_id),
                (phone, bsuid),
                "sender {k}"
            );
        }
        let (phone, bsuid) = sender_identities(10_000);
        assert!(
            Student::find_by_identity(&mut conn, phone.as_deref(), bsuid.as_deref())
                .unwrap()
                .is_none()
        );
    }
}
