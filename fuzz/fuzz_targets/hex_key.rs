//! `keys::parse_hex_key`: a hex key file's contents.
//!
//! Asserts, for every accepted input: the key written back by `to_hex_key`
//! parses to the same key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_delegation::keys;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(key) = keys::parse_hex_key(text) else { return };
    let written = keys::to_hex_key(&key);
    let back = keys::parse_hex_key(&written).expect("to_hex_key output is rejected");
    assert_eq!(back.to_bytes(), key.to_bytes());
    assert_eq!(keys::address(&back), keys::address(&key));
});
