//! `vouch demo`: a whole network on loopback, no setup.
//!
//! [`Demo::prepare`] generates principals, delegates and certificates for
//! the simulated orchestrators (healthy, slow, flaky, swapped away from, and
//! one that inflates its self-reported fps), a gateway per region and a
//! load-test gateway, all with real signatures ([`crate::sim::network`]), and
//! writes them with the authority snapshot admitting them and
//! `sla-policy-demo.toml` (short timings, so scores appear within two
//! minutes). [`Demo::start_verifiers`] starts the `vouch node` processes,
//! bootstrapped to each other. [`Demo::simulate`] publishes
//! go-livepeer-shaped sessions ([`crate::sim::events`]) and the load-test
//! gateway's probes ([`crate::sim::probe`]) through the SDK's gossip
//! transport in real time until stopped. [`Demo::stop_verifiers`] sends
//! them SIGTERM, so they commit their logs and the folder stays for
//! `vouch replay`.
//!
//! Nothing here prints: the command line hears of progress through the
//! callbacks and decides where it goes.

mod nodes;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vouch_delegation::Eip712Network;
use vouch_schema::{Address, Origin};
use vouch_sdk::config::TransportConfig;
use vouch_sdk::publisher::{Publisher, PublisherError, PublisherSettings, Signer};
use vouch_sdk::transport::gossip::GossipTransport;
use vouch_sdk::transport::{Outgoing, Transport, TransportError};

use crate::clock::{now_ms, now_secs};
use crate::sim::events::{self_gpu_stats, self_status};
use crate::sim::network::{Network, NetworkError, NetworkSpec};
use crate::sim::probe::{self, ProbeError, Prober, ScheduleParams, Strategy};
use crate::sim::{Identity, Profile, SessionPlan, SplitMix64, Timeline};

use nodes::{Nodes, http_get_json};
pub use nodes::{StartError, Verifier};

/// The demo's SLA policy (short timings; see the file's header).
pub const DEMO_POLICY_TOML: &str = include_str!("../../../schemas/policy/sla-policy-demo.toml");

/// The policy's file name in the run's folder.
const POLICY_FILE: &str = "sla-policy-demo.toml";

/// The NaaP-compatible policy with the demo's timings, scored beside the
/// demo policy so the dashboard can switch between them.
pub const DEMO_NAAP_POLICY_TOML: &str =
    include_str!("../../../schemas/policy/naap-quality-benchmark-demo.toml");

/// Its file name in the run's folder.
const NAAP_POLICY_FILE: &str = "naap-quality-benchmark-demo.toml";

/// Gateway regions of the simulated network.
const REGIONS: [&str; 3] = ["FRA", "NYC", "SIN"];

/// How long certificates of the simulated network stay valid.
const VALID_FOR_SECS: u64 = 7 * 86_400;

/// Orchestrators report about themselves this often.
const SELF_REPORT_INTERVAL_MS: u64 = 5_000;

/// The status line is produced this often.
const STATUS_INTERVAL: Duration = Duration::from_secs(5);

/// The load-test gateway probes every 2 s (stake-weighted, seeded) ...
const PROBE_INTERVAL_MS: u64 = 2_000;
/// ... and at most 4 times an orchestrator in any minute.
const PROBE_BUDGET_PER_MINUTE: u32 = 4;

/// Planned events waiting for their time, at most.
const TIMELINE_CAPACITY: usize = 1 << 20;

