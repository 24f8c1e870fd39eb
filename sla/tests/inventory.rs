//! Inventory through the engine's public surface: advertised capabilities
//! (`network_capabilities`), fees (`create_new_payment`) and unserved
//! sessions, from go-livepeer-shaped events, with NaaP's scenarios where
//! they assert values.
#![allow(clippy::unwrap_used)]

use serde_json::{Value as Json, json};
use vouch_delegation::Role;
use vouch_schema::{Address, Event};
use vouch_sla::{Engine, Limits, Policy, Query};
use vouch_testkit::sla::{self, T0, addr, observer, trace};

/// The real advertisement (NaaP's event log of 2026-01-08, as the Kafka envelope).
const CAPABILITIES: &str = include_str!("data/network-capabilities-sample.json");
const SAMPLES: &str = include_str!("../../schemas/tests/data/go-livepeer-kafka-samples.json");

fn advertiser() -> Address {
    "0xd00354656922168815fcd1e51cbddb9e359e3c7f".parse().unwrap()
}

fn capabilities(orchestrators: Json, ts: u64) -> Event {
    Event::from_type_and_data("network_capabilities", orchestrators, ts).unwrap()
}

/// One orchestrator entry as go-livepeer writes it (gpu_info keyed by index).
fn entry(orch: Address, uri: &str, model: &str, gpus: &[(&str, &str, u64)]) -> Json {
    let gpu_info: serde_json::Map<String, Json> = gpus
        .iter()
        .enumerate()
        .map(|(i, (id, name, free))| {
            (
                i.to_string(),
                json!({"id": id, "name": name, "major": 8, "minor": 9,
                       "memory_free": free, "memory_total": 24_000_000_000u64}),
            )
        })
        .collect();
    json!({"address": orch.to_hex(), "local_address": "", "orch_uri": uri,
           "capabilities": {"bitstring": [34_426_871_807u64]},
           "price_info": {"pricePerUnit": 1200, "pixelsPerUnit": 1},
           "capabilities_prices": [{"pricePerUnit": 1618, "pixelsPerUnit": 1, "capability": 35,
                                    "constraint": model}],
           "hardware": [{"pipeline": "live-video-to-video", "model_id": model, "gpu_info": gpu_info}]})
}

/// go-livepeer's payment: every value a string.
fn payment(
    rid: &str,
    recipient: Address,
    manifest: &str,
    face: &str,
    tickets: &str,
    win: &str,
    ts: u64,
) -> Event {
    let data = json!({"clientIP": "203.0.113.9", "requestID": rid, "capability": "35",
        "manifestID": manifest, "sessionID": "s1", "recipient": recipient.to_hex(),
        "faceValue": face, "winProb": win, "price": "1505.712 wei/pixel", "numTickets": tickets,
        "sender": "0x5aE4E42dB3671370a0c25AfF451E7482aAEc3D0B", "orchestrator": "https://o:8935"});
    Event::from_type_and_data("create_new_payment", data, ts).unwrap()
}

fn ingest(engine: &mut Engine, gateway: u8, ts: u64, ev: &Event) -> vouch_sla::IngestReport {
    engine.ingest(&observer(gateway, Role::Gateway), ts, std::slice::from_ref(ev))
}

fn caps(engine: &Engine, orch: Address, restricted: bool) -> Json {
    serde_json::to_value(engine.capabilities(&orch, restricted)).unwrap()
}

