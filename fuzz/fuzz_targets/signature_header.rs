//! Any `Herald-Signature` header: parsing and verifying never panic, and a header made by
//! `sign` always verifies against its own body.
#![no_main]

use std::time::Duration;

use herald::testing::{sign, verify, SignatureHeader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, &[u8], i64)| {
    let (header, body, now) = input;
    let _ = SignatureHeader::parse(header);
    let _ = verify(b"secret", Some(header), "job", body, now, Duration::from_secs(300));

    let timestamp = now.rem_euclid(4_000_000_000);
    let signed = sign(b"secret", timestamp, "job", body);
    assert!(verify(b"secret", Some(&signed), "job", body, timestamp, Duration::from_secs(300)).is_ok());
});
