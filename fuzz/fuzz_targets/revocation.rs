//! `SignedRevocation::decode`: a revocation as gossiped.
//!
//! Asserts, for every accepted input: `encode(decode(x)) == x` (so `hash()` is
//! blake3 of the received bytes), decode → encode → decode gives the same
//! revocation, and the wallet JSON export → import round-trips (with `v` 0/1
//! read as 27/28). `verify` must not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_delegation::{SignedRevocation, wallet};

fuzz_target!(|data: &[u8]| {
    let Ok(rev) = SignedRevocation::decode(data) else { return };
    let bytes = rev.encode();
    assert_eq!(bytes, data, "encode(decode(x)) != x");
    assert_eq!(rev.hash(), *blake3::hash(data).as_bytes());
    assert_eq!(SignedRevocation::decode(&bytes).as_ref(), Ok(&rev));

    let mut expected = rev.clone();
    if expected.signature.0[64] < 2 {
        expected.signature.0[64] += 27;
    }
    let exported = wallet::export_revocation(&rev).to_string();
    assert_eq!(wallet::import_revocation(&exported), Ok(expected), "wallet round trip");

    let _ = rev.verify(&rev.network);
});
