//! `TelemetryBatch::decode`: an envelope's signed content.
//!
//! Asserts, for every accepted input: `encode(decode(x)) == x`, also with the
//! bodies and Kafka members rebuilt from their trees (decoded, both are kept
//! as their bytes), decode → encode → decode gives the same batch, the batch
//! passes `validate`, and each event round-trips alone. Converting events
//! back to Kafka JSON must not panic.
//! Differential: accepts exactly what the ciborium-based reference decoder
//! (`vouch_schema::oracle::batch`) accepts, with the same batch; and
//! `DecodedBatch::decode` (events read in place) accepts and refuses exactly
//! what `TelemetryBatch::decode` does, with the same error and the same
//! batch.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_schema::oracle;
use vouch_schema::{DecodedBatch, Event, TelemetryBatch};

fuzz_target!(|data: &[u8]| {
    let ours = TelemetryBatch::decode(data);
    match (&ours, oracle::batch::decode(data)) {
        (Ok(a), Ok(b)) => assert_eq!(a, &b, "decoders disagree on the value"),
        (Err(_), Err(_)) => {}
        (ours, theirs) => panic!("{} bytes: ours {ours:?}, reference {theirs:?}", data.len()),
    }
    match (&ours, DecodedBatch::decode(data)) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, &b.to_batch(), "the batch read in place differs");
            assert_eq!(b.len(), a.events.len());
            for (view, event) in b.events().zip(&a.events) {
                assert_eq!(
                    (view.family, view.ts, view.request_id),
                    (&event.family, event.ts, event.request_id.as_deref())
                );
            }
        }
        (Err(a), Err(b)) => assert_eq!(a, &b, "the decoders refuse for other reasons"),
        (ours, read) => panic!("{} bytes: owned {ours:?}, in place {read:?}", data.len()),
    }
    let Ok(batch) = ours else { return };
    let bytes = batch.encode();
    assert_eq!(bytes, data, "encode(decode(x)) != x");
    let mut rebuilt = batch.clone();
    for event in &mut rebuilt.events {
        event.data = event.data.tree().clone().into();
        event.kafka_envelope = event.kafka_envelope.as_ref().map(|m| m.tree().clone().into());
    }
    assert_eq!(rebuilt.encode(), data, "the bodies' or members' trees encode to other bytes");
    assert_eq!(TelemetryBatch::decode(&bytes).as_ref(), Ok(&batch));
    assert_eq!(batch.validate(), Ok(()));
    for event in &batch.events {
        assert_eq!(Event::decode(&event.encode()).as_ref(), Ok(event));
        let _ = Event::from_kafka_json(&event.to_kafka_json());
    }
});
