//! Crash safety of `vouch node`, real processes on loopback: publishers
//! keep publishing while the verifier is killed with SIGKILL again and
//! again. After every restart the committed log's hash chain verifies,
//! every envelope the node acknowledged (counted as accepted, which happens
//! only after its commit) is in the log, no position is in it twice, and
//! ingestion resumes. Then `--rebuild-state` rebuilds the derived state from
//! the log, and a replay of a logged envelope is still refused as a
//! duplicate after the restart. Waits are bounded; nothing asserts timing.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde_json::json;
use tempfile::TempDir;
use vouch_schema::Envelope;
use vouch_testkit::authority::gateway_snapshot;
use vouch_testkit::cli::{Identity, Vouch};
use vouch_testkit::free_port;
use vouch_testkit::node::{NodeProcess, count};
use vouch_verifier::store::{LogReader, RecordKind};

const VOUCH: Vouch = Vouch::at(env!("CARGO_BIN_EXE_vouch"));

const KILLS: usize = 3;

/// Envelope records in the committed log, checking every frame's chain
/// hash on the way and that no (publisher, chain, timestamp, seq) repeats.
fn logged_envelopes(log_dir: &Path) -> Vec<Vec<u8>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for record in LogReader::open(log_dir, 0).unwrap() {
        let record = record.expect("the committed log verifies");
        if record.kind != RecordKind::Envelope {
            continue;
        }
        let env = Envelope::decode(&record.payload).unwrap();
        let id = env.id;
        let position = (id.publisher, id.msg_chain_id, id.timestamp, id.seq);
        assert!(seen.insert(position.clone()), "logged twice: {position:?}");
        out.push(record.payload);
    }
    out
}

#[test]
fn kill_9_while_publishing_loses_nothing_acknowledged_and_counts_nothing_twice() {
    let publishers: Vec<Identity> = [(0x41u8, 0x51u8), (0x42, 0x52), (0x43, 0x53)]
        .iter()
        .map(|&(p, d)| Identity::filled(VOUCH, p, d))
        .collect();
    let work = TempDir::new().unwrap();
    let principals: Vec<&str> = publishers.iter().map(|i| i.principal.as_str()).collect();
    let snapshot = gateway_snapshot(work.path(), &principals);
    let data_dir = work.path().join("data");
    let log_dir = data_dir.join("log");
    let p2p = format!("/ip4/127.0.0.1/tcp/{}", free_port());
    let http = format!("127.0.0.1:{}", free_port());
    let args = ["--p2p-listen", p2p.as_str(), "--http-listen", http.as_str()];
    let mut node = NodeProcess::spawn_with(VOUCH, &data_dir, &snapshot, &args);
    // The peer id lives in the data dir, so this address stays valid across restarts.
    let bootstrap = node.p2p();

    // Publishers: each loops `vouch publish` runs (a fresh chain each run)
    // until told to stop; runs that meet a dead node simply fail.
    let stop = Arc::new(AtomicBool::new(false));
    let runs = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = publishers
        .iter()
        .map(|id| {
            let mut publish = id.publish_command(&id.events(), &bootstrap, "3s");
            let (stop, runs) = (Arc::clone(&stop), Arc::clone(&runs));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let _ = publish.output();
                    runs.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    let mut acknowledged = 0;
    for round in 0..KILLS {
        let before = node.stats()["accepted"].as_u64().unwrap();
        node.wait_stats("acceptances in this round", |s| {
            s["accepted"].as_u64().unwrap() >= before + 2
        });
        // Everything counted as accepted was committed before it was counted.
        acknowledged += node.stats()["accepted"].as_u64().unwrap();
        assert!(!node.kill9().success(), "round {round}: SIGKILL ends the node abnormally");

        node = NodeProcess::spawn_with(VOUCH, &data_dir, &snapshot, &args);
        assert_eq!(node.p2p(), bootstrap, "same peer id and address after a restart");
        let logged = logged_envelopes(&log_dir).len() as u64;
        assert!(
            logged >= acknowledged,
            "round {round}: {acknowledged} acknowledged but only {logged} in the log"
        );
        let stats = node.wait_stats("the warm-up", |s| s["log_records"].as_u64().unwrap() > 0);
        // Every logged envelope is recent, so all are back in the duplicate guards.
        assert_eq!(stats["warm_up"]["readmitted"].as_u64().unwrap(), logged, "{stats}");
    }
    // Ingestion resumes after the last restart.
    node.wait_stats("acceptances after the last restart", |s| s["accepted"].as_u64().unwrap() >= 2);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    acknowledged += node.stats()["accepted"].as_u64().unwrap();
    assert!(node.terminate().success());
    let summary = vouch_verifier::store::verify(&log_dir).unwrap();
    let logged = logged_envelopes(&log_dir);
    assert!(logged.len() as u64 >= acknowledged, "{acknowledged} acknowledged, {}", logged.len());
    assert!(runs.load(Ordering::Relaxed) >= 3);

    // Rebuild the derived state from the log; a logged envelope replayed now
    // is refused as a duplicate, and nothing new is accepted from it.
    let replay = work.path().join("replay.cbor");
    std::fs::write(&replay, logged.last().unwrap()).unwrap();
    let mut node = NodeProcess::spawn_with(
        VOUCH,
        &data_dir,
        &snapshot,
        &[&args[..], &["--rebuild-state"]].concat(),
    );
    let stats =
        node.wait_stats("the rebuild", |s| s["log_records"].as_u64().unwrap() > summary.records);
    assert_eq!(stats["warm_up"]["records"].as_u64().unwrap(), summary.records, "{stats}");
    VOUCH.json(&[
        "publish",
        "--raw",
        replay.to_str().unwrap(),
        "--bootstrap",
        &bootstrap,
        "--timeout",
        "30s",
    ]);
    let stats = node.wait_stats("the replay refused", |s| count(s, "ignore", "duplicate") >= 1);
    assert_eq!(stats["accepted"], json!(0), "{stats}");
    assert!(node.terminate().success());
    assert_eq!(logged_envelopes(&log_dir).len(), logged.len());
}
