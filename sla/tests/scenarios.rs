//! Generated traffic: who ranks where, and whose word counts.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use serde_json::{Value as Json, json};
use vouch_delegation::Role;
use vouch_schema::{Address, Event, Origin};
use vouch_sla::{Engine, Query, Window};
use vouch_testkit::sla::{
    self, Profile, T0, addr, error, gateway, ingest_all, observer, seal_through, session, status,
    trace,
};

const HEALTHY: u8 = 1;
const SLOW: u8 = 2;
const FLAKY: u8 = 3;
const SWAPPING: u8 = 4;
const BACKUP: u8 = 9;
const SESSIONS: usize = 20;

/// 20 sessions per orchestrator, one every 30 s.
fn traffic() -> Vec<Event> {
    let mut out = Vec::new();
    for (o, p) in [
        (HEALTHY, Profile::Healthy),
        (SLOW, Profile::Slow),
        (FLAKY, Profile::Flaky),
        (SWAPPING, Profile::Swapping),
    ] {
        for n in 0..SESSIONS {
            let rid = format!("{o:02x}{n:06x}");
            out.extend(session(
                &rid,
                addr(o),
                addr(BACKUP),
                T0 + n as u64 * 30_000 + u64::from(o),
                p,
                n,
            ));
        }
    }
    out
}

fn end_of_traffic() -> u64 {
    T0 + SESSIONS as u64 * 30_000 + 200_000
}

fn engine_with(events: &[Event]) -> Engine {
    let mut e = sla::engine();
    ingest_all(&mut e, &gateway(), events);
    e
}

