//! The `X-Hub-Signature-256` check on webhook POSTs.
//!
//! Meta signs every webhook body with HMAC-SHA256 keyed by the app secret and
//! sends `sha256=<hex>`. The MAC is computed over the raw body bytes exactly
//! as received: parsing and re-serialising the JSON would change whitespace
//! or escapes and break the check, so callers must pass the bytes untouched.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The only prefix Meta sends; anything else is not a header we understand.
const PREFIX: &str = "sha256=";
/// Hex digits in a SHA-256 MAC.
const HEX_LEN: usize = 64;

/// Why a signature header was refused. The texts never include the expected
/// value, so logging them cannot help anyone forge a signature.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// The header is not `sha256=` followed by exactly 64 hex digits.
    #[error("malformed X-Hub-Signature-256 header: expected \"sha256=\" and 64 hex digits")]
    Malformed,
    /// The header is well-formed but does not match the body.
    #[error("X-Hub-Signature-256 does not match the request body")]
    Mismatch,
}

/// Verifies `X-Hub-Signature-256` (`sha256=<64 hex>`, hex of either case)
/// over the raw body, in constant time. A missing header is the caller's
/// concern.
///
/// An empty secret never verifies: a MAC with an empty key proves nothing,
/// and a misconfiguration must not turn into an open door.
pub fn verify(secret: &[u8], body: &[u8], header_value: &str) -> Result<(), SignatureError> {
    let claimed = decode_header(header_value)?;
    if secret.is_empty() {
        return Err(SignatureError::Mismatch);
    }
    // `verify_slice` compares in constant time.
    mac_over(secret, body)
        .verify_slice(&claimed)
        .map_err(|_| SignatureError::Mismatch)
}

/// The header value Meta would send for `body`: `sha256=<lowercase hex>`.
/// Used by the `simulate` command and by tests.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let tag = mac_over(secret, body).finalize().into_bytes();
    format!("{PREFIX}{}", hex::encode(tag))
}

/// Extracts the 32 MAC bytes from a header value, strictly.
fn decode_header(header_value: &str) -> Result<Vec<u8>, SignatureError> {
    let hex_part = header_value
        .strip_prefix(PREFIX)
        .ok_or(SignatureError::Malformed)?;
    // Checked up front so `hex::decode` only ever sees a well-formed string
    // and odd lengths or stray characters are all reported the same way.
    if hex_part.len() != HEX_LEN || !hex_part.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SignatureError::Malformed);
    }
    hex::decode(hex_part).map_err(|_| SignatureError::Malformed)
}

fn mac_over(secret: &[u8], body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length (long keys are hashed, short ones
    // padded), so this constructor cannot fail.
    #[allow(clippy::expect_used)]
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"4f3c2a1b0e9d8c7b6a5f4e3d2c1b0a99";
    const BODY: &[u8] = include_bytes!("../../tests/fixtures/whatsapp/text.json");

    #[test]
    fn sign_matches_a_known_hmac_sha256_vector() {
        // RFC 4231 test case 2: key "Jefe".
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn verify_accepts_own_signature() {
        let header = sign(SECRET, BODY);
        assert_eq!(verify(SECRET, BODY, &header), Ok(()));
    }

    #[test]
    fn verify_accepts_upper_case_hex() {
        let header = sign(SECRET, BODY);
        let upper = format!("{PREFIX}{}", header[PREFIX.len()..].to_ascii_uppercase());
        assert_eq!(verify(SECRET, BODY, &upper), Ok(()));
    }

    #[test]
    fn verify_rejects_wrong_secret() {
        let header = sign(b"some-other-secret", BODY);
        assert_eq!(verify(SECRET, BODY, &header), Err(SignatureError::Mismatch));
    }

    #[test]
    fn verify_rejects_tampered_body() {
        let header = sign(SECRET, BODY);
        let mut tampered = BODY.to_vec();
        tampered.push(b' ');
        assert_eq!(
            verify(SECRET, &tampered, &header),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn verify_rejects_reserialised_body() {
        // Same JSON value, different bytes: the signature covers bytes.
        let header = sign(SECRET, BODY);
        let value: serde_json::Value = serde_json::from_slice(BODY).expect("fixture is JSON");
        let compact = serde_json::to_vec(&value).expect("serialise");
        assert_ne!(compact.as_slice(), BODY);
        assert_eq!(
            verify(SECRET, &compact, &header),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(verify(SECRET, &compact, &sign(SECRET, &compact)), Ok(()));
    }

    #[test]
    fn verify_rejects_malformed_headers() {
        let good = sign(SECRET, BODY);
        let hex_part = &good[PREFIX.len()..];
        let cases = [
            String::new(),
            hex_part.to_owned(),                    // no prefix
            format!("SHA256={hex_part}"),           // prefix is case-sensitive
            format!("sha1={hex_part}"),             // other algorithm
            format!(" {good}"),                     // leading space
            format!("{good} "),                     // trailing space
            format!("sha256= {hex_part}"),          // space after '='
            "sha256=".to_owned(),                   // empty hex
            format!("{PREFIX}{}", &hex_part[..63]), // short
            format!("{good}0"),                     // long
            format!("{good}{hex_part}"),            // doubled
            format!("{PREFIX}{}g", &hex_part[..63]),
            format!("{PREFIX}{}", "z".repeat(64)),
            format!("{PREFIX}{}é", &hex_part[..62]), // 64 bytes, not hex
        ];
        for header in cases {
            assert_eq!(
                verify(SECRET, BODY, &header),
                Err(SignatureError::Malformed),
                "{header:?}"
            );
        }
    }

    #[test]
    fn verify_rejects_well_formed_but_wrong_mac() {
        let zeros = format!("{PREFIX}{}", "0".repeat(64));
        assert_eq!(verify(SECRET, BODY, &zeros), Err(SignatureError::Mismatch));
    }

    #[test]
    fn empty_secret_never_verifies() {
        let header = sign(b"", BODY);
        assert_eq!(verify(b"", BODY, &header), Err(SignatureError::Mismatch));
    }

    #[test]
    fn error_texts_do_not_leak_the_expected_mac() {
        let expected = sign(SECRET, BODY);
        let hex_part = &expected[PREFIX.len()..];
        for err in [SignatureError::Malformed, SignatureError::Mismatch] {
            let text = err.to_string();
            assert!(!text.contains(hex_part));
            assert!(!text.is_empty());
        }
    }
}
