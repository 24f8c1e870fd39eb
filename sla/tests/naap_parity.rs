//! Parity with Cloud SPE's NaaP analytics (`naap-quality-benchmark-v1`).
//!
//! Each test transcribes one scenario of NaaP's validation suite
//! (Cloud-SPE/livepeer-naap-analytics, `api/internal/validation/*_test.go`):
//! the events it inserts, as the go-livepeer events a gateway signs, and
//! the numbers it asserts, which the NaaP-compatible policy must reproduce.
//! Where Vouch deliberately measures differently, the test says so and
//! asserts Vouch's number (the README's SLA section lists every difference).
#![allow(clippy::unwrap_used)]

use serde_json::{Value as Json, json};
use vouch_schema::{Address, Event};
use vouch_sla::{Engine, Limits, Policy, Query, Window};
use vouch_testkit::livepeer;
use vouch_testkit::sla::{self, T0, addr, error, ingest_all, seal_through, status, trace};

fn naap() -> Policy {
    Policy::builtin("naap-quality-benchmark-v1").unwrap()
}

/// NaaP's anchor: a whole hour (the tests run 20-30 minutes into it).
const HOUR: u64 = 3_600_000;

fn engine(orchestrators: impl IntoIterator<Item = Address>) -> Engine {
    sla::engine_with(naap(), Limits::default(), orchestrators)
}

