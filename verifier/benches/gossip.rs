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

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vouch_delegation::{Eip712Network, Role};
use vouch_schema::{Address, Envelope, Event};
use vouch_sdk::config::TransportConfig;
use vouch_sdk::{Publisher, PublisherSettings, Signer};
use vouch_testkit::actor::Actor;
use vouch_testkit::authority::gateway_snapshot;
use vouch_testkit::cli::Vouch;
use vouch_testkit::node::NodeProcess;
use vouch_testkit::{fixtures, keys, now_ms, now_secs};
use vouch_verifier::store::{LogReader, RecordKind};

const VOUCH: Vouch = Vouch::at(env!("CARGO_BIN_EXE_vouch"));

const VERIFIERS: usize = 3;
const WARM_UP: Duration = Duration::from_secs(3);

/// A gateway principal and a signer for its delegate (certificate valid now).
fn gateway(n: u32) -> (Address, Signer) {
    let now = now_secs();
    let valid = now - 600..now + 86_400;
    let net = Eip712Network::arbitrum_one();
    let actor = Actor::issue(
        keys::numbered(7000 + n),
        keys::numbered(9000 + n),
        Role::Gateway,
        "FRA",
        valid,
        net,
    );
    (actor.principal_address(), actor.signer())
}

/// A `vouch node` (stderr to `node<n>.stderr` in `dir`) bootstrapped to
/// `bootstrap`; its data directory.
fn node(dir: &Path, n: usize, snapshot: &Path, bootstrap: &[String]) -> (NodeProcess, PathBuf) {
    let data_dir = dir.join(format!("node{n}"));
    let stderr = std::fs::File::create(dir.join(format!("node{n}.stderr"))).unwrap();
    let mut cmd = VOUCH.command(&["node"]);
    cmd.arg("--data-dir")
        .arg(&data_dir)
        .arg("--authority-snapshot")
        .arg(snapshot)
        .args(["--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--http-listen", "127.0.0.1:0"])
        .stderr(stderr);
    for b in bootstrap {
        cmd.args(["--bootstrap", b]);
    }
    (NodeProcess::spawn_command(cmd), data_dir)
}

/// What one poller saw: every envelope's (timestamp, latency ms).
struct Seen {
    envelopes: u64,
    samples: Vec<(u64, u64)>,
}

/// Follows `log` until `stop`, stamping each committed envelope when it appears.
fn poll(log: PathBuf, stop: Arc<AtomicBool>) -> Seen {
    let mut next = 0;
    let mut seen = Seen { envelopes: 0, samples: Vec::new() };
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        if log.exists()
            && let Ok(mut reader) = LogReader::open(&log, next)
        {
            for record in reader.by_ref() {
                let Ok(record) = record else { break };
                let visible = now_ms();
                if record.kind != RecordKind::Envelope {
                    continue;
                }
                if let Ok(env) = Envelope::decode(&record.payload) {
                    seen.envelopes += 1;
                    seen.samples.push((env.id.timestamp, visible.saturating_sub(env.id.timestamp)));
                }
            }
            next = reader.next_index();
        }
        if stopping {
            return seen;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize] as f64
}

fn stats(mut lat: Vec<u64>) -> Value {
    lat.sort_unstable();
    json!({
        "count": lat.len(),
        "p50_ms": percentile(&lat, 0.50),
        "p90_ms": percentile(&lat, 0.90),
        "p99_ms": percentile(&lat, 0.99),
        "max_ms": lat.last().copied().unwrap_or(0),
    })
}

fn main() {
    // Under a test runner, one quick smoke test (see `full_size`).
    let Some(full) = vouch_testkit::bench::full_size("gossip") else { return };
    let quick = !full;
    let env_num = |name: &str, default: f64| {
        std::env::var(name).ok().and_then(|v| v.parse::<f64>().ok()).unwrap_or(default)
    };
    let publishers: u32 = if quick { 4 } else { 20 };
    let secs = if quick { 2.0 } else { env_num("VOUCH_GOSSIP_BENCH_SECS", 20.0) };
    let rate = if quick { 5.0 } else { env_num("VOUCH_GOSSIP_BENCH_RATE", 5.0) };

    let work = tempfile::TempDir::new().unwrap();
    let gateways: Vec<(Address, Signer)> = (0..publishers).map(gateway).collect();
    let principals: Vec<String> = gateways.iter().map(|(p, _)| p.to_hex()).collect();
    let principals: Vec<&str> = principals.iter().map(String::as_str).collect();
    let snapshot = gateway_snapshot(work.path(), &principals);

    // Each node bootstraps to every node started before it.
    let mut nodes: Vec<(NodeProcess, PathBuf)> = Vec::new();
    for n in 0..VERIFIERS {
        let earlier: Vec<String> = nodes.iter().map(|(node, _)| node.p2p()).collect();
        nodes.push(node(work.path(), n, &snapshot, &earlier));
    }
    let bootstrap: Vec<String> = nodes.iter().map(|(node, _)| node.p2p()).collect();

    let stop = Arc::new(AtomicBool::new(false));
    let pollers: Vec<_> = nodes
        .iter()
        .map(|(_, data_dir)| {
            let log = data_dir.join("log");
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || poll(log, stop))
        })
        .collect();

    let settings =
        PublisherSettings { max_events: 1, linger: Duration::ZERO, ..PublisherSettings::default() };
    let sdk: Vec<Publisher> = gateways
        .into_iter()
        .map(|(_, signer)| {
            let transport = vouch_sdk::publisher::build_transport(&TransportConfig {
                bootstrap: bootstrap.clone(),
                ..TransportConfig::default()
            })
            .unwrap();
            Publisher::with_transport(signer, settings.clone(), transport).unwrap()
        })
        .collect();

    let fixtures = fixtures::kafka_samples();
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
    let drained = Instant::now();
    let target_logs: Vec<PathBuf> = nodes.iter().map(|(_, d)| d.join("log")).collect();
    while drained.elapsed() < Duration::from_secs(10) {
        let all_there = target_logs.iter().all(|log| {
            LogReader::open(log, 0)
                .map(|r| {
                    r.filter_map(Result::ok).filter(|r| r.kind == RecordKind::Envelope).count()
                        as u64
                        >= published
                })
                .unwrap_or(false)
        });
        if all_there {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    let seen: Vec<Seen> = pollers.into_iter().map(|h| h.join().unwrap()).collect();
    let rss: Vec<f64> = nodes.iter().map(|(node, _)| node.rss_kib() as f64 / 1024.0).collect();
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
        let st = stats(lat);
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
    let overall = stats(all);
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
