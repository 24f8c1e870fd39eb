//! `vouch demo`: a whole network on loopback, no setup.
//!
//! Generates principals, delegates and certificates for about twenty
//! simulated orchestrators (healthy, slow, flaky, swapped away from, and one
//! that inflates its self-reported fps), a gateway per region and a
//! load-test gateway, all with real signatures; writes the authority
//! snapshot admitting them; starts three `vouch node` processes bootstrapped
//! to each other, scoring with `sla-policy-demo.toml` (short timings, so
//! scores appear within two minutes); and publishes go-livepeer-shaped
//! sessions through the SDK's gossip transport in real time.
//!
//! Stdout gets one JSON line once the verifiers listen: `{"demo_dir",
//! "dashboard", "policy", "seed", "verifiers": [{"name", "http", "peer_id",
//! "p2p_listen", "data_dir", "config"}]}`, then nothing else; progress and
//! the live status line go to stderr. Ctrl-C (SIGINT or SIGTERM) or
//! `--duration` stops it: publishers flush, the nodes get SIGTERM and commit
//! their logs, and the folder stays for `vouch replay`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Value, json};
use vouch_delegation::Eip712Network;
use vouch_schema::{Address, Origin};
use vouch_sdk::config::TransportConfig;
use vouch_sdk::publisher::{Publisher, PublisherSettings, Signer};
use vouch_sdk::transport::gossip::GossipTransport;
use vouch_sdk::transport::{Outgoing, Transport, TransportError};
use vouch_verifier::sim::events::{self_gpu_stats, self_status};
use vouch_verifier::sim::network::{Network, NetworkSpec};
use vouch_verifier::sim::{Profile, SessionPlan, SplitMix64, Timeline, probe};

use super::loadtest::{Prober, ScheduleArgs, StrategyArg};
use super::{Outcome, now_millis, now_secs};

/// The demo's SLA policy (short timings; see the file's header).
const DEMO_POLICY_TOML: &str = include_str!("../../../schemas/policy/sla-policy-demo.toml");

/// Gateway regions of the simulated network.
const REGIONS: [&str; 3] = ["FRA", "NYC", "SIN"];

/// How long a node may take to announce itself.
const NODE_START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a node may take to exit after SIGTERM before it is killed.
const NODE_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Orchestrators report about themselves this often.
const SELF_REPORT_INTERVAL_MS: u64 = 5_000;

/// The status line is printed this often.
const STATUS_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Stop by itself after this long (default: run until Ctrl-C).
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Folder for keys, certificates, configs and the verifiers' logs; must
    /// not exist or be empty (default: a new ./vouch-demo/run-<UTC time>).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Simulated orchestrators.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=200))]
    orchestrators: u32,
    /// Verifier nodes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=9))]
    verifiers: u32,
    /// Seed of keys, stakes, sessions and probes (same seed, same network).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Time between two new gateway sessions (network-wide).
    #[arg(long, default_value = "250ms", value_parser = humantime::parse_duration)]
    session_interval: Duration,
}

pub(crate) fn run(args: DemoArgs) -> Result<Outcome> {
    let stop = Arc::new(AtomicBool::new(false));
    watch_signals(Arc::clone(&stop));
    let dir = demo_dir(args.dir.as_deref())?;
    let network = Network::generate(&NetworkSpec {
        orchestrators: args.orchestrators as usize,
        regions: REGIONS.iter().map(|r| (*r).to_owned()).collect(),
        seed: args.seed,
        network: Eip712Network::arbitrum_one(),
        now_secs: now_secs(),
        valid_for_secs: 7 * 86_400,
    })?;
    network.write(&dir)?;
    std::fs::write(dir.join("sla-policy-demo.toml"), DEMO_POLICY_TOML)
        .context("writing the demo policy")?;
    eprintln!(
        "vouch demo: {} orchestrators, {} gateways + 1 load-test gateway, {} verifiers",
        network.orchestrators.len(),
        network.gateways.len(),
        args.verifiers
    );
    eprintln!("  data folder: {}", dir.display());

    let mut nodes = Nodes::default();
    let started = nodes.start_all(&dir, args.verifiers as usize, &stop);
    if let Err(e) = started {
        nodes.stop();
        return Err(e);
    }
    let result = simulate(&args, &dir, &network, &nodes, &stop);
    eprintln!("vouch demo: stopping");
    nodes.stop();
    result?;
    eprintln!("vouch demo: stopped; data kept in {}", dir.display());
    for n in &nodes.list {
        eprintln!(
            "  audit {}: vouch replay {} --config {}",
            n.name,
            n.data_dir.join("log").display(),
            n.config.display()
        );
    }
    Ok(Outcome::Ok)
}

