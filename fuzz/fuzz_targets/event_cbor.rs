//! `Event::decode`: one event encoded alone.
//!
//! Asserts, for every accepted input: `encode(decode(x)) == x`, also with the
//! body and the Kafka members rebuilt from their trees (decoded, both are
//! kept as their bytes), decode → encode → decode gives the same event, and
//! the event passes `validate` (which promises that whatever passes it
//! encodes to bytes that decode).
//! The body's byte readers (`get_str`, `get_u64`, `get_f64`) answer what
//! its tree answers, for its members and their first members.
//! Rebuilding the Kafka JSON and re-reading it must not panic.
//! Differential: accepts exactly what the ciborium-based reference decoder
//! (`vouch_schema::oracle::event`) accepts, with the same event.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_schema::Event;
use vouch_schema::event::lenient;
use vouch_schema::oracle;

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
    // The body's byte readers answer what its tree answers.
    let tree = event.data.tree();
    let members = tree.as_object().into_iter().flatten();
    for (name, value) in members.take(8) {
        let nested = value.as_object().and_then(|m| m.keys().next());
        for p in std::iter::once(format!("/{name}")).chain(nested.map(|n| format!("/{name}/{n}"))) {
            let at = tree.pointer(&p);
            assert_eq!(event.get_str(&p), at.and_then(lenient::as_text), "get_str {p}");
            assert_eq!(event.get_u64(&p), at.and_then(lenient::as_u64), "get_u64 {p}");
            let f = |v: Option<f64>| v.map(f64::to_bits);
            assert_eq!(f(event.get_f64(&p)), f(at.and_then(lenient::as_f64)), "get_f64 {p}");
        }
    }
    let rebuilt = Event {
        data: event.data.tree().clone().into(),
        kafka_envelope: event.kafka_envelope.as_ref().map(|m| m.tree().clone().into()),
        ..event.clone()
    };
    assert_eq!(rebuilt.encode(), data, "the body's or members' trees encode to other bytes");
    assert_eq!(rebuilt.validate(), Ok(()));
    assert_eq!(Event::decode(&bytes).as_ref(), Ok(&event));
    assert_eq!(event.validate(), Ok(()));
    let _ = Event::from_kafka_json(&event.to_kafka_json());
});