#[test]
fn the_real_advertisement_is_served_with_restricted_fields_only_on_request() {
    let kafka: Json = serde_json::from_str(CAPABILITIES).unwrap();
    let ev = Event::from_kafka_json(&kafka).unwrap();
    let ts = ev.ts.unwrap();
    let mut engine = sla::engine_listing([advertiser()]);
    let r = engine.ingest(&sla::gateway(), ts, &[ev]);
    assert_eq!((r.accepted, r.rejected.len()), (1, 0));
    let public = caps(&engine, advertiser(), false);
    assert_eq!(
        public,
        json!({
            "address": "0xd00354656922168815fcd1e51cbddb9e359e3c7f",
            "advertised_at_ms": 1_767_909_021_590u64,
            "advertised_at": "2026-01-08T21:50:21Z",
            "reported_by_gateways": 1,
            "pipelines": ["live-video-to-video"],
            "models": [{"model_id": "streamdiffusion-sdxl-faceid",
                        "advertised_as": "streamdiffusion-sdxl-faceid",
                        "pipeline": "live-video-to-video",
                        "gpus": [{"name": "NVIDIA GeForce RTX 5090", "count": 1}],
                        "gpu_count": 1}],
            "price_per_pixel_wei": null,
            "capability_prices": [{"capability": 35, "constraint": "streamdiffusion-sdxl-faceid",
                                   "model_id": "streamdiffusion-sdxl-faceid",
                                   "price_per_unit": 1618, "pixels_per_unit": 1,
                                   "price_per_pixel_wei": 1618.0}]
        })
    );
    let full = caps(&engine, advertiser(), true);
    assert_eq!(
        full["restricted"],
        json!({"orch_uri": "https://rtav-orch2.xodeapp.xyz:28935",
               "gpus": [{"model_id": "streamdiffusion-sdxl-faceid",
                         "pipeline": "live-video-to-video",
                         "id": "GPU-a8d13655-197b-2226-d09f-b4b81e07504b",
                         "name": "NVIDIA GeForce RTX 5090", "major": 12, "minor": null,
                         "memory_free": 33_595_981_824u64, "memory_total": 34_190_917_632u64}]})
    );
    // Not listed, or never advertised: nothing.
    assert_eq!(engine.capabilities(&addr(9), true), None);
    let mut unlisted = sla::engine_listing([addr(9)]);
    let kafka_ev = Event::from_kafka_json(&kafka).unwrap();
    let r = unlisted.ingest(&sla::gateway(), ts, &[kafka_ev]);
    assert_eq!(r.rejected.get("orchestrator_unlisted"), Some(&1));
    assert_eq!(unlisted.capabilities(&advertiser(), true), None);
}

/// NaaP's discover_test: two advertisements of one orchestrator 40 and 5
/// minutes back; the later one (its URI) is what is served, in either order.
/// NaaP's events write `gpu_info` as an array and the URI as `uri`; both read.
#[test]
fn naap_discover_scenario_serves_the_latest_advertisement_in_any_order() {
    let orch = addr(7);
    let now = T0 + 3_600_000;
    let ad = |local: &str, uri: &str, version: &str| {
        json!([{"address": orch.to_hex(), "local_address": local, "uri": uri, "version": version,
                "hardware": [{"pipeline": "text-to-image", "model_id": "model-discover",
                              "gpu_info": [{"id": "gpu-discover", "name": "L4", "memory_total": 24576}]}]}])
    };
    let old =
        capabilities(ad("discover-old", "https://old.example.com", "0.9.0"), now - 40 * 60_000);
    let new =
        capabilities(ad("discover-new", "https://new.example.com", "0.9.1"), now - 5 * 60_000);
    let mut answers = Vec::new();
    for order in [[&old, &new], [&new, &old]] {
        let mut engine = sla::engine_listing([orch]);
        for ev in order {
            ingest(&mut engine, 200, now, ev);
        }
        let c = caps(&engine, orch, true);
        assert_eq!(c["restricted"]["orch_uri"], json!("https://new.example.com"));
        assert_eq!(c["advertised_at_ms"], json!(now - 5 * 60_000));
        assert_eq!(c["models"][0]["gpus"], json!([{"name": "L4", "count": 1}]));
        assert_eq!(c["restricted"]["gpus"][0]["memory_total"], json!(24576));
        answers.push(engine.snapshot());
    }
    assert_eq!(answers[0], answers[1]);
}

