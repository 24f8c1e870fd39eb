//! Whose word counts, under attack (issue: scores rewritable by one
//! gateway). Each test replays one finding of the hostile pass at engine
//! level: the rewrite no longer changes the honest orchestrator's score, and
//! the attempt is counted under a stable name. The same findings run through
//! a real node and its HTTP API in `verifier/tests/security_e2e.rs`.
#![allow(clippy::unwrap_used)]

use serde_json::{Value as Json, json};
use vouch_delegation::Role;
use vouch_schema::Event;
use vouch_sla::{Engine, Limits, Observer, Policy, Query, Window};
use vouch_testkit::sla::{
    self, Profile, T0, addr, engine, ingest_all, observer, seal_through, session, status, swap,
    trace,
};

const HONEST: u8 = 1;
const RIVAL: u8 = 2;
const BACKUP: u8 = 9;
/// Not in the authority view `vouch_testkit::sla::engine()` records.
const UNLISTED: u8 = 150;
const SESSIONS: usize = 20;

fn gateway(n: u8) -> Observer {
    observer(n, Role::Gateway)
}

/// `SESSIONS` healthy sessions on `orch` seen by `gw`, request ids prefixed by `tag`.
fn healthy(tag: &str, orch: u8) -> Vec<Event> {
    (0..SESSIONS)
        .flat_map(|n| {
            let rid = format!("{tag}-{n:04}");
            session(&rid, addr(orch), addr(BACKUP), T0 + n as u64 * 30_000, Profile::Healthy, n)
        })
        .collect()
}

fn end() -> u64 {
    T0 + SESSIONS as u64 * 30_000 + 200_000
}

fn list(e: &Engine) -> Json {
    serde_json::to_value(e.orchestrators(&Query::default())).unwrap()
}

