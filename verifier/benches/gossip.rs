//! Publish → durably accepted latency over gossip: 3 real `vouch node`
//! processes bootstrapped to each other on loopback, and 20 in-process SDK
//! publishers (gossip transport, one event per envelope, no linger) publishing
//! at a steady rate.
//!
//! `cargo bench -p vouch-verifier --bench gossip`
//!
//! Latency of one envelope at one verifier = the moment its record is visible
//! in that node's committed log (a [`LogReader`] on `<data dir>/log`, reopened
//! at `next_index()` every ~1 ms) minus the envelope's own timestamp (ms, set
//! by the SDK when it seals and signs the batch). So it covers signing,
//! gossip, the validation pipeline, the group commit and its fsync, plus up
//! to ~1 ms of polling and 1 ms of timestamp resolution. Envelopes signed
//! during the first seconds (warm-up: meshes forming) are not counted.
//!
//! Not criterion: one timed run of real processes. Without `--bench` (test
//! runners) it runs a few publishers for a few seconds as a smoke test.
//! `VOUCH_GOSSIP_BENCH_SECS` and `VOUCH_GOSSIP_BENCH_RATE` (envelopes/s per
//! publisher) override the full size. Prints one human line per verifier and
//! one `vouch-bench-json:` line for `scripts/bench.sh`.

#![allow(missing_docs, clippy::unwrap_used)]

#[path = "support/cluster.rs"]
mod cluster;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cluster::{
    LogFollower, Node, NodeOptions, bench_mode, gateway, latency_stats, now_ms,
    one_event_publishers, wait_for_logs, write_authority,
};
use serde_json::{Value, json};
use vouch_delegation::Role;
use vouch_schema::{Address, Event};
use vouch_sdk::Signer;

const VERIFIERS: usize = 3;
const WARM_UP: Duration = Duration::from_secs(3);

/// What one poller saw: every envelope's (timestamp, latency ms).
struct Seen {
    envelopes: u64,
    samples: Vec<(u64, u64)>,
}

/// Follows the log in `data_dir` until `stop`, stamping each committed
/// envelope when it appears (polled every ~1 ms).
fn poll(data_dir: PathBuf, stop: Arc<AtomicBool>) -> Seen {
    let mut follower = LogFollower::new(&data_dir);
    let mut seen = Seen { envelopes: 0, samples: Vec::new() };
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        follower.poll(|env, _, visible| {
            seen.envelopes += 1;
            seen.samples.push((env.id.timestamp, visible.saturating_sub(env.id.timestamp)));
        });
        if stopping {
            return seen;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn main() {
    let Some(quick) = bench_mode("gossip_smoke") else { return };
    let env_num = |name: &str, default: f64| {
        std::env::var(name).ok().and_then(|v| v.parse::<f64>().ok()).unwrap_or(default)
    };
    let publishers: u32 = if quick { 4 } else { 20 };
    let secs = if quick { 2.0 } else { env_num("VOUCH_GOSSIP_BENCH_SECS", 20.0) };
    let rate = if quick { 5.0 } else { env_num("VOUCH_GOSSIP_BENCH_RATE", 5.0) };

    let work = tempfile::TempDir::new().unwrap();
    let gateways: Vec<(Address, Signer)> = (0..publishers).map(|n| gateway(n, "FRA")).collect();
    let snapshot = work.path().join("authority.json");
    let principals: Vec<(Address, Role)> =
        gateways.iter().map(|(p, _)| (*p, Role::Gateway)).collect();
    write_authority(&snapshot, &principals);

    // Each node bootstraps to every node started before it.
    let nodes = Node::spawn_mesh(work.path(), VERIFIERS, &snapshot, &NodeOptions::default());
    let bootstrap: Vec<String> = nodes.iter().map(Node::p2p).collect();

    let stop = Arc::new(AtomicBool::new(false));
    let pollers: Vec<_> = nodes
        .iter()
        .map(|node| {
            let data_dir = node.data_dir.clone();
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || poll(data_dir, stop))
        })
        .collect();

    let sdk = one_event_publishers(gateways.into_iter().map(|(_, s)| s), &bootstrap);

    let fixtures: Vec<Value> = serde_json::from_str(include_str!(
        "../../schemas/tests/data/go-livepeer-kafka-samples.json"
    ))
    .unwrap();
    // Steady, evenly spread: one publish every 1 / (publishers × rate) s, round robin.
    let interval = Duration::from_secs_f64(1.0 / (f64::from(publishers) * rate));
    let started = Instant::now();
    let measure_from = now_ms() + WARM_UP.as_millis() as u64;
    let total = WARM_UP + Duration::from_secs_f64(secs);
    let (mut published, mut refused) = (0u64, 0u64);
    let mut i = 0usize;
    while started.elapsed() < total {
        let due = started + interval * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let mut event = Event::from_kafka_json(&fixtures[i % fixtures.len()]).unwrap();
        event.ts = Some(now_ms());
        match sdk[i % sdk.len()].publish(event) {
            Ok(()) => published += 1,
            Err(_) => refused += 1,
        }
        i += 1;
    }
    for p in &sdk {
        let _ = p.flush(Duration::from_secs(10));
    }
    // Let the last envelopes reach every log (bounded wait), then stop the pollers.
    wait_for_logs(&nodes, published, Duration::from_secs(10));
    stop.store(true, Ordering::Relaxed);
    let seen: Vec<Seen> = pollers.into_iter().map(|h| h.join().unwrap()).collect();
    let rss: Vec<f64> = nodes.iter().map(Node::rss_mib).collect();
    for p in sdk {
        let _ = p.close(Duration::from_secs(5));
    }
    drop(nodes);

    println!(
        "gossip: {VERIFIERS} verifiers, {publishers} SDK publishers (1 event per envelope, \
         linger 0) at {rate} envelopes/s each for {secs} s after {} s warm-up; {published} \
         published, {refused} refused by the SDK queue",
        WARM_UP.as_secs()
    );
    let mut all = Vec::new();
    let mut per_verifier = Vec::new();
    for (n, s) in seen.iter().enumerate() {
        let lat: Vec<u64> =
            s.samples.iter().filter(|(ts, _)| *ts >= measure_from).map(|(_, l)| *l).collect();
        all.extend_from_slice(&lat);
        let st = latency_stats(lat);
        println!(
            "verifier {n}: {} envelopes in its log ({} measured) | publish → durably accepted \
             p50 {} ms, p90 {} ms, p99 {} ms, max {} ms | RSS {:.1} MiB",
            s.envelopes,
            st["count"],
            st["p50_ms"],
            st["p90_ms"],
            st["p99_ms"],
            st["max_ms"],
            rss[n]
        );
        per_verifier.push(json!({
            "verifier": n,
            "envelopes_in_log": s.envelopes,
            "rss_mib": (rss[n] * 10.0).round() / 10.0,
            "latency": st,
        }));
    }
    let overall = latency_stats(all);
    println!(
        "overall: {} measured | p50 {} ms, p90 {} ms, p99 {} ms, max {} ms",
        overall["count"],
        overall["p50_ms"],
        overall["p90_ms"],
        overall["p99_ms"],
        overall["max_ms"]
    );
    let out = json!({
        "bench": "gossip",
        "quick": quick,
        "verifiers": VERIFIERS,
        "publishers": publishers,
        "rate_per_publisher": rate,
        "seconds": secs,
        "warm_up_seconds": WARM_UP.as_secs(),
        "published": published,
        "refused": refused,
        "per_verifier": per_verifier,
        "overall": overall,
    });
    println!("vouch-bench-json: {out}");
}
