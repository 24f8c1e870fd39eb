//! NDJSON export in go-livepeer's Kafka envelope shape (DESIGN.md §11).
//!
//! One line per accepted event: exactly what go-livepeer wrote to Kafka
//! ([`Event::to_kafka_json`]: `{id, type, timestamp, gateway, data}`), plus
//! one member, [`PROVENANCE_KEY`], saying where the event came from and
//! where it is in the verifier's log:
//!
//! ```json
//! "vouch": {"log_index": 7, "event_index": 0, "envelope_hash": "<64 hex>",
//!           "principal": "0x…", "delegate": "0x…", "role": "gateway", "region": "FRA",
//!           "stream_id": "0x…/livepeer/telemetry", "partition": 3,
//!           "timestamp": 1764158400000, "seq": 0, "msg_chain_id": "…"}
//! ```
//!
//! `delegate` is the signing key (the envelope's Streamr publisher);
//! `stream_id`, `partition`, `timestamp`, `seq` and `msg_chain_id` are the
//! envelope's Streamr message id. A Kafka consumer that ignores unknown
//! members reads the lines unchanged; stripping `vouch` gives back the
//! original event. An event that itself carried a top-level `vouch` member
//! (go-livepeer's never do) has it replaced.

use std::io::{self, Write};

use serde_json::{Map, Value, json};
use vouch_schema::Event;

use super::follow::AcceptedEnvelope;

/// The member each line's provenance object is under.
pub const PROVENANCE_KEY: &str = "vouch";

/// The provenance object of event `event_index` of `envelope`.
pub fn provenance(envelope: &AcceptedEnvelope, event_index: usize) -> Value {
    let id = &envelope.envelope.id;
    json!({
        "log_index": envelope.position.index,
        "event_index": event_index,
        "envelope_hash": hex::encode(envelope.envelope_hash),
        "principal": envelope.principal.to_hex(),
        "delegate": envelope.delegate.to_hex(),
        "role": envelope.role.as_str(),
        "region": envelope.region,
        "stream_id": id.stream_id,
        "partition": id.partition,
        "timestamp": id.timestamp,
        "seq": id.seq,
        "msg_chain_id": id.msg_chain_id,
    })
}

/// One output line's value: the Kafka JSON with [`PROVENANCE_KEY`] added.
pub fn event_line(envelope: &AcceptedEnvelope, event_index: usize, event: &Event) -> Value {
    let mut object = match event.to_kafka_json() {
        Value::Object(object) => object,
        // `to_kafka_json` always builds an object; keep any other value whole.
        other => Map::from_iter([("event".to_owned(), other)]),
    };
    object.insert(PROVENANCE_KEY.to_owned(), provenance(envelope, event_index));
    Value::Object(object)
}

/// Writes one line per event of `envelopes` and flushes; returns the
/// number of lines. An error (a closed pipe) is the writer's.
pub fn write_lines(out: &mut impl Write, envelopes: &[AcceptedEnvelope]) -> io::Result<u64> {
    let mut lines = 0;
    for envelope in envelopes {
        for (i, event) in envelope.events.iter().enumerate() {
            serde_json::to_writer(&mut *out, &event_line(envelope, i, event))?;
            out.write_all(b"\n")?;
            lines += 1;
        }
    }
    out.flush()?;
    Ok(lines)
}
