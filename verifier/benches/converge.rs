//! Convergence (issue 13): how fast a restarted verifier catches up by
//! `/vouch/1/sync`, beside how fast the same envelopes went into the other
//! verifiers by gossip, and what reconciliation costs while every verifier
//! is in sync. 3 real `vouch node` processes bootstrapped to each other on
//! loopback, production defaults (`[sync]`, `[ingest]`, rate limits, the
//! default SLA policy).
//!
//! `cargo bench -p vouch-verifier --bench converge`
//!
//! **Catch-up** (after the steady state, its publishers closed). Every
//! blast gateway publishes one envelope while all three
//! run (warm-up: meshes, certificates). Node 2 is killed (SIGKILL). N
//! envelopes, pre-signed (one event each, round robin over the gateways,
//! each gateway one chain), are handed to one gossip transport as fast as
//! it takes them without dropping any (at most 768 undelivered): the
//! highest rate this publisher sustains. *Gossip ingest* of node 0 and 1 =
//! blast envelopes in its committed log ÷ (the last one's visibility in the
//! log − the first hand-over to the transport). After 5 s (gossipsub's
//! message cache is 3 heartbeats of 0.7 s, so no gossip of the blast is left
//! for a newcomer) and once nodes 0 and 1 hold the same number of blast
//! envelopes (M, the envelopes node 2 missed), node 2 restarts on its data
//! directory. *Catch-up* = M ÷ (the moment its committed log holds all M −
//! the moment its process was spawned); *sync alone* counts from the first
//! synced envelope visible in its log instead (process start, listeners,
//! connecting and identify left out). The run also reports when node 2's
//! seal hold (`catching_up` in `/v1/ingest/stats`, polled every 100 ms)
//! ended (and how much of M it held then), when it held 50, 90, 99 and
//! 100 % of M, its `synced` outcome rows (every missed envelope must come by
//! sync, none by gossip), and its `vouch_sync_*` counters (requests by
//! kind, rounds by outcome, synced batches shed), from which the binding
//! limit follows.
//!
//! **Steady state** (run first, so that no minute it publishes into holds
//! the blast: rounds list the ids of unsealed minutes whose digests
//! differ, and a minute stays unsealed for the seal grace, 6 minutes by
//! default). 20 SDK gateway publishers (one event per envelope,
//! linger 0, FRA/NYC/SIN) publish 5 envelopes/s each to all three. Over a
//! measured interval (after 5 s of warm-up): per node, sync payload bytes
//! (`vouch_sync_bytes_sent_total` + `_received_total`) and the TCP bytes of
//! its established loopback sockets, read with `ss -tinp` (the kernel's
//! `bytes_sent`/`bytes_received` per socket) and sorted by the process at
//! the other end: links to other verifiers, links to the publishers (this
//! process; its HTTP port aside). Gossip bytes on the verifier links = their
//! TCP bytes − the sync payload bytes (what is left is gossip, its framing
//! and encryption, and libp2p's ping and identify). Per peer = a node's
//! bytes ÷ its 2 verifier peers; per minute over the interval. A second,
//! idle interval with nothing published gives sync's floor (rounds over
//! equal digests). Without `ss` the gossip side falls back to an estimate
//! (accepted envelope bytes × 2 peers), labelled as such.
//!
//! Not criterion: one timed run of real processes. Without `--bench` (test
//! runners) a smoke run of ~40 s (600 envelopes, 3 publishers) that fails
//! if the restarted node does not get everything it missed by sync. With
//! `--bench` the size bench.sh runs (~3 minutes: 20,000 envelopes, 60 s
//! steady, 30 s idle); `VOUCH_CONVERGE_SIZE=full` ~10 minutes (100,000
//! envelopes, 300 s steady, 60 s idle); `VOUCH_CONVERGE_ENVELOPES`,
//! `VOUCH_CONVERGE_STEADY_SECS` override. Prints human lines and
//! `vouch-bench-json:` lines (groups `catch_up`, `steady`) for
//! `scripts/bench_report.py`.

#![allow(missing_docs, clippy::unwrap_used)]

#[path = "support/blast.rs"]
mod blast;
#[path = "support/cluster.rs"]
mod cluster;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use blast::{Chain, blast, sign_blast};
use cluster::{
    LogFollower, Node, NodeOptions, gateway, now_ms, one_event_publishers, write_authority,
};
use serde_json::{Value, json};
use vouch_delegation::Role;
use vouch_schema::{Address, Event};
use vouch_sdk::config::TransportConfig;
use vouch_sdk::transport::Transport;
use vouch_sdk::transport::gossip::{GossipOptions, GossipTransport};
use vouch_sdk::{Publisher, Signer};
use vouch_testkit::process::http_get;