fn scores(engine: &Engine, q: &Query) -> BTreeMap<Address, Json> {
    let r = serde_json::to_value(engine.orchestrators(q)).unwrap();
    r["orchestrators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["address"].as_str().unwrap().parse().unwrap(), o.clone()))
        .collect()
}

fn sla(entry: &Json) -> f64 {
    entry["sla_score"].as_f64().unwrap_or_else(|| panic!("no score: {entry}"))
}

#[test]
fn healthy_slow_flaky_swapping_rank_in_that_order() {
    let mut engine = engine_with(&traffic());
    seal_through(&mut engine, end_of_traffic());
    let q = Query::default();
    let list = serde_json::to_value(engine.orchestrators(&q)).unwrap();
    let order: Vec<&str> = list["orchestrators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["address"].as_str().unwrap())
        .collect();
    let s = scores(&engine, &q);
    let (h, sl, f, sw) =
        (&s[&addr(HEALTHY)], &s[&addr(SLOW)], &s[&addr(FLAKY)], &s[&addr(SWAPPING)]);
    for e in [h, sl, f, sw] {
        assert_eq!(e["status"], json!("ok"), "{e}");
    }
    println!("sla_score healthy {} slow {} flaky {} swapping {}", sla(h), sla(sl), sla(f), sla(sw));
    assert!(sla(h) > sla(sl), "healthy {} slow {}", sla(h), sla(sl));
    assert!(sla(sl) > sla(f), "slow {} flaky {}", sla(sl), sla(f));
    assert!(sla(f) > sla(sw), "flaky {} swapping {}", sla(f), sla(sw));
    // The ranking lists them in that order (the backup serves the swapped sessions).
    let pos = |a: u8| order.iter().position(|x| *x == addr(a).to_hex()).unwrap();
    assert!(pos(HEALTHY) < pos(SLOW) && pos(SLOW) < pos(FLAKY) && pos(FLAKY) < pos(SWAPPING));
    // What each profile did, as counted.
    assert_eq!(h["attempts"], json!(SESSIONS));
    assert_eq!(h["startup_success_rate"], json!(1.0));
    assert_eq!(h["fps"]["p50"], json!(30.0));
    assert_eq!(h["fps"]["jitter"], json!(0.0));
    assert_eq!(sl["fps"]["p50"], json!(18.0));
    assert_eq!(f["startup_success_rate"], json!(0.7)); // every 3rd of 20 failed: 6
    assert_eq!(f["failures"]["model_error"], json!(6));
    assert_eq!(f["failure_rate"], json!(0.3));
    assert_eq!(sw["swap_rate"], json!(1.0));
    assert_eq!(sw["startup_success_rate"], json!(0.0));
    assert_eq!(sw["failures"]["timeout"], json!(SESSIONS)); // "too many inflight segments"
    assert_eq!(s[&addr(BACKUP)]["attempts"], json!(SESSIONS));
    assert_eq!(s[&addr(BACKUP)]["sessions"], json!(0)); // never first in its session
    // Healthy PTFF: 800..840 ms from the stream request.
    let p50 = h["ptff_ms"]["p50"].as_u64().unwrap();
    assert!((800..=840).contains(&p50), "{p50}");
    // The legacy leaderboard view agrees on the order of the top two.
    let agg = engine.aggregated_stats(&Query { window: Window::H24, ..Query::default() });
    let legacy = |a: u8| agg[&addr(a).to_hex()]["FRA"].score;
    assert!(legacy(HEALTHY) > legacy(SLOW));
    assert!(legacy(SLOW) > legacy(SWAPPING));
}

#[test]
fn an_excused_client_disconnect_does_not_lower_a_score() {
    let base = traffic();
    let mut with_disconnects = base.clone();
    for n in 0..8u64 {
        let rid = format!("dc{n:06x}");
        let t = T0 + 5_000 + n * 60_000;
        with_disconnects.push(trace("gateway_receive_stream_request", &rid, None, t));
        with_disconnects.push(trace(
            "gateway_send_first_ingest_segment",
            &rid,
            Some(addr(HEALTHY)),
            t + 100,
        ));
        with_disconnects.push(error(&rid, t + 400, "whip disconnected"));
        with_disconnects.push(trace("gateway_ingest_stream_closed", &rid, None, t + 400));
    }
    let mut a = engine_with(&base);
    let mut b = engine_with(&with_disconnects);
    seal_through(&mut a, end_of_traffic());
    seal_through(&mut b, end_of_traffic());
    let q = Query::default();
    let (sa, sb) = (scores(&a, &q), scores(&b, &q));
    let (ha, hb) = (&sa[&addr(HEALTHY)], &sb[&addr(HEALTHY)]);
    assert_eq!(hb["excused_failures"], json!(8));
    assert_eq!(hb["attempts"], json!(SESSIONS + 8));
    assert_eq!(sla(ha), sla(hb));
    assert_eq!(ha["legacy_score"], hb["legacy_score"]);
    assert_eq!(hb["failure_rate"], json!(0.0));
    assert_eq!(hb["startup_success_rate"], json!(1.0));
}

#[test]
fn synthetic_probes_do_not_change_production_scores() {
    let base = traffic();
    let mut a = engine_with(&base);
    let mut b = engine_with(&base);
    // A load tester hammers the healthy orchestrator with failing probes.
    let mut probes = Vec::new();
    for n in 0..SESSIONS {
        let rid = format!("lt{n:06x}");
        probes.extend(session(
            &rid,
            addr(HEALTHY),
            addr(BACKUP),
            T0 + n as u64 * 30_000,
            Profile::Flaky,
            2,
        ));
    }
    ingest_all(&mut b, &observer(201, Role::Loadtest), &probes);
    seal_through(&mut a, end_of_traffic());
    seal_through(&mut b, end_of_traffic());
    let q = Query::default();
    assert_eq!(
        serde_json::to_string(&a.orchestrators(&q)).unwrap(),
        serde_json::to_string(&b.orchestrators(&q)).unwrap()
    );
    // The probes form their own track.
    let synthetic = Query { origin: Origin::Synthetic, ..Query::default() };
    let s = scores(&b, &synthetic);
    assert_eq!(s.len(), 1);
    assert_eq!(s[&addr(HEALTHY)]["attempts"], json!(SESSIONS));
    assert_eq!(s[&addr(HEALTHY)]["startup_success_rate"], json!(0.0));
    assert!(scores(&a, &synthetic).is_empty());
}

#[test]
fn self_reports_never_raise_a_score() {
    let base = traffic();
    let mut a = engine_with(&base);
    let mut b = engine_with(&base);
    // The slow orchestrator (and its runner) claims 60 fps and a busy GPU,
    // and tries to report on behalf of the swapping one too.
    let mut claims = Vec::new();
    for n in 0..30u64 {
        let t = T0 + n * 20_000;
        claims.push(status(&format!("self{n}"), addr(SLOW), t, 60.0, "ONLINE"));
        claims.push(status(&format!("self{n}"), addr(SWAPPING), t, 60.0, "ONLINE"));
        let gpu =
            json!({"timestamp": t, "source": "gpm", "tensor_active_pct": 95.0, "gpu_index": 0});
        claims.push(Event::from_type_and_data("gpu_stats", gpu, t).unwrap());
    }
    ingest_all(&mut b, &observer(SLOW, Role::Orchestrator), &claims);
    ingest_all(&mut b, &observer(SLOW, Role::Runner), &claims[..10]);
    seal_through(&mut a, end_of_traffic());
    seal_through(&mut b, end_of_traffic());
    let q = Query::default();
    let (sa, sb) = (scores(&a, &q), scores(&b, &q));
    for o in [HEALTHY, SLOW, FLAKY, SWAPPING, BACKUP] {
        let (x, y) = (&sa[&addr(o)], &sb[&addr(o)]);
        assert_eq!(x["sla_score"], y["sla_score"], "{o}");
        assert_eq!(x["legacy_score"], y["legacy_score"], "{o}");
        assert_eq!(x["fps"], y["fps"], "{o}");
        assert_eq!(x["components"], y["components"], "{o}");
    }
    let slow = &sb[&addr(SLOW)];
    assert_eq!(slow["self_reported"]["fps_p50"], json!(60.0));
    assert_eq!(slow["self_reported"]["cue"], json!(0.95));
    assert_eq!(slow["self_reported"]["cue_source"], json!("gpm"));
    assert_eq!(slow["self_reported"]["disagrees"], json!(true)); // 60 vs 18 observed
    // Nothing was recorded about the swapping orchestrator on the slow one's word.
    assert_eq!(sb[&addr(SWAPPING)]["self_reported"]["fps_p50"], Json::Null);
}

#[test]
fn event_time_must_trail_its_envelope_within_the_lag() {
    let mut e = sla::engine();
    let gw = gateway();
    let ev = trace("gateway_receive_stream_request", "aa", None, T0);
    let future = e.ingest(&gw, T0 - 1, std::slice::from_ref(&ev));
    assert_eq!(future.rejected.get("future_timestamp"), Some(&1));
    let lag = e.policy().ingest.event_lag_ms;
    let stale = e.ingest(&gw, T0 + lag + 1, std::slice::from_ref(&ev));
    assert_eq!(stale.rejected.get("lag_exceeded"), Some(&1));
    assert_eq!(e.ingest(&gw, T0 + lag, std::slice::from_ref(&ev)).accepted, 1);
    // Once its minute seals, an event for it is dropped and counted.
    seal_through(&mut e, T0 + 60_000);
    let late = e.ingest(&gw, T0 + 1_000, std::slice::from_ref(&ev));
    assert_eq!(late.rejected.get("late_sealed"), Some(&1));
    assert_eq!(e.stats().counters.get("events_rejected_late_sealed"), Some(&1));
    let verifier = e.ingest(
        &observer(7, Role::Verifier),
        T0 + 61_000 + 60_000,
        &[trace("x", "bb", None, T0 + 61_000 + 60_000)],
    );
    assert_eq!(verifier.rejected.get("observer_role"), Some(&1));
}

#[test]
fn detail_series_and_restricted_gateways() {
    let mut engine = engine_with(&traffic());
    seal_through(&mut engine, end_of_traffic());
    let q = Query::default();
    let public =
        serde_json::to_value(engine.orchestrator(&addr(HEALTHY), &q, false).unwrap()).unwrap();
    assert!(public.get("by_gateway").is_none());
    assert_eq!(public["summary"]["rank"], Json::Null);
    assert_eq!(public["by_model"][0]["model_id"], json!("streamdiffusion"));
    assert_eq!(public["by_model"][0]["targets"]["met"], json!(true));
    assert_eq!(public["by_region"][0]["region"], json!("FRA"));
    let attempts: u64 =
        public["series"].as_array().unwrap().iter().map(|p| p["attempts"].as_u64().unwrap()).sum();
    assert_eq!(attempts, SESSIONS as u64);
    let restricted =
        serde_json::to_value(engine.orchestrator(&addr(HEALTHY), &q, true).unwrap()).unwrap();
    assert_eq!(
        restricted["by_gateway"],
        json!([{"gateway": gateway().principal.to_hex(), "attempts": SESSIONS,
                "startup_success_rate": 1.0, "ptff_mean_ms": 820.0, "flagged": false}])
    );
    assert!(engine.orchestrator(&addr(77), &q, true).is_none());
    let demand = serde_json::to_value(engine.demand(&q)).unwrap();
    assert_eq!(demand["totals"]["sessions"], json!(4 * SESSIONS));
    assert_eq!(demand["totals"]["attempts"], json!(5 * SESSIONS));
    let models = serde_json::to_value(engine.models()).unwrap();
    assert_eq!(models["registry"]["hash"].as_str().unwrap().len(), 66);
    assert_eq!(list_policy_hash(&engine), engine.policy().hash);
}

fn list_policy_hash(engine: &Engine) -> String {
    let v = serde_json::to_value(engine.orchestrators(&Query::default())).unwrap();
    v["policy"]["hash"].as_str().unwrap().to_owned()
}

#[test]
fn query_parameters() {
    let p = |pairs: &[(&str, &str)]| {
        Query::from_params(&pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    };
    let q = p(&[
        ("window", "24h"),
        ("region", "fra"),
        ("model", "streamdiffusion-sd15"),
        ("origin", "synthetic"),
    ])
    .unwrap();
    assert_eq!(q.window, Window::H24);
    assert_eq!(q.region.as_deref(), Some("FRA"));
    assert_eq!(q.origin, Origin::Synthetic);
    assert_eq!(p(&[]).unwrap(), Query::default());
    assert_eq!(
        p(&[("window", "2h")]).unwrap_err().to_string(),
        "unknown window \"2h\"; expected 1m, 5m, 1h, 24h or 7d"
    );
    assert!(p(&[("origin", "staging")]).is_err());
    // An alias filter means its canonical model.
    let mut engine = engine_with(&traffic());
    seal_through(&mut engine, end_of_traffic());
    let r = serde_json::to_value(engine.orchestrators(&Query {
        model_id: Some("streamdiffusion-sd15".into()),
        ..Query::default()
    }))
    .unwrap();
    assert_eq!(r["filters"]["model_id"], json!("streamdiffusion"));
    assert_eq!(r["orchestrators"].as_array().unwrap().len(), 5);
}

#[test]
fn the_engine_can_be_shared_between_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<Engine>();
}
