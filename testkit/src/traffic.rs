//! Generated gateway traffic for the benchmarks: one healthy-ish 8-event
//! session per (orchestrator, model, region) per hour, and the large SLA
//! engine state built from it (1,000 × 10 × 5 × 24 h at full size). Shared
//! by `sla/benches/aggregate.rs` and `verifier/benches/api_load.rs`, so both
//! measure the same state.

use serde_json::json;
use vouch_delegation::Role;
use vouch_delegation::authority::AuthorityView;
use vouch_schema::{Address, Event};
use vouch_sla::{Engine, Observer};

use crate::authority::entry;
use crate::livepeer::event;

/// Base time of the traffic: the SLA tests' [`crate::sla::T0`].
pub const BASE: u64 = crate::sla::T0;
/// The models sessions run, the first `models` of them at a given size.
pub const MODELS: [&str; 10] = [
    "streamdiffusion",
    "streamdiffusion-sdxl",
    "streamdiffusion-sdxl-faceid",
    "comfyui",
    "scope",
    "segment_anything_2",
    "noop",
    "model-8",
    "model-9",
    "model-10",
];
/// The gateways' regions, the first `regions` of them at a given size.
pub const REGIONS: [&str; 5] = ["FRA", "MDW", "LAX", "SEA", "SIN"];

/// Orchestrator number `i`'s address.
pub fn orch(i: usize) -> Address {
    let mut a = [0u8; 20];
    a[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
    Address(a)
}

/// One healthy-ish session of request `rid` on `o` running `model`, seen
/// from `region` at `t`: 8 events whose timings and fps vary with `k`.
pub fn session(rid: &str, o: Address, model: &str, region: &str, t: u64, k: u64) -> Vec<Event> {
    let oi = json!({"address": o.to_hex(), "url": ""});
    let tr = |sub: &str, ts: u64, with_orch: bool| {
        let mut d = json!({"type": sub, "request_id": rid, "pipeline": model, "gateway_region": region, "timestamp": ts});
        if with_orch {
            d["orchestrator_info"] = oi.clone();
        }
        event("stream_trace", ts, d)
    };
    let ptff = 700 + k % 900;
    let mut out = vec![
        tr("gateway_receive_stream_request", t, false),
        tr("gateway_send_first_ingest_segment", t + 100, true),
        tr("gateway_receive_first_processed_segment", t + ptff, true),
        tr("gateway_receive_few_processed_segments", t + ptff + 400, true),
    ];
    for i in 1..=3u64 {
        let ts = t + ptff + i * 10_000;
        out.push(event(
            "ai_stream_status",
            ts,
            json!({"type": "status", "request_id": rid, "pipeline": model, "gateway_region": region,
                   "timestamp": ts, "state": "ONLINE", "orchestrator_info": oi,
                   "inference_status": {"fps": 20.0 + (k % 11) as f64}}),
        ));
    }
    out.push(tr("gateway_ingest_stream_closed", t + 45_000, false));
    out
}

/// The gateway of `region`: one principal per region, its certificate
/// declaring that region (where its observations are scored).
pub fn gateway(region: &str) -> Observer {
    let i = REGIONS.iter().position(|r| *r == region).unwrap_or(0) as u8;
    Observer {
        principal: Address([0xe0 + i; 20]),
        role: Role::Gateway,
        delegate: Address([0xf0 + i; 20]),
        region: region.to_owned(),
    }
}

/// An engine whose authority view lists orchestrators `0..orchs`.
pub fn listed_engine(orchs: usize) -> Engine {
    let mut engine = Engine::with_defaults();
    let entries = (0..orchs).map(|o| entry(orch(o), Role::Orchestrator));
    engine.set_authority(&AuthorityView::new("bench", entries));
    engine
}

/// An engine holding `hours` of sealed traffic of `orchs` orchestrators ×
/// `models` × `regions`, and the number of events ingested.
pub fn big_engine(orchs: usize, models: usize, regions: usize, hours: u64) -> (Engine, usize) {
    let mut engine = listed_engine(orchs);
    let grace = engine.policy().ingest.seal_grace_ms;
    let mut events = 0;
    for h in 0..hours {
        let hour = BASE + h * 3_600_000;
        let mut k = 0u64;
        for o in 0..orchs {
            for model in &MODELS[..models] {
                for region in &REGIONS[..regions] {
                    k += 1;
                    let t = hour + (k % 50) * 60_000 + (k * 7919) % 60_000;
                    let rid = format!("{h:02x}{k:06x}");
                    let batch = session(&rid, orch(o), model, region, t, k + h);
                    events += batch.len();
                    engine.ingest(&gateway(region), t + 46_000, &batch);
                }
            }
        }
        engine.seal(hour + 3_600_000 + grace);
    }
    engine.seal(BASE + hours * 3_600_000 + 600_000 + grace);
    (engine, events)
}