const VERIFIERS: usize = 3;
/// The node that is killed and restarted.
const RESTARTED: usize = 2;
const REGIONS: [&str; 3] = ["FRA", "NYC", "SIN"];
/// Envelopes one blast gateway may send in all: below the gateway role's
/// burst (800), so the rate limit never refuses a blast envelope.
const PER_BLAST_GATEWAY: usize = 500;
/// No blast gossip left for a newcomer after this (gossipsub's message
/// cache: 3 heartbeats of 0.7 s).
const SETTLE: Duration = Duration::from_secs(5);
/// Publishing before the steady interval starts (meshes, certificates).
const STEADY_WARM_UP: Duration = Duration::from_secs(5);
/// After publishing stops, before the idle interval (the last rounds end).
const IDLE_SETTLE: Duration = Duration::from_secs(10);
/// Longest wait for the logs after the blast, and for the catch-up.
const DRAIN: Duration = Duration::from_secs(60);
const CATCH_UP_LIMIT: Duration = Duration::from_secs(240);
/// Shares of the missed envelopes whose arrival in node 2's log is timed.
const PROGRESS: [f64; 4] = [0.5, 0.9, 0.99, 1.0];

#[derive(Debug, Clone)]
struct Params {
    full: bool,
    size: &'static str,
    envelopes: usize,
    steady_publishers: u32,
    steady_rate: f64,
    steady: Duration,
    idle: Duration,
}

