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
//!   minutes, agree, and serve the same scores. (A minute that seals on
//!   one side before the heal is not promised to converge: the other
//!   side's envelopes reach it late, are logged, counted `late` and not
//!   scored, and the differing checkpoints are reported as a
//!   disagreement. This test keeps every partitioned minute open.)
//! - sync under a flood: one peer sends `/vouch/1/sync` messages that are
//!   not messages (too long, not CBOR, the wrong shape) until it is
//!   banned; another asks for spans and fetches over the protocol's bounds
//!   (refused `too_large`, not served), then floods ordinary requests and
//!   is rate limited, penalized and banned. Meanwhile the node stays
//!   healthy, a gateway's gossip to it is all accepted, and an honest
//!   verifier keeps syncing with it unrefused.
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
use libp2p::request_response::{self, Event as RrEvent, Message};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm};
use serde_json::Value;
use vouch_delegation::{Eip712Network, SignedDelegation};
use vouch_net::PartitionSet;
use vouch_net::sync::{
    MAX_FETCH_IDS, MAX_REQUEST_BYTES, MAX_SPAN_MINUTES, RefusedReason, SyncRequest, SyncResponse,
    codec,
};
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
/// the sync after it, so that no partitioned minute seals before the heal
/// (the first one may end just after the traffic starts). Every partitioned
/// minute seals a grace after its end, so this is most of the test's time.
const GRACE_MS: u64 = 60_000;

/// How long the two sides publish apart once traffic flows on both.
const PARTITION: Duration = Duration::from_secs(10);

/// The partition test's pace of sync rounds with each peer (the default is
/// 5 s): the heal's fetches take a few rounds, passed on verifier to
/// verifier, and must land well inside [`GRACE_MS`].
const ROUND_INTERVAL_MS: u64 = 1_000;

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

/// Envelopes taken from sync (`/v1/ingest/stats`) before their minute
/// sealed.
fn synced_on_time(stats: &Value) -> u64 {
    count_in(stats, "synced", "accept", "accepted")
}

/// Envelopes taken from sync (`/v1/ingest/stats`): accepted before their
/// minute sealed, or late.
fn synced_in(stats: &Value) -> u64 {
    synced_on_time(stats) + count_in(stats, "synced", "accept", "late")
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
            (
                row["minute"].as_u64().unwrap(),
                (c["envelopes"].as_u64().unwrap(), text("root"), text("buckets")),
            )
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
                std::thread::spawn(move || {
                    publish_sessions(&gateway, orchestrator, bootstrap, &stop)
                })
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
             key = \"keys/verifier-{n}.key\"\ncertificate = \"keys/verifier-{n}.cert\"\n\n\
             [sync]\nround_interval_ms = {ROUND_INTERVAL_MS}\n"
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
    // (1 and 2 pass their gateways' envelopes to each other by gossip, or
    // fetch them by sync: waited for, the other side's never allowed.)
    let everything = 0..=u64::MAX;
    for n in [1, 2] {
        wait_for(&format!("both gateways of its side on verifier {n}"), || {
            let held = logged_principals(&run.data_dir(n), &everything);
            assert!(!held.contains(&sin), "verifier {n} reached the other side before the heal");
            if held == BTreeSet::from([fra, nyc]) { Ok(()) } else { Err(format!("{held:?}")) }
        });
    }
    assert_eq!(logged_principals(&run.data_dir(3), &everything), BTreeSet::from([sin]));
    let alone = three.stats();
    assert_eq!(synced_in(&alone), 0, "verifier 3 had no one to sync with: {alone}");

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
        assert!(synced_on_time(&stats) > 0, "verifier {} fetched nothing: {stats}", i + 1);
        assert!(metric(node, "vouch_sync_envelopes_fetched_total") > 0, "verifier {}", i + 1);
        let complete = metric(node, "vouch_sync_rounds_total{outcome=\"complete\"}");
        assert!(complete > 0, "verifier {}: no complete sync round", i + 1);
    }
    for n in 1..=4 {
        let held = logged_principals(&run.data_dir(n), &partitioned);
        assert_eq!(held, BTreeSet::from([fra, nyc, sin]), "verifier {n} after the heal");
    }

    // The same checkpoint of every partitioned minute, everywhere.
    let own: Vec<_> =
        nodes.iter().map(|n| own_checkpoints(&checkpoints(n, &partitioned))).collect();
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

    // The same scores, once all four serve the same closed window (it
    // covers the partition: the traffic began less than five minutes ago).
    let query = "/v1/sla/orchestrators?window=5m";
    wait_for("the same scores everywhere", || {
        let answers: Vec<Value> = nodes.iter().map(|n| n.get_json(query)).collect();
        let ends: Vec<&Value> = answers.iter().map(|a| &a["window"]["end_ms"]).collect();
        if ends.iter().any(|e| *e != ends[0]) {
            return Err(format!("window ends {ends:?}"));
        }
        assert!(ends[0].as_u64().unwrap() >= (partitioned.end() + 1) * 60_000);
        let scored = answers[0]["orchestrators"].as_array().unwrap();
        assert_eq!(scored.len(), 3, "every side's orchestrator scored: {}", answers[0]);
        for (i, a) in answers.iter().enumerate() {
            assert_eq!(a["orchestrators"], answers[0]["orchestrators"], "verifier {}", i + 1);
        }
        Ok(())
    });
    drop(traffic);
}