/// Events of every inventory kind from three gateways.
fn mixed_events() -> Vec<(u8, u64, Event)> {
    let (o1, o2) = (addr(1), addr(2));
    let t = T0 + 60_000;
    let mut out = Vec::new();
    for (i, g) in [200u8, 201, 202].into_iter().enumerate() {
        let at = t + i as u64 * 1000;
        // Equal times with different content: the content decides.
        let free = 1_000 + u64::from(g);
        let ads = json!([
            entry(o1, "https://o1:8935", "streamdiffusion", &[("GPU-1", "L40S", free)]),
            entry(
                o2,
                "https://o2:8935",
                "pip_sdxl-turbo",
                &[("GPU-2", "RTX 4090", free), ("GPU-3", "RTX 4090", 7)]
            )
        ]);
        out.push((g, t + 5_000, capabilities(ads, t)));
        out.push((
            g,
            at + 5_000,
            payment(&format!("r{g}"), o1, "35_streamdiffusion", "1000000 WEI", "2", "0.25", at),
        ));
        out.push((
            g,
            at + 5_000,
            trace("gateway_no_orchestrators_available", &format!("n{g}"), None, at),
        ));
    }
    out
}

#[test]
fn any_arrival_order_gives_the_same_state_bytes() {
    let events = mixed_events();
    let run = |order: &[usize]| {
        let mut engine = sla::engine();
        for &i in order {
            let (g, env, ev) = &events[i];
            let r = ingest(&mut engine, *g, *env, ev);
            assert!(r.rejected.is_empty(), "{r:?}");
        }
        let before_seal = engine.snapshot();
        engine.seal(T0 + 3 * 60_000 + 360_000);
        (before_seal, engine.snapshot())
    };
    let n = events.len();
    let forward: Vec<usize> = (0..n).collect();
    let reverse: Vec<usize> = (0..n).rev().collect();
    let strided: Vec<usize> = (0..n).map(|i| (i * 5) % n).collect();
    let first = run(&forward);
    assert_eq!(first, run(&reverse));
    assert_eq!(first, run(&strided));
    // A snapshot restores the inventory exactly.
    let engine = {
        let mut e = sla::engine();
        for (g, env, ev) in &events {
            ingest(&mut e, *g, *env, ev);
        }
        e.seal(T0 + 3 * 60_000 + 360_000);
        e
    };
    let restored = Engine::restore(
        Policy::default_v1(),
        vouch_sla::Registry::default_v1(),
        Limits::default(),
        &engine.snapshot(),
    )
    .unwrap();
    assert_eq!(restored.snapshot(), engine.snapshot());
    assert_eq!(caps(&restored, addr(2), true), caps(&engine, addr(2), true));
    let c = caps(&engine, addr(2), false);
    assert_eq!(c["reported_by_gateways"], json!(3));
    // pip_sdxl-turbo is NaaP's name for streamdiffusion-sdxl.
    assert_eq!(c["models"][0]["model_id"], json!("streamdiffusion-sdxl"));
    assert_eq!(c["models"][0]["advertised_as"], json!("pip_sdxl-turbo"));
    assert_eq!(c["models"][0]["gpus"], json!([{"name": "RTX 4090", "count": 2}]));
    assert_eq!(c["price_per_pixel_wei"], json!(1200.0));
    // The greatest content at the shared time: gateway 202's memory_free.
    let r = caps(&engine, addr(2), true);
    assert_eq!(r["restricted"]["gpus"][0]["memory_free"], json!(1202));
}

