//! Verifiers converge after a partition, and sync holds up under a flood,
//! with real `vouch node` processes on loopback:
//!
//! - a partition heals and converges: verifiers 1 and 2 know each other,
//!   verifier 3 knows neither (bootstrap lists), and gateways publish
//!   through the SDK on both sides. The partition heals when verifier 4
//!   starts bootstrapped to 1 and 3, the way a new link or a new peer
//!   joins two halves while every verifier keeps running (restarting the
//!   lone one is the crash path `convergence_e2e` covers). With a seal
//!   grace longer than the partition, each side fetches the other's
//!   envelopes by sync before the partitioned minutes seal, and then all
//!   four publish the same signed checkpoint of every one of those
//!   minutes, and agree;
//! - sync under a flood: a peer that speaks only `/vouch/1/sync` asks for
//!   spans and fetches over the protocol's bounds (refused `too_large`,
//!   not served), then floods ordinary requests; it is rate limited,
//!   penalized and banned, while a gateway's gossip to the same node is
//!   all accepted and an honest verifier keeps syncing with it unrefused.
//!
//! Waits are bounded; nothing asserts timing.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::request_response::{Event as RrEvent, Message};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId};
use serde_json::Value;
use vouch_delegation::{Eip712Network, SignedDelegation};
use vouch_net::sync::{MAX_FETCH_IDS, MAX_SPAN_MINUTES, SyncRequest, SyncResponse};
use vouch_net::PartitionSet;
use vouch_schema::{Address, Envelope, Event, TelemetryBatch};
use vouch_sdk::config::TransportConfig;
use vouch_sdk::publisher::{Publisher, PublisherSettings, Signer};
use vouch_sdk::transport::gossip::GossipTransport;
use vouch_testkit::authority::gateway_snapshot;
use vouch_testkit::cli::{Identity, Vouch, ok_json};
use vouch_testkit::node::{NodeProcess, count_in};
use vouch_testkit::{livepeer, now_ms, now_secs};
use vouch_verifier::demo::DEMO_POLICY_TOML;
use vouch_verifier::sim::{self, Network, NetworkSpec};
use vouch_verifier::store::{LogReader, RecordKind};

const VOUCH: Vouch = Vouch::at(env!("CARGO_BIN_EXE_vouch"));

/// The longest any one wait may take (a minute to seal, its grace, a slow machine).
const LIMIT: Duration = Duration::from_secs(240);

/// The seal grace of the partition test: longer than the partition and
/// the sync after it, so that no partitioned minute seals before the heal.
const GRACE_MS: u64 = 90_000;

/// How long the two sides publish apart once traffic flows on both.
const PARTITION: Duration = Duration::from_secs(15);

fn minute(ms: u64) -> u64 {
    ms / 60_000
}

