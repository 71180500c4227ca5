//! Stripe-style webhook signatures: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "t." + body)>`,
//! verified over the raw body with a timestamp tolerance, any of several `v1` values and any of
//! several secrets (a secret roll), compared in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// How old (or how far in the future) a signed timestamp may be, in seconds (Stripe's default).
pub const TOLERANCE_SECS: i64 = 300;
/// Most `v1` signatures read from one header.
pub const MAX_SIGNATURES: usize = 8;

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is missing or malformed")]
    Malformed,
    #[error("the signature timestamp is outside the tolerance")]
    Stale,
    #[error("no signature matches")]
    NoMatch,
}

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The hex `v1` signature of `body` at `timestamp`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
}

/// A whole header value, `t=…,v1=…`.
pub fn header(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", sign(secret, timestamp, body))
}

/// Verifies `header` over the raw `body`: the timestamp within `tolerance_secs` of `now_secs`,
/// and some `v1` made with some secret in `secrets`. Returns the signed timestamp.
pub fn verify(
    header: &str,
    body: &[u8],
    secrets: &[String],
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<i64, SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let (key, value) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match key {
            "t" => {
                timestamp = Some(
                    value
                        .parse::<i64>()
                        .map_err(|_| SignatureError::Malformed)?,
                )
            }
            "v1" if signatures.len() < MAX_SIGNATURES => {
                signatures.push(hex::decode(value).map_err(|_| SignatureError::Malformed)?);
            }
            // Other schemes (v0, the test-mode scheme) are ignored, as Stripe's libraries do.
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if (now_secs - timestamp).abs() > tolerance_secs {
        return Err(SignatureError::Stale);
    }
    let mut matched = false;
    for secret in secrets {
        let expected = mac(secret, timestamp, body).finalize().into_bytes();
        for sig in &signatures {
            // No early exit: every comparison runs, each in constant time.
            matched |= bool::from(expected.as_slice().ct_eq(sig.as_slice()));
        }
    }
    if matched {
        Ok(timestamp)
    } else {
        Err(SignatureError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_790_000_000;

    fn secrets(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn accepts_a_good_signature_and_refuses_tampering() {
        let body = br#"{"id":"evt_1","type":"checkout.session.completed"}"#;
        let h = header("whsec_a", NOW, body);
        let keys = secrets(&["whsec_a"]);
        assert_eq!(verify(&h, body, &keys, NOW, TOLERANCE_SECS), Ok(NOW));
        let mut forged = body.to_vec();
        forged[10] = b'2';
        assert_eq!(
            verify(&h, &forged, &keys, NOW, TOLERANCE_SECS),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify(&h, body, &secrets(&["whsec_b"]), NOW, TOLERANCE_SECS),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn tolerance_is_300_seconds_either_way() {
        let body = b"{}";
        let keys = secrets(&["s"]);
        for (t, ok) in [(NOW - 300, true), (NOW - 301, false), (NOW + 301, false)] {
            let got = verify(&header("s", t, body), body, &keys, NOW, TOLERANCE_SECS);
            assert_eq!(got.is_ok(), ok, "t = now{:+}", t - NOW);
            if !ok {
                assert_eq!(got, Err(SignatureError::Stale));
            }
        }
    }

    #[test]
    fn several_signatures_and_secrets_during_a_roll() {
        let body = b"payload";
        let old = sign("old", NOW, body);
        let new = sign("new", NOW, body);
        let h = format!("t={NOW},v1={old},v1={new},v0=ignored");
        assert!(verify(&h, body, &secrets(&["new"]), NOW, TOLERANCE_SECS).is_ok());
        assert!(verify(&h, body, &secrets(&["other", "old"]), NOW, TOLERANCE_SECS).is_ok());
        for bad in ["", "t=abc,v1=00", "v1=00", &format!("t={NOW}"), "t=1,v1=zz"] {
            assert_eq!(
                verify(bad, body, &secrets(&["new"]), NOW, TOLERANCE_SECS),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
    }
}