/// The entry of `orch` in the answer for `window` after sealing through `end`.
fn entry(engine: &mut Engine, end: u64, window: Window, orch: Address) -> Json {
    seal_through(engine, end);
    let q = Query { window, ..Query::default() };
    let list = serde_json::to_value(engine.orchestrators(&q)).unwrap();
    assert_eq!(list["policy"]["name"], json!("naap-quality-benchmark-v1"));
    list["orchestrators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["address"] == json!(orch.to_hex()))
        .cloned()
        .unwrap_or_else(|| panic!("{orch} scored in {list}"))
}

/// A status sample carrying a `last_error` (NaaP's error samples).
fn status_with_error(rid: &str, orch: Address, ts: u64, fps: f64, last_error: &str) -> Event {
    let mut data = livepeer::status_data("FRA", rid, &orch.to_hex(), ts, fps, "ONLINE");
    data["inference_status"]["last_error"] = json!(last_error);
    livepeer::event("ai_stream_status", ts, data)
}

/// `TestRuleAggregate002And005_DemandAndSLAUseContractedFailureSemantics`:
/// one session reaches playable output at 12 fps, the other reports 0 fps
/// with an error. NaaP: coverage 0.833333 (3/3 and 2/3 signals), startup
/// success 0.5, output viability 0.5, no benchmark (quality 0.5), so
/// `sla_score` = 100 × 5/6 × (0.7 × 0.6 + 0.3 × 0.5) = 47.5.
#[test]
fn contracted_failure_semantics_score_47_5() {
    let orch = addr(1);
    let ts = T0 + 20 * 60_000;
    let mut e = engine([orch]);
    let events = [
        trace("gateway_receive_stream_request", "success", Some(orch), ts),
        trace("gateway_receive_few_processed_segments", "success", Some(orch), ts + 2_000),
        status("success", orch, ts + 4_000, 12.0, "ONLINE"),
        trace("gateway_receive_stream_request", "zero", Some(orch), ts + 10_000),
        status_with_error("zero", orch, ts + 12_000, 0.0, "boom"),
    ];
    ingest_all(&mut e, &sla::gateway(), &events);
    let o = entry(&mut e, T0 + HOUR, Window::H1, orch);
    let m = &o;
    assert_eq!(m["sessions"], json!(2), "requested sessions");
    assert_eq!(m["startup_success_rate"], json!(0.5));
    assert_eq!(m["components"]["coverage"], json!(0.8333));
    assert_eq!(m["components"]["reliability"], json!(0.6));
    assert_eq!(m["components"]["quality"], json!(0.5));
    assert_eq!(m["sla_score"], json!(47.5));
}

/// `TestRuleAggregate005_OutputFailedSessionsUsesUnionSemantics`: a session
/// that only ever reports LOADING at 0 fps is both loading-only and
/// zero-output, counted once: viability 0. NaaP asserts the counts and a
/// bounded score; the score follows from its formula: coverage 1/3,
/// reliability 0.4 × 0 + 0.2 × 1 + 0.4 × 0 = 0.2, quality 0.5, so
/// 100 × 1/3 × (0.14 + 0.15) = 9.67.
#[test]
fn loading_only_and_zero_output_count_once() {
    let orch = addr(2);
    let ts = T0 + 22 * 60_000;
    let mut e = engine([orch]);
    let events = [
        trace("gateway_receive_stream_request", "overlap", Some(orch), ts),
        status("overlap", orch, ts + 2_000, 0.0, "LOADING"),
    ];
    ingest_all(&mut e, &sla::gateway(), &events);
    let m = entry(&mut e, T0 + HOUR, Window::H1, orch).clone();
    assert_eq!(m["components"]["reliability"], json!(0.2));
    assert_eq!(m["components"]["coverage"], json!(0.3333));
    assert_eq!(m["sla_score"], json!(9.67));
}

/// `TestRuleLifecycle004_*`: a failed session whose only error is
/// "WHIP Disconnected by client" is excused (case-insensitive), one with
/// "GPU kernel panic" is not. NaaP keeps excused sessions in the
/// denominator and scores reliability with the startup success rate, so
/// the excused session still lowers it: both orchestrators get the same
/// startup success rate (0) and the same score; only the excused count
/// differs.
#[test]
fn excused_sessions_stay_in_the_denominator() {
    let (excused, unexcused) = (addr(3), addr(4));
    let ts = T0 + 10 * 60_000;
    let mut e = engine([excused, unexcused]);
    let mut events = Vec::new();
    for (orch, rid, message) in
        [(excused, "whip", "WHIP Disconnected by client"), (unexcused, "gpu", "GPU kernel panic")]
    {
        events.push(trace("gateway_receive_stream_request", rid, Some(orch), ts));
        events.push(status(rid, orch, ts + 500, 0.0, "LOADING"));
        events.push(error(rid, ts + 1_000, message));
    }
    ingest_all(&mut e, &sla::gateway(), &events);
    let a = entry(&mut e, T0 + HOUR, Window::H1, excused).clone();
    let b = entry(&mut e, T0 + HOUR, Window::H1, unexcused).clone();
    assert_eq!(a["excused_failures"], json!(1));
    assert_eq!(b["excused_failures"], json!(0));
    assert_eq!(a["startup_success_rate"], json!(0.0));
    assert_eq!(a["sla_score"], b["sla_score"]);
    assert!(a["sla_score"].as_f64().unwrap() > 0.0);
}

/// `TestRuleServing002_SessionEdgeLatencyFlowsToServingOutputs`: traces at
/// request +0, first ingest +2 s, first processed +4 s, runner's first
/// processed +5 s, playable +7 s; a status sample whose `start_time` is
/// request + 1 s. NaaP: startup 4000 ms, E2E 3000 ms, PTFF 6000 ms.
///
/// Deliberate difference: NaaP's test sends `start_time` as an RFC 3339
/// string, which is the only form NaaP reads (`JSONExtractString`);
/// go-livepeer sends milliseconds since the epoch, a number, which is what
/// Vouch reads. So here `start_time` is the number, and Vouch's PTFF works
/// on real go-livepeer traffic, where NaaP's is always missing.
#[test]
fn session_edge_latencies() {
    let orch = addr(5);
    let ts = T0 + 15 * 60_000;
    let mut e = engine([orch]);
    let rid = "latency";
    let mut events = vec![
        trace("gateway_receive_stream_request", rid, Some(orch), ts),
        trace("gateway_send_first_ingest_segment", rid, Some(orch), ts + 2_000),
        trace("gateway_receive_first_processed_segment", rid, Some(orch), ts + 4_000),
        trace("runner_send_first_processed_segment", rid, Some(orch), ts + 5_000),
        trace("gateway_receive_few_processed_segments", rid, Some(orch), ts + 7_000),
    ];
    let mut data = livepeer::status_data("FRA", rid, &orch.to_hex(), ts + 20_000, 15.0, "ONLINE");
    data["start_time"] = json!(ts + 1_000);
    events.push(livepeer::event("ai_stream_status", ts + 20_000, data));
    ingest_all(&mut e, &sla::gateway(), &events);
    let m = entry(&mut e, T0 + HOUR, Window::H1, orch).clone();
    assert_eq!(m["startup_ms"]["p50"], json!(4_000));
    assert_eq!(m["e2e_ms"]["p50"], json!(3_000));
    assert_eq!(m["ptff_ms"]["p50"], json!(6_000));
}

/// One benchmark row: a session of `orch` in the hour starting `hour`,
/// with PTFF `ptff` ms, E2E `e2e` ms and one status sample at `fps`.
fn row(rid: &str, orch: Address, hour: u64, (ptff, e2e, fps): (u64, u64, f64)) -> Vec<Event> {
    let t = hour + 60_000;
    let mut data = livepeer::status_data("FRA", rid, &orch.to_hex(), t + 30_000, fps, "ONLINE");
    data["start_time"] = json!(t);
    vec![
        trace("gateway_receive_stream_request", rid, Some(orch), t),
        trace("gateway_send_first_ingest_segment", rid, Some(orch), t + 100),
        trace("runner_send_first_processed_segment", rid, Some(orch), t + 100 + e2e),
        trace("gateway_receive_few_processed_segments", rid, Some(orch), t + ptff),
        livepeer::event("ai_stream_status", t + 30_000, data),
    ]
}

/// `TestRuleAggregate005_SparseQualityEvidenceShrinksTowardNeutral` and
/// `..._BenchmarkHistoryDefaultsToNeutralWhenSparse`: 56 benchmark rows on
/// the 7 prior full UTC days (8 hours a day, PTFF and E2E about 1000 ms,
/// fps about 10). An orchestrator with one sample better than the cohort
/// on every metric: raw 1, shrunk to 0.55 for PTFF and E2E (n = 1 of 10)
/// and 0.516667 for fps (n = 1 of 30), so quality = 0.6 × 0.55 + 0.4 ×
/// 0.516667 = 0.536667. A model without history stays at quality 0.5.
#[test]
fn sparse_evidence_shrinks_toward_neutral_against_prior_days() {
    let today = T0 / (24 * HOUR) * (24 * HOUR) + 7 * 24 * HOUR;
    let hist: Vec<Address> = (10..66).map(addr).collect();
    let (sparse, stranger) = (addr(90), addr(91));
    let mut e = engine(hist.iter().copied().chain([sparse, stranger]));
    let mut events = Vec::new();
    for (idx, orch) in hist.iter().enumerate() {
        let (day, hour) = (7 - idx as u64 / 8, idx as u64 % 8);
        let start = today - day * 24 * HOUR + hour * HOUR;
        let i = idx as u64;
        events.extend(row(&format!("h{idx}"), *orch, start, (1_000 + i, 1_000 + i, 10.0)));
    }
    let scored_hour = today + 12 * HOUR;
    events.extend(row("sparse", sparse, scored_hour, (100, 100, 100.0)));
    let mut stranger_row = row("stranger", stranger, scored_hour, (100, 100, 100.0));
    for ev in &mut stranger_row {
        ev.model_id = Some("model-no-history".to_owned());
    }
    events.extend(stranger_row);
    events.sort_by_key(|ev| ev.ts);
    ingest_all(&mut e, &sla::gateway(), &events);
    let end = scored_hour + HOUR;
    let m = entry(&mut e, end, Window::H1, sparse).clone();
    assert_eq!(m["components"]["quality"], json!(0.5367));
    assert_eq!(m["components"]["reliability"], json!(1.0));
    let m = entry(&mut e, end, Window::H1, stranger).clone();
    assert_eq!(m["components"]["quality"], json!(0.5));
}

/// NaaP's public rollup of several hours is the mean of the hourly scores
/// weighted by requested sessions (its dashboard), not a score of the
/// merged hours: an hour with one perfect session scores 85 (quality 0.5
/// without a benchmark), an hour with three sessions stuck LOADING scores
/// 100 × 1/3 × (0.7 × 0.2 + 0.15) = 9.67, so the day scores
/// (85 + 3 × 9.67) / 4 = 28.5 (merged, it would be 21.5).
#[test]
fn hours_combine_by_requested_sessions() {
    let orch = addr(6);
    let mut e = engine([orch]);
    let mut events = Vec::new();
    let h1 = T0 + 2 * HOUR;
    events.push(trace("gateway_receive_stream_request", "good", Some(orch), h1 + 60_000));
    events.push(trace("gateway_receive_few_processed_segments", "good", Some(orch), h1 + 62_000));
    events.push(status("good", orch, h1 + 64_000, 20.0, "ONLINE"));
    let h2 = T0 + 3 * HOUR;
    for i in 0..3u64 {
        let rid = format!("stuck{i}");
        let t = h2 + 60_000 + i * 1_000;
        events.push(trace("gateway_receive_stream_request", &rid, Some(orch), t));
        events.push(status(&rid, orch, t + 700, 0.0, "LOADING"));
    }
    ingest_all(&mut e, &sla::gateway(), &events);
    let m = entry(&mut e, T0 + 4 * HOUR, Window::H24, orch).clone();
    assert_eq!(m["sessions"], json!(4));
    assert_eq!(m["sla_score"], json!(28.5));
}

/// NaaP counts a session in every clock hour in which it has status samples
/// (its SLA rows come from status hours; `insertSLAComplianceRollups`). A
/// three-hour session, its status every 10 s and the minutes sealed as a
/// node seals them, is three requested session-hours, and every one of its
/// 1,073 samples is taken: the session keeps a bounded window of samples
/// plus what the pruned ones said, not its whole history.
#[test]
fn a_long_session_counts_in_every_status_hour() {
    let orch = addr(7);
    let mut e = engine([orch]);
    let gateway = sla::gateway();
    let start = T0 + 60_000;
    ingest_all(
        &mut e,
        &gateway,
        &[
            trace("gateway_receive_stream_request", "long", Some(orch), start),
            trace("gateway_receive_few_processed_segments", "long", Some(orch), start + 1_000),
        ],
    );
    // From 1:02 into the first hour to 59:52 into the third.
    let samples = 3 * 360 - 7;
    for i in 0..samples {
        let ts = start + 2_000 + i * 10_000;
        ingest_all(&mut e, &gateway, &[status("long", orch, ts, 20.0, "ONLINE")]);
        if i % 6 == 0 {
            e.seal(ts);
        }
    }
    let m = entry(&mut e, T0 + 4 * HOUR, Window::H24, orch);
    assert_eq!(m["attempts"], json!(3), "one unit per status hour: {m}");
    assert_eq!(m["sessions"], json!(3), "requested in each: {m}");
    assert_eq!(m["fps"]["samples"], json!(samples));
    assert_eq!(m["startup_success_rate"], json!(1.0));
    assert_eq!(m["components"]["coverage"], json!(1.0));
}
