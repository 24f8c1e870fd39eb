//! `BridgePayload::decode`: the Streamr bridge's MQTT payload (JSON with the
//! envelope as CBOR and as Streamr protobuf, both base64).
//!
//! Asserts for accepted input: both encodings hold the same envelope, the id
//! is the envelope's, and re-encoding decodes to the same payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_schema::Envelope;
use vouch_schema::bridge::{BridgePayload, envelope_message_id};

fuzz_target!(|data: &[u8]| {
    let Ok(p) = BridgePayload::decode(data) else { return };
    assert_eq!(Envelope::decode(&p.envelope_cbor).as_ref(), Ok(&p.envelope));
    assert_eq!(p.envelope.encode(), p.envelope_cbor);
    assert_eq!(p.message_id, envelope_message_id(p.envelope.id.partition, &p.envelope_cbor));
    assert_eq!(BridgePayload::decode(&p.encode()).as_ref(), Ok(&p));
});
