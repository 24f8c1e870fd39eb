//! Real `vouch node` processes on loopback and the gossip publishers that
//! feed them, for the multi-process benchmarks. `gossip.rs` (latency) and
//! `soak.rs` (reliability under flood) include this file by path, so both
//! start nodes, issue certificates and read the committed log the same way.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k256::ecdsa::SigningKey;
use serde_json::{Value, json};
use vouch_delegation::authority::{AuthorityView, PrincipalEntry, snapshot};
use vouch_delegation::{DelegationTerms, Eip712Network, Role, SignedDelegation};
use vouch_schema::crypto::address_of;
use vouch_schema::{Address, Envelope};
use vouch_sdk::config::TransportConfig;
use vouch_sdk::{Publisher, PublisherSettings, Signer};
use vouch_verifier::store::{LogReader, RecordKind};

/// How a custom-harness bench was called: `None` when a test runner only
/// lists its tests (nextest: `--list --format terse`; answered here as one
/// smoke test named `smoke`, never an ignored one), else `Some(quick)`,
/// quick unless `--bench` asks for the full run.
pub(crate) fn bench_mode(smoke: &str) -> Option<bool> {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        if !args.iter().any(|a| a == "--ignored") {
            println!("{smoke}: test");
        }
        return None;
    }
    Some(!args.iter().any(|a| a == "--bench"))
}

pub(crate) use vouch_testkit::now_ms;

/// A deterministic secp256k1 key: `n` in the low bytes.
pub(crate) fn key(n: u32) -> SigningKey {
    vouch_testkit::keys::numbered(n)
}

/// The address of [`key`]`(n)`.
pub(crate) fn address(n: u32) -> Address {
    address_of(key(n).verifying_key())
}

/// Gateway `n`'s principal and a signer for its delegate, certified for
/// `region` (valid from ten minutes ago for a day).
pub(crate) fn gateway(n: u32, region: &str) -> (Address, Signer) {
    let principal = key(7000 + n);
    let delegate = key(9000 + n);
    let now = now_ms() / 1000;
    let terms = DelegationTerms {
        delegate: address_of(delegate.verifying_key()),
        role: Role::Gateway,
        region: region.into(),
        not_before: now - 600,
        not_after: now + 86_400,
        nonce: 1,
    };
    let cert = SignedDelegation::issue(&principal, Eip712Network::arbitrum_one(), terms).unwrap();
    (address_of(principal.verifying_key()), Signer::new(delegate, cert))
}

/// Writes an authority snapshot admitting each `(principal, role)`.
pub(crate) fn write_authority(path: &Path, principals: &[(Address, Role)]) {
    let entries = principals.iter().map(|(address, role)| PrincipalEntry {
        address: *address,
        roles: BTreeSet::from([*role]),
        stake: (*role == Role::Orchestrator).then(|| "1000000000000000000000".to_owned()),
    });
    let view = AuthorityView::new("snapshot:authority.json", entries);
    snapshot::write(path, &view, Some("benchmark principals")).unwrap();
}

/// How a node is started beyond its listen addresses.
#[derive(Debug, Clone, Default)]
pub(crate) struct NodeOptions {
    /// A `verifier.toml` to pass as `--config`.
    pub(crate) config: Option<PathBuf>,
    /// The soft `RLIMIT_NOFILE` the process starts with (`ulimit -S -n`
    /// through `/bin/sh`, the hard limit untouched); `None` inherits ours.
    pub(crate) soft_nofile: Option<u64>,
}

/// A `vouch node` child process; killed on drop.
pub(crate) struct Node {
    pub(crate) child: Child,
    pub(crate) announce: Value,
    pub(crate) data_dir: PathBuf,
    /// Where its stderr (the tracing log) goes.
    pub(crate) stderr: PathBuf,
}

impl Node {
    /// Node `n` in `dir/node<n>`, bootstrapped to `bootstrap`, on free
    /// loopback ports; returns once it announced where it listens.
    pub(crate) fn spawn(
        dir: &Path,
        n: usize,
        snapshot: &Path,
        bootstrap: &[String],
        options: &NodeOptions,
    ) -> Node {
        let data_dir = dir.join(format!("node{n}"));
        let stderr_path = dir.join(format!("node{n}.stderr"));
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let mut cmd = match options.soft_nofile {
            Some(limit) => {
                let mut sh = Command::new("/bin/sh");
                sh.args(["-c", "ulimit -S -n \"$0\" && exec \"$@\"", &limit.to_string()])
                    .arg(env!("CARGO_BIN_EXE_vouch"));
                sh
            }
            None => Command::new(env!("CARGO_BIN_EXE_vouch")),
        };
        cmd.arg("node");
        if let Some(config) = &options.config {
            cmd.arg("--config").arg(config);
        }
        cmd.arg("--data-dir").arg(&data_dir).arg("--authority-snapshot").arg(snapshot).args([
            "--p2p-listen",
            "/ip4/127.0.0.1/tcp/0",
            "--http-listen",
            "127.0.0.1:0",
        ]);
        for b in bootstrap {
            cmd.args(["--bootstrap", b]);
        }
        // Plain text in the stderr file (tracing colours it unless told not to).
        cmd.env("NO_COLOR", "1");
        let mut child = cmd.stdout(Stdio::piped()).stderr(stderr).spawn().unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        let announce: Value = serde_json::from_str(&first).unwrap_or_else(|e| {
            panic!("node {n} did not announce itself ({e}); see its stderr in {}", dir.display())
        });
        Node { child, announce, data_dir, stderr: stderr_path }
    }