#[test]
fn demand_gains_fees_and_unserved_sessions() {
    let mut engine = sla::engine();
    for (g, env, ev) in mixed_events() {
        ingest(&mut engine, g, env, &ev);
    }
    // A session that found no orchestrator, then got one before its minute
    // sealed, was served; one with two signals counts once, in the first
    // signal's minute; a runner error NaaP reads as "no orchestrator" counts.
    let t = T0 + 60_000;
    let served = [
        trace("gateway_no_orchestrators_available", "late", None, t),
        trace("gateway_receive_stream_request", "late", None, t),
        trace("gateway_receive_first_processed_segment", "late", Some(addr(1)), t + 2_000),
        trace("gateway_no_orchestrators_available", "n200", None, t + 61_000),
        sla::error("err", t + 3_000, "Failed: No orchestrators available, retrying"),
    ];
    for ev in &served {
        ingest(&mut engine, 200, t + 65_000, ev);
    }
    engine.seal(T0 + 10 * 60_000 + 360_000);
    let d = serde_json::to_value(engine.demand(&Query::default())).unwrap();
    // 3 payments of 2 tickets × 1,000,000 wei at 0.25: 500,000 wei each.
    let row = d["rows"].as_array().unwrap().iter().find(|r| r["model_id"] == "streamdiffusion");
    let row = row.unwrap();
    assert_eq!(row["fees_wei"], json!("1500000"));
    assert_eq!(row["fees_eth"], json!(1.5e-12));
    assert_eq!(row["ticket_face_value_eth"], json!(3e-12));
    assert_eq!(row["payments"], json!(3));
    // n200, n201, n202 and err, all of the streamdiffusion pipeline.
    assert_eq!(d["totals"]["unserved_sessions"], json!(4), "{d}");
    assert_eq!(d["totals"]["payments"], json!(3));
    assert_eq!(d["totals"]["fees_wei"], json!("1500000"));
    // Existing fields keep their meaning: the one served session's attempt
    // (decided when its startup wait ends).
    assert_eq!(d["totals"]["attempts"], json!(1));
    // An event for a sealed minute is dropped and counted.
    let late = payment("x", addr(1), "35_streamdiffusion", "5 WEI", "1", "1", t);
    let r = ingest(&mut engine, 200, t + 1_000, &late);
    assert_eq!(r.rejected.get("late_sealed"), Some(&1));
}

#[test]
fn the_real_payment_is_worth_its_tickets_expected_value() {
    let all: Vec<Json> = serde_json::from_str(SAMPLES).unwrap();
    let kafka = all.iter().find(|j| j["type"] == "create_new_payment").unwrap();
    let ev = Event::from_kafka_json(kafka).unwrap();
    let ts = ev.ts.unwrap();
    let mut engine = sla::engine_listing([advertiser()]);
    let r = engine.ingest(&sla::gateway(), ts, &[ev]);
    assert_eq!(r.accepted, 1, "{r:?}");
    engine.seal(ts + 3_600_000);
    let d = serde_json::to_value(engine.demand(&Query::default())).unwrap();
    // 2416800000000000 wei × 2 tickets × 0.0009930487 = 4800000196320 wei.
    assert_eq!(
        d["rows"],
        json!([{"model_id": "streamdiffusion-sdxl-faceid", "pipeline": "live-video-to-video",
                "region": "FRA", "sessions": 0, "attempts": 0, "inference_minutes": 0.0,
                "fees_eth": 4.80000019632e-6, "fees_wei": "4800000196320",
                "ticket_face_value_eth": 0.0024168, "payments": 1, "unserved_sessions": 0}])
    );
    // Neither the client's IP nor the sender is kept anywhere.
    let snapshot = engine.snapshot();
    let text = String::from_utf8_lossy(&snapshot).to_lowercase();
    assert!(!text.contains("203.0.113") && !text.contains("5ae4e42d"));
}

