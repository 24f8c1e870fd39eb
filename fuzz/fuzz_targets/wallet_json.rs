//! `wallet::import_delegation` and `wallet::import_revocation`: signed
//! `eth_signTypedData_v4` documents pasted in by operators.
//!
//! Each input is tried as both. Asserts, for every accepted document:
//! export → import gives the same value, and the CBOR wire encoding
//! round-trips (decode → encode → decode). `verify` must not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_delegation::{Policy, SignedDelegation, SignedRevocation, wallet};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(cert) = wallet::import_delegation(text) {
        let exported = wallet::export_delegation(&cert).to_string();
        assert_eq!(wallet::import_delegation(&exported).as_ref(), Ok(&cert));
        assert_eq!(SignedDelegation::decode(&cert.encode()).as_ref(), Ok(&cert));
        let _ = cert.verify(&cert.network, cert.not_before, &Policy::default());
    }
    if let Ok(rev) = wallet::import_revocation(text) {
        let exported = wallet::export_revocation(&rev).to_string();
        assert_eq!(wallet::import_revocation(&exported).as_ref(), Ok(&rev));
        assert_eq!(SignedRevocation::decode(&rev.encode()).as_ref(), Ok(&rev));
        let _ = rev.verify(&rev.network);
    }
});
