//! The real go-livepeer Kafka samples through the engine, against numbers
//! worked out by hand from the raw timestamps.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use serde_json::{Value as Json, json};
use vouch_schema::Event;
use vouch_sla::{Engine, Query};
use vouch_testkit::sla;

/// The orchestrator of the samples' one attempt (listed in the test authority view).
fn fixture_orchestrator() -> vouch_schema::Address {
    "0x52cf2968b3dc6016778742d3539449a6597d5954".parse().unwrap()
}

const SAMPLES: &str = include_str!("../../schemas/tests/data/go-livepeer-kafka-samples.json");

fn fixture_engine(reverse: bool) -> Engine {
    let mut engine = sla::engine_listing([fixture_orchestrator()]);
    let gw = sla::gateway();
    let all: Vec<Json> = serde_json::from_str(SAMPLES).unwrap();
    let mut events: Vec<(u64, Event)> = all
        .iter()
        .map(|j| {
            let envelope_ts: u64 = j["timestamp"].as_str().unwrap().parse().unwrap();
            (envelope_ts, Event::from_kafka_json(j).unwrap())
        })
        .collect();
    if reverse {
        events.reverse();
    }
    let mut rejected = BTreeMap::new();
    for (envelope_ts, e) in &events {
        let r = engine.ingest(&gw, *envelope_ts, std::slice::from_ref(e));
        for (k, v) in r.rejected {
            *rejected.entry(k).or_insert(0) += v;
        }
    }
    // discovery_results and stream_ingest_metrics carry no attempt facts;
    // create_new_payment pays 0xd003…, which the test view does not list;
    // the other five events are taken.
    assert_eq!(rejected, BTreeMap::from([("family_not_scored", 2), ("orchestrator_unlisted", 1)]));
    // The only attempt (request 5291f1cf on 0x52cf…) starts with its status
    // sample at 1768483618933; its startup is decided 120 s later, at
    // 1768483738933, in minute [1768483680000, 1768483740000). That minute
    // seals at its end + 360 s of grace.
    let sealed = engine.seal(1_768_483_740_000 + 360_000);
    assert!(!sealed.is_empty());
    engine
}