/// Sets `stop` on SIGINT or SIGTERM (from a small thread of its own).
pub(crate) fn watch_signals(stop: Arc<AtomicBool>) {
    let spawned = std::thread::Builder::new().name("vouch-signals".into()).spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return;
        };
        rt.block_on(async {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{SignalKind, signal};
                if let Ok(mut term) = signal(SignalKind::terminate()) {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                } else {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
            #[cfg(not(unix))]
            {
                let _ = tokio::signal::ctrl_c().await;
            }
        });
        stop.store(true, Ordering::SeqCst);
    });
    if let Err(e) = spawned {
        tracing::warn!(%e, "cannot watch signals; stop with --duration");
    }
}

fn demo_dir(given: Option<&Path>) -> Result<PathBuf> {
    let dir = match given {
        Some(d) => d.to_owned(),
        None => {
            let stamp = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
            PathBuf::from("vouch-demo").join(format!("run-{}", stamp.replace(':', "")))
        }
    };
    if dir.exists() && std::fs::read_dir(&dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        bail!(
            "{} is not empty: give --dir a new folder (the demo never mixes runs)",
            dir.display()
        );
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(std::fs::canonicalize(&dir).unwrap_or(dir))
}

/// One `vouch node` child.
struct NodeChild {
    name: String,
    child: Child,
    http: String,
    peer_id: String,
    p2p: Vec<String>,
    data_dir: PathBuf,
    config: PathBuf,
}

#[derive(Default)]
struct Nodes {
    list: Vec<NodeChild>,
}

impl Nodes {
    fn start_all(&mut self, dir: &Path, count: usize, stop: &AtomicBool) -> Result<()> {
        let exe = std::env::current_exe().context("locating the vouch binary")?;
        for i in 1..=count {
            if stop.load(Ordering::SeqCst) {
                bail!("interrupted");
            }
            let name = format!("verifier-{i}");
            let bootstrap: Vec<String> =
                self.list.iter().flat_map(|n| n.p2p.iter().cloned()).collect();
            let config = dir.join(format!("{name}.toml"));
            std::fs::write(&config, node_config(&name, &bootstrap))
                .with_context(|| format!("writing {}", config.display()))?;
            let log = std::fs::File::create(dir.join(format!("{name}.stderr.log")))
                .context("creating the node's log file")?;
            let mut command = Command::new(&exe);
            command
                .args(["node", "--config"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::from(log));
            // A process group of its own: Ctrl-C in the terminal reaches only
            // the demo, which flushes its publishers before it stops the nodes.
            #[cfg(unix)]
            std::os::unix::process::CommandExt::process_group(&mut command, 0);
            let mut child =
                command.spawn().with_context(|| format!("starting {}", exe.display()))?;
            let announce = match read_announce(&mut child) {
                Ok(a) => a,
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(e.context(format!(
                        "{name} did not start (see {})",
                        dir.join(format!("{name}.stderr.log")).display()
                    )));
                }
            };
            let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            let node = NodeChild {
                name: name.clone(),
                child,
                http: text(&announce["http"]),
                peer_id: text(&announce["peer_id"]),
                p2p: announce["p2p_listen"]
                    .as_array()
                    .map(|a| a.iter().map(text).collect())
                    .unwrap_or_default(),
                data_dir: dir.join(&name),
                config,
            };
            eprintln!("  {name}: {} (peer {})", node.http, node.peer_id);
            self.list.push(node);
        }
        Ok(())
    }

    /// SIGTERM to every node, then waits for each (killing one that hangs).
    fn stop(&mut self) {
        for n in &mut self.list {
            if matches!(n.child.try_wait(), Ok(None)) {
                let _ = Command::new("kill").args(["-TERM", &n.child.id().to_string()]).status();
            }
        }
        for n in &mut self.list {
            let deadline = Instant::now() + NODE_STOP_TIMEOUT;
            loop {
                match n.child.try_wait() {
                    Ok(Some(status)) => {
                        if !status.success() {
                            eprintln!("  {} exited with {status}", n.name);
                        }
                        break;
                    }
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    _ => {
                        eprintln!("  {} did not stop in time; killed", n.name);
                        let _ = n.child.kill();
                        let _ = n.child.wait();
                        break;
                    }
                }
            }
        }
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for n in &mut self.list {
            if matches!(n.child.try_wait(), Ok(None)) {
                let _ = n.child.kill();
                let _ = n.child.wait();
            }
        }
    }
}

fn node_config(name: &str, bootstrap: &[String]) -> String {
    let list = |v: &[String]| v.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ");
    format!(
        "# vouch demo: {name}. Paths are relative to this file.\n\
         data_dir = \"{name}\"\n\n\
         [p2p]\nlisten = [\"/ip4/127.0.0.1/tcp/0\"]\nbootstrap = [{}]\n\n\
         [http]\nlisten = \"127.0.0.1:0\"\n\n\
         [authority]\nsnapshot = \"authority.json\"\n\n\
         [sla]\n# Short timings so scores appear within two minutes; never for production.\n\
         policy = \"sla-policy-demo.toml\"\n",
        list(bootstrap)
    )
}

/// Reads the node's announce line; the rest of its stdout is drained by a thread.
fn read_announce(child: &mut Child) -> Result<Value> {
    let stdout = child.stdout.take().context("no stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next();
        let _ = tx.send(first);
        for _ in lines {}
    });
    match rx.recv_timeout(NODE_START_TIMEOUT) {
        Ok(Some(Ok(line))) => Ok(serde_json::from_str(&line)
            .with_context(|| format!("node announced {line:?}, not JSON"))?),
        Ok(_) => bail!("the node exited before announcing itself"),
        Err(_) => bail!("the node did not announce itself within {NODE_START_TIMEOUT:?}"),
    }
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

fn simulate(
    args: &DemoArgs,
    dir: &Path,
    network: &Network,
    nodes: &Nodes,
    stop: &AtomicBool,
) -> Result<()> {
    let first = nodes.list.first().context("no verifier started")?;
    let dashboard = format!("{}/", first.http);
    let announce = json!({
        "demo_dir": dir,
        "dashboard": dashboard,
        "policy": dir.join("sla-policy-demo.toml"),
        "seed": args.seed,
        "verifiers": nodes.list.iter().map(|n| json!({
            "name": n.name, "http": n.http, "peer_id": n.peer_id, "p2p_listen": n.p2p,
            "data_dir": n.data_dir, "config": n.config,
        })).collect::<Vec<_>>(),
    });
    println!("{announce}");
    let _ = std::io::stdout().flush();
    eprintln!("  dashboard: {dashboard}  (scores appear once the first minutes seal, ~1-2 min)");

    let bootstrap: Vec<String> = nodes.list.iter().flat_map(|n| n.p2p.iter().cloned()).collect();
    let transport =
        GossipTransport::start(&TransportConfig { bootstrap, ..TransportConfig::default() })?;
    let want = nodes.list.len() as u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    while transport.stats().connected_peers < want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let transport = Arc::new(Mutex::new(transport));
    let settings =
        PublisherSettings { linger: Duration::from_millis(100), ..PublisherSettings::default() };
    let publisher = |id: &vouch_verifier::sim::Identity| {
        Publisher::with_transport(
            Signer::new(id.delegate_key.clone(), id.certificate.clone()),
            settings.clone(),
            Box::new(SharedTransport(Arc::clone(&transport))),
        )
    };
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

    let result = drive(args, network, nodes, stop, &publishers, loadtest_ix, orch_ix);
    for p in publishers {
        let _ = p.close(Duration::from_secs(5));
    }
    if let Ok(t) = Arc::try_unwrap(transport) {
        let mut t = t.into_inner().unwrap_or_else(PoisonError::into_inner);
        let _ = t.close(Instant::now() + Duration::from_secs(5));
    }
    result
}

#[allow(clippy::too_many_arguments)]
fn drive(
    args: &DemoArgs,
    network: &Network,
    nodes: &Nodes,
    stop: &AtomicBool,
    publishers: &[Publisher],
    loadtest_ix: usize,
    orch_ix: usize,
) -> Result<()> {
    let start = now_millis();
    let end = args.duration.map(|d| Instant::now() + d);
    let mut rng = SplitMix64::new(args.seed ^ 0x7365_7373);
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
    let mut timeline = Timeline::new(1 << 20);
    let interval_ms = args.session_interval.as_millis().max(10) as u64;
    let mut next_session = start;
    let mut next_self_report = start;
    let mut sessions = 0u64;

    let probe_args = ScheduleArgs {
        strategy: StrategyArg::Weighted,
        n: None,
        seed: args.seed,
        budget: 4,
        interval: Duration::from_secs(2),
    };
    let targets = probe::targets_from_view(&network.authority_view())?;
    let horizon = args.duration.unwrap_or(Duration::from_secs(24 * 3600));
    let count = (horizon.as_millis() / probe_args.interval.as_millis()) as usize + 1;
    let schedule = probe::schedule(&targets, probe_args.strategy(), probe_args.params(count))?;
    let mut prober = Prober::new(schedule, start, args.seed, network.loadtest.region().to_owned());
    let backup_of = |rng: &mut SplitMix64, not: Address| {
        let pool: Vec<&Address> = healthy.iter().filter(|a| **a != not).collect();
        if pool.is_empty() { not } else { *pool[rng.below(pool.len() as u64) as usize] }
    };
    let mut last_status = Instant::now();
    let mut dropped = 0u64;

    while !stop.load(Ordering::SeqCst) && end.is_none_or(|e| Instant::now() < e) {
        let now = now_millis();
        while next_session <= now {
            let i = order[(sessions % n as u64) as usize];
            let o = &network.orchestrators[i];
            let gw = rng.below(network.gateways.len() as u64) as usize;
            let backup = backup_of(&mut rng, o.identity.principal());
            let plan = SessionPlan {
                request_id: format!("{:x}-{sessions}", args.seed),
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
            status_line(start, sessions, prober.started, dropped + timeline.dropped(), nodes);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    status_line(start, sessions, prober.started, dropped + timeline.dropped(), nodes);
    Ok(())
}

fn status_line(start: u64, sessions: u64, probes: u64, dropped: u64, nodes: &Nodes) {
    let mut line = format!(
        "[{:>4}s] sessions {sessions}, probes {probes}",
        now_millis().saturating_sub(start) / 1000
    );
    if dropped > 0 {
        line.push_str(&format!(", {dropped} events dropped (queues full)"));
    }
    for n in &nodes.list {
        match http_get_json(&n.http, "/v1/ingest/stats") {
            Some(s) => line.push_str(&format!(
                " | {}: accepted {} rejected {} ignored {}",
                n.name, s["accepted"], s["rejected"], s["ignored"]
            )),
            None => line.push_str(&format!(" | {}: unreachable", n.name)),
        }
    }
    eprintln!("{line}");
}

/// A GET over plain HTTP/1.0 (no chunking) on loopback; `None` on any failure.
pub(crate) fn http_get_json(base: &str, path: &str) -> Option<Value> {
    let host = base.strip_prefix("http://")?;
    let mut stream = TcpStream::connect(host).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut response = Vec::new();
    stream.take(16 << 20).read_to_end(&mut response).ok()?;
    let split = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    serde_json::from_slice(&response[split + 4..]).ok()
}
