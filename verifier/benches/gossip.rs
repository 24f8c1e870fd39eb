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

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k256::ecdsa::SigningKey;
use serde_json::{Value, json};
use vouch_delegation::{DelegationTerms, Eip712Network, Role, SignedDelegation};
use vouch_schema::crypto::address_of;
use vouch_schema::{Address, Envelope, Event};
use vouch_sdk::config::TransportConfig;
use vouch_sdk::{Publisher, PublisherSettings, Signer};
use vouch_verifier::store::{LogReader, RecordKind};

const VERIFIERS: usize = 3;
const WARM_UP: Duration = Duration::from_secs(3);

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn key(n: u32) -> SigningKey {
    let mut k = [0u8; 32];
    k[28..].copy_from_slice(&n.to_be_bytes());
    SigningKey::from_slice(&k).unwrap()
}

/// A gateway principal and a signer for its delegate (certificate valid now).
fn gateway(n: u32) -> (Address, Signer) {
    let principal = key(7000 + n);
    let delegate = key(9000 + n);
    let now = now_ms() / 1000;
    let terms = DelegationTerms {
        delegate: address_of(delegate.verifying_key()),
        role: Role::Gateway,
        region: "FRA".into(),
        not_before: now - 600,
        not_after: now + 86_400,
        nonce: 1,
    };
    let cert = SignedDelegation::issue(&principal, Eip712Network::arbitrum_one(), terms).unwrap();
    (address_of(principal.verifying_key()), Signer::new(delegate, cert))
}

/// A `vouch node` child process; killed on drop.
struct Node {
    child: Child,
    announce: Value,
    data_dir: PathBuf,
}

impl Node {
    fn spawn(dir: &Path, n: usize, snapshot: &Path, bootstrap: &[String]) -> Node {
        let data_dir = dir.join(format!("node{n}"));
        let stderr = std::fs::File::create(dir.join(format!("node{n}.stderr"))).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vouch"));
        cmd.arg("node")
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--authority-snapshot")
            .arg(snapshot)
            .args(["--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--http-listen", "127.0.0.1:0"]);
        for b in bootstrap {
            cmd.args(["--bootstrap", b]);
        }
        let mut child = cmd.stdout(Stdio::piped()).stderr(stderr).spawn().unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        let announce: Value = serde_json::from_str(&first).unwrap_or_else(|e| {
            panic!("node {n} did not announce itself ({e}); see its stderr in {}", dir.display())
        });
        Node { child, announce, data_dir }
    }

    fn p2p(&self) -> String {
        self.announce["p2p_listen"][0].as_str().unwrap().to_owned()
    }

    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        kib / 1024.0
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
    let args: Vec<String> = std::env::args().collect();
    // Test runners list a target's tests first (nextest: `--list --format terse`):
    // this bench runs as one quick smoke test there, never as ignored.
    if args.iter().any(|a| a == "--list") {
        if !args.iter().any(|a| a == "--ignored") {
            println!("gossip_smoke: test");
        }
        return;
    }
    let quick = !args.iter().any(|a| a == "--bench");
    let env_num = |name: &str, default: f64| {
        std::env::var(name).ok().and_then(|v| v.parse::<f64>().ok()).unwrap_or(default)
    };
    let publishers: u32 = if quick { 4 } else { 20 };
    let secs = if quick { 2.0 } else { env_num("VOUCH_GOSSIP_BENCH_SECS", 20.0) };
    let rate = if quick { 5.0 } else { env_num("VOUCH_GOSSIP_BENCH_RATE", 5.0) };

    let work = tempfile::TempDir::new().unwrap();
    let gateways: Vec<(Address, Signer)> = (0..publishers).map(gateway).collect();
    let snapshot = work.path().join("authority.json");
    let principals: Vec<Value> = gateways
        .iter()
        .map(|(p, _)| json!({"address": p.to_hex(), "roles": ["gateway"]}))
        .collect();
    std::fs::write(&snapshot, json!({ "principals": principals }).to_string()).unwrap();

    // Each node bootstraps to every node started before it.
    let mut nodes: Vec<Node> = Vec::new();
    for n in 0..VERIFIERS {
        let earlier: Vec<String> = nodes.iter().map(Node::p2p).collect();
        nodes.push(Node::spawn(work.path(), n, &snapshot, &earlier));
    }
    let bootstrap: Vec<String> = nodes.iter().map(Node::p2p).collect();

    let stop = Arc::new(AtomicBool::new(false));
    let pollers: Vec<_> = nodes
        .iter()
        .map(|node| {
            let log = node.data_dir.join("log");
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
    let drained = Instant::now();
    let target_logs: Vec<PathBuf> = nodes.iter().map(|n| n.data_dir.join("log")).collect();
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
