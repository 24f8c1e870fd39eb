//! What the scoring end-to-end tests share: go-livepeer-shaped events as
//! Kafka JSON, a policy with v1's formulas and short timings, bearer tokens,
//! and publishing events through `vouch publish`.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::identity::{Identity, ok_json, vouch};

/// The HS256 secret the scoring tests configure under `[api.jwt]`.
pub const JWT_SECRET: &str = "a-test-secret-of-at-least-32-bytes!!";

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// v1's policy with timings short enough for a test: event lag and seal
/// grace 20 s, startup horizon 5 s (formulas and targets unchanged).
pub fn fast_policy() -> String {
    let policy = vouch_sla::DEFAULT_POLICY_TOML
        .replace("event_lag_ms = 300000", "event_lag_ms = 20000")
        .replace("seal_grace_ms = 360000", "seal_grace_ms = 20000")
        .replace("startup_horizon_ms = 120000", "startup_horizon_ms = 5000");
    assert_ne!(policy, vouch_sla::DEFAULT_POLICY_TOML, "the v1 timings moved");
    policy
}

/// A go-livepeer Kafka envelope of `family` at `ts`.
pub fn kafka(family: &str, ts: u64, data: Value) -> Value {
    let mut data = data;
    data["timestamp"] = json!(ts);
    json!({"id": format!("{family}-{ts}-{}", data["type"]), "type": family,
           "timestamp": ts.to_string(), "gateway": "", "data": data})
}

/// A `stream_trace` event of request `rid` naming `orch` ("" for none), in `region`.
pub fn trace_in(region: &str, subtype: &str, rid: &str, orch: &str, ts: u64) -> Value {
    kafka(
        "stream_trace",
        ts,
        json!({"type": subtype, "request_id": rid, "stream_id": format!("s-{rid}"),
               "pipeline": "streamdiffusion", "gateway_region": region,
               "orchestrator_info": {"address": orch, "url": ""}}),
    )
}

/// A `stream_trace` event in FRA.
pub fn trace(subtype: &str, rid: &str, orch: &str, ts: u64) -> Value {
    trace_in("FRA", subtype, rid, orch, ts)
}

/// A runner status sample relayed by the gateway, in `region`.
pub fn status_in(region: &str, rid: &str, orch: &str, ts: u64, fps: f64) -> Value {
    kafka(
        "ai_stream_status",
        ts,
        json!({"type": "status", "request_id": rid, "pipeline": "streamdiffusion",
               "state": "ONLINE", "gateway_region": region,
               "inference_status": {"fps": fps, "last_output_time": ts},
               "input_status": {"fps": 30.0},
               "orchestrator_info": {"address": orch, "url": ""}}),
    )
}

/// A runner status sample in FRA.
pub fn status(rid: &str, orch: &str, ts: u64, fps: f64) -> Value {
    status_in("FRA", rid, orch, ts, fps)
}

/// One healthy session on `orch` in `region` starting at `t`: first frame
/// after `ptff` ms, playable 500 ms later, one status sample at `fps`.
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

/// An HS256 bearer token over `claims`, signed with [`JWT_SECRET`].
pub fn hs256_token(claims: &Value) -> String {
    let h = URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "typ": "JWT"}).to_string());
    let p = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut mac = Hmac::<Sha256>::new_from_slice(JWT_SECRET.as_bytes()).unwrap();
    mac.update(format!("{h}.{p}").as_bytes());
    format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

/// Publishes `events` (as NDJSON named `name`) through `vouch publish`
/// with `who`'s delegate key and certificate to the node at `p2p`; returns
/// the command's JSON summary (every line taken).
pub fn publish(who: &Identity, name: &str, events: &[Value], p2p: &str) -> Value {
    let ndjson: String = events.iter().map(|e| format!("{e}\n")).collect();
    std::fs::write(who.dir.path().join(name), ndjson).unwrap();
    let out = ok_json(&vouch(&[
        "publish",
        "--key",
        &who.p("d.key"),
        "--cert",
        &who.p("d.cert"),
        "--events",
        &who.p(name),
        "--bootstrap",
        p2p,
        "--timeout",
        "60s",
    ]));
    assert_eq!(out["rejected_lines"], json!(0), "{out}");
    out
}
