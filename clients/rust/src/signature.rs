//! The callback signature scheme, as Stripe and GitHub sign webhooks, bound to the job a callback
//! reports on: the one implementation, which Herald's `/callbacks` checks with too.
//!
//! `Herald-Signature: t=<unix seconds>,v2=<lowercase hex HMAC-SHA256 of "<t>.<job id>.<raw body>">`,
//! keyed with Herald's `HERALD_CALLBACK_SECRET`. Several `v2` entries may be given (to rotate
//! secrets); one match is enough. Unknown schemes are ignored, except `v1` (the body alone),
//! which is refused with a message saying what to sign instead: a `v1` signature could be
//! replayed against another job's URL, and two jobs that finish with the same body in the same
//! second would share one. Comparisons are constant time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub const HEADER: &str = "herald-signature";

/// The longest header worth parsing, and the most `v2` entries looked at.
const MAX_HEADER_LEN: usize = 1024;
const MAX_SIGNATURES: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureError {
    Missing,
    Malformed,
    /// The time is further from now than the tolerance (either way).
    Expired,
    Mismatch,
    /// This exact signature was accepted before.
    Replayed,
    /// Only `v1` signatures, which do not cover the job.
    Outdated,
}

impl SignatureError {
    pub fn message(self) -> &'static str {
        match self {
            Self::Missing => "the Herald-Signature header is missing",
            Self::Malformed => "the Herald-Signature header is not t=<unix seconds>,v2=<hex HMAC-SHA256>",
            Self::Expired => "the signature's time is outside the tolerance",
            Self::Mismatch => "no signature matches the body",
            Self::Replayed => "this signature was already used",
            Self::Outdated => {
                "v1 signatures (of the body alone) are no longer accepted: send v2, the HMAC-SHA256 of \"<t>.<job id>.<body>\""
            }
        }
    }
}

/// The parsed header: a time and candidate signatures.
#[derive(Debug, PartialEq, Eq)]
pub struct SignatureHeader {
    pub timestamp: i64,
    pub signatures: Vec<[u8; 32]>,
}

impl SignatureHeader {
    pub fn parse(header: &str) -> Result<Self, SignatureError> {
        if header.len() > MAX_HEADER_LEN {
            return Err(SignatureError::Malformed);
        }
        let mut timestamp = None;
        let mut signatures = vec![];
        let mut outdated = false;
        for part in header.split(',') {
            let (key, value) = part.trim().split_once('=').ok_or(SignatureError::Malformed)?;
            match key {
                "t" if timestamp.is_none()
                    && !value.is_empty()
                    && value.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    timestamp = Some(value.parse().map_err(|_| SignatureError::Malformed)?);
                }
                "t" => return Err(SignatureError::Malformed),
                "v1" => outdated = true,
                "v2" if signatures.len() < MAX_SIGNATURES => {
                    let mut signature = [0u8; 32];
                    let lowercase = value.bytes().all(|b| !b.is_ascii_uppercase());
                    hex::decode_to_slice(value, &mut signature).map_err(|_| SignatureError::Malformed)?;
                    if !lowercase {
                        return Err(SignatureError::Malformed);
                    }
                    signatures.push(signature);
                }
                _ => {}
            }
        }
        match (timestamp, signatures.is_empty()) {
            (Some(timestamp), false) => Ok(Self { timestamp, signatures }),
            (Some(_), true) if outdated => Err(SignatureError::Outdated),
            _ => Err(SignatureError::Malformed),
        }
    }
}

