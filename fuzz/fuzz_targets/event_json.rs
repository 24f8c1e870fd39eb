//! `Event::from_kafka_json`: go-livepeer's Kafka JSON (the adapter).
//!
//! The input is parsed as JSON (an array is read element by element, like the
//! sample file). Asserts, for every accepted event: it passes `validate`, its
//! CBOR round-trips (decode → encode → decode), and `to_kafka_json` →
//! `from_kafka_json` gives the same event back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use vouch_schema::Event;

fuzz_target!(|data: &[u8]| {
    let Ok(json) = serde_json::from_slice::<Value>(data) else { return };
    match &json {
        Value::Array(items) => items.iter().for_each(check),
        other => check(other),
    }
});

fn check(json: &Value) {
    let Ok(event) = Event::from_kafka_json(json) else { return };
    assert_eq!(event.validate(), Ok(()), "the adapter built an invalid event");
    let bytes = event.encode();
    assert_eq!(Event::decode(&bytes).as_ref(), Ok(&event), "CBOR round trip");
    assert_eq!(Event::decode(&bytes).map(|e| e.encode()), Ok(bytes));
    let kafka = event.to_kafka_json();
    assert_eq!(Event::from_kafka_json(&kafka).as_ref(), Ok(&event), "Kafka JSON round trip");
}