impl Params {
    fn new(full: bool) -> Params {
        let num = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<f64>().ok());
        let size = match (full, std::env::var("VOUCH_CONVERGE_SIZE").as_deref()) {
            (false, _) => "smoke",
            (true, Ok("full")) => "full",
            (true, _) => "default",
        };
        let (envelopes, publishers, steady, idle) = match size {
            "smoke" => (600, 3, 10.0, 5.0),
            "full" => (100_000, 20, 300.0, 60.0),
            _ => (20_000, 20, 60.0, 30.0),
        };
        let env = |name: &str| if full { num(name) } else { None };
        let envelopes =
            env("VOUCH_CONVERGE_ENVELOPES").map_or(envelopes, |n| n.max(100.0) as usize);
        let steady = env("VOUCH_CONVERGE_STEADY_SECS").unwrap_or(steady);
        Params {
            full,
            size,
            envelopes,
            steady_publishers: publishers,
            steady_rate: 5.0,
            steady: Duration::from_secs_f64(steady.max(10.0)),
            idle: Duration::from_secs_f64(idle),
        }
    }

    fn blast_gateways(&self) -> u32 {
        self.envelopes.div_ceil(PER_BLAST_GATEWAY).max(2) as u32
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

// ------------------------------------------------------------ log followers

/// What one node's committed log held, live (written by its follower).
#[derive(Debug)]
struct Tally {
    blast: AtomicU64,
    blast_bytes: AtomicU64,
    blast_last_ms: AtomicU64,
    steady: AtomicU64,
    steady_bytes: AtomicU64,
}

impl Tally {
    fn new() -> Arc<Tally> {
        Arc::new(Tally {
            blast: AtomicU64::new(0),
            blast_bytes: AtomicU64::new(0),
            blast_last_ms: AtomicU64::new(0),
            steady: AtomicU64::new(0),
            steady_bytes: AtomicU64::new(0),
        })
    }

    fn blast(&self) -> u64 {
        self.blast.load(Ordering::Relaxed)
    }

    fn steady(&self) -> u64 {
        self.steady.load(Ordering::Relaxed)
    }
}

/// Follows the log in `data_dir` every ~2 ms until `stop`, counting the
/// envelopes of the blast's and the steady publishers' delegates.
fn follow(
    data_dir: PathBuf,
    blast: Arc<HashSet<Address>>,
    steady: Arc<HashSet<Address>>,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
) {
    let mut follower = LogFollower::new(&data_dir);
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        follower.poll(|env, bytes, visible| {
            if blast.contains(&env.id.publisher) {
                tally.blast.fetch_add(1, Ordering::Relaxed);
                tally.blast_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
                tally.blast_last_ms.fetch_max(visible, Ordering::Relaxed);
            } else if steady.contains(&env.id.publisher) {
                tally.steady.fetch_add(1, Ordering::Relaxed);
                tally.steady_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
            }
        });
        if stopping {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

// ------------------------------------------------------------ node probes

/// Prometheus text: `name{labels}` → value.
fn metrics(node: &Node) -> BTreeMap<String, f64> {
    let (_, body) = http_get(&node.http(), "/metrics");
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

fn stats(node: &Node) -> Value {
    let (_, body) = http_get(&node.http(), "/v1/ingest/stats");
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

/// The count of `stats`' `synced` rows with `outcome`.
fn synced(stats: &Value, outcome: &str) -> u64 {
    stats["synced"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter(|r| r["outcome"] == outcome)
                .filter_map(|r| r["count"].as_u64())
                .sum()
        })
        .unwrap_or(0)
}

/// `vouch_sync_*` counters of interest, and their change since `before`.
const SYNC_COUNTERS: [&str; 21] = [
    "vouch_sync_bytes_sent_total",
    "vouch_sync_bytes_received_total",
    "vouch_sync_envelopes_fetched_total",
    "vouch_sync_ids_compared_total",
    "vouch_sync_ids_recently_fetched_total",
    "vouch_sync_requests_made_total{kind=\"minutes\"}",
    "vouch_sync_requests_made_total{kind=\"partitions\"}",
    "vouch_sync_requests_made_total{kind=\"ids\"}",
    "vouch_sync_requests_made_total{kind=\"fetch\"}",
    "vouch_sync_requests_served_total{kind=\"fetch\"}",
    "vouch_sync_rounds_total{outcome=\"complete\"}",
    "vouch_sync_rounds_total{outcome=\"budget\"}",
    "vouch_sync_rounds_total{outcome=\"refused\"}",
    "vouch_sync_rounds_total{outcome=\"failed\"}",
    "vouch_sync_rounds_total{outcome=\"misbehaved\"}",
    "vouch_sync_claims_full_total",
    "vouch_sync_penalties_total",
    "vouch_sync_batches_shed_total",
    "vouch_ingest_shed_total",
    "vouch_sync_refusals_received_total{reason=\"rate_limited\"}",
    "vouch_sync_refusals_received_total{reason=\"busy\"}",
];

fn sync_delta(after: &BTreeMap<String, f64>, before: &BTreeMap<String, f64>) -> Value {
    let short = |k: &str| {
        k.trim_start_matches("vouch_")
            .replace("_total{kind=\"", ".")
            .replace("_total{outcome=\"", ".")
            .replace("_total{reason=\"", ".")
            .replace("\"}", "")
            .replace("_total", "")
    };
    let rows: serde_json::Map<String, Value> = SYNC_COUNTERS
        .iter()
        .map(|k| {
            let d = after.get(*k).copied().unwrap_or(0.0) - before.get(*k).copied().unwrap_or(0.0);
            (short(k), json!(d as i64))
        })
        .collect();
    Value::Object(rows)
}

fn counter(m: &BTreeMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

/// Sync payload bytes a node sent plus received.
fn sync_bytes(m: &BTreeMap<String, f64>) -> f64 {
    counter(m, "vouch_sync_bytes_sent_total") + counter(m, "vouch_sync_bytes_received_total")
}

// ------------------------------------------------------------ TCP bytes per socket

/// One established TCP socket, as `ss -tinp` shows it.
#[derive(Debug, Clone)]
struct Socket {
    local: String,
    peer: String,
    pid: Option<u32>,
    sent: u64,
    received: u64,
}

/// Every established TCP socket this user's processes hold, with the
/// kernel's byte counters; `None` when `ss` is not there.
fn sockets() -> Option<Vec<Socket>> {
    let out = Command::new("ss").args(["-tinpH", "state", "established"]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut all: Vec<Socket> = Vec::new();
    for line in text.lines() {
        if line.starts_with(char::is_whitespace) {
            let Some(s) = all.last_mut() else { continue };
            for token in line.split_whitespace() {
                if let Some(v) = token.strip_prefix("bytes_sent:") {
                    s.sent = v.parse().unwrap_or(0);
                } else if let Some(v) = token.strip_prefix("bytes_received:") {
                    s.received = v.parse().unwrap_or(0);
                }
            }
            continue;
        }
        // Recv-Q Send-Q Local Peer [users:(("name",pid=N,fd=M))]
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 4 {
            continue;
        }
        let pid = line
            .split("pid=")
            .nth(1)
            .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|s| s.parse().ok());
        all.push(Socket {
            local: cols[2].to_owned(),
            peer: cols[3].to_owned(),
            pid,
            sent: 0,
            received: 0,
        });
    }
    Some(all)
}

/// A node's TCP bytes (sent + received), by the other end of the link.
#[derive(Debug, Clone, Copy, Default)]
struct Links {
    verifiers: u64,
    publishers: u64,
    other: u64,
}

/// One look at the cluster: when, each node's metrics and links.
struct Look {
    at: Instant,
    metrics: Vec<BTreeMap<String, f64>>,
    sockets: Option<Vec<Socket>>,
}

fn look(nodes: &[Node]) -> Look {
    Look { at: Instant::now(), metrics: nodes.iter().map(metrics).collect(), sockets: sockets() }
}

/// Each node's TCP bytes between two looks (a socket opened meanwhile
/// counts from zero; one closed meanwhile is lost, which a steady cluster
/// does not do).
fn links_between(nodes: &[Node], a: &Look, b: &Look) -> Option<Vec<Links>> {
    let (before, after) = (a.sockets.as_ref()?, b.sockets.as_ref()?);
    let owner: HashMap<&str, u32> =
        after.iter().filter_map(|s| Some((s.local.as_str(), s.pid?))).collect();
    let earlier: HashMap<(&str, &str), (u64, u64)> = before
        .iter()
        .map(|s| ((s.local.as_str(), s.peer.as_str()), (s.sent, s.received)))
        .collect();
    let pids: Vec<u32> = nodes.iter().map(Node::pid).collect();
    let me = std::process::id();
    Some(
        nodes
            .iter()
            .map(|node| {
                let http = node.http();
                let mut links = Links::default();
                for s in after.iter().filter(|s| s.pid == Some(node.pid())) {
                    if s.local == http {
                        continue;
                    }
                    let (s0, r0) = earlier
                        .get(&(s.local.as_str(), s.peer.as_str()))
                        .copied()
                        .unwrap_or((0, 0));
                    let bytes = s.sent.saturating_sub(s0) + s.received.saturating_sub(r0);
                    match owner.get(s.peer.as_str()) {
                        Some(p) if pids.contains(p) => links.verifiers += bytes,
                        Some(p) if *p == me => links.publishers += bytes,
                        _ => links.other += bytes,
                    }
                }
                links
            })
            .collect(),
    )
}

// ------------------------------------------------------------ phases

struct Cluster {
    work: tempfile::TempDir,
    snapshot: PathBuf,
    nodes: Vec<Node>,
    blast_set: Arc<HashSet<Address>>,
    steady_set: Arc<HashSet<Address>>,
    tallies: Vec<Arc<Tally>>,
    stops: Vec<Arc<AtomicBool>>,
    followers: Vec<std::thread::JoinHandle<()>>,
}

impl Cluster {
    fn follow(&mut self, n: usize) {
        let tally = Tally::new();
        let stop = Arc::new(AtomicBool::new(false));
        let (dir, b, s) = (
            self.nodes[n].data_dir.clone(),
            Arc::clone(&self.blast_set),
            Arc::clone(&self.steady_set),
        );
        let (t, st) = (Arc::clone(&tally), Arc::clone(&stop));
        self.followers.push(std::thread::spawn(move || follow(dir, b, s, t, st)));
        if n < self.tallies.len() {
            self.stops[n].store(true, Ordering::Relaxed);
            self.tallies[n] = tally;
            self.stops[n] = stop;
        } else {
            self.tallies.push(tally);
            self.stops.push(stop);
        }
    }

    fn bootstrap(&self, except: Option<usize>) -> Vec<String> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != except)
            .map(|(_, n)| n.p2p())
            .collect()
    }

    fn stop(mut self) {
        for s in &self.stops {
            s.store(true, Ordering::Relaxed);
        }
        for f in self.followers.drain(..) {
            let _ = f.join();
        }
        drop(self.nodes);
        drop(self.work);
    }
}

/// Waits at most `limit` until `done` holds, polling every 50 ms.
fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done()
}

/// Waits until each of `tallies`' blast counts stopped growing for 3 s (or
/// all reached `want`), at most [`DRAIN`].
fn wait_for_blast(tallies: &[&Tally], want: u64) {
    let mut last = (Instant::now(), 0u64);
    wait_until(DRAIN, || {
        let counts: Vec<u64> = tallies.iter().map(|t| t.blast()).collect();
        if counts.iter().all(|c| *c >= want) {
            return true;
        }
        let sum = counts.iter().sum();
        if sum != last.1 {
            last = (Instant::now(), sum);
        }
        last.0.elapsed() > Duration::from_secs(3)
    });
}

fn main() {
    // Under a test runner, one quick smoke test (see `full_size`).
    let Some(full) = vouch_testkit::bench::full_size("converge") else { return };
    let p = Params::new(full);
    let gateways = p.blast_gateways();
    let mut chains: Vec<Chain> = (0..gateways)
        .map(|n| Chain::new(n, REGIONS[n as usize % REGIONS.len()], "converge-bench"))
        .collect();
    let steady_signers: Vec<(Address, Signer)> =
        (0..p.steady_publishers).map(|n| gateway(n, REGIONS[n as usize % REGIONS.len()])).collect();

    let work = tempfile::TempDir::new().unwrap();
    let snapshot = work.path().join("authority.json");
    let principals: Vec<(Address, Role)> = chains
        .iter()
        .map(|c| (c.principal(), Role::Gateway))
        .chain(steady_signers.iter().map(|(a, _)| (*a, Role::Gateway)))
        .collect();
    write_authority(&snapshot, &principals);
    let nodes = Node::spawn_mesh(work.path(), VERIFIERS, &snapshot, &NodeOptions::default());
    let mut c = Cluster {
        work,
        snapshot,
        nodes,
        blast_set: Arc::new(chains.iter().map(Chain::delegate_address).collect()),
        steady_set: Arc::new(steady_signers.iter().map(|(_, s)| s.address()).collect()),
        tallies: Vec::new(),
        stops: Vec::new(),
        followers: Vec::new(),
    };
    for n in 0..VERIFIERS {
        c.follow(n);
    }
    eprintln!(
        "converge ({}): {VERIFIERS} nodes, {} envelopes from {gateways} gateways while node \
         {RESTARTED} is down (data in {})",
        p.size,
        p.envelopes,
        c.work.path().display()
    );

    let events = vouch_testkit::fixtures::events();
    // Steady state first: a minute stays unsealed for the policy's seal
    // grace (6 minutes), and rounds list the ids of every unsealed minute
    // whose digests differ, so steady publishing into the blast's minutes
    // would count the blast's ids as steady cost.
    let steady = steady_phase(&p, &mut c, steady_signers);
    let catch_up = catch_up_phase(&p, &mut c, &mut chains, &events);
    let exits: Vec<Option<String>> = c
        .nodes
        .iter_mut()
        .map(|n| n.child.try_wait().ok().flatten().map(|s| s.to_string()))
        .collect();
    c.stop();
    report(&p, &catch_up, &steady, &exits);
    if !p.full {
        assert!(exits.iter().all(Option::is_none), "a node exited during the smoke run: {exits:?}");
        let missed = catch_up["missed"].as_u64().unwrap();
        assert!(missed > 0, "nodes 0 and 1 got nothing of the blast: {catch_up}");
        assert_eq!(catch_up["restarted"]["blast_in_log"], missed, "{catch_up}");
        assert_eq!(catch_up["restarted"]["synced_accepted"], missed, "{catch_up}");
    }
}

/// Kill node 2, blast N envelopes into 0 and 1, restart 2 and time its
/// catch-up. Returns the `catch_up` JSON group.
fn catch_up_phase(p: &Params, c: &mut Cluster, chains: &mut [Chain], events: &[Event]) -> Value {
    // Warm-up: one envelope per gateway, while all three run.
    let config = TransportConfig { bootstrap: c.bootstrap(None), ..TransportConfig::default() };
    let mut transport = GossipTransport::start_with(&config, GossipOptions::default()).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let warm = sign_blast(chains, events, chains.len(), 1);
    let warm_n = warm.len() as u64;
    blast(&mut transport, warm);
    let all: Vec<&Tally> = c.tallies.iter().map(|t| &**t).collect();
    wait_for_blast(&all, warm_n);
    let warm_held: Vec<u64> = c.tallies.iter().map(|t| t.blast()).collect();

    // Node 2 down.
    let _ = c.nodes[RESTARTED].child.kill();
    let _ = c.nodes[RESTARTED].child.wait();
    let signing = Instant::now();
    let envelopes = sign_blast(chains, events, p.envelopes, 1);
    let signing_s = signing.elapsed().as_secs_f64();
    let envelope_bytes = envelopes.iter().map(|(_, b)| b.len()).sum::<usize>() as f64
        / envelopes.len().max(1) as f64;
    let before: Vec<(BTreeMap<String, f64>, Value)> =
        c.nodes[..RESTARTED].iter().map(|n| (metrics(n), stats(n))).collect();
    let sent_from = now_ms();
    let sent = blast(&mut transport, envelopes);
    let _ = transport.flush(Instant::now() + Duration::from_secs(30));
    let live: Vec<&Tally> = c.tallies[..RESTARTED].iter().map(|t| &**t).collect();
    wait_for_blast(&live, warm_n + p.envelopes as u64);
    let transport_stats = transport.stats();
    let _ = transport.close(Instant::now() + Duration::from_secs(5));

    let gossip: Vec<Value> = (0..RESTARTED)
        .map(|n| {
            let t = &c.tallies[n];
            let held = t.blast() - warm_held[n];
            let last = t.blast_last_ms.load(Ordering::Relaxed);
            let secs = last.saturating_sub(sent_from) as f64 / 1000.0;
            let (m, s) = (metrics(&c.nodes[n]), stats(&c.nodes[n]));
            json!({
                "node": n,
                "blast_in_log": held,
                "seconds": round3(secs),
                "envelopes_per_s": round1(held as f64 / secs.max(1e-3)),
                "gossip_accepted": s["accepted"].as_u64().unwrap_or(0)
                    .saturating_sub(before[n].1["accepted"].as_u64().unwrap_or(0)),
                "synced_accepted": synced(&s, "accept").saturating_sub(synced(&before[n].1, "accept")),
                "shed": s["shed"].as_u64().unwrap_or(0).saturating_sub(before[n].1["shed"].as_u64().unwrap_or(0)),
                "sync": sync_delta(&m, &before[n].0),
            })
        })
        .collect();

    // Nodes 0 and 1 agree on what node 2 missed, and gossip of it is gone.
    std::thread::sleep(SETTLE);
    wait_until(Duration::from_secs(30), || c.tallies[0].blast() == c.tallies[1].blast());
    let missed = c.tallies[0].blast() - warm_held[0];
    let peers_before: Vec<BTreeMap<String, f64>> =
        c.nodes[..RESTARTED].iter().map(metrics).collect();

    // Node 2 back, on its data directory; a fresh follower counts what it
    // gets of the blast (it held none of it before).
    let bootstrap = c.bootstrap(Some(RESTARTED));
    let spawned = Instant::now();
    let spawned_ms = now_ms();
    c.nodes[RESTARTED] =
        Node::spawn(c.work.path(), RESTARTED, &c.snapshot, &bootstrap, &NodeOptions::default());
    let announced_s = spawned.elapsed().as_secs_f64();
    c.follow(RESTARTED);
    let tally = Arc::clone(&c.tallies[RESTARTED]);
    let want = warm_held[RESTARTED] + missed;
    let mut hold_ended: Option<f64> = None;
    let mut held_at_hold_end: Option<u64> = None;
    let mut all_held: Option<f64> = None;
    // The first missed envelope in node 2's log (its follower also reads
    // the warm-up envelopes it held before, so not the tally's first).
    let mut first_synced: Option<f64> = None;
    // When node 2 held each share of what it missed: where the time goes
    // (a steady pull, or a tail waiting for ids to be fetched again).
    let mut reached: [Option<f64>; PROGRESS.len()] = [None; PROGRESS.len()];
    let mut last_poll = Instant::now() - Duration::from_secs(1);
    let restarted = &c.nodes[RESTARTED];
    while spawned.elapsed() < CATCH_UP_LIMIT && (hold_ended.is_none() || all_held.is_none()) {
        let got = tally.blast().saturating_sub(warm_held[RESTARTED]);
        if first_synced.is_none() && got > 0 {
            first_synced = Some(spawned.elapsed().as_secs_f64());
        }
        for (share, at) in PROGRESS.iter().zip(reached.iter_mut()) {
            if at.is_none() && got as f64 >= share * missed as f64 {
                *at = Some(spawned.elapsed().as_secs_f64());
            }
        }
        if all_held.is_none() && tally.blast() >= want {
            let last = tally.blast_last_ms.load(Ordering::Relaxed);
            all_held = Some(last.saturating_sub(spawned_ms) as f64 / 1000.0);
        }
        if hold_ended.is_none() && last_poll.elapsed() >= Duration::from_millis(100) {
            last_poll = Instant::now();
            if stats(restarted)["catching_up"] == false {
                hold_ended = Some(spawned.elapsed().as_secs_f64());
                held_at_hold_end = Some(tally.blast().saturating_sub(warm_held[RESTARTED]));
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // What came after the hold ended, if anything, still counts: wait for
    // the stragglers (bounded) so the counts below are final.
    if all_held.is_none() {
        wait_until(Duration::from_secs(5), || tally.blast() >= want);
    }
    let got = tally.blast().saturating_sub(warm_held[RESTARTED]);
    let (m2, s2) = (metrics(restarted), stats(restarted));
    let served: Vec<Value> = c.nodes[..RESTARTED]
        .iter()
        .zip(&peers_before)
        .map(|(n, b)| sync_delta(&metrics(n), b))
        .collect();
    // The nodes run `[sync]`'s defaults.
    let config = vouch_net::SyncConfig::default();
    let ingest = vouch_verifier::node::config::IngestConfig::default();
    let sync_secs = all_held.zip(first_synced).map(|(t, first)| t - first);
    json!({
        "bench": "converge",
        "group": "catch_up",
        "size": p.size,
        "blast_gateways": chains.len(),
        "envelope_bytes_mean": round1(envelope_bytes),
        "signing_seconds": round3(signing_s),
        "blast": {
            "envelopes": p.envelopes,
            "taken": sent.taken,
            "refused": sent.refused,
            "hand_over_seconds": round3(sent.seconds),
            "hand_over_per_s": round1(sent.taken as f64 / sent.seconds.max(1e-3)),
            "transport": {
                "published": transport_stats.published,
                "dropped_pending": transport_stats.dropped_pending,
                "queue_full": transport_stats.queue_full,
                "send_failed": transport_stats.send_failed,
                "unsent": transport_stats.unsent,
            },
        },
        "gossip": gossip,
        "missed": missed,
        "restarted": {
            "node": RESTARTED,
            "announced_s": round3(announced_s),
            "first_synced_s": first_synced.map(round3),
            "all_held_s": all_held.map(round3),
            "hold_ended_s": hold_ended.map(round3),
            "held_at_hold_end": held_at_hold_end,
            "progress": PROGRESS.iter().zip(reached).map(|(share, at)| json!({
                "share": share,
                "seconds": at.map(round3),
            })).collect::<Vec<_>>(),
            "blast_in_log": got,
            "envelopes_per_s": all_held.map(|t| round1(missed as f64 / t.max(1e-3))),
            "sync_only_per_s": sync_secs.map(|t| round1(missed as f64 / t.max(1e-3))),
            "synced_accepted": synced(&s2, "accept"),
            "gossip_accepted": s2["accepted"],
            "sync": sync_delta(&m2, &BTreeMap::new()),
        },
        "served": served,
        "config": {
            "round_interval_ms": config.round_interval_ms,
            "max_fetch_per_round": config.max_fetch_per_round,
            "client_rate": config.client_rate,
            "client_burst": config.client_burst,
            "serve_rate": config.serve_rate,
            "max_syncing_peers": config.max_syncing_peers,
            "max_fetch_ids": vouch_net::sync::MAX_FETCH_IDS,
            "refetch_after_ms": config.refetch_after_ms,
            "sync_queue_batches": ingest.sync_queue_batches,
        },
    })
}

/// 20 SDK publishers into all three; sync and TCP bytes over a steady and
/// an idle interval. Returns the `steady` JSON group.
fn steady_phase(p: &Params, c: &mut Cluster, signers: Vec<(Address, Signer)>) -> Value {
    let pubs = one_event_publishers(signers.into_iter().map(|(_, s)| s), &c.bootstrap(None));
    let fixtures = vouch_testkit::fixtures::events();
    let stop = Arc::new(AtomicBool::new(false));
    let published = Arc::new(AtomicU64::new(0));
    let interval = Duration::from_secs_f64(1.0 / (f64::from(p.steady_publishers) * p.steady_rate));
    let publishing = {
        let (stop, published) = (Arc::clone(&stop), Arc::clone(&published));
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let due = started + interval * i as u32;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let mut event = fixtures[i % fixtures.len()].clone();
                event.ts = Some(now_ms());
                if pubs[i % pubs.len()].publish(event).is_ok() {
                    published.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
            pubs
        })
    };
    std::thread::sleep(STEADY_WARM_UP);
    let held_bytes = |c: &Cluster| -> Vec<(u64, u64)> {
        c.tallies.iter().map(|t| (t.steady(), t.steady_bytes.load(Ordering::Relaxed))).collect()
    };
    let steady_from = held_bytes(c);
    let published_from = published.load(Ordering::Relaxed);
    let a = look(&c.nodes);
    std::thread::sleep(p.steady);
    let b = look(&c.nodes);
    let published_n = published.load(Ordering::Relaxed) - published_from;
    let steady_to = held_bytes(c);
    stop.store(true, Ordering::Relaxed);
    let pubs: Vec<Publisher> = publishing.join().unwrap();
    for pb in &pubs {
        let _ = pb.flush(Duration::from_secs(10));
    }
    let total = published.load(Ordering::Relaxed);
    let all: Vec<&Tally> = c.tallies.iter().map(|t| &**t).collect();
    wait_until(DRAIN, || all.iter().all(|t| t.steady() >= total));
    std::thread::sleep(IDLE_SETTLE);
    let idle_a = look(&c.nodes);
    std::thread::sleep(p.idle);
    let idle_b = look(&c.nodes);
    let held: Vec<u64> = c.tallies.iter().map(|t| t.steady()).collect();
    for pb in pubs {
        let _ = pb.close(Duration::from_secs(5));
    }

    let interval = |x: &Look, y: &Look, accepted: Option<&[(u64, u64)]>| -> Value {
        let minutes = y.at.duration_since(x.at).as_secs_f64() / 60.0;
        let links = links_between(&c.nodes, x, y);
        let peers = (VERIFIERS - 1) as f64;
        let per_node: Vec<Value> = (0..c.nodes.len())
            .map(|n| {
                let sync = sync_bytes(&y.metrics[n]) - sync_bytes(&x.metrics[n]);
                let l = links.as_ref().map(|l| l[n]);
                let accepted_bytes = accepted.map(|acc| steady_to[n].1 - acc[n].1);
                // Measured: TCP bytes on the verifier links less sync's payload.
                let gossip_verifier = l.map(|l| (l.verifiers as f64 - sync).max(0.0));
                // Without ss: every accepted envelope crosses each verifier link once.
                let gossip_estimate = accepted_bytes.map(|b| b as f64 * peers);
                let gossip = gossip_verifier.or(gossip_estimate);
                json!({
                    "node": n,
                    "sync_bytes": sync as u64,
                    "sync_bytes_per_min_per_peer": round1(sync / peers / minutes),
                    "tcp_verifier_links": l.map(|l| l.verifiers),
                    "tcp_publisher_links": l.map(|l| l.publishers),
                    "tcp_other": l.map(|l| l.other),
                    "gossip_bytes_verifier_links": gossip_verifier.map(|g| g as u64),
                    "gossip_bytes_per_min_per_peer": gossip.map(|g| round1(g / peers / minutes)),
                    "accepted": accepted.map(|acc| steady_to[n].0 - acc[n].0),
                    "accepted_bytes": accepted_bytes,
                    "sync_pct_of_gossip_verifier_links": gossip.filter(|g| *g > 0.0)
                        .map(|g| round3(100.0 * sync / g)),
                    "sync_pct_of_all_gossip": l.map(|l| l.verifiers as f64 - sync + l.publishers as f64)
                        .filter(|g| *g > 0.0).map(|g| round3(100.0 * sync / g)),
                    "sync": sync_delta(&y.metrics[n], &x.metrics[n]),
                })
            })
            .collect();
        let mean = |key: &str| -> Option<f64> {
            let v: Vec<f64> = per_node.iter().filter_map(|n| n[key].as_f64()).collect();
            (v.len() == per_node.len()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        };
        json!({
            "seconds": round1(minutes * 60.0),
            "gossip_measured": links.is_some(),
            "sync_bytes_per_min_per_peer": mean("sync_bytes_per_min_per_peer").map(round1),
            "gossip_bytes_per_min_per_peer": mean("gossip_bytes_per_min_per_peer").map(round1),
            "sync_pct_of_gossip": mean("sync_pct_of_gossip_verifier_links").map(round3),
            "sync_pct_of_all_gossip": mean("sync_pct_of_all_gossip").map(round3),
            "per_node": per_node,
        })
    };
    json!({
        "bench": "converge",
        "group": "steady",
        "size": p.size,
        "publishers": p.steady_publishers,
        "rate_per_publisher": p.steady_rate,
        "published": published_n,
        "published_total": total,
        "held_at_end": held,
        "steady": interval(&a, &b, Some(&steady_from)),
        "idle": interval(&idle_a, &idle_b, None),
    })
}

fn report(p: &Params, catch_up: &Value, steady: &Value, exits: &[Option<String>]) {
    let g = &catch_up["gossip"];
    let r = &catch_up["restarted"];
    let f = |v: &Value| if v.is_null() { "n/a".to_owned() } else { v.to_string() };
    println!(
        "converge ({}): {VERIFIERS} nodes; node {RESTARTED} killed, {} envelopes ({} B each) \
         from {} gateways handed to one gossip transport in {} s ({}/s), node exits {}",
        p.size,
        catch_up["blast"]["taken"],
        catch_up["envelope_bytes_mean"],
        catch_up["blast_gateways"],
        catch_up["blast"]["hand_over_seconds"],
        catch_up["blast"]["hand_over_per_s"],
        exits.iter().filter(|e| e.is_some()).count(),
    );
    for n in g.as_array().into_iter().flatten() {
        println!(
            "  gossip ingest node {}: {} in its log in {} s = {} envelopes/s (gossip {}, synced {}, shed {})",
            n["node"],
            n["blast_in_log"],
            n["seconds"],
            n["envelopes_per_s"],
            n["gossip_accepted"],
            n["synced_accepted"],
            n["shed"]
        );
    }
    println!(
        "  catch-up node {RESTARTED}: missed {}; announced {} s, first synced {} s, all held {} s, \
         hold ended {} s after spawn = {} envelopes/s ({} from the first synced); synced accepted \
         {}, gossip accepted {}",
        catch_up["missed"],
        f(&r["announced_s"]),
        f(&r["first_synced_s"]),
        f(&r["all_held_s"]),
        f(&r["hold_ended_s"]),
        f(&r["envelopes_per_s"]),
        f(&r["sync_only_per_s"]),
        r["synced_accepted"],
        r["gossip_accepted"],
    );
    println!(
        "  catch-up node {RESTARTED}: held {} of the missed when the seal hold ended; progress {}",
        f(&r["held_at_hold_end"]),
        r["progress"]
    );
    println!("  node {RESTARTED} sync counters: {}", r["sync"]);
    println!("vouch-bench-json: {catch_up}");
    for (name, i) in [("steady", &steady["steady"]), ("idle", &steady["idle"])] {
        println!(
            "  {name} ({} s): sync {} B/min/peer, gossip {} B/min/peer (measured: {}), sync = {} % \
             of gossip on verifier links, {} % of all gossip",
            i["seconds"],
            f(&i["sync_bytes_per_min_per_peer"]),
            f(&i["gossip_bytes_per_min_per_peer"]),
            i["gossip_measured"],
            f(&i["sync_pct_of_gossip"]),
            f(&i["sync_pct_of_all_gossip"]),
        );
        for n in i["per_node"].as_array().into_iter().flatten() {
            println!("    node {}: {}", n["node"], n["sync"]);
        }
    }
    println!("vouch-bench-json: {steady}");
}