fn entry(list: &Json, orch: u8) -> Option<Json> {
    list["orchestrators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["address"] == json!(addr(orch).to_hex()))
        .cloned()
}

fn counter(e: &Engine, name: &str) -> u64 {
    e.stats().counters.get(name).copied().unwrap_or(0)
}

/// The baseline every attack is compared with: one honest gateway, one
/// healthy orchestrator.
fn baseline() -> (Engine, Json) {
    let mut e = engine();
    ingest_all(&mut e, &gateway(200), &healthy("h", HONEST));
    let mut sealed = engine();
    ingest_all(&mut sealed, &gateway(200), &healthy("h", HONEST));
    seal_through(&mut sealed, end());
    let honest = entry(&list(&sealed), HONEST).unwrap();
    assert_eq!(honest["status"], json!("ok"), "{honest}");
    (e, honest)
}

#[test]
fn a_principal_cannot_score_itself_through_a_gateway_certificate() {
    let (mut e, honest) = baseline();
    // RIVAL holds orchestrator standing and signs as a gateway about itself.
    let mut own = healthy("self", RIVAL);
    own.push(status("self-0000", addr(RIVAL), T0 + 20_000, 60.0, "ONLINE"));
    for ev in &own {
        let r = e.ingest(&gateway(RIVAL), ev.ts.unwrap() + 1_000, std::slice::from_ref(ev));
        if ev.orchestrator.is_some() {
            assert_eq!(r.accepted, 0, "never an observation: {r:?}");
        }
    }
    seal_through(&mut e, end());
    let l = list(&e);
    assert!(entry(&l, RIVAL).is_none(), "not on the leaderboard: {l}");
    let detail = e.orchestrator(&addr(RIVAL), &Query::default(), false).unwrap();
    let rival = serde_json::to_value(detail).unwrap()["summary"].clone();
    assert_eq!(rival["attempts"], json!(0), "{rival}");
    assert_eq!(rival["sla_score"], Json::Null);
    assert!(rival["self_reported"]["fps_p50"].as_f64().unwrap() > 0.0, "shown as self-reported");
    assert_eq!(entry(&l, HONEST).unwrap()["sla_score"], honest["sla_score"]);
    assert_eq!(
        counter(&e, "self_dealing"),
        own.iter().filter(|e| e.orchestrator.is_some()).count() as u64
    );
}

#[test]
fn orchestrators_outside_the_recorded_view_are_never_scored() {
    let (mut e, honest) = baseline();
    let fake = healthy("z", UNLISTED);
    ingest_all_counting(&mut e, &gateway(201), &fake);
    seal_through(&mut e, end());
    let l = list(&e);
    assert!(entry(&l, UNLISTED).is_none(), "{l}");
    assert_eq!(entry(&l, HONEST).unwrap()["sla_score"], honest["sla_score"]);
    let named = fake.iter().filter(|e| e.orchestrator.is_some()).count() as u64;
    assert_eq!(counter(&e, "orchestrator_unlisted"), named);
    // A later view that lists it scores what comes after.
    let mut relisted = sla::engine_listing([addr(HONEST), addr(BACKUP), addr(UNLISTED)]);
    ingest_all(&mut relisted, &gateway(201), &healthy("z", UNLISTED));
    seal_through(&mut relisted, end());
    assert_eq!(entry(&list(&relisted), UNLISTED).unwrap()["status"], json!("ok"));
}

/// Ingests and ignores refusals (the attacks' events are partly refused).
fn ingest_all_counting(e: &mut Engine, obs: &Observer, events: &[Event]) {
    for ev in events {
        e.ingest(obs, ev.ts.unwrap() + 1_000, std::slice::from_ref(ev));
    }
}

#[test]
fn a_swap_is_charged_only_to_an_orchestrator_that_served_the_session() {
    let (mut e, honest) = baseline();
    // A hostile gateway reports sessions served by RIVAL with swaps "away
    // from" HONEST, which never had an attempt in them.
    let hostile = gateway(201);
    let mut events = Vec::new();
    for n in 0..SESSIONS {
        let rid = format!("x-{n:04}");
        let t = T0 + n as u64 * 30_000;
        events.extend(session(&rid, addr(RIVAL), addr(BACKUP), t, Profile::Healthy, n));
        events.push(swap(&rid, addr(HONEST), t + 2_000, "too many inflight segments"));
    }
    ingest_all(&mut e, &hostile, &events);
    seal_through(&mut e, end());
    let h = entry(&list(&e), HONEST).unwrap();
    assert_eq!(h["swap_rate"], json!(0.0), "{h}");
    assert_eq!(h["sla_score"], honest["sla_score"]);
    assert_eq!(counter(&e, "swaps_unattributed"), SESSIONS as u64);
}

#[test]
fn observations_count_in_the_region_the_certificate_declares() {
    let mut e = engine();
    // The gateway's certificate says FRA; its events claim SIN.
    let events: Vec<Event> = healthy("r", HONEST)
        .into_iter()
        .map(|ev| {
            let mut j = ev.to_kafka_json();
            j["data"]["gateway_region"] = json!("SIN");
            Event::from_kafka_json(&j).unwrap()
        })
        .collect();
    ingest_all(&mut e, &gateway(200), &events);
    seal_through(&mut e, end());
    let regions = serde_json::to_value(e.regions()).unwrap();
    assert_eq!(regions, json!({"regions": ["FRA"]}));
    let agg = e.aggregated_stats(&Query { window: Window::H24, ..Query::default() });
    let cells = &agg[&addr(HONEST).to_hex()];
    assert!(cells.contains_key("FRA") && !cells.contains_key("SIN"), "{agg:?}");
    assert_eq!(counter(&e, "region_mismatch"), events.len() as u64);
}

#[test]
fn a_score_needs_the_policy_minimum_of_distinct_gateways() {
    let policy = |extra: &str| {
        Policy::from_toml(&format!("{}\n{extra}", vouch_sla::DEFAULT_POLICY_TOML)).unwrap()
    };
    let two_needed = || {
        let p = policy("[corroboration]\nmin_gateways = 2\n");
        sla::engine_with(p, Limits::default(), [addr(HONEST), addr(BACKUP)])
    };
    let mut one = two_needed();
    ingest_all(&mut one, &gateway(200), &healthy("a", HONEST));
    seal_through(&mut one, end());
    let h = entry(&list(&one), HONEST).unwrap();
    assert_eq!((&h["status"], &h["gateways"]), (&json!("insufficient_data"), &json!(1)), "{h}");
    assert_eq!(h["sla_score"], Json::Null);
    let q24 = Query { window: Window::H24, ..Query::default() };
    assert!(one.aggregated_stats(&q24).is_empty(), "go-livepeer's view needs the same gateways");

    let mut both = two_needed();
    ingest_all(&mut both, &gateway(200), &healthy("a", HONEST));
    ingest_all(&mut both, &gateway(201), &healthy("b", HONEST));
    seal_through(&mut both, end());
    let h = entry(&list(&both), HONEST).unwrap();
    assert_eq!((&h["status"], &h["gateways"]), (&json!("ok"), &json!(2)), "{h}");
    assert!(both.aggregated_stats(&q24).contains_key(&addr(HONEST).to_hex()));
    // A policy that asks for no gateway at all is refused on load.
    let e = Policy::from_toml(&format!(
        "{}\n[corroboration]\nmin_gateways = 0\n",
        vouch_sla::DEFAULT_POLICY_TOML
    ))
    .err()
    .unwrap();
    assert!(e.to_string().contains("min_gateways"), "{e}");
}

#[test]
fn a_gateway_far_from_the_others_is_flagged_in_the_restricted_breakdown() {
    let mut e = engine();
    ingest_all(&mut e, &gateway(200), &healthy("a", HONEST));
    ingest_all(&mut e, &gateway(201), &healthy("b", HONEST));
    // The liar reports every session on HONEST failing before output.
    let lies: Vec<Event> = (0..SESSIONS)
        .flat_map(|n| {
            let rid = format!("l-{n:04}");
            let t = T0 + n as u64 * 30_000;
            vec![
                trace("gateway_receive_stream_request", &rid, None, t),
                trace("gateway_send_first_ingest_segment", &rid, Some(addr(HONEST)), t + 100),
            ]
        })
        .collect();
    ingest_all(&mut e, &gateway(202), &lies);
    seal_through(&mut e, end());
    let q = Query::default();
    let public = serde_json::to_value(e.orchestrator(&addr(HONEST), &q, false).unwrap()).unwrap();
    assert_eq!(public["summary"]["gateways"], json!(3));
    assert_eq!(public["summary"]["flagged_gateways"], json!(1));
    assert!(public.get("by_gateway").is_none());
    let detail = serde_json::to_value(e.orchestrator(&addr(HONEST), &q, true).unwrap()).unwrap();
    let rows = detail["by_gateway"].as_array().unwrap();
    let flagged: Vec<&Json> = rows.iter().filter(|r| r["flagged"] == json!(true)).collect();
    assert_eq!(flagged.len(), 1, "{rows:?}");
    assert_eq!(flagged[0]["gateway"], json!(gateway(202).principal.to_hex()));
    assert_eq!(flagged[0]["startup_success_rate"], json!(0.0));
}

#[test]
fn one_gateway_flooding_sessions_cannot_lock_out_another() {
    let limits = Limits { max_sessions_per_principal: 500, ..Limits::default() };
    let mut e = sla::engine_with(Policy::default_v1(), limits, [addr(HONEST), addr(BACKUP)]);
    // 2,000 one-event sessions from one gateway (the hostile pass sent 200,000).
    let flood: Vec<Event> = (0..2_000u64)
        .map(|n| trace("gateway_receive_stream_request", &format!("f-{n}"), None, T0 + n))
        .collect();
    let mut refused = 0;
    for ev in &flood {
        let r = e.ingest(&gateway(201), ev.ts.unwrap() + 1_000, std::slice::from_ref(ev));
        refused += r.rejected.get("limit_principal_sessions").copied().unwrap_or(0);
    }
    assert_eq!(refused, 1_500);
    assert_eq!(e.stats().principals[&gateway(201).principal].0, 500);
    // The honest gateway's sessions are all taken.
    ingest_all(&mut e, &gateway(200), &healthy("h", HONEST));
    seal_through(&mut e, end());
    assert_eq!(entry(&list(&e), HONEST).unwrap()["attempts"], json!(SESSIONS));
    assert_eq!(counter(&e, "limit_principal_sessions"), 1_500);
}

#[test]
fn status_samples_and_state_bytes_are_bounded_per_principal() {
    let limits = Limits {
        max_state_bytes_per_principal: 256 << 10,
        max_status_per_attempt: 64,
        ..Limits::default()
    };
    let mut e = sla::engine_with(Policy::default_v1(), limits, [addr(HONEST), addr(BACKUP)]);
    let mut refused = std::collections::BTreeMap::new();
    // 100 sessions × 200 status samples each, 10 ms apart.
    for s in 0..100u64 {
        let rid = format!("s-{s}");
        let batch: Vec<Event> = (0..200u64)
            .map(|i| status(&rid, addr(HONEST), T0 + s * 1_000 + i * 10, 30.0, "ONLINE"))
            .collect();
        let r = e.ingest(&gateway(201), T0 + 120_000, &batch);
        for (k, v) in r.rejected {
            *refused.entry(k).or_insert(0) += v;
        }
    }
    let (_, bytes) = e.stats().principals[&gateway(201).principal];
    assert!(
        bytes <= (256 << 10) + 16 * 1024,
        "one principal's state stays near its budget: {bytes}"
    );
    assert!(refused.get("limit_status_samples").copied().unwrap_or(0) > 0, "{refused:?}");
    assert!(refused.get("limit_principal_bytes").copied().unwrap_or(0) > 0, "{refused:?}");
    // Another gateway is unaffected.
    ingest_all(&mut e, &gateway(200), &healthy("h", HONEST));
}

#[test]
fn made_up_model_names_cannot_multiply_an_orchestrators_series() {
    let mut e = engine();
    let named: Vec<Event> = (0..100)
        .flat_map(|n| {
            let rid = format!("m-{n}");
            let t = T0 + n as u64 * 1_000;
            [
                ("gateway_receive_stream_request", None),
                ("gateway_send_first_ingest_segment", Some(addr(HONEST))),
            ]
            .into_iter()
            .map(move |(sub, orch)| {
                let mut j = trace(sub, &rid, orch, t).to_kafka_json();
                j["data"]["pipeline"] = json!(format!("made-up-model-{n}"));
                Event::from_kafka_json(&j).unwrap()
            })
            .collect::<Vec<_>>()
        })
        .collect();
    ingest_all(&mut e, &gateway(201), &named);
    seal_through(&mut e, end());
    let bound = Limits::default().max_unregistered_models_per_orchestrator as u64;
    assert_eq!(e.stats().series_keys, bound + 1, "the bound, plus `unknown` for the rest");
    assert_eq!(counter(&e, "limit_models"), 100 - bound);
}

#[test]
fn duplicated_events_inside_a_batch_or_across_envelopes_change_nothing() {
    let events = healthy("d", HONEST);
    let mut once = engine();
    ingest_all(&mut once, &gateway(200), &events);
    let mut twice = engine();
    // The whole stream duplicated inside one batch, then sent again.
    let doubled: Vec<Event> = events.iter().flat_map(|e| [e.clone(), e.clone()]).collect();
    for chunk in doubled.chunks(40) {
        let ts = chunk.iter().filter_map(|e| e.ts).max().unwrap();
        twice.ingest(&gateway(200), ts + 1_000, chunk);
    }
    ingest_all(&mut twice, &gateway(200), &events);
    seal_through(&mut once, end());
    seal_through(&mut twice, end());
    assert_eq!(list(&once), list(&twice));
}
