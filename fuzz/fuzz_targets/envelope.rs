//! `Envelope::decode`: a signed message as it arrives from gossip.
//!
//! Asserts, for every accepted input: `encode(decode(x)) == x` (the format is
//! deterministic CBOR), decode → encode → decode gives the same envelope, the
//! Streamr transcoding round-trips, and signature checking never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_schema::Envelope;

fuzz_target!(|data: &[u8]| {
    let Ok(env) = Envelope::decode(data) else { return };
    let bytes = env.encode();
    assert_eq!(bytes, data, "encode(decode(x)) != x");
    assert_eq!(Envelope::decode(&bytes).as_ref(), Ok(&env));
    assert_eq!(env.encoded_len(), data.len());
    let via_streamr = Envelope::from_streamr_bytes(&env.to_streamr_bytes());
    assert_eq!(via_streamr.as_ref(), Ok(&env), "Streamr transcoding lost the envelope");
    let _ = env.verify();
});