/// Why the demo cannot run. Messages are stable.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The folder holds something already.
    #[error("{} is not empty: give --dir a new folder (the demo never mixes runs)", .0.display())]
    NotEmpty(PathBuf),
    /// A file system operation failed; says which.
    #[error("{action}")]
    Io {
        /// What was being done.
        action: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Generating or writing the simulated network failed.
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// A verifier did not come up.
    #[error("{name} did not start (see {})", log.display())]
    NodeStart {
        /// Its name.
        name: String,
        /// Its stderr log.
        log: PathBuf,
        /// Why.
        #[source]
        source: StartError,
    },
    /// SIGINT or SIGTERM came while the verifiers were starting.
    #[error("interrupted")]
    Interrupted,
    /// No verifier is running to publish to.
    #[error("no verifier started")]
    NoVerifier,
    /// The gossip transport did not start.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// A simulated publisher was refused.
    #[error(transparent)]
    Publisher(#[from] PublisherError),
    /// The load-test gateway's schedule cannot be made.
    #[error(transparent)]
    Probe(#[from] ProbeError),
}

impl DemoError {
    fn io(action: String, source: std::io::Error) -> DemoError {
        DemoError::Io { action, source }
    }
}

/// What a run is made of (the `vouch demo` flags).
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The run's folder for keys, certificates, configs and the verifiers'
    /// logs; it must not exist or be empty.
    pub dir: PathBuf,
    /// The `vouch` binary, started as `vouch node`.
    pub vouch: PathBuf,
    /// Simulated orchestrators.
    pub orchestrators: usize,
    /// Verifier nodes.
    pub verifiers: usize,
    /// Seed of keys, stakes, sessions and probes (same seed, same network).
    pub seed: u64,
    /// Time between two new gateway sessions (network-wide).
    pub session_interval: Duration,
    /// Stop by itself after this long (none: until stopped).
    pub duration: Option<Duration>,
}

/// A demo run: its folder, its simulated network and its verifiers.
#[derive(Debug)]
pub struct Demo {
    options: DemoOptions,
    dir: PathBuf,
    network: Network,
    nodes: Nodes,
}

impl Demo {
    /// Creates the run's folder (refusing one that holds anything) and
    /// writes the generated network, its authority snapshot and the demo
    /// policy into it.
    pub fn prepare(options: DemoOptions) -> Result<Demo, DemoError> {
        let dir = new_folder(&options.dir)?;
        let network = Network::generate(&NetworkSpec {
            orchestrators: options.orchestrators,
            regions: REGIONS.iter().map(|r| (*r).to_owned()).collect(),
            seed: options.seed,
            network: Eip712Network::arbitrum_one(),
            now_secs: now_secs(),
            valid_for_secs: VALID_FOR_SECS,
            verifiers: options.verifiers,
        })?;
        network.write(&dir)?;
        for (file, text) in
            [(POLICY_FILE, DEMO_POLICY_TOML), (NAAP_POLICY_FILE, DEMO_NAAP_POLICY_TOML)]
        {
            std::fs::write(dir.join(file), text)
                .map_err(|e| DemoError::io(format!("writing the demo policy {file}"), e))?;
        }
        Ok(Demo { options, dir, network, nodes: Nodes::default() })
    }

    /// The run's folder (absolute where it could be made so).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The simulated network.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// The verifiers started so far.
    pub fn verifiers(&self) -> &[Verifier] {
        &self.nodes.list
    }

    /// Starts the verifier processes one by one, each bootstrapped to those
    /// before it; `started` hears of each once it announced itself.
    pub fn start_verifiers(
        &mut self,
        stop: &AtomicBool,
        mut started: impl FnMut(&Verifier),
    ) -> Result<(), DemoError> {
        let (exe, count) = (&self.options.vouch, self.options.verifiers);
        self.nodes.start_all(exe, &self.dir, count, stop, &mut started)
    }

    /// The JSON line that announces a running demo: `{"demo_dir",
    /// "dashboard", "policy", "seed", "verifiers": [{"name", "http",
    /// "peer_id", "p2p_listen", "data_dir", "config"}]}`.
    pub fn announcement(&self) -> Result<Value, DemoError> {
        Ok(json!({
            "demo_dir": self.dir,
            "dashboard": self.dashboard()?,
            "policy": self.dir.join(POLICY_FILE),
            "seed": self.options.seed,
            "verifiers": self.nodes.list.iter().map(|n| json!({
                "name": n.name, "http": n.http, "peer_id": n.peer_id, "p2p_listen": n.p2p,
                "data_dir": n.data_dir, "config": n.config,
            })).collect::<Vec<_>>(),
        }))
    }

    /// The first verifier's dashboard.
    pub fn dashboard(&self) -> Result<String, DemoError> {
        let first = self.nodes.list.first().ok_or(DemoError::NoVerifier)?;
        Ok(format!("{}/", first.http))
    }

    /// Publishes the network's traffic in real time until `stop` is set or
    /// the run's duration is over: gateway sessions round-robin over a
    /// seeded shuffle of the orchestrators, their self-reports, and the
    /// load-test gateway's probes, one SDK publisher per identity over one
    /// shared gossip transport. `status` hears a status line every few
    /// seconds and at the end.
    pub fn simulate(
        &self,
        stop: &AtomicBool,
        mut status: impl FnMut(&str),
    ) -> Result<(), DemoError> {
        if self.nodes.list.is_empty() {
            return Err(DemoError::NoVerifier);
        }
        let bootstrap: Vec<String> =
            self.nodes.list.iter().flat_map(|n| n.p2p.iter().cloned()).collect();
        let transport =
            GossipTransport::start(&TransportConfig { bootstrap, ..TransportConfig::default() })?;
        let want = self.nodes.list.len() as u64;
        let deadline = Instant::now() + Duration::from_secs(30);
        while transport.stats().connected_peers < want && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let transport = Arc::new(Mutex::new(transport));
        let settings = PublisherSettings {
            linger: Duration::from_millis(100),
            ..PublisherSettings::default()
        };
        let publisher = |id: &Identity| {
            Publisher::with_transport(
                Signer::new(id.delegate_key.clone(), id.certificate.clone()),
                settings.clone(),
                Box::new(SharedTransport(Arc::clone(&transport))),
            )
        };
        let network = &self.network;
        // Publisher indexes: gateways, then the load-test gateway, then orchestrators.
        let mut publishers = Vec::new();
        for g in &network.gateways {
            publishers.push(publisher(g)?);
        }
        let loadtest_ix = publishers.len();
        publishers.push(publisher(&network.loadtest)?);
        let orch_ix = publishers.len();
        for o in &network.orchestrators {
            publishers.push(publisher(&o.identity)?);
        }

        let result = self.drive(stop, &publishers, loadtest_ix, orch_ix, &mut status);
        for p in publishers {
            let _ = p.close(Duration::from_secs(5));
        }
        if let Ok(t) = Arc::try_unwrap(transport) {
            let mut t = t.into_inner().unwrap_or_else(PoisonError::into_inner);
            let _ = t.close(Instant::now() + Duration::from_secs(5));
        }
        result
    }

    fn drive(
        &self,
        stop: &AtomicBool,
        publishers: &[Publisher],
        loadtest_ix: usize,
        orch_ix: usize,
        status: &mut dyn FnMut(&str),
    ) -> Result<(), DemoError> {
        let (options, network) = (&self.options, &self.network);
        let start = now_ms();
        let end = options.duration.map(|d| Instant::now() + d);
        let mut rng = SplitMix64::new(options.seed ^ 0x7365_7373);
        let n = network.orchestrators.len();
        // Sessions go round-robin over a seeded shuffle, so every orchestrator
        // gets its share of attempts and the order still looks like traffic.
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let healthy: Vec<Address> = network
            .orchestrators
            .iter()
            .filter(|o| o.profile == Profile::Healthy)
            .map(|o| o.identity.principal())
            .collect();
        let mut nth = vec![0u64; n];
        let mut timeline = Timeline::new(TIMELINE_CAPACITY);
        let interval_ms = options.session_interval.as_millis().max(10) as u64;
        let mut next_session = start;
        let mut next_self_report = start;
        let mut sessions = 0u64;

        let targets = probe::targets_from_view(&network.authority_view())?;
        let horizon = options.duration.unwrap_or(Duration::from_secs(24 * 3600));
        let params = ScheduleParams {
            interval_ms: PROBE_INTERVAL_MS,
            budget_per_minute: PROBE_BUDGET_PER_MINUTE,
            count: (horizon.as_millis() / u128::from(PROBE_INTERVAL_MS)) as usize + 1,
        };
        let schedule =
            probe::schedule(&targets, Strategy::Weighted { seed: options.seed }, params)?;
        let mut prober =
            Prober::new(schedule, start, options.seed, network.loadtest.region().to_owned());
        let backup_of = |rng: &mut SplitMix64, not: Address| {
            let pool: Vec<&Address> = healthy.iter().filter(|a| **a != not).collect();
            if pool.is_empty() { not } else { *pool[rng.below(pool.len() as u64) as usize] }
        };
        let mut last_status = Instant::now();
        let mut dropped = 0u64;

        while !stop.load(Ordering::SeqCst) && end.is_none_or(|e| Instant::now() < e) {
            let now = now_ms();
            while next_session <= now {
                let i = order[(sessions % n as u64) as usize];
                let o = &network.orchestrators[i];
                let gw = rng.below(network.gateways.len() as u64) as usize;
                let backup = backup_of(&mut rng, o.identity.principal());
                let plan = SessionPlan {
                    request_id: format!("{:x}-{sessions}", options.seed),
                    orchestrator: o.identity.principal(),
                    profile: o.profile,
                    backup,
                    region: network.gateways[gw].region().to_owned(),
                    origin: Origin::Production,
                    start_ms: now,
                    nth: nth[i],
                };
                nth[i] += 1;
                sessions += 1;
                for e in plan.events(&mut rng) {
                    timeline.push(e.at_ms, gw, e.event);
                }
                next_session += interval_ms;
            }
            if next_self_report <= now {
                for (k, o) in network.orchestrators.iter().enumerate() {
                    let fps = o.profile.self_reported_fps() + (rng.unit() - 0.5);
                    timeline.push(now, orch_ix + k, self_status(o.identity.principal(), now, fps));
                    let util = o.profile.self_reported_utilization();
                    timeline.push(now, orch_ix + k, self_gpu_stats(now, util));
                }
                next_self_report += SELF_REPORT_INTERVAL_MS;
            }
            prober.plan_due(
                now,
                &mut timeline,
                loadtest_ix,
                |a| network.orchestrator(a).map_or(Profile::Healthy, |o| o.profile),
                healthy.first().copied().unwrap_or(Address::ZERO),
            );
            for (ix, event) in timeline.due(now) {
                if let Some(p) = publishers.get(ix)
                    && p.publish(event).is_err()
                {
                    dropped += 1;
                }
            }
            if last_status.elapsed() >= STATUS_INTERVAL {
                last_status = Instant::now();
                let line = self.status_line(
                    start,
                    sessions,
                    prober.started(),
                    dropped + timeline.dropped(),
                );
                status(&line);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        status(&self.status_line(start, sessions, prober.started(), dropped + timeline.dropped()));
        Ok(())
    }

    /// Elapsed time, sessions and probes so far, events dropped, and each
    /// verifier's counts (asked over its HTTP API).
    fn status_line(&self, start: u64, sessions: u64, probes: u64, dropped: u64) -> String {
        let mut line = format!(
            "[{:>4}s] sessions {sessions}, probes {probes}",
            now_ms().saturating_sub(start) / 1000
        );
        if dropped > 0 {
            line.push_str(&format!(", {dropped} events dropped (queues full)"));
        }
        for n in &self.nodes.list {
            match http_get_json(&n.http, "/v1/ingest/stats") {
                Some(s) => line.push_str(&format!(
                    " | {}: accepted {} rejected {} ignored {}",
                    n.name, s["accepted"], s["rejected"], s["ignored"]
                )),
                None => line.push_str(&format!(" | {}: unreachable", n.name)),
            }
        }
        line
    }

    /// SIGTERM to every verifier, then waits for each (killing one that
    /// hangs); `report` hears of each that exited badly or was killed.
    pub fn stop_verifiers(&mut self, mut report: impl FnMut(&str)) {
        self.nodes.stop(&mut report);
    }
}

/// Creates `dir`, which must not exist or be empty; its absolute path
/// where it can be made so.
fn new_folder(dir: &Path) -> Result<PathBuf, DemoError> {
    if dir.exists() && std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(DemoError::NotEmpty(dir.to_owned()));
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| DemoError::io(format!("creating {}", dir.display()), e))?;
    Ok(std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned()))
}

/// One gossip transport shared by every simulated publisher: a box runs one
/// libp2p node however many principals publish from it.
struct SharedTransport(Arc<Mutex<GossipTransport>>);

impl SharedTransport {
    fn lock(&self) -> std::sync::MutexGuard<'_, GossipTransport> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Transport for SharedTransport {
    fn send(&mut self, envelope: Outgoing) -> Result<(), TransportError> {
        self.lock().send(envelope)
    }

    fn flush(&mut self, deadline: Instant) -> Result<(), TransportError> {
        self.lock().flush(deadline)
    }

    /// Flushes only: the owner closes the shared transport after every publisher.
    fn close(&mut self, deadline: Instant) -> Result<(), TransportError> {
        self.lock().flush(deadline)
    }

    fn kind(&self) -> &'static str {
        "gossip"
    }
}
