//! `signature::verify` against arbitrary and near-valid headers.

use hmac::{Hmac, Mac};
use leadhook::whatsapp::signature::{sign, verify, SignatureError};
use proptest::prelude::*;
use sha2::Sha256;

use crate::config;

const PREFIX: &str = "sha256=";

/// The header Meta would send, computed independently of leadhook.
fn reference_header(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    format!("{PREFIX}{}", hex::encode(mac.finalize().into_bytes()))
}

/// `sha256=` and exactly 64 ASCII hex digits: the only well-formed header.
fn is_well_formed(header: &str) -> bool {
    header
        .strip_prefix(PREFIX)
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn secret() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => Just(Vec::new()),
        8 => prop::collection::vec(any::<u8>(), 1..80),
        1 => prop::collection::vec(any::<u8>(), 64..300), // longer than a SHA-256 block
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..512),
        1 => "(?s).{0,300}".prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 4096..20_000),
    ]
}

/// Headers of every shape: arbitrary text, `sha256=` plus 0..80 hex or
/// arbitrary characters, unicode, whitespace, and mangled real signatures.
fn header(secret: Vec<u8>, body: Vec<u8>) -> impl Strategy<Value = String> {
    let real = sign(&secret, &body);
    let real_hex = real[PREFIX.len()..].to_owned();
    prop_oneof![
        any::<String>(),
        "(?s).{0,120}",
        "sha256=[0-9a-fA-F]{0,80}",
        "sha256=[0-9a-fA-F]{62,66}",
        "sha256=(?s).{0,80}",
        "[ \t\r\n]{0,3}sha256=[0-9a-f]{64}[ \t\r\n]{0,3}",
        "(SHA256|sha1|sha512|Sha256|sha256 |sha256:|sha256==)[0-9a-f]{64}",
        "sha256=[0-9a-féß١٢٣ＡＢ\u{0}\u{200b}]{60,66}",
        Just(real.clone()),
        Just(real.to_ascii_uppercase()), // also upper-cases the prefix: malformed
        (0..64usize, "[^0-9a-fA-F]").prop_map({
            let real_hex = real_hex.clone();
            move |(at, c)| {
                let mut hex = real_hex.clone();
                hex.replace_range(at..=at, &c);
                format!("{PREFIX}{hex}")
            }
        }),
        (0..64usize, "[0-9a-fA-F]").prop_map(move |(at, c)| {
            let mut hex = real_hex.clone();
            hex.replace_range(at..=at, &c);
            format!("{PREFIX}{hex}")
        }),
    ]
}

fn secret_body_header() -> impl Strategy<Value = (Vec<u8>, Vec<u8>, String)> {
    (secret(), body()).prop_flat_map(|(s, b)| {
        let h = header(s.clone(), b.clone());
        (Just(s), Just(b), h)
    })
}

proptest! {
    #![proptest_config(config(512))]

    /// Any header and body: no panic, and the verdict is exactly the
    /// contract's: `Malformed` unless `sha256=` + 64 hex digits, then `Ok`
    /// only for the right MAC (hex of either case) under a non-empty secret.
    #[test]
    fn verify_classifies_every_header_exactly((secret, body, header) in secret_body_header()) {
        let got = verify(&secret, &body, &header);
        let expected = if !is_well_formed(&header) {
            Err(SignatureError::Malformed)
        } else if !secret.is_empty()
            && header[PREFIX.len()..].eq_ignore_ascii_case(&reference_header(&secret, &body)[PREFIX.len()..])
        {
            Ok(())
        } else {
            Err(SignatureError::Mismatch)
        };
        prop_assert_eq!(got, expected, "header {:?}", header);
    }

    /// The correctly signed body always verifies, in lower- or upper-case
    /// hex, and `sign` agrees with an independent HMAC-SHA256.
    #[test]
    fn verify_accepts_the_correct_signature(
        secret in prop::collection::vec(any::<u8>(), 1..200),
        body in body(),
    ) {
        let header = sign(&secret, &body);
        prop_assert_eq!(&header, &reference_header(&secret, &body));
        prop_assert_eq!(verify(&secret, &body, &header), Ok(()));
        let upper = format!("{PREFIX}{}", header[PREFIX.len()..].to_ascii_uppercase());
        prop_assert_eq!(verify(&secret, &body, &upper), Ok(()));
        // An empty secret proves nothing: its own signature never verifies.
        prop_assert_eq!(verify(b"", &body, &sign(b"", &body)), Err(SignatureError::Mismatch));
    }

    /// Changing any one byte of the body, appending a byte or cutting the
    /// last one off always fails with `Mismatch`.
    #[test]
    fn verify_rejects_any_one_byte_change(
        secret in prop::collection::vec(any::<u8>(), 1..100),
        body in prop::collection::vec(any::<u8>(), 1..2048),
        at in any::<prop::sample::Index>(),
        flip in 1..=255u8,
        extra in any::<u8>(),
    ) {
        let header = sign(&secret, &body);
        let mut flipped = body.clone();
        let i = at.index(flipped.len());
        flipped[i] ^= flip;
        prop_assert_eq!(verify(&secret, &flipped, &header), Err(SignatureError::Mismatch));
        let mut longer = body.clone();
        longer.push(extra);
        prop_assert_eq!(verify(&secret, &longer, &header), Err(SignatureError::Mismatch));
        prop_assert_eq!(
            verify(&secret, &body[..body.len() - 1], &header),
            Err(SignatureError::Mismatch)
        );
    }
}