    /// `n` nodes, each bootstrapped to every node started before it.
    pub(crate) fn spawn_mesh(
        dir: &Path,
        n: usize,
        snapshot: &Path,
        options: &NodeOptions,
    ) -> Vec<Node> {
        let mut nodes: Vec<Node> = Vec::new();
        for i in 0..n {
            let earlier: Vec<String> = nodes.iter().map(Node::p2p).collect();
            nodes.push(Node::spawn(dir, i, snapshot, &earlier, options));
        }
        nodes
    }

    pub(crate) fn p2p(&self) -> String {
        self.announce["p2p_listen"][0].as_str().unwrap().to_owned()
    }

    /// The HTTP API's `host:port`.
    pub(crate) fn http(&self) -> String {
        let url = self.announce["http"].as_str().unwrap();
        url.strip_prefix("http://").unwrap_or(url).to_owned()
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn rss_mib(&self) -> f64 {
        proc_status_kib(self.pid(), "VmRSS:").unwrap_or(0) as f64 / 1024.0
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `kB` field of `/proc/<pid>/status` (`VmRSS:`, `VmHWM:`), KiB.
pub(crate) fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A publisher with its own gossip transport (its own libp2p peer, as a
/// separate gateway process would have) dialling `bootstrap`.
pub(crate) fn gossip_publisher(
    signer: Signer,
    settings: PublisherSettings,
    bootstrap: &[String],
) -> Publisher {
    let transport = vouch_sdk::publisher::build_transport(&TransportConfig {
        bootstrap: bootstrap.to_vec(),
        ..TransportConfig::default()
    })
    .unwrap();
    Publisher::with_transport(signer, settings, transport).unwrap()
}

/// One publisher per signer (each its own gossip peer), sending every event
/// in its own envelope at once (one event per envelope, no linger), so an
/// envelope's fate is one event's.
pub(crate) fn one_event_publishers(
    signers: impl IntoIterator<Item = Signer>,
    bootstrap: &[String],
) -> Vec<Publisher> {
    let settings =
        PublisherSettings { max_events: 1, linger: Duration::ZERO, ..PublisherSettings::default() };
    signers.into_iter().map(|s| gossip_publisher(s, settings.clone(), bootstrap)).collect()
}

/// Follows a node's committed log: each [`LogFollower::poll`] hands over
/// every envelope committed since the last.
pub(crate) struct LogFollower {
    dir: PathBuf,
    /// Kept between polls and followed ([`LogReader::follow`]): reopening
    /// at the cursor would read the segment again from its start, which at
    /// a node's full ingest rate takes a core from the processes measured
    /// and delays when records are seen.
    reader: Option<LogReader>,
    /// The first record not yet seen, where a reader that stopped at an
    /// error (a segment removed under it, say) is reopened.
    next: u64,
}

impl LogFollower {
    pub(crate) fn new(data_dir: &Path) -> LogFollower {
        LogFollower { dir: data_dir.join("log"), reader: None, next: 0 }
    }

    /// Calls `f(envelope, record bytes, ms when seen)` for each envelope
    /// committed since the last call.
    pub(crate) fn poll(&mut self, mut f: impl FnMut(Envelope, usize, u64)) {
        if self.reader.is_none() {
            self.reader = LogReader::open(&self.dir, self.next).ok();
        }
        let Some(reader) = self.reader.as_mut() else { return };
        if reader.follow().is_err() {
            self.reader = None;
            return;
        }
        for record in reader.by_ref() {
            let Ok(record) = record else {
                self.reader = None;
                return;
            };
            self.next = record.position.index + 1;
            let visible = now_ms();
            if record.kind != RecordKind::Envelope {
                continue;
            }
            if let Ok(env) = Envelope::decode(&record.payload) {
                f(env, record.payload.len(), visible);
            }
        }
    }

    /// Envelopes in the whole log now.
    pub(crate) fn count_all(data_dir: &Path) -> u64 {
        LogReader::open(data_dir.join("log"), 0)
            .map(|r| {
                r.filter_map(Result::ok).filter(|r| r.kind == RecordKind::Envelope).count() as u64
            })
            .unwrap_or(0)
    }
}

pub(crate) fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize] as f64
}

/// Count, p50, p90, p99 and max of latencies in ms.
pub(crate) fn latency_stats(mut lat: Vec<u64>) -> Value {
    lat.sort_unstable();
    json!({
        "count": lat.len(),
        "p50_ms": percentile(&lat, 0.50),
        "p90_ms": percentile(&lat, 0.90),
        "p99_ms": percentile(&lat, 0.99),
        "max_ms": lat.last().copied().unwrap_or(0),
    })
}

/// Waits at most `limit` until every node's log holds `want` envelopes.
pub(crate) fn wait_for_logs(nodes: &[Node], want: u64, limit: Duration) {
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        if nodes.iter().all(|n| LogFollower::count_all(&n.data_dir) >= want) {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
