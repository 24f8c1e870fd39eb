//! The hostile pass's score rewrites, replayed through a real `vouch node`
//! on loopback (gossip in, HTTP API out). One honest gateway and a second
//! honest gateway observe honest orchestrators; a hostile gateway and an
//! orchestrator holding a gateway certificate try, in one run, every rewrite
//! the pass found:
//!
//! - swaps "away from" the honest orchestrator in sessions it never served;
//! - sessions naming an orchestrator outside the authority view;
//! - events claiming a region (SIN) their certificate does not declare (FRA);
//! - an orchestrator observing itself through its gateway certificate;
//! - failing reports about an orchestrator the other gateways see healthy;
//! - a flood of one-event sessions to fill the session table.
//!
//! Checked once the minutes sealed: the honest orchestrator keeps rank 1,
//! swap rate 0 and all its attempts; the unlisted one is absent; nothing is
//! scored in SIN; the self-observer gained nothing; the liar is flagged in
//! the restricted per-gateway breakdown and counted publicly; the flood was
//! refused at its principal's own bound while the honest sessions all count;
//! and every refusal is in `/metrics` under its stable name.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;
use vouch_testkit::cli::{Identity, Vouch};
use vouch_testkit::jwt::{SECRET as JWT_SECRET, hs256};
use vouch_testkit::livepeer::{self, session, session_in, trace};
use vouch_testkit::node::NodeProcess;
use vouch_testkit::now_ms;
use vouch_testkit::sla::fast_policy;

const VOUCH: Vouch = Vouch::at(env!("CARGO_BIN_EXE_vouch"));

const HONEST: &str = "0x00000000000000000000000000000000000000b1";
const SERVED: &str = "0x00000000000000000000000000000000000000b2";
const DISPUTED: &str = "0x00000000000000000000000000000000000000b3";
const UNLISTED: &str = "0x00000000000000000000000000000000000000ff";
const SESSIONS: u64 = 12;
const FLOOD: u64 = 600;
const SESSION_CAP: u64 = 200;
const SEAL_WAIT: Duration = Duration::from_secs(240);

/// `SESSIONS` healthy sessions on `orch`, request ids tagged `tag`.
fn healthy(tag: &str, orch: &str, t0: u64, ptff: u64) -> Vec<Value> {
    (0..SESSIONS)
        .flat_map(|n| session(&format!("{tag}-{n}"), orch, t0 + n * 50, ptff, 30.0))
        .collect()
}

fn metric(text: &str, counter: &str) -> u64 {
    let needle = format!("vouch_sla_events_total{{counter=\"{counter}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&needle)).map_or(0, |v| v.trim().parse().unwrap())
}

fn get_json(node: &NodeProcess, path: &str, headers: &[(&str, &str)]) -> Value {
    let (status, body) = node.get_with(path, headers);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn entry<'a>(list: &'a Value, address: &str) -> Option<&'a Value> {
    list["orchestrators"].as_array().unwrap().iter().find(|o| o["address"] == json!(address))
}