#[test]
fn fixture_numbers_match_hand_arithmetic() {
    let engine = fixture_engine(false);
    let list = serde_json::to_value(engine.orchestrators(&Query::default())).unwrap();
    assert_eq!(list["window"]["end_ms"], json!(1_768_483_740_000u64));
    assert_eq!(list["window"]["start_ms"], json!(1_768_483_740_000u64 - 3_600_000));
    assert_eq!(list["window"]["end"], json!("2026-01-15T13:29:00Z"));
    let orchs = list["orchestrators"].as_array().unwrap();
    assert_eq!(orchs.len(), 1);
    let o = &orchs[0];
    assert_eq!(o["address"], json!("0x52cf2968b3dc6016778742d3539449a6597d5954"));
    assert_eq!(o["rank"], json!(1));
    // One attempt, fewer than the policy's 10: no score.
    assert_eq!(o["status"], json!("insufficient_data"));
    assert_eq!(o["sla_score"], Json::Null);
    assert_eq!(o["legacy_score"], Json::Null);
    assert_eq!(o["attempts"], json!(1));
    assert_eq!(o["sessions"], json!(1));
    // "whip disconnected" at 1768483619196 (the error has no data.timestamp,
    // so the Kafka envelope's) is 263 ms after the attempt's first event and
    // before any playable output: an excused client-caused failure, so the
    // attempt leaves every rate's denominator.
    assert_eq!(o["failures"]["client_caused"], json!(1));
    assert_eq!(o["excused_failures"], json!(1));
    assert_eq!(o["failure_rate"], json!(0.0)); // 0 failed / 1 attempt
    assert_eq!(o["startup_success_rate"], Json::Null); // 0 scored attempts
    assert_eq!(o["swap_rate"], Json::Null);
    // inference_status.fps 15.089916320451984 → 1509 hundredths → 15.09.
    assert_eq!(o["fps"], json!({"p50": 15.09, "jitter": 0.0, "samples": 1}));
    // The sample's last_status_timestamp is 1768483608933: 1768483618933 −
    // 1768483608933 = 10,000 ms of output (≤ the 30 s gap) = 0.1667 min.
    assert_eq!(o["inference_minutes"], json!(0.1667));
    // No stream_trace milestones in the samples: no latencies.
    for m in ["ptff_ms", "startup_ms", "e2e_ms"] {
        assert_eq!(o[m], json!({"p50": null, "p95": null, "p99": null, "count": 0}), "{m}");
    }
    assert_eq!(o["components"], json!({"coverage": null, "reliability": null, "quality": null}));
    assert_eq!(
        o["self_reported"],
        json!({"fps_p50": null, "cue": null, "cue_source": null, "disagrees": false})
    );

    // The samples name no region: the gateway's certificate (FRA) decides.
    let demand = serde_json::to_value(engine.demand(&Query::default())).unwrap();
    assert_eq!(
        demand["rows"],
        json!([{"model_id": "streamdiffusion-sdxl-faceid", "pipeline": "live-video-to-video",
                "region": "FRA", "sessions": 1, "attempts": 1, "inference_minutes": 0.1667,
                // The one payment is to an orchestrator the view does not list.
                "fees_eth": 0.0, "fees_wei": "0", "ticket_face_value_eth": 0.0, "payments": 0,
                "unserved_sessions": 0}])
    );
    assert_eq!(serde_json::to_value(engine.regions()).unwrap(), json!({"regions": ["FRA"]}));
    // Request 499ae98f never reached an orchestrator: its error is counted
    // but charged to nobody.
    let stats = engine.stats();
    assert_eq!(stats.counters.get("errors_unattributed"), Some(&1));
    assert_eq!(stats.open_sessions, 0);
    // Nothing qualifies for the legacy leaderboard.
    assert!(engine.aggregated_stats(&Query::default()).is_empty());
}

#[test]
fn fixture_answers_do_not_depend_on_file_order() {
    let (a, b) = (fixture_engine(false), fixture_engine(true));
    let q = Query::default();
    assert_eq!(
        serde_json::to_string(&a.orchestrators(&q)).unwrap(),
        serde_json::to_string(&b.orchestrators(&q)).unwrap()
    );
    assert_eq!(a.snapshot(), b.snapshot());
}

#[test]
fn sealed_buckets_name_their_counters() {
    let mut engine = sla::engine_listing([fixture_orchestrator()]);
    let gw = sla::gateway();
    let all: Vec<Json> = serde_json::from_str(SAMPLES).unwrap();
    for j in &all {
        let envelope_ts: u64 = j["timestamp"].as_str().unwrap().parse().unwrap();
        engine.ingest(&gw, envelope_ts, &[Event::from_kafka_json(j).unwrap()]);
    }
    let sealed = engine.seal(1_768_483_740_000 + 360_000);
    // The status sample's minute and the startup decision's minute.
    let minutes: Vec<u64> = sealed.iter().map(|b| b.minute_start_ms).collect();
    assert_eq!(minutes, [1_768_483_560_000, 1_768_483_680_000]);
    let v = serde_json::to_value(&sealed[1]).unwrap();
    assert_eq!(v["orchestrator"], json!("0x52cf2968b3dc6016778742d3539449a6597d5954"));
    assert_eq!(v["model_id"], json!("streamdiffusion-sdxl-faceid"));
    assert_eq!(v["origin"], json!("production"));
    assert_eq!(v["counters"]["attempts"], json!(1));
    assert_eq!(v["counters"]["scored_attempts"], json!(0));
    let first = serde_json::to_value(&sealed[0]).unwrap();
    assert_eq!(first["counters"]["failures"]["client_caused"], json!(1));
    assert_eq!(first["counters"]["inference_ms"], json!(10_000));
    assert_eq!(first["fps_centi"]["p50"], json!(1509));
}
