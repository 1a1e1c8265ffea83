//! Signing a delivery. Two signatures travel with every body:
//!
//! - `X-Flagsmith-Signature`: hex HMAC-SHA256 of the raw body with the webhook's secret —
//!   Flagsmith's header, so receivers written for Flagsmith verify unchanged;
//! - `X-Flagstone-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` — the same
//!   secret over the timestamp too, so a receiver can reject a replayed old delivery (the
//!   Flagsmith signature alone cannot say when it was made).
//!
//! `X-Flagstone-Timestamp` repeats `t` and `X-Flagstone-Event-Id` names the event (the same on
//! every retry and redelivery: receivers deduplicate by it). A webhook without a secret is sent
//! unsigned, as Flagsmith does.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

pub const FLAGSMITH_SIGNATURE: &str = "X-Flagsmith-Signature";
pub const FLAGSTONE_SIGNATURE: &str = "X-Flagstone-Signature";
pub const TIMESTAMP: &str = "X-Flagstone-Timestamp";
pub const EVENT_ID: &str = "X-Flagstone-Event-Id";
pub const EVENT_TYPE: &str = "X-Flagstone-Event";

/// Hex HMAC-SHA256 of `body` keyed with `secret` (Flagsmith's `sign_payload`).
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Whether `signature` (hex) is `body`'s signature with `secret`, compared in constant time.
pub fn verify(secret: &str, body: &[u8], signature: &str) -> bool {
    let Ok(expected) = hex::decode(signature.trim()) else {
        return false;
    };
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// The signature headers of one delivery attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    /// `X-Flagsmith-Signature`.
    pub flagsmith: String,
    /// `X-Flagstone-Signature` (`t=…,v1=…`).
    pub flagstone: String,
    /// `X-Flagstone-Timestamp`, unix seconds.
    pub timestamp: i64,
}

impl Signed {
    /// Signs `body` sent at `timestamp` (unix seconds).
    pub fn new(secret: &str, body: &[u8], timestamp: i64) -> Signed {
        let mut timed = Vec::with_capacity(body.len() + 12);
        timed.extend_from_slice(timestamp.to_string().as_bytes());
        timed.push(b'.');
        timed.extend_from_slice(body);
        Signed {
            flagsmith: sign(secret, body),
            flagstone: format!("t={timestamp},v1={}", sign(secret, &timed)),
            timestamp,
        }
    }
}

/// Checks an `X-Flagstone-Signature` value against `body`: the signature must match and `t` be
/// within `tolerance_secs` of `now` (unix seconds). What a Rust receiver would call.
pub fn verify_timed(
    secret: &str,
    body: &[u8],
    header: &str,
    now: i64,
    tolerance_secs: i64,
) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => v1 = Some(v),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    if (now - t).abs() > tolerance_secs {
        return false;
    }
    let mut timed = t.to_string().into_bytes();
    timed.push(b'.');
    timed.extend_from_slice(body);
    verify(secret, &timed, v1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_known_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn verifies_its_own_signatures_and_refuses_others() {
        let body = br#"{"data":{},"event_type":"FLAG_UPDATED"}"#;
        let s = Signed::new("s3cret", body, 1_700_000_000);
        assert!(verify("s3cret", body, &s.flagsmith));
        assert!(!verify("other", body, &s.flagsmith));
        assert!(!verify("s3cret", b"{}", &s.flagsmith));
        assert!(!verify("s3cret", body, "not hex"));
        assert!(verify_timed(
            "s3cret",
            body,
            &s.flagstone,
            1_700_000_100,
            300
        ));
        assert!(
            !verify_timed("s3cret", body, &s.flagstone, 1_700_001_000, 300),
            "too old"
        );
        assert!(!verify_timed(
            "s3cret",
            b"{}",
            &s.flagstone,
            1_700_000_000,
            300
        ));
        assert!(!verify_timed(
            "s3cret",
            body,
            "t=1700000000",
            1_700_000_000,
            300
        ));
    }
}
