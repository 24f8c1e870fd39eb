//! go-livepeer-shaped events: the data of a gateway's `stream_trace` and
//! runner status messages, and those messages as go-livepeer writes them to
//! Kafka (what `vouch publish --events` reads). [`crate::sla`] builds the
//! SLA engine's events from the same data.

use serde_json::{Value, json};
use vouch_schema::Event;

/// The pipeline of every generated session.
pub const PIPELINE: &str = "streamdiffusion";

/// A `stream_trace`'s data: request `rid` reaching `subtype`, naming
/// orchestrator `orch` (hex; "" for none), seen from `region`.
pub fn trace_data(region: &str, subtype: &str, rid: &str, orch: &str) -> Value {
    json!({"type": subtype, "request_id": rid, "stream_id": format!("s-{rid}"), "pipeline_id": "",
           "pipeline": PIPELINE, "gateway_region": region,
           "orchestrator_info": {"address": orch, "url": ""}})
}

/// A runner status sample's data, relayed by the gateway in `region`: the
/// runner on `orch` in `state`, last output at `ts`, running at `fps`.
pub fn status_data(region: &str, rid: &str, orch: &str, ts: u64, fps: f64, state: &str) -> Value {
    json!({"type": "status", "request_id": rid, "pipeline": PIPELINE, "state": state,
           "gateway_region": region,
           "inference_status": {"fps": fps, "last_output_time": ts},
           "input_status": {"fps": 30.0},
           "orchestrator_info": {"address": orch, "url": ""}})
}

/// A go-livepeer Kafka message of `family` at `ts` carrying `data`
/// (stamped `ts`, as go-livepeer stamps it).
pub fn kafka(family: &str, ts: u64, mut data: Value) -> Value {
    data["timestamp"] = json!(ts);
    json!({"id": format!("{family}-{ts}-{}", data["type"]), "type": family,
           "timestamp": ts.to_string(), "gateway": "", "data": data})
}

/// The event of `family` at `ts` carrying `data` (stamped `ts`).
pub fn event(family: &str, ts: u64, mut data: Value) -> Event {
    data["timestamp"] = json!(ts);
    Event::from_type_and_data(family, data, ts).unwrap()
}

/// A `stream_trace` message of request `rid` naming `orch` ("" for none), in `region`.
pub fn trace_in(region: &str, subtype: &str, rid: &str, orch: &str, ts: u64) -> Value {
    kafka("stream_trace", ts, trace_data(region, subtype, rid, orch))
}

/// A `stream_trace` message in FRA.
pub fn trace(subtype: &str, rid: &str, orch: &str, ts: u64) -> Value {
    trace_in("FRA", subtype, rid, orch, ts)
}

/// A runner status message (ONLINE) relayed by the gateway, in `region`.
pub fn status_in(region: &str, rid: &str, orch: &str, ts: u64, fps: f64) -> Value {
    kafka("ai_stream_status", ts, status_data(region, rid, orch, ts, fps, "ONLINE"))
}

/// A runner status message in FRA.
pub fn status(rid: &str, orch: &str, ts: u64, fps: f64) -> Value {
    status_in("FRA", rid, orch, ts, fps)
}

/// One healthy session's messages on `orch` in `region` starting at `t`:
/// first frame after `ptff` ms, playable 500 ms later, one status sample
/// at `fps`.
pub fn session_in(region: &str, rid: &str, orch: &str, t: u64, ptff: u64, fps: f64) -> Vec<Value> {
    vec![
        trace_in(region, "gateway_receive_stream_request", rid, "", t),
        trace_in(region, "gateway_send_first_ingest_segment", rid, orch, t + 100),
        trace_in(region, "gateway_receive_first_processed_segment", rid, orch, t + ptff),
        trace_in(region, "gateway_receive_few_processed_segments", rid, orch, t + ptff + 500),
        status_in(region, rid, orch, t + ptff + 1_000, fps),
    ]
}

/// [`session_in`] FRA.
pub fn session(rid: &str, orch: &str, t: u64, ptff: u64, fps: f64) -> Vec<Value> {
    session_in("FRA", rid, orch, t, ptff, fps)
}
