//! `vouch_schema::cbor::from_slice`: the strict deterministic-CBOR reader
//! under every Vouch decoder.
//!
//! Differential: the outcome must match the ciborium-based reference decoder
//! (`vouch_schema::oracle::cbor`), as the module documents: both accept or both
//! reject, with the same error variant (a malformed input's message aside).
//! Asserts too, for every accepted input: re-encoding gives the input back
//! byte for byte, the re-encoding is accepted again, it equals the reference
//! encoding, and no map holds a key twice.
#![no_main]

use ciborium::Value;
use libfuzzer_sys::fuzz_target;
use vouch_schema::oracle;
use vouch_schema::cbor::{self, CborError};

fuzz_target!(|data: &[u8]| {
    let ours = cbor::from_slice(data);
    let theirs = oracle::cbor::from_slice_unique(data);
    match (&ours, &theirs) {
        (Ok(_), Ok(_)) => {}
        (Err(CborError::Malformed(_)), Err(CborError::Malformed(_))) => {}
        (Err(a), Err(b)) if a == b => {}
        _ => panic!("{data:02x?}: ours {ours:?}, reference {theirs:?}"),
    }
    let Ok(value) = ours else { return };
    assert_eq!(oracle::cbor::to_vec(&value), data, "reference encoder disagrees");
    let again = cbor::to_vec(&value);
    assert_eq!(again, data, "encode(decode(x)) != x");
    // Compare encodings, not values: a NaN float is not equal to itself.
    let reread = cbor::from_slice(&again).expect("re-encoding is rejected");
    assert_eq!(cbor::to_vec(&reread), again);
    assert_no_duplicate_keys(&value);
});

fn assert_no_duplicate_keys(value: &Value) {
    match value {
        Value::Array(items) => items.iter().for_each(assert_no_duplicate_keys),
        Value::Map(entries) => {
            let keys: Vec<Vec<u8>> = entries.iter().map(|(k, _)| cbor::to_vec(k)).collect();
            for pair in keys.windows(2) {
                assert!(pair[0] < pair[1], "map keys not strictly increasing: {value:?}");
            }
            for (k, v) in entries {
                assert_no_duplicate_keys(k);
                assert_no_duplicate_keys(v);
            }
        }
        Value::Tag(_, inner) => assert_no_duplicate_keys(inner),
        _ => {}
    }
}