/// What the flooders heard back: how many messages that are not sync
/// messages the first sent before it was banned, the answers to the
/// second's requests over the bounds, and how many of its ordinary
/// requests got each answer.
struct Flooded {
    malformed: u64,
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

/// The peer id at the end of a `/p2p/` address.
fn peer_of(address: &Multiaddr) -> PeerId {
    match address.iter().last() {
        Some(libp2p::multiaddr::Protocol::P2p(peer)) => peer,
        _ => panic!("no peer id in {address}"),
    }
}

/// Dials `address` and waits for the connection.
async fn connect<C>(swarm: &mut Swarm<request_response::Behaviour<C>>, address: Multiaddr)
where
    C: request_response::Codec + Clone + Send + 'static,
{
    swarm.dial(address).unwrap();
    loop {
        if let SwarmEvent::ConnectionEstablished { .. } = swarm.select_next_some().await {
            return;
        }
    }
}

/// The next outcome of any of the swarm's requests to `peer`: its answer,
/// or why none came.
async fn next_outcome<C>(
    swarm: &mut Swarm<request_response::Behaviour<C>>,
    peer: PeerId,
) -> Result<SyncResponse, String>
where
    C: request_response::Codec<Response = SyncResponse> + Clone + Send + 'static,
{
    loop {
        match swarm.select_next_some().await {
            SwarmEvent::Behaviour(RrEvent::Message {
                peer: from,
                message: Message::Response { response, .. },
                ..
            }) if from == peer => return Ok(response),
            SwarmEvent::Behaviour(RrEvent::OutboundFailure { error, .. }) => {
                return Err(error.to_string());
            }
            _ => {}
        }
    }
}

/// Sends `node` (`/p2p/` address) messages that are not sync messages, one
/// at a time, each followed by a well-formed request, until that request
/// is refused as banned; returns how many it sent. None gets an answer.
async fn send_malformed(node: Multiaddr) -> u64 {
    let peer = peer_of(&node);
    let mut swarm = vouch_testkit::sync::byte_client();
    connect(&mut swarm, node).await;
    let probe = SyncRequest::Ids { minute: minute(now_ms()), partition: 0, after: None };
    let probe = codec::encode(&probe, MAX_REQUEST_BYTES).unwrap();
    let mut truncated = probe.clone();
    truncated.pop();
    let mut trailing = probe.clone();
    trailing.push(0);
    let not_messages = [
        // Over the request bound.
        vec![0xa1; 2 * MAX_REQUEST_BYTES],
        // Not CBOR.
        vec![0xff, 0x00],
        // Cut short, and with bytes after the message.
        truncated,
        trailing,
        // CBOR, but not a request.
        codec::encode(&SyncResponse::Ids { ids: Vec::new(), truncated: false }, 64).unwrap(),
    ];
    let deadline = tokio::time::Instant::now() + LIMIT;
    for n in 1u64.. {
        assert!(tokio::time::Instant::now() < deadline, "{n} malformed messages, no ban");
        let bytes = not_messages[(n as usize - 1) % not_messages.len()].clone();
        swarm.behaviour_mut().send_request(&peer, bytes);
        let outcome = next_outcome(&mut swarm, peer).await;
        assert!(outcome.is_err(), "a malformed request was answered: {outcome:?}");
        swarm.behaviour_mut().send_request(&peer, probe.clone());
        match next_outcome(&mut swarm, peer).await {
            Ok(SyncResponse::Refused { reason: RefusedReason::Banned }) => return n,
            Ok(SyncResponse::Refused { reason }) => panic!("probe {n} refused: {reason:?}"),
            Ok(_) => {}
            Err(e) => panic!("the probe after {n} malformed messages failed: {e}"),
        }
    }
    unreachable!()
}

/// Floods `node` (`/p2p/` address) with well-formed sync requests: first,
/// one at a time, those over a bound (a span from minute 0 to the end of
/// time, a span one minute over [`MAX_SPAN_MINUTES`], a fetch of one id
/// over [`MAX_FETCH_IDS`]); then the largest span allowed, eight requests
/// at a time, as fast as answers come, until `stop` is set and it has been
/// banned.
async fn flood(
    node: Multiaddr,
    stop: &AtomicBool,
) -> (Vec<SyncResponse>, HashMap<&'static str, u64>) {
    let peer = peer_of(&node);
    let mut swarm = vouch_testkit::sync::raw_client();
    connect(&mut swarm, node).await;
    let partitions = PartitionSet::all();
    let now = minute(now_ms());
    let over_bounds = [
        SyncRequest::Minutes { from: 0, to: u64::MAX, partitions },
        SyncRequest::Minutes { from: now - MAX_SPAN_MINUTES, to: now, partitions },
        SyncRequest::Fetch { ids: vec![[7; 32]; MAX_FETCH_IDS + 1] },
    ];
    let mut answered = Vec::new();
    for request in over_bounds {
        swarm.behaviour_mut().send_request(&peer, request.into());
        answered.push(next_outcome(&mut swarm, peer).await.unwrap());
    }
    let largest = SyncRequest::Minutes { from: now + 1 - MAX_SPAN_MINUTES, to: now, partitions };
    let deadline = tokio::time::Instant::now() + LIMIT;
    let mut answers = HashMap::new();
    let mut outstanding = 0;
    while !(stop.load(Ordering::SeqCst) && answers.contains_key("banned")) {
        assert!(tokio::time::Instant::now() < deadline, "answers: {answers:?}");
        while outstanding < 8 {
            swarm.behaviour_mut().send_request(&peer, largest.clone().into());
            outstanding += 1;
        }
        let answer = next_outcome(&mut swarm, peer).await.unwrap();
        outstanding -= 1;
        *answers.entry(label(&answer)).or_default() += 1;
    }
    (answered, answers)
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
            let malformed = runtime.block_on(send_malformed(address.clone()));
            let (over_bounds, answers) = runtime.block_on(flood(address, &stop));
            Flooded { malformed, over_bounds, answers }
        });
        // Meanwhile the gateway publishes three runs of eight envelopes to
        // the flooded node, by gossip; every one must be delivered.
        let publisher = scope.spawn(|| {
            let events = gateway.events();
            let run = || {
                let out =
                    gateway.publish_each_command(&events, &bootstrap, "60s").output().unwrap();
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
    eprintln!("banned after {} malformed; flood answers {:?}", flooded.malformed, flooded.answers);

    // The node is up and answering through it all.
    let (status, body) = target.get("/healthz");
    assert_eq!(status, 200, "{body}");
    let refused = |reason: &str| {
        metric(&target, &format!("vouch_sync_requests_refused_total{{reason=\"{reason}\"}}"))
    };
    // Messages that are not sync messages: never answered, each counted
    // and penalized, and four of them (a penalty each) ban the peer.
    assert!(flooded.malformed >= 4, "banned after {} malformed messages", flooded.malformed);
    assert!(refused("malformed") >= flooded.malformed, "{}", flooded.malformed);
    // Over a bound: refused as too large, not served.
    for (i, answer) in flooded.over_bounds.iter().enumerate() {
        assert_eq!(label(answer), "too_large", "request {i} over a bound: {answer:?}");
    }
    assert!(refused("too_large") >= 3);
    // The flood: over its rate, then banned; only the two flooders.
    let answers = &flooded.answers;
    assert!(answers.get("rate_limited").is_some_and(|&n| n >= 1), "{answers:?}");
    assert!(answers.get("banned").is_some_and(|&n| n >= 1), "{answers:?}");
    assert!(refused("rate_limited") >= 1 && refused("banned") >= 2);
    assert!(metric(&target, "vouch_sync_penalties_total") >= flooded.malformed + 4);
    assert_eq!(metric(&target, "vouch_sync_bans_total"), 2);
    assert_eq!(metric(&target, "vouch_sync_peers_banned"), 2, "the flooders, not the honest peer");
    let served = answers.get("served").copied().unwrap_or(0);
    let total: u64 = answers.values().sum();
    assert!(served < total / 2, "most of the flood was refused: {answers:?}");

    // Honest gossip: every envelope the gateway sent accepted, none refused.
    let stats =
        target.wait_stats("every honest envelope", |s| s["accepted"].as_u64() >= Some(sent));
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
