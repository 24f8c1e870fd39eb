//! `vouch node` end to end, real processes on loopback: a verifier node with
//! an authority snapshot, `vouch publish` clients (an authorized gateway, a
//! forged envelope, an unauthorized principal), counts read over HTTP, then
//! SIGTERM and a check of the log the node left. Waits are bounded; nothing
//! asserts timing.
#![allow(clippy::unwrap_used, missing_docs)]

use serde_json::{Value, json};
use tempfile::TempDir;
use vouch_testkit::authority::gateway_snapshot;
use vouch_testkit::cli::{Identity, Vouch, ok_json};
use vouch_testkit::node::{NodeProcess, count};
use vouch_verifier::store::{LogReader, RecordKind};

const VOUCH: Vouch = Vouch::at(env!("CARGO_BIN_EXE_vouch"));

#[test]
fn node_accepts_rejects_and_leaves_a_verifiable_log() {
    let gateway = Identity::filled(VOUCH, 0x44, 0x55);
    let stranger = Identity::filled(VOUCH, 0x66, 0x77);
    let work = TempDir::new().unwrap();
    let snapshot = gateway_snapshot(work.path(), &[&gateway.principal]);
    let data_dir = work.path().join("data");
    let mut node = NodeProcess::spawn(VOUCH, &data_dir, &snapshot);

    let (status, body) = node.get("/healthz");
    assert_eq!(
        (status, serde_json::from_str::<Value>(&body).unwrap()),
        (200, json!({"status": "ok"}))
    );

    // An authorized gateway's events are accepted.
    ok_json(&gateway.publish(&node.p2p(), "60s"));
    node.wait_stats("an accepted envelope", |s| s["accepted"].as_u64().unwrap() >= 1);

    // A forged envelope (signature altered; never published intact) is rejected.
    let mut forged = gateway.sign("good.cbor");
    let n = forged.len();
    forged[n - 10] ^= 0x01; // inside the signature's s
    std::fs::write(gateway.p("forged.cbor"), &forged).unwrap();
    VOUCH.json(&[
        "publish",
        "--raw",
        &gateway.p("forged.cbor"),
        "--bootstrap",
        &node.p2p(),
        "--timeout",
        "60s",
    ]);
    node.wait_stats("a bad_signature rejection", |s| count(s, "reject", "bad_signature") >= 1);

    // A principal outside the authority snapshot is rejected.
    ok_json(&stranger.publish(&node.p2p(), "60s"));
    let stats =
        node.wait_stats("an unauthorized rejection", |s| count(s, "reject", "unauthorized") >= 1);
    assert!(stats["rejected"].as_u64().unwrap() >= 2, "{stats}");

    let (status, metrics) = node.get("/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("vouch_ingest_total{outcome=\"reject\",reason=\"bad_signature\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("vouch_log_records "), "{metrics}");

    let accepted = node.stats()["accepted"].as_u64().unwrap();
    let status = node.terminate();
    assert!(status.success(), "node exited with {status}");

    // The log verifies and holds exactly the accepted envelopes (plus the authority view).
    let log_dir = data_dir.join("log");
    let summary = vouch_verifier::store::verify(&log_dir).unwrap();
    let records: Vec<_> = LogReader::open(&log_dir, 0).unwrap().map(Result::unwrap).collect();
    assert_eq!(summary.records, records.len() as u64);
    let envelopes = records.iter().filter(|r| r.kind == RecordKind::Envelope).count() as u64;
    assert_eq!(envelopes, accepted);
    let views: Vec<_> = records.iter().filter(|r| r.kind == RecordKind::AuthorityView).collect();
    assert_eq!(views.len(), 1);
    let recorded: Value = serde_json::from_slice(&views[0].payload).unwrap();
    assert_eq!(recorded["principals"][0]["address"], json!(gateway.principal));

    // A restart on the same directory reopens the log, keeps what it held,
    // and records the view and the SLA policy in force again (and any seal).
    let mut node = NodeProcess::spawn(VOUCH, &data_dir, &snapshot);
    node.wait_stats("the reopened log", |s| {
        s["log_records"].as_u64().unwrap() >= summary.records + 2
    });
    assert!(node.terminate().success());
    let after: Vec<_> = LogReader::open(&log_dir, 0).unwrap().map(Result::unwrap).collect();
    assert_eq!(&after[..records.len()], &records[..], "what the log held is unchanged");
    let kinds: Vec<_> = after[records.len()..].iter().map(|r| r.kind).collect();
    assert_eq!(kinds[..2], [RecordKind::AuthorityView, RecordKind::Scores], "{kinds:?}");
    assert!(kinds[2..].iter().all(|k| *k == RecordKind::Scores), "only seals after: {kinds:?}");
    assert_eq!(vouch_verifier::store::verify(&log_dir).unwrap().records, after.len() as u64);
}
