//! The `Showcall-Signature` header: how a receiver knows a webhook came from this cluster and was not
//! altered or replayed much later.
//!
//! `Showcall-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(webhook_secret, "<t>.<body>")>`
//!
//! A receiver verifies it like this (this module's [`verify`] does exactly that):
//! 1. split the header on `,` into `key=value` pairs; take `t` and every `v1` (more than one `v1` may come
//!    while a secret is being rotated; today there is one);
//! 2. compute `HMAC-SHA256(secret, t + "." + raw body bytes)` over the body **exactly as received** (before
//!    any JSON parsing or re-serialising), hex-encode it (lowercase);
//! 3. compare with each `v1` in constant time; one match = authentic;
//! 4. reject when `|now − t|` exceeds a replay window (five minutes is the usual advice), and deduplicate by
//!    the `Idempotency-Key` header, which stays the same on every retry while `t` (and so the signature)
//!    is fresh on each attempt.
//!
//! HMAC over the timestamp and the body (the scheme Stripe and Slack use) rather than a JWT: every
//! language's standard library can check it in a few lines, and there is no algorithm field to confuse.

use aws_lc_rs::{constant_time, hmac};

/// The header's name.
pub const SIGNATURE_HEADER: &str = "showcall-signature";

/// The replay window this module's [`verify`] applies, and the one receivers are advised to use.
pub const REPLAY_WINDOW_SECS: u64 = 300;

/// The signature header's value for `body` sent at `t` (Unix seconds).
pub fn sign(secret: &[u8], t: u64, body: &[u8]) -> String {
    format!("t={t},v1={}", hex(mac(secret, t, body).as_ref()))
}

fn mac(secret: &[u8], t: u64, body: &[u8]) -> hmac::Tag {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(t.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    ctx.sign()
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes
        .iter()
        .flat_map(|b| [DIGITS[(b >> 4) as usize], DIGITS[(b & 0xf) as usize]])
        .map(char::from)
        .collect()
}

/// Why a signature was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header has no t= or no v1=")]
    Malformed,
    #[error("the signature was made {age_secs} s away from now, outside the replay window")]
    OutsideWindow { age_secs: u64 },
    #[error("no v1 signature matches the body")]
    Mismatch,
}

/// Checks a `Showcall-Signature` header against the raw `body` at `now` (Unix seconds), as a receiver
/// written in Rust would (see the module docs for the steps).
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: u64) -> Result<(), SignatureError> {
    let mut t = None;
    let mut candidates = Vec::new();
    for pair in header.split(',') {
        match pair.trim().split_once('=') {
            Some(("t", value)) => t = value.parse::<u64>().ok(),
            Some(("v1", value)) => candidates.push(value),
            _ => {}
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let age_secs = now.abs_diff(t);
    if age_secs > REPLAY_WINDOW_SECS {
        return Err(SignatureError::OutsideWindow { age_secs });
    }
    let expected = hex(mac(secret, t, body).as_ref());
    let matches = candidates
        .iter()
        .any(|c| constant_time::verify_slices_are_equal(c.as_bytes(), expected.as_bytes()).is_ok());
    if matches {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec-0123456789abcdef";
    const BODY: &[u8] = br#"{"id":"evt-7","appId":"demo"}"#;

    #[test]
    fn a_signature_is_the_hmac_of_the_timestamp_and_body() {
        // RFC 4231 test case 2 (key "Jefe"), with "<t>." prefixed to the data: the header carries the
        // plain HMAC-SHA256 any library computes.
        let header = sign(b"Jefe", 0, b"what do ya want for nothing?");
        let plain = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, b"Jefe"),
            b"0.what do ya want for nothing?",
        );
        assert_eq!(header, format!("t=0,v1={}", hex(plain.as_ref())));
        assert_eq!(
            hex(hmac::sign(
                &hmac::Key::new(hmac::HMAC_SHA256, b"Jefe"),
                b"what do ya want for nothing?"
            )
            .as_ref()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            "hex encoding of the RFC 4231 vector"
        );
    }

    #[test]
    fn a_genuine_signature_verifies() {
        let header = sign(SECRET, 1_000, BODY);
        assert_eq!(verify(SECRET, &header, BODY, 1_000), Ok(()));
        assert_eq!(
            verify(SECRET, &header, BODY, 1_000 + REPLAY_WINDOW_SECS),
            Ok(())
        );
    }

    #[test]
    fn a_tampered_body_fails() {
        let header = sign(SECRET, 1_000, BODY);
        let tampered = br#"{"id":"evt-8","appId":"demo"}"#;
        assert_eq!(
            verify(SECRET, &header, tampered, 1_000),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_tampered_signature_or_timestamp_fails() {
        let header = sign(SECRET, 1_000, BODY);
        let mut flipped = header.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).expect("ascii");
        assert_eq!(
            verify(SECRET, &flipped, BODY, 1_000),
            Err(SignatureError::Mismatch)
        );
        // A replayed signature with a fresh timestamp does not match either: t is signed.
        let v1 = header.split_once(",v1=").expect("v1").1;
        let moved = format!("t=1001,v1={v1}");
        assert_eq!(
            verify(SECRET, &moved, BODY, 1_001),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn another_secret_fails() {
        let header = sign(b"someone-elses-secret", 1_000, BODY);
        assert_eq!(
            verify(SECRET, &header, BODY, 1_000),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn an_old_signature_is_a_replay() {
        let header = sign(SECRET, 1_000, BODY);
        assert_eq!(
            verify(SECRET, &header, BODY, 1_000 + REPLAY_WINDOW_SECS + 1),
            Err(SignatureError::OutsideWindow {
                age_secs: REPLAY_WINDOW_SECS + 1
            })
        );
    }

    #[test]
    fn a_malformed_header_is_refused() {
        for header in ["", "t=1000", "v1=abcd", "t=soon,v1=abcd"] {
            assert_eq!(
                verify(SECRET, header, BODY, 1_000),
                Err(SignatureError::Malformed),
                "{header:?}"
            );
        }
    }
}