/// NaaP's payments_test and lineage_test payments (faceValue 100, 150 and
/// 200 at winProb 0.5, one ticket each; "100 WEI"). NaaP sums faceValue
/// (its `total_wei`, `ticket_face_value_eth`): 550 wei. Vouch serves that
/// sum too, and as fees the tickets' expected value: 275 wei. NaaP's
/// recipients there ("0xrecipient") are not addresses; Vouch needs a real
/// recipient it lists, so they are replaced by one.
#[test]
fn naap_payment_scenarios() {
    let o = addr(3);
    let mut engine = sla::engine();
    let t = T0 + 60_000;
    for (i, face) in ["100", "150", "200", "100 WEI"].into_iter().enumerate() {
        let ev = payment(&format!("p{i}"), o, "manifest-a", face, "1", "0.5", t);
        assert_eq!(ingest(&mut engine, 200, t, &ev).accepted, 1);
    }
    // Unreadable amounts are refused by reason.
    let bad = payment("b", o, "manifest-a", "lots", "1", "0.5", t);
    assert_eq!(ingest(&mut engine, 200, t, &bad).rejected.get("payment_face_value"), Some(&1));
    engine.seal(T0 + 3 * 60_000 + 360_000);
    let d = serde_json::to_value(engine.demand(&Query::default())).unwrap();
    assert_eq!(d["totals"]["fees_wei"], json!("275"));
    assert_eq!(d["totals"]["ticket_face_value_eth"], json!(550e-18));
    assert_eq!(d["rows"][0]["model_id"], json!("manifest-a"));
}

#[test]
fn bounds_are_held_and_counted() {
    let limits = Limits {
        max_advertised_orchestrators: 1,
        max_hardware_rows_per_orchestrator: 2,
        max_reporting_gateways: 2,
        max_demand_keys: 1,
        max_unplaced_sessions: 1,
        ..Limits::default()
    };
    let mut engine = sla::engine_with(Policy::default_v1(), limits, (1..10).map(addr));
    let t = T0 + 60_000;
    let gpus = [("A", "L4", 1), ("B", "L4", 2), ("C", "L4", 3)];
    let ads = json!([entry(addr(1), "u", "noop", &gpus), entry(addr(2), "u", "noop", &gpus)]);
    for g in [200, 201, 202] {
        ingest(&mut engine, g, t, &capabilities(ads.clone(), t - u64::from(g)));
    }
    ingest(&mut engine, 200, t, &payment("a", addr(1), "1_noop", "1 WEI", "1", "1", t));
    ingest(&mut engine, 200, t, &payment("b", addr(1), "1_comfyui", "1 WEI", "1", "1", t));
    for rid in ["n1", "n2"] {
        ingest(&mut engine, 200, t, &trace("gateway_no_orchestrators_available", rid, None, t));
    }
    let c = engine.stats().counters;
    assert_eq!(c.get("limit_advertised_orchestrators"), Some(&3));
    // Each accepted advertisement had 3 GPU rows, cut to 2.
    assert_eq!(c.get("limit_advertised_hardware"), Some(&3));
    assert_eq!(c.get("limit_reporting_gateways"), Some(&1));
    assert_eq!(c.get("limit_demand_keys"), Some(&1));
    assert_eq!(c.get("limit_unplaced_sessions"), Some(&1));
    let r = caps(&engine, addr(1), true);
    assert_eq!(r["restricted"]["gpus"].as_array().unwrap().len(), 2);
    assert_eq!(r["models"][0]["gpu_count"], json!(2));
    assert_eq!(r["reported_by_gateways"], json!(2));
    assert_eq!(engine.capabilities(&addr(2), false), None);
}

#[test]
fn whose_word_counts() {
    let mut engine = sla::engine();
    let t = T0 + 60_000;
    // A gateway advertising or paying itself.
    let own = capabilities(json!([entry(addr(5), "u", "noop", &[])]), t);
    let r = engine.ingest(&observer(5, Role::Gateway), t, std::slice::from_ref(&own));
    assert_eq!(r.rejected.get("self_dealing"), Some(&1));
    let pay = payment("p", addr(5), "1_noop", "1 WEI", "1", "1", t);
    let r = engine.ingest(&observer(5, Role::Gateway), t, std::slice::from_ref(&pay));
    assert_eq!(r.rejected.get("self_dealing"), Some(&1));
    // An orchestrator's own word is not inventory.
    let r = engine.ingest(&observer(5, Role::Orchestrator), t, std::slice::from_ref(&own));
    assert_eq!(r.rejected.get("family_not_scored"), Some(&1));
    assert_eq!(engine.capabilities(&addr(5), true), None);
}
