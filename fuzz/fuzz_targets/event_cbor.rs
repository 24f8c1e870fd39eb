//! `Event::decode`: one event encoded alone.
//!
//! Asserts, for every accepted input: `encode(decode(x)) == x`, also with the
//! body rebuilt from its tree (a decoded body is kept as its bytes), decode →
//! encode → decode gives the same event, and the event passes `validate`
//! (which promises that whatever passes it encodes to bytes that decode).
//! Rebuilding the Kafka JSON and re-reading it must not panic.
//! Differential: accepts exactly what the ciborium-based reference decoder
//! (`vouch_schema::oracle::event`) accepts, with the same event.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_schema::oracle;
use vouch_schema::Event;

fuzz_target!(|data: &[u8]| {
    let ours = Event::decode(data);
    match (&ours, oracle::event::decode(data)) {
        (Ok(a), Ok(b)) => assert_eq!(a, &b, "decoders disagree on the value"),
        (Err(_), Err(_)) => {}
        (ours, theirs) => panic!("{data:02x?}: ours {ours:?}, reference {theirs:?}"),
    }
    let Ok(event) = ours else { return };
    let bytes = event.encode();
    assert_eq!(bytes, data, "encode(decode(x)) != x");
    let rebuilt = Event { data: event.data.tree().clone().into(), ..event.clone() };
    assert_eq!(rebuilt.encode(), data, "the body's tree encodes to other bytes");
    assert_eq!(Event::decode(&bytes).as_ref(), Ok(&event));
    assert_eq!(event.validate(), Ok(()));
    let _ = Event::from_kafka_json(&event.to_kafka_json());
});