#[test]
fn one_gateway_cannot_rewrite_scores_through_a_node() {
    let work = TempDir::new().unwrap();
    let honest = Identity::filled(VOUCH, 0x61, 0x62);
    let second = Identity::filled(VOUCH, 0x63, 0x64);
    let hostile = Identity::filled(VOUCH, 0x65, 0x66);
    // An orchestrator principal that also holds a gateway certificate.
    let rival = Identity::filled(VOUCH, 0x67, 0x68);
    let view = json!({"principals": [
        {"address": honest.principal, "roles": ["gateway"]},
        {"address": second.principal, "roles": ["gateway"]},
        {"address": hostile.principal, "roles": ["gateway"]},
        {"address": rival.principal, "roles": ["gateway", "orchestrator"]},
        {"address": HONEST, "roles": ["orchestrator"]},
        {"address": SERVED, "roles": ["orchestrator"]},
        {"address": DISPUTED, "roles": ["orchestrator"]},
    ]});
    let snapshot = work.path().join("authority.json");
    std::fs::write(&snapshot, view.to_string()).unwrap();
    std::fs::write(work.path().join("policy.toml"), fast_policy()).unwrap();
    let config = format!(
        "[sla]\npolicy = \"{}\"\n[sla.limits]\nmax_sessions_per_principal = {SESSION_CAP}\n\
         [api.jwt]\nalgorithm = \"HS256\"\nkey = \"{JWT_SECRET}\"\n",
        work.path().join("policy.toml").display()
    );
    let mut node =
        NodeProcess::spawn_configured(VOUCH, &work.path().join("node"), &snapshot, &config);
    let p2p = node.p2p();
    let t0 = now_ms() - 8_000;
    let rival_addr = rival.principal.clone();

    // Honest traffic: the honest gateway sees HONEST fast and the rival
    // slower; both honest gateways see DISPUTED healthy.
    let mut events = healthy("h", HONEST, t0, 800);
    events.extend(healthy("r", &rival_addr, t0, 2_500));
    events.extend(healthy("d1", DISPUTED, t0, 900));
    honest.publish_kafka("honest.ndjson", &events, &p2p);
    second.publish_kafka("second.ndjson", &healthy("d2", DISPUTED, t0, 900), &p2p);

    // The hostile gateway, every event claiming SIN (its certificate says FRA).
    let mut attack = Vec::new();
    for n in 0..SESSIONS {
        // Sessions served by SERVED, with swaps "away from" HONEST.
        let rid = format!("x-{n}");
        let t = t0 + n * 50;
        attack.extend(session_in("SIN", &rid, SERVED, t, 900, 30.0));
        let mut swap = livepeer::trace_in("SIN", "orchestrator_swap", &rid, HONEST, t + 2_000);
        swap["data"]["message"] = json!("too many inflight segments");
        attack.push(swap);
        // Healthy sessions naming an orchestrator outside the view.
        attack.extend(session_in("SIN", &format!("z-{n}"), UNLISTED, t, 300, 60.0));
        // DISPUTED failing: it never sends a frame.
        let rid = format!("f-{n}");
        attack.push(livepeer::trace_in("SIN", "gateway_receive_stream_request", &rid, "", t));
        attack.push(livepeer::trace_in(
            "SIN",
            "gateway_send_first_ingest_segment",
            &rid,
            DISPUTED,
            t + 100,
        ));
    }
    hostile.publish_kafka("attack.ndjson", &attack, &p2p);
    let flood: Vec<Value> = (0..FLOOD)
        .map(|n| trace("gateway_receive_stream_request", &format!("flood-{n}"), "", t0 + n))
        .collect();
    hostile.publish_kafka("flood.ndjson", &flood, &p2p);
    // The rival observing itself: fast, healthy, 60 fps.
    rival.publish_kafka("self.ndjson", &healthy("s", &rival_addr, t0, 200), &p2p);

    // Once HONEST and the rival are scored in a sealed window.
    let path = "/v1/sla/orchestrators?window=5m";
    let deadline = Instant::now() + SEAL_WAIT;
    let list = loop {
        let list = get_json(&node, path, &[]);
        let scored = |a: &str| entry(&list, a).is_some_and(|o| o["status"] == "ok");
        if scored(HONEST) && scored(&rival_addr) && scored(DISPUTED) {
            break list;
        }
        assert!(Instant::now() < deadline, "never scored: {list}");
        std::thread::sleep(Duration::from_millis(500));
    };
    let h = entry(&list, HONEST).unwrap();
    assert_eq!(h["rank"], json!(1), "{list}");
    assert_eq!(h["swap_rate"], json!(0.0), "{h}");
    assert_eq!(h["attempts"], json!(SESSIONS), "{h}");
    assert_eq!(h["startup_success_rate"], json!(1.0), "{h}");
    assert!(entry(&list, UNLISTED).is_none(), "{list}");
    let r = entry(&list, &rival_addr).unwrap();
    assert_eq!(r["attempts"], json!(SESSIONS), "only the honest gateway's view counts: {r}");
    assert!(r["sla_score"].as_f64().unwrap() < h["sla_score"].as_f64().unwrap(), "{list}");
    assert_eq!(r["ptff_ms"]["p50"].as_f64().map(|p| (p / 100.0).round() * 100.0), Some(2_500.0));
    // The hostile gateway's sessions count, in its certificate's region.
    assert_eq!(entry(&list, SERVED).unwrap()["attempts"], json!(SESSIONS));
    let regions = get_json(&node, "/v1/regions", &[]);
    assert_eq!(regions, json!({"regions": ["FRA"]}));
    let legacy = get_json(&node, "/api/aggregated_stats?window=5m", &[]);
    for cells in legacy.as_object().unwrap().values() {
        assert!(cells.get("SIN").is_none(), "{legacy}");
    }
    assert!(legacy.get(UNLISTED).is_none(), "{legacy}");

    // The liar about DISPUTED: counted publicly, named behind the JWT.
    let detail = format!("/v1/sla/orchestrators/{DISPUTED}?window=5m");
    let public = get_json(&node, &detail, &[]);
    assert_eq!(public["summary"]["gateways"], json!(3), "{public}");
    assert_eq!(public["summary"]["flagged_gateways"], json!(1), "{public}");
    assert!(public.get("by_gateway").is_none());
    let token = hs256(
        JWT_SECRET.as_bytes(),
        &json!({"exp": now_ms() / 1000 + 600, "scope": "sla:restricted"}),
    );
    let bearer = format!("Bearer {token}");
    let restricted = get_json(&node, &detail, &[("Authorization", &bearer)]);
    let flagged: Vec<&Value> = restricted["by_gateway"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["flagged"] == json!(true))
        .collect();
    assert_eq!(flagged.len(), 1, "{restricted}");
    assert_eq!(flagged[0]["gateway"], json!(hostile.principal));

    // Every refusal under its stable name (swaps are decided a swap horizon
    // after they happen: wait for all of them).
    let deadline = Instant::now() + SEAL_WAIT;
    let text = loop {
        let (status, text) = node.get("/metrics");
        assert_eq!(status, 200);
        if metric(&text, "swaps_unattributed") >= SESSIONS {
            break text;
        }
        assert!(Instant::now() < deadline, "swaps never decided: {text}");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(metric(&text, "swaps_unattributed"), SESSIONS, "{text}");
    assert_eq!(metric(&text, "orchestrator_unlisted"), SESSIONS * 4, "named in 4 events a session");
    assert!(metric(&text, "region_mismatch") >= SESSIONS * 10, "{text}");
    assert_eq!(metric(&text, "self_dealing"), SESSIONS * 4, "{text}");
    // The flood: its principal's sessions stop at the cap; the honest ones all counted above.
    let refused = metric(&text, "limit_principal_sessions");
    assert!(refused > 0 && refused <= FLOOD, "{refused}");
    // Open-session state per principal is exported (the flood's sessions are
    // sealed and gone by now; the engine test checks the figures).
    assert!(text.contains("# TYPE vouch_sla_principal_state_bytes gauge"), "{text}");
    assert!(node.terminate().success());
}
