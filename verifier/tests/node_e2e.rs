//! `vouch node` end to end, real processes on loopback: a verifier node with
//! an authority snapshot, `vouch publish` clients (an authorized gateway, a
//! forged envelope, an unauthorized principal), counts read over HTTP, then
//! SIGTERM and a check of the log the node left. Waits are bounded; nothing
//! asserts timing.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::identity::{Identity, ok_json, vouch};
use common::node::{NodeProcess, count};
use serde_json::{Value, json};
use tempfile::TempDir;
use vouch_verifier::store::{LogReader, RecordKind};

const GATEWAY_KEY: &str = "0x4444444444444444444444444444444444444444444444444444444444444444";
const GATEWAY_DELEGATE_KEY: &str =
    "0x5555555555555555555555555555555555555555555555555555555555555555";
const STRANGER_KEY: &str = "0x6666666666666666666666666666666666666666666666666666666666666666";
const STRANGER_DELEGATE_KEY: &str =
    "0x7777777777777777777777777777777777777777777777777777777777777777";

impl Identity {
    fn publish_events(&self, bootstrap: &str) {
        ok_json(&self.publish(bootstrap, "60s"));
    }
}

#[test]
fn node_accepts_rejects_and_leaves_a_verifiable_log() {
    let gateway = Identity::new(GATEWAY_KEY, GATEWAY_DELEGATE_KEY);
    let stranger = Identity::new(STRANGER_KEY, STRANGER_DELEGATE_KEY);
    let work = TempDir::new().unwrap();
    let snapshot = work.path().join("authority.json");
    let view = json!({"principals": [{"address": gateway.principal, "roles": ["gateway"]}]});
    std::fs::write(&snapshot, view.to_string()).unwrap();
    let data_dir = work.path().join("data");
    let mut node = NodeProcess::spawn(&data_dir, &snapshot);

    let (status, body) = node.get("/healthz");
    assert_eq!(
        (status, serde_json::from_str::<Value>(&body).unwrap()),
        (200, json!({"status": "ok"}))
    );

    // An authorized gateway's events are accepted.
    gateway.publish_events(&node.p2p());
    node.wait_stats("an accepted envelope", |s| s["accepted"].as_u64().unwrap() >= 1);

    // A forged envelope (signature altered; never published intact) is rejected.
    ok_json(&vouch(&[
        "envelope",
        "sign",
        "--key",
        &gateway.p("d.key"),
        "--cert",
        &gateway.p("d.cert"),
        "--events",
        &gateway.events(),
        "--out",
        &gateway.p("good.cbor"),
    ]));
    let mut forged = std::fs::read(gateway.p("good.cbor")).unwrap();
    let n = forged.len();
    forged[n - 10] ^= 0x01; // inside the signature's s
    std::fs::write(gateway.p("forged.cbor"), &forged).unwrap();
    ok_json(&vouch(&[
        "publish",
        "--raw",
        &gateway.p("forged.cbor"),
        "--bootstrap",
        &node.p2p(),
        "--timeout",
        "60s",
    ]));
    node.wait_stats("a bad_signature rejection", |s| count(s, "reject", "bad_signature") >= 1);

    // A principal outside the authority snapshot is rejected.
    stranger.publish_events(&node.p2p());
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
    let mut node = NodeProcess::spawn(&data_dir, &snapshot);
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
