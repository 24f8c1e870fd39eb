//! The real go-livepeer events the tests run on: eight Kafka messages a
//! gateway wrote (`schemas/tests/data/go-livepeer-kafka-samples.json`).

use serde_json::Value;
use vouch_schema::{Event, Origin};

/// Where the samples are, below the repository's root.
pub const KAFKA_SAMPLES_PATH: &str = "schemas/tests/data/go-livepeer-kafka-samples.json";

/// The samples' text: a JSON array of Kafka messages.
pub const KAFKA_SAMPLES: &str =
    include_str!("../../schemas/tests/data/go-livepeer-kafka-samples.json");

/// The samples, as go-livepeer wrote them.
pub fn kafka_samples() -> Vec<Value> {
    serde_json::from_str(KAFKA_SAMPLES).unwrap()
}

/// The samples as NDJSON, one message a line: what `vouch publish --events` reads.
pub fn kafka_ndjson() -> String {
    kafka_samples().iter().map(|e| format!("{e}\n")).collect()
}

/// The samples as events, in file order.
pub fn events() -> Vec<Event> {
    kafka_samples().iter().map(|j| Event::from_kafka_json(j).unwrap()).collect()
}

/// `n` events cycling through the samples, each stamped `ts` and marked
/// production traffic (benchmarks' batches).
pub fn stamped(n: usize, ts: u64) -> Vec<Event> {
    events()
        .into_iter()
        .cycle()
        .take(n)
        .map(|mut e| {
            e.ts = Some(ts);
            e.origin = Some(Origin::Production);
            e
        })
        .collect()
}