fn mac(secret: &[u8], timestamp: i64, job: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(job.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The header value that signs `body` about `job` at `timestamp`: what a caller of
/// `/callbacks/{job}` sends.
pub fn sign(secret: &[u8], timestamp: i64, job: &str, body: &[u8]) -> String {
    let signature = mac(secret, timestamp, job, body).finalize().into_bytes();
    format!("t={timestamp},v2={}", hex::encode(signature))
}

/// Checks a header against `body` about `job`; returns the signature that matched.
pub fn verify(
    secret: &[u8],
    header: Option<&str>,
    job: &str,
    body: &[u8],
    now: i64,
    tolerance: Duration,
) -> Result<[u8; 32], SignatureError> {
    let header = SignatureHeader::parse(header.ok_or(SignatureError::Missing)?)?;
    if now.abs_diff(header.timestamp) > tolerance.as_secs() {
        return Err(SignatureError::Expired);
    }
    header
        .signatures
        .into_iter()
        .find(|candidate| mac(secret, header.timestamp, job, body).verify_slice(candidate).is_ok())
        .ok_or(SignatureError::Mismatch)
}

/// Checks a `Herald-Signature` header (`header`) against `body` about `job`, signed with
/// `secret` within `tolerance` of this machine's clock: what a backend that receives callbacks
/// signed as Herald signs them runs on each one.
pub fn verify_signature(
    secret: &[u8],
    header: &str,
    job: &str,
    body: &[u8],
    tolerance: Duration,
) -> Result<(), SignatureError> {
    verify(secret, Some(header), job, body, unix_now(), tolerance).map(drop)
}

/// Seconds since the Unix epoch (0 on a clock set before it).
fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec_test";
    const MINUTES_5: Duration = Duration::from_secs(300);

    #[test]
    fn a_signature_made_by_sign_verifies() {
        let header = sign(SECRET, 1_700_000_000, "job-1", b"{\"status\":\"done\"}");
        assert!(verify(SECRET, Some(&header), "job-1", b"{\"status\":\"done\"}", 1_700_000_010, MINUTES_5)
            .is_ok());
    }

    #[test]
    fn verify_signature_checks_against_this_machines_clock() {
        let body = b"{\"status\":\"done\"}";
        let now = sign(SECRET, unix_now(), "job-1", body);
        assert_eq!(verify_signature(SECRET, &now, "job-1", body, MINUTES_5), Ok(()));
        let long_ago = sign(SECRET, 1_700_000_000, "job-1", body);
        assert_eq!(
            verify_signature(SECRET, &long_ago, "job-1", body, MINUTES_5),
            Err(SignatureError::Expired)
        );
        assert_eq!(verify_signature(SECRET, &now, "job-1", b"{}", MINUTES_5), Err(SignatureError::Mismatch));
    }

    #[test]
    fn a_known_vector_matches_openssl() {
        // printf '1700000000.job-1.{}' | openssl dgst -sha256 -hmac whsec_test
        assert_eq!(
            sign(SECRET, 1_700_000_000, "job-1", b"{}"),
            "t=1700000000,v2=79a7d49d493cd22e5e2277cd78bf06dc59c7982b3f0d708abe0d45bdb1d5ec35"
        );
    }

    #[test]
    fn the_wrong_body_secret_or_time_does_not_verify() {
        let header = sign(SECRET, 1_700_000_000, "job-1", b"body");
        let check = |secret: &[u8], header: &str, body: &[u8], now| {
            verify(secret, Some(header), "job-1", body, now, MINUTES_5)
        };
        assert_eq!(check(SECRET, &header, b"other", 1_700_000_000), Err(SignatureError::Mismatch));
        assert_eq!(check(b"other", &header, b"body", 1_700_000_000), Err(SignatureError::Mismatch));
        assert_eq!(check(SECRET, &header, b"body", 1_700_000_301), Err(SignatureError::Expired));
        assert_eq!(check(SECRET, &header, b"body", 1_699_999_699), Err(SignatureError::Expired));
        let moved = header.replace("t=1700000000", "t=1700000001");
        assert_eq!(check(SECRET, &moved, b"body", 1_700_000_000), Err(SignatureError::Mismatch));
    }

    #[test]
    fn a_signature_for_one_job_does_not_verify_for_another() {
        let header = sign(SECRET, 1_700_000_000, "job-1", b"body");
        assert_eq!(
            verify(SECRET, Some(&header), "job-2", b"body", 1_700_000_000, MINUTES_5),
            Err(SignatureError::Mismatch)
        );
        assert_ne!(header, sign(SECRET, 1_700_000_000, "job-2", b"body"), "same body, same second");
    }

    #[test]
    fn the_old_body_only_scheme_is_refused_with_what_to_sign_instead() {
        let header = format!("t=10,v1={}", "a".repeat(64));
        assert_eq!(verify(SECRET, Some(&header), "job-1", b"", 10, MINUTES_5), Err(SignatureError::Outdated));
        assert!(SignatureError::Outdated.message().contains("<t>.<job id>.<body>"));
    }

    #[test]
    fn one_matching_signature_among_several_is_enough() {
        let good = sign(SECRET, 10, "job-1", b"x");
        let v2 = good.split_once(",v2=").unwrap().1;
        let header = format!("t=10,v2={},v0=legacy,v2={v2}", "0".repeat(64));
        assert!(verify(SECRET, Some(&header), "job-1", b"x", 10, MINUTES_5).is_ok());
    }

    #[test]
    fn malformed_headers_are_refused() {
        let v2 = "a".repeat(64);
        for bad in [
            "".to_owned(),
            "t=10".to_owned(),
            format!("v2={v2}"),
            format!("t=,v2={v2}"),
            format!("t=-5,v2={v2}"),
            format!("t=1e3,v2={v2}"),
            format!("t=10,t=11,v2={v2}"),
            "t=10,v2=abc".to_owned(),
            format!("t=10,v2={}", "A".repeat(64)),
            format!("t=10,v2={}", "g".repeat(64)),
            format!("t=99999999999999999999,v2={v2}"),
            format!("t=10;v2={v2}"),
            format!("t=10,v2={v2},{}", "x".repeat(2000)),
        ] {
            assert_eq!(SignatureHeader::parse(&bad), Err(SignatureError::Malformed), "{bad:.80}");
        }
        assert_eq!(verify(SECRET, None, "job-1", b"", 0, MINUTES_5), Err(SignatureError::Missing));
    }
}