/// Polls `probe` until it gives `Ok`; past [`LIMIT`], fails with `what`
/// and the last state it described.
fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + LIMIT;
    loop {
        match probe() {
            Ok(v) => return v,
            Err(state) if Instant::now() >= deadline => panic!("no {what} in time: {state}"),
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// One row of the node's `/metrics`, by its full name (labels included);
/// 0 when absent.
fn metric(node: &NodeProcess, row: &str) -> u64 {
    let (status, body) = node.get("/metrics");
    assert_eq!(status, 200, "{body}");
    let value = body.lines().find_map(|l| l.strip_prefix(row)?.strip_prefix(' '));
    value.map_or(0, |v| v.parse::<f64>().unwrap() as u64)
}

/// Envelopes taken from sync (`/v1/ingest/stats`): accepted before their
/// minute sealed, or late.
fn synced_in(stats: &Value) -> u64 {
    count_in(stats, "synced", "accept", "accepted") + count_in(stats, "synced", "accept", "late")
}

/// `/v1/checkpoints` over `minutes`.
fn checkpoints(node: &NodeProcess, minutes: &RangeInclusive<u64>) -> Value {
    let (from, to) = (minutes.start(), minutes.end() + 1);
    node.get_json(&format!("/v1/checkpoints?from={from}&to={to}"))
}

/// The node's own checkpoint of each minute it has one of: what makes two
/// verifiers' checkpoints the same (envelopes, Merkle root, sealed buckets).
fn own_checkpoints(answer: &Value) -> BTreeMap<u64, (u64, String, String)> {
    let rows = answer["minutes"].as_array().unwrap();
    rows.iter()
        .filter(|row| !row["own"].is_null())
        .map(|row| {
            let c = &row["own"];
            let text = |k: &str| c[k].as_str().unwrap().to_owned();
            (row["minute"].as_u64().unwrap(), (c["envelopes"].as_u64().unwrap(), text("root"), text("buckets")))
        })
        .collect()
}

/// The principals whose envelopes stamped in `minutes` the log of
/// `data_dir` holds.
fn logged_principals(data_dir: &Path, minutes: &RangeInclusive<u64>) -> BTreeSet<Address> {
    let mut principals = BTreeSet::new();
    for record in LogReader::open(data_dir.join("log"), 0).unwrap() {
        let record = record.unwrap();
        if record.kind != RecordKind::Envelope {
            continue;
        }
        let envelope = Envelope::decode(&record.payload).unwrap();
        if minutes.contains(&minute(envelope.id.timestamp)) {
            let batch = TelemetryBatch::decode(&envelope.content).unwrap();
            principals.insert(SignedDelegation::decode(&batch.certificate).unwrap().principal);
        }
    }
    principals
}

/// Gateways publishing go-livepeer sessions through the SDK, each over its
/// own gossip transport to one verifier, until dropped.
struct Traffic {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Traffic {
    /// `gateway` sends a healthy session on `orchestrator` every half
    /// second to the verifier at `bootstrap`, its events just past.
    fn start(routes: Vec<(sim::Identity, Address, String)>) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = routes
            .into_iter()
            .map(|(gateway, orchestrator, bootstrap)| {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || publish_sessions(&gateway, orchestrator, bootstrap, &stop))
            })
            .collect();
        Traffic { stop, threads }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn publish_sessions(gateway: &sim::Identity, orchestrator: Address, to: String, stop: &AtomicBool) {
    let transport =
        GossipTransport::start(&TransportConfig { bootstrap: vec![to], ..Default::default() })
            .unwrap();
    let settings =
        PublisherSettings { linger: Duration::from_millis(100), ..PublisherSettings::default() };
    let signer = Signer::new(gateway.delegate_key.clone(), gateway.certificate.clone());
    let publisher = Publisher::with_transport(signer, settings, Box::new(transport)).unwrap();
    let (region, orchestrator) = (gateway.region(), orchestrator.to_hex());
    for n in 0u64.. {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        // The session's last event (at t + 1.8 s) is already past.
        let t = now_ms() - 2_000;
        let rid = format!("{region}-{n}");
        for message in livepeer::session_in(region, &rid, &orchestrator, t, 800, 30.0) {
            // A full queue is counted in the publisher's stats, not fatal here.
            let _ = publisher.publish(Event::from_kafka_json(&message).unwrap());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let _ = publisher.close(Duration::from_secs(10));
}

/// The partition test's run folder: the simulated network's keys,
/// certificates and authority snapshot, and the demo policy with a long
/// seal grace.
struct Run {
    dir: tempfile::TempDir,
    network: Network,
}

impl Run {
    fn prepare(verifiers: usize) -> Run {
        let dir = tempfile::tempdir().unwrap();
        let network = Network::generate(&NetworkSpec {
            orchestrators: 3,
            regions: ["FRA", "NYC", "SIN"].map(str::to_owned).to_vec(),
            seed: 31,
            network: Eip712Network::arbitrum_one(),
            now_secs: now_secs(),
            valid_for_secs: 86_400,
            verifiers,
        })
        .unwrap();
        network.write(dir.path()).unwrap();
        let grace = format!("seal_grace_ms = {GRACE_MS}");
        let policy = DEMO_POLICY_TOML.replace("seal_grace_ms = 12000", &grace);
        assert_ne!(policy, DEMO_POLICY_TOML, "the demo policy's grace moved");
        std::fs::write(dir.path().join("policy.toml"), policy).unwrap();
        Run { dir, network }
    }

    fn data_dir(&self, n: usize) -> PathBuf {
        self.dir.path().join(format!("verifier-{n}"))
    }

    /// Verifier `n` (from 1), signing its checkpoints with its verifier
    /// delegate, dialing `bootstrap` and nobody else.
    fn verifier(&self, n: usize, bootstrap: &[String]) -> NodeProcess {
        let config = self.dir.path().join(format!("verifier-{n}.toml"));
        let text = format!(
            "[sla]\npolicy = \"policy.toml\"\n\n[checkpoint]\n\
             key = \"keys/verifier-{n}.key\"\ncertificate = \"keys/verifier-{n}.cert\"\n"
        );
        std::fs::write(&config, text).unwrap();
        let mut args = vec!["--config", config.to_str().unwrap()];
        args.extend(["--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--http-listen", "127.0.0.1:0"]);
        for b in bootstrap {
            args.extend(["--bootstrap", b.as_str()]);
        }
        let snapshot = self.dir.path().join("authority.json");
        NodeProcess::spawn_with(VOUCH, &self.data_dir(n), &snapshot, &args)
    }

    fn principal(&self, verifier: usize) -> String {
        self.network.verifiers[verifier - 1].principal().to_hex()
    }
}

#[test]
fn a_partition_heals_and_every_verifier_publishes_the_same_checkpoints() {
    let run = Run::prepare(4);
    let one = run.verifier(1, &[]);
    let two = run.verifier(2, &[one.p2p()]);
    let three = run.verifier(3, &[]);
    let gateways = &run.network.gateways;
    let [fra, nyc, sin] = [0, 1, 2].map(|i| gateways[i].principal());
    let orchestrator = |i: usize| run.network.orchestrators[i].identity.principal();
    let started = now_ms();
    let traffic = Traffic::start(vec![
        (gateways[0].clone(), orchestrator(0), one.p2p()),
        (gateways[1].clone(), orchestrator(1), two.p2p()),
        (gateways[2].clone(), orchestrator(2), three.p2p()),
    ]);
    for node in [&one, &two, &three] {
        node.wait_stats("traffic on both sides", |s| s["accepted"].as_u64().unwrap() >= 10);
    }
    let flowing = now_ms();
    std::thread::sleep(PARTITION);

    // The partition is real: each side holds its own gateways' envelopes only.
    let everything = 0..=u64::MAX;
    for n in [1, 2] {
        let held = logged_principals(&run.data_dir(n), &everything);
        assert_eq!(held, BTreeSet::from([fra, nyc]), "verifier {n} before the heal");
    }
    assert_eq!(logged_principals(&run.data_dir(3), &everything), BTreeSet::from([sin]));

    // The heal: a fourth verifier that reaches both sides.
    let healed = now_ms();
    let four = run.verifier(4, &[one.p2p(), three.p2p()]);
    let nodes = [&one, &two, &three, &four];
    let partitioned = minute(started)..=minute(healed);
    eprintln!(
        "partition over minutes {partitioned:?}: traffic from {}, healed at {}",
        flowing % 60_000,
        healed % 60_000
    );
    for (i, node) in nodes.iter().enumerate() {
        wait_for("seal of the partitioned minutes", || {
            let sealed = metric(node, "vouch_sla_sealed_end_ms");
            let done = sealed >= (partitioned.end() + 1) * 60_000;
            if done { Ok(()) } else { Err(format!("sealed to {sealed}")) }
        });
        eprintln!("verifier {} sealed the partitioned minutes", i + 1);
    }

    // Every verifier took the other side's envelopes from sync, before the seal.
    for (i, node) in nodes.iter().enumerate() {
        let stats = node.stats();
        assert!(synced_in(&stats) > 0, "verifier {} fetched nothing: {stats}", i + 1);
    }
    for n in 1..=4 {
        let held = logged_principals(&run.data_dir(n), &partitioned);
        assert_eq!(held, BTreeSet::from([fra, nyc, sin]), "verifier {n} after the heal");
    }

    // The same checkpoint of every partitioned minute, everywhere.
    let own: Vec<_> = nodes.iter().map(|n| own_checkpoints(&checkpoints(n, &partitioned))).collect();
    for m in partitioned.clone() {
        let first = own[0].get(&m).unwrap_or_else(|| panic!("verifier 1: no checkpoint of {m}"));
        if m >= minute(flowing) {
            assert!(first.0 > 0, "minute {m} had no traffic");
        }
        for (i, theirs) in own.iter().enumerate() {
            assert_eq!(theirs.get(&m), Some(first), "verifier {} differs on minute {m}", i + 1);
        }
    }

    // Each holds the other three's signed checkpoints of those minutes, all agreeing.
    for (i, node) in nodes.iter().enumerate() {
        let others: BTreeSet<String> =
            (1..=4).filter(|&n| n != i + 1).map(|n| run.principal(n)).collect();
        wait_for("agreement of the peers' checkpoints", || {
            let answer = checkpoints(node, &partitioned);
            let rows = answer["minutes"].as_array().unwrap();
            let all = rows.len() == partitioned.clone().count()
                && rows.iter().all(|r| {
                    let agreeing: BTreeSet<String> = r["peers"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|p| p["agrees"] == true)
                        .map(|p| p["verifier"].as_str().unwrap().to_owned())
                        .collect();
                    agreeing == others
                });
            if all { Ok(()) } else { Err(answer.to_string()) }
        });
        let answer = checkpoints(node, &partitioned);
        assert_eq!(answer["disagreements"], Value::Array(Vec::new()), "verifier {}", i + 1);
        assert_eq!(metric(node, "vouch_checkpoints_disagreements_total"), 0, "verifier {}", i + 1);
    }
    drop(traffic);
}

/// What the flooder heard back: the answers to its requests over the
/// bounds, and how many of its ordinary requests got each answer.
struct Flooded {
    over_bounds: Vec<SyncResponse>,
    answers: HashMap<&'static str, u64>,
}

/// The label of an answer: the refusal's reason, or `served`.
fn label(response: &SyncResponse) -> &'static str {
    match response {
        SyncResponse::Refused { reason } => reason.as_str(),
        _ => "served",
    }
}

/// Floods `node` (`/p2p/` address) with sync requests: first, one at a
/// time, those over a bound (a span from minute 0 to the end of time, a
/// span one minute over [`MAX_SPAN_MINUTES`], a fetch of one id over
/// [`MAX_FETCH_IDS`]); then the largest span allowed, eight requests at a
/// time, as fast as answers come, until `stop` is set and it has been banned.
async fn flood(node: Multiaddr, stop: &AtomicBool) -> Flooded {
    let Some(libp2p::multiaddr::Protocol::P2p(peer)) = node.iter().last() else { panic!("{node}") };
    let mut swarm = vouch_testkit::sync::raw_client();
    swarm.dial(node).unwrap();
    loop {
        if let SwarmEvent::ConnectionEstablished { .. } = swarm.select_next_some().await {
            break;
        }
    }
    let partitions = PartitionSet::all();
    let now = minute(now_ms());
    let over_bounds = [
        SyncRequest::Minutes { from: 0, to: u64::MAX, partitions },
        SyncRequest::Minutes { from: now - MAX_SPAN_MINUTES, to: now, partitions },
        SyncRequest::Fetch { ids: vec![[7; 32]; MAX_FETCH_IDS + 1] },
    ];
    let mut flooded = Flooded { over_bounds: Vec::new(), answers: HashMap::new() };
    for request in over_bounds {
        swarm.behaviour_mut().send_request(&peer, request);
        flooded.over_bounds.push(next_answer(&mut swarm, peer).await);
    }
    let largest = SyncRequest::Minutes { from: now + 1 - MAX_SPAN_MINUTES, to: now, partitions };
    let deadline = tokio::time::Instant::now() + LIMIT;
    let mut outstanding = 0;
    while !(stop.load(Ordering::SeqCst) && flooded.answers.contains_key("banned")) {
        assert!(tokio::time::Instant::now() < deadline, "answers: {:?}", flooded.answers);
        while outstanding < 8 {
            swarm.behaviour_mut().send_request(&peer, largest.clone());
            outstanding += 1;
        }
        let answer = next_answer(&mut swarm, peer).await;
        outstanding -= 1;
        *flooded.answers.entry(label(&answer)).or_default() += 1;
    }
    flooded
}

/// The next answer from `peer` to any of the swarm's requests.
async fn next_answer(
    swarm: &mut libp2p::Swarm<libp2p::request_response::Behaviour<vouch_net::sync::SyncCodec>>,
    peer: PeerId,
) -> SyncResponse {
    loop {
        match swarm.select_next_some().await {
            SwarmEvent::Behaviour(RrEvent::Message {
                peer: from,
                message: Message::Response { response, .. },
                ..
            }) if from == peer => return response,
            SwarmEvent::Behaviour(RrEvent::OutboundFailure { error, .. }) => {
                panic!("a flood request failed: {error}")
            }
            _ => {}
        }
    }
}

#[test]
fn a_sync_flood_is_refused_and_banned_while_honest_gossip_and_sync_go_on() {
    let gateway = Identity::filled(VOUCH, 0x61, 0x62);
    let work = tempfile::tempdir().unwrap();
    let snapshot = gateway_snapshot(work.path(), &[&gateway.principal]);
    let target = NodeProcess::spawn(VOUCH, &work.path().join("target"), &snapshot);
    let bootstrap = target.p2p();
    let boot = ["--bootstrap", bootstrap.as_str()];
    let listen = ["--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--http-listen", "127.0.0.1:0"];
    let honest_peer = NodeProcess::spawn_with(
        VOUCH,
        &work.path().join("honest"),
        &snapshot,
        &[&listen[..], &boot].concat(),
    );

    let stop = AtomicBool::new(false);
    let address: Multiaddr = bootstrap.parse().unwrap();
    let (flooded, sent) = std::thread::scope(|scope| {
        let flooder = scope.spawn(|| {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(flood(address, &stop))
        });
        // Meanwhile the gateway publishes three runs of eight envelopes to
        // the flooded node, by gossip; every one must be delivered.
        let publisher = scope.spawn(|| {
            let (config, events) = (gateway.one_event_per_envelope(), gateway.events());
            let run = || {
                let out = VOUCH.run(&[
                    "publish", "--config", &config, "--events", &events, "--bootstrap", &bootstrap,
                    "--timeout", "60s",
                ]);
                ok_json(&out)["stats"]["sent_envelopes"].as_u64().unwrap()
            };
            (0..3).map(|_| run()).sum::<u64>()
        });
        // Whatever the publisher did, the flood stops once it is done.
        let sent = publisher.join();
        stop.store(true, Ordering::SeqCst);
        (flooder.join().unwrap(), sent.unwrap())
    });
    assert_eq!(sent, 24);

    // Over a bound: refused as too large, not served.
    for (i, answer) in flooded.over_bounds.iter().enumerate() {
        assert_eq!(label(answer), "too_large", "request {i} over a bound: {answer:?}");
    }
    let refused = |reason: &str| {
        metric(&target, &format!("vouch_sync_requests_refused_total{{reason=\"{reason}\"}}"))
    };
    assert!(refused("too_large") >= 3);
    // The flood: over its rate, then banned; only the flooder.
    let answers = &flooded.answers;
    assert!(answers.get("rate_limited").is_some_and(|&n| n >= 1), "{answers:?}");
    assert!(answers.get("banned").is_some_and(|&n| n >= 1), "{answers:?}");
    assert!(refused("rate_limited") >= 1 && refused("banned") >= 1);
    assert!(metric(&target, "vouch_sync_penalties_total") >= 4);
    assert_eq!(metric(&target, "vouch_sync_bans_total"), 1);
    assert_eq!(metric(&target, "vouch_sync_peers_banned"), 1, "the flooder, not the honest peer");
    let served = answers.get("served").copied().unwrap_or(0);
    let total: u64 = answers.values().sum();
    assert!(served < total / 2, "most of the flood was refused: {answers:?}");

    // Honest gossip: every envelope the gateway sent accepted, none refused.
    let stats = target.wait_stats("every honest envelope", |s| s["accepted"].as_u64() >= Some(sent));
    assert_eq!(stats["accepted"].as_u64(), Some(sent), "{stats}");
    assert_eq!(stats["rejected"].as_u64(), Some(0), "{stats}");
    // The honest verifier holds them too (by gossip, or fetched), and its
    // sync with the flooded node was never refused for rate or a ban.
    honest_peer.wait_stats("the honest verifier holds them", |s| {
        s["accepted"].as_u64().unwrap() + synced_in(s) >= sent
    });
    let complete = "vouch_sync_rounds_total{outcome=\"complete\"}";
    wait_for("complete sync round of the honest verifier", || {
        let n = metric(&honest_peer, complete);
        if n > 0 { Ok(()) } else { Err(honest_peer.get("/metrics").1) }
    });
    for reason in ["rate_limited", "banned"] {
        let row = format!("vouch_sync_refusals_received_total{{reason=\"{reason}\"}}");
        assert_eq!(metric(&honest_peer, &row), 0, "{row}");
    }
    assert_eq!(metric(&honest_peer, "vouch_sync_penalties_total"), 0);
}
