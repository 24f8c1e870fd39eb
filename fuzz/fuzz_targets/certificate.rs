//! `SignedDelegation::decode`: a delegation certificate (rides in every batch).
//!
//! Asserts, for every accepted input: `encode(decode(x)) == x`, so `hash()` is
//! blake3 of the received bytes as documented; decode → encode → decode gives
//! the same certificate; exporting it as wallet JSON and importing that gives
//! it back (with `v` 0/1 read as 27/28, as documented). `verify` must not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_delegation::{Policy, SignedDelegation, wallet};

fuzz_target!(|data: &[u8]| {
    let Ok(cert) = SignedDelegation::decode(data) else { return };
    let bytes = cert.encode();
    assert_eq!(bytes, data, "encode(decode(x)) != x");
    assert_eq!(cert.hash(), *blake3::hash(data).as_bytes());
    assert_eq!(SignedDelegation::decode(&bytes).as_ref(), Ok(&cert));

    let mut expected = cert.clone();
    if expected.signature.0[64] < 2 {
        expected.signature.0[64] += 27;
    }
    let exported = wallet::export_delegation(&cert).to_string();
    assert_eq!(wallet::import_delegation(&exported), Ok(expected), "wallet round trip");

    let _ = cert.verify(&cert.network, cert.not_before, &Policy::default());
    let strict = Policy { max_lifetime_secs: 0, clock_skew_secs: u64::MAX };
    let _ = cert.verify(&cert.network, u64::MAX, &strict);
});
