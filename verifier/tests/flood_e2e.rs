//! A flood through a running `vouch node`, real processes on loopback: one
//! gateway principal publishes at far beyond 50× its rate limit while 20
//! honest gateways publish as usual. Every honest publisher gets through,
//! the flood is refused as `rate_limited`, and the node's memory stays
//! bounded. Waits are bounded; nothing asserts timing.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeSet;

use tempfile::TempDir;
use vouch_delegation::SignedDelegation;
use vouch_schema::{Envelope, TelemetryBatch};
use vouch_testkit::authority::gateway_snapshot;
use vouch_testkit::cli::{Identity, Vouch, ok_json};
use vouch_testkit::node::{NodeProcess, count};
use vouch_verifier::store::{LogReader, RecordKind};

const VOUCH: Vouch = Vouch::at(env!("CARGO_BIN_EXE_vouch"));

const HONEST: u8 = 20;
/// The gateway rate limit in force for this test (envelopes per second):
/// low, so that the flood (sent as fast as the SDK goes, hundreds per
/// second here) is far beyond 50× of it; the achieved ratio is printed.
const RATE: u32 = 2;
/// Envelopes the flooder sends, as fast as it can (one event each).
const FLOOD: usize = 600;
/// The node's resident memory must stay below this.
const MAX_RSS_KIB: u64 = 256 * 1024;

#[test]
fn a_50x_flood_leaves_every_honest_publisher_through_and_memory_bounded() {
    let flooder = Identity::filled(VOUCH, 0xf1, 0xf2);
    let honest: Vec<Identity> =
        (0..HONEST).map(|i| Identity::filled(VOUCH, 0x10 + i, 0x40 + i)).collect();
    let work = TempDir::new().unwrap();
    let principals: Vec<&str> =
        std::iter::once(&flooder).chain(&honest).map(|i| i.principal.as_str()).collect();
    let snapshot = gateway_snapshot(work.path(), &principals);
    let config =
        format!("[validation.rate_limits.gateway]\nrate_per_sec = {RATE}\nburst = {RATE}\n");
    let data_dir = work.path().join("data");
    let mut node = NodeProcess::spawn_configured(VOUCH, &data_dir, &snapshot, &config);
    let bootstrap = node.p2p();

    // The flooder: one event per envelope, no linger.
    let fixtures: Vec<String> =
        std::fs::read_to_string(flooder.events()).unwrap().lines().map(str::to_owned).collect();
    let flood: String = (0..FLOOD).map(|i| format!("{}\n", fixtures[i % fixtures.len()])).collect();
    std::fs::write(flooder.dir.path().join("flood.ndjson"), flood).unwrap();
    let flood_thread = {
        let mut publish =
            flooder.publish_each_command(&flooder.p("flood.ndjson"), &bootstrap, "60s");
        std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let out = publish.output().unwrap();
            let secs = started.elapsed().as_secs_f64();
            println!(
                "flood: {FLOOD} envelopes in {secs:.2} s, {:.0}× the rate limit",
                FLOOD as f64 / secs / f64::from(RATE)
            );
            out
        })
    };
    let honest_threads: Vec<_> = honest
        .iter()
        .map(|id| {
            let mut publish = id.publish_command(&id.events(), &bootstrap, "60s");
            std::thread::spawn(move || ok_json(&publish.output().unwrap()))
        })
        .collect();
    // What each honest publisher said of its own sending (its transport's
    // counters), for a failure message.
    let honest_said: Vec<serde_json::Value> =
        honest_threads.into_iter().map(|t| t.join().unwrap()).collect();
    let flood_out = flood_thread.join().unwrap();
    assert!(flood_out.status.code().is_some(), "the flooding publisher ran to its end");
    node.wait_stats("the flood refused", |s| count(s, "ignore", "rate_limited") >= 100);
    let rss = node.rss_kib();
    assert!(rss < MAX_RSS_KIB, "node resident memory {rss} KiB");
    // The node turns transparent huge pages off for itself (kernels since
    // 5.0 report it here; older ones omit the field).
    if let Some(thp) = node.status_field("THP_enabled") {
        assert_eq!(thp, "0", "a node keeps transparent huge pages off");
    }
    // Let the honest envelopes that were still in flight land, then stop.
    // The log is what counts: the accepted counter includes the flooder's
    // bucket, so it can reach HONEST while an honest envelope is in flight.
    let logged = || principals_logged(&data_dir.join("log"), &flooder.principal);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !honest.iter().all(|id| logged().0.contains(&id.principal))
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // What the node says at the end, for a failure message: the snapshot
    // above was taken while envelopes were still arriving.
    let stats = node.stats();
    assert!(node.terminate().success());

    // Who got into the log: every honest principal, and the flooder only
    // within its bucket (burst plus rate × the seconds it flooded).
    let (principals_logged, flooder_envelopes) = logged();
    for (id, said) in honest.iter().zip(&honest_said) {
        assert!(
            principals_logged.contains(&id.principal),
            "honest {} refused: the node's counts {stats}; the publisher's own {said}",
            id.principal
        );
    }
    assert!(flooder_envelopes < FLOOD / 2, "{flooder_envelopes} of the flood accepted: {stats}");
}

/// The principals with an envelope in the committed log at `dir`, and how
/// many envelopes `flooder` has there.
fn principals_logged(dir: &std::path::Path, flooder: &str) -> (BTreeSet<String>, usize) {
    let mut principals = BTreeSet::new();
    let mut flooder_envelopes = 0;
    for record in LogReader::open(dir, 0).unwrap() {
        let record = record.unwrap();
        if record.kind != RecordKind::Envelope {
            continue;
        }
        let env = Envelope::decode(&record.payload).unwrap();
        let batch = TelemetryBatch::decode(&env.content).unwrap();
        let principal = SignedDelegation::decode(&batch.certificate).unwrap().principal.to_hex();
        if principal == flooder {
            flooder_envelopes += 1;
        }
        principals.insert(principal);
    }
    (principals, flooder_envelopes)
}
