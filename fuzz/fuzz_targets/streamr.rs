//! `Envelope::from_streamr_bytes`: a Streamr protobuf `StreamMessage`.
//!
//! Protobuf is not canonical, so no byte equality; asserts instead that an
//! accepted message's envelope round-trips through both the Streamr and the
//! CBOR encodings unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_schema::Envelope;

fuzz_target!(|data: &[u8]| {
    let Ok(env) = Envelope::from_streamr_bytes(data) else { return };
    let proto = env.to_streamr_bytes();
    assert_eq!(Envelope::from_streamr_bytes(&proto).as_ref(), Ok(&env));
    assert_eq!(Envelope::decode(&env.encode()).as_ref(), Ok(&env));
    let _ = env.verify();
});
