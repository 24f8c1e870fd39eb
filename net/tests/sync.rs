//! Sync between real swarms on 127.0.0.1: two `GossipNode`s over in-memory
//! stores reconcile hundreds of ids across minutes and partitions; a
//! flooding requester is refused and banned while an honest peer's sync
//! completes; a peer serving garbage, or invalid envelopes, is penalized
//! and banned; and equal stores cost one small exchange a round (measured
//! on the wire through a counting TCP relay).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use libp2p::gossipsub::MessageAcceptance;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, Message};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, identity};
use tokio::time::{Instant, sleep_until};
use vouch_net::sync::{
    Id, MAX_REQUEST_BYTES, RefusedReason, RequestKind, RoundEnd, SyncRequest, SyncResponse, codec,
};
use vouch_net::{
    ConnectionCaps, GossipNode, Inbound, MemoryStore, PartitionSet, Partitions, SyncConfig,
    SyncEvent, SyncSetup, SyncStore,
};
use vouch_testkit::sync::{byte_client, raw_client};

/// Generous bound on a test's wait, for a hang only (never a timing claim).
const DEADLINE: Duration = Duration::from_secs(120);

/// A test envelope that names where it belongs, as a real one's timestamp
/// and partition would.
fn envelope(minute: u64, partition: u32, tag: &str, i: usize) -> Vec<u8> {
    format!("m{minute}p{partition}:{tag}:{i}").into_bytes()
}

fn locate(envelope: &[u8]) -> (u64, u32) {
    let s = std::str::from_utf8(envelope).unwrap();
    let (where_, _) = s.split_once(':').unwrap();
    let (m, p) = where_.trim_start_matches('m').split_once('p').unwrap();
    (m.parse().unwrap(), p.parse().unwrap())
}

/// `n` envelopes tagged `tag` over `minutes` (from 1000) and `partitions`.
fn fill(store: &MemoryStore, tag: &str, n: usize, minutes: u64, partitions: &[u32]) {
    for i in 0..n {
        let m = 1000 + i as u64 % minutes;
        let p = partitions[(i / 3) % partitions.len()];
        store.insert(m, p, envelope(m, p, tag, i));
    }
}

fn fast() -> SyncConfig {
    SyncConfig { round_interval_ms: 50, ..SyncConfig::default() }
}

fn node(store: Arc<dyn SyncStore>, partitions: &str, config: SyncConfig) -> GossipNode {
    let list: Partitions = partitions.parse().unwrap();
    let setup = SyncSetup { store, partitions: PartitionSet::from(&list), config };
    let key = identity::Keypair::generate_ed25519();
    GossipNode::with_sync(key, "test".into(), &list.topics(), ConnectionCaps::default(), setup)
        .unwrap()
}

async fn listen(n: &mut GossipNode) -> Multiaddr {
    n.listen(&["/ip4/127.0.0.1/tcp/0".parse().unwrap()]).await.unwrap().remove(0)
}

/// What a node does with what it gets: fetched envelopes go into its store
/// (the validation pipeline's place), unless `reject` says they are invalid,
/// in which case the peer is penalized. Returns a round's end, if one ended.
fn handle(
    n: &mut GossipNode,
    store: &MemoryStore,
    inbound: Inbound,
    reject: bool,
) -> Option<(PeerId, RoundEnd)> {
    match inbound {
        Inbound::Sync(SyncEvent::Fetched { peer, envelopes }) => {
            for e in envelopes {
                if reject {
                    n.penalize(&peer);
                } else {
                    let (m, p) = locate(&e);
                    store.insert(m, p, e);
                }
            }
            None
        }
        Inbound::Sync(SyncEvent::RoundEnded { peer, end, .. }) => Some((peer, end)),
        Inbound::Message { id, source, .. } => {
            n.report(&id, &source, MessageAcceptance::Ignore);
            None
        }
        Inbound::SlowPeer { .. } => None,
    }
}

fn same(a: &MemoryStore, b: &MemoryStore, span: (u64, u64), p: &PartitionSet) -> bool {
    a.minute_digests(span.0, span.1, p) == b.minute_digests(span.0, span.1, p)
}

const SPAN: (u64, u64) = (1000, 1006);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_reconcile_hundreds_of_ids_across_minutes_and_partitions() {
    let (sa, sb) = (Arc::new(MemoryStore::new()), Arc::new(MemoryStore::new()));
    fill(&sa, "both", 400, 7, &[0, 5, 42]);
    fill(&sb, "both", 400, 7, &[0, 5, 42]);
    fill(&sa, "a", 150, 6, &[0, 5, 42]);
    fill(&sb, "b", 120, 7, &[5, 42]);
    // b follows one partition fewer than a: partition 0 is a's alone.
    let only_a_0 = (0..150).filter(|i| [0, 5, 42][(i / 3) % 3] == 0).count();
    let mut a = node(sa.clone(), "0,5,42", fast());
    let mut b = node(sb.clone(), "5,42,77", fast());
    let addr = listen(&mut a).await;
    b.dial(&addr).unwrap();

    let shared: PartitionSet = [5, 42].into_iter().collect();
    let deadline = Instant::now() + DEADLINE;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    while !same(&sa, &sb, SPAN, &shared) {
        tokio::select! {
            i = a.next() => { handle(&mut a, &sa, i, false); }
            i = b.next() => { handle(&mut b, &sb, i, false); }
            _ = tick.tick() => {
                a.sync_round(SPAN.0, SPAN.1);
                b.sync_round(SPAN.0, SPAN.1);
            }
            () = sleep_until(deadline) => panic!("no convergence: {} {}", sa.len(), sb.len()),
        }
    }
    assert_eq!(sa.len(), 400 + 150 + 120);
    assert_eq!(sb.len(), 400 + 120 + 150 - only_a_0, "partition 0 is not b's");
    let (ta, tb) = (a.sync_stats().unwrap(), b.sync_stats().unwrap());
    // Each missing envelope was fetched exactly once.
    assert_eq!(ta.envelopes_fetched(), 120);
    assert_eq!(tb.envelopes_fetched(), 150 - only_a_0 as u64);
    assert!(ta.requests_served(RequestKind::Fetch) >= 1);
    assert_eq!(ta.penalties() + tb.penalties(), 0, "honest peers are not penalized");
    let text = vouch_net::metrics::encode_one(ta);
    assert!(text.contains("vouch_sync_envelopes_fetched_total 120\n"), "{text}");
}

/// A round cut by its fetch budget is followed by the next at once, not
/// after the round interval: with an interval far longer than the test,
/// catching up on 400 envelopes 64 a round still completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catching_up_goes_on_round_after_round_without_waiting() {
    let (sa, sb) = (Arc::new(MemoryStore::new()), Arc::new(MemoryStore::new()));
    fill(&sb, "b", 400, 7, &[8, 9]);
    let slow = SyncConfig {
        round_interval_ms: 3_600_000,
        max_fetch_per_round: 64,
        ..SyncConfig::default()
    };
    let mut a = node(sa.clone(), "8,9", slow);
    let mut b = node(sb.clone(), "8,9", fast());
    let addr = listen(&mut b).await;
    a.dial(&addr).unwrap();
    let deadline = Instant::now() + DEADLINE;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut ends = Vec::new();
    while sa.len() < 400 {
        tokio::select! {
            i = a.next() => ends.extend(handle(&mut a, &sa, i, false).map(|(_, end)| end)),
            i = b.next() => { handle(&mut b, &sb, i, false); }
            _ = tick.tick() => { a.sync_round(SPAN.0, SPAN.1); }
            () = sleep_until(deadline) => panic!("{} of 400 after {ends:?}", sa.len()),
        }
    }
    assert!(ends.len() >= 400 / 64, "{ends:?}");
    assert!(ends.iter().all(|e| *e == RoundEnd::Budget), "{ends:?}");
    assert_eq!(a.sync_stats().unwrap().rounds(RoundEnd::Budget), ends.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_requester_is_refused_and_banned_while_an_honest_peer_syncs() {
    let ss = Arc::new(MemoryStore::new());
    fill(&ss, "s", 300, 7, &[1, 2, 3]);
    let sh = Arc::new(MemoryStore::new());
    let mut server = node(ss.clone(), "1-3", fast());
    let mut honest = node(sh.clone(), "1-3", fast());
    let addr = listen(&mut server).await;
    let server_id = server.local_peer_id();
    honest.dial(&addr).unwrap();
    let mut flooder = raw_client();
    flooder.dial(addr).unwrap();

    // Two requests over a bound, then as many ordinary ones as the flooder
    // can send, eight at a time.
    let partitions = PartitionSet::all();
    let huge = SyncRequest::Minutes { from: 0, to: u64::MAX, partitions };
    let many = SyncRequest::Fetch { ids: vec![[7; 32]; 300] };
    let ordinary = SyncRequest::Minutes { from: 1000, to: 1006, partitions };
    let mut queue: Vec<SyncRequest> = vec![ordinary; 400];
    queue.extend([huge, many]);
    let total = queue.len();
    let (mut connected, mut outstanding, mut answered) = (false, 0, 0);
    let mut got = std::collections::HashMap::<&str, usize>::new();
    let shared = PartitionSet::all();
    let deadline = Instant::now() + DEADLINE;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut synced = false;
    while !(synced && answered == total) {
        while connected
            && outstanding < 8
            && let Some(r) = queue.pop()
        {
            flooder.behaviour_mut().send_request(&server_id, r.into());
            outstanding += 1;
        }
        tokio::select! {
            i = server.next() => { handle(&mut server, &ss, i, false); }
            i = honest.next() => { handle(&mut honest, &sh, i, false); }
            e = flooder.select_next_some() => match e {
                SwarmEvent::ConnectionEstablished { .. } => connected = true,
                SwarmEvent::Behaviour(request_response::Event::Message {
                    message: Message::Response { response, .. }, ..
                }) => {
                    outstanding -= 1;
                    answered += 1;
                    let label = match response {
                        SyncResponse::Refused { reason } => reason.as_str(),
                        _ => "answered",
                    };
                    *got.entry(label).or_default() += 1;
                }
                SwarmEvent::Behaviour(request_response::Event::OutboundFailure { error, .. }) => {
                    panic!("the flooder's request failed: {error}")
                }
                _ => {}
            },
            _ = tick.tick() => {
                honest.sync_round(SPAN.0, SPAN.1);
                synced = same(&ss, &sh, SPAN, &shared);
            }
            () = sleep_until(deadline) => panic!("stuck: {got:?} {} {}", sh.len(), answered),
        }
    }
    // The flood was bounded: over a bound, then over the rate, then banned.
    let stats = server.sync_stats().unwrap();
    assert!(got.get("answered").is_some_and(|&n| n >= 1), "{got:?}");
    assert!(got.get("rate_limited").is_some_and(|&n| n >= 1), "{got:?}");
    assert!(got.get("banned").is_some_and(|&n| n >= 1), "{got:?}");
    assert!(stats.requests_refused(RefusedReason::TooLarge) >= 2);
    assert!(stats.requests_refused(RefusedReason::Banned) >= 1);
    assert!(stats.penalties() >= 4);
    assert_eq!(stats.banned(), 1, "the flooder, not the honest peer");
    assert!(got["answered"] < total / 2, "most of the flood was refused: {got:?}");
    // Meanwhile the honest peer synced everything and was never refused.
    assert_eq!(sh.len(), 300);
    let hs = honest.sync_stats().unwrap();
    assert_eq!(hs.refusals_received(RefusedReason::Banned), 0);
    assert_eq!(hs.refusals_received(RefusedReason::RateLimited), 0);
    assert_eq!(hs.penalties(), 0);
}

/// libp2p's request-response behaviour tells nobody of a request it could
/// not read, so the codec hands such bytes up as a request of their own:
/// each is counted and penalized like any other break of the protocol, never
/// answered, and enough of them ban the peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_that_are_not_a_request_are_counted_penalized_and_then_banned() {
    let ss = Arc::new(MemoryStore::new());
    fill(&ss, "s", 30, 7, &[1, 2, 3]);
    let mut server = node(ss.clone(), "1-3", fast());
    let addr = listen(&mut server).await;
    let server_id = server.local_peer_id();
    let mut client = byte_client();
    client.dial(addr).unwrap();

    // Over the request bound; not CBOR; CBOR but not a request.
    let not_requests = [
        vec![0xa1; 2 * MAX_REQUEST_BYTES],
        vec![0xff, 0x00],
        codec::encode(&SyncResponse::Ids { ids: Vec::new(), truncated: false }, 64).unwrap(),
    ];
    let probe = SyncRequest::Ids { minute: 1000, partition: 1, after: None };
    let probe = codec::encode(&probe, MAX_REQUEST_BYTES).unwrap();
    // Each malformed message is followed by a well-formed probe, until the
    // probe is refused as banned.
    let (mut connected, mut waiting, mut probe_next) = (false, false, false);
    let (mut sent, mut failed) = (0usize, 0usize);
    let deadline = Instant::now() + DEADLINE;
    loop {
        if connected && !waiting {
            let next = if probe_next {
                probe.clone()
            } else {
                sent += 1;
                not_requests[sent % not_requests.len()].clone()
            };
            client.behaviour_mut().send_request(&server_id, next);
            waiting = true;
        }
        tokio::select! {
            i = server.next() => { handle(&mut server, &ss, i, false); }
            e = client.select_next_some() => match e {
                SwarmEvent::ConnectionEstablished { .. } => connected = true,
                SwarmEvent::Behaviour(request_response::Event::Message {
                    message: Message::Response { response, .. }, ..
                }) => {
                    assert!(probe_next, "a malformed request was answered: {response:?}");
                    (waiting, probe_next) = (false, false);
                    if response == (SyncResponse::Refused { reason: RefusedReason::Banned }) {
                        break;
                    }
                    assert!(!matches!(response, SyncResponse::Refused { .. }), "{response:?}");
                }
                SwarmEvent::Behaviour(request_response::Event::OutboundFailure { error, .. }) => {
                    assert!(!probe_next, "a probe failed: {error}");
                    (waiting, probe_next) = (false, true);
                    failed += 1;
                }
                _ => {}
            },
            () = sleep_until(deadline) => panic!("no ban: {sent} sent, {failed} failed"),
        }
    }
    assert_eq!(failed, sent, "none answered");
    let stats = server.sync_stats().unwrap();
    assert!(sent >= 4, "a ban takes four penalties, {sent} sent");
    assert_eq!(stats.malformed_requests(), sent as u64, "each counted");
    assert_eq!(stats.penalties(), sent as u64, "each penalized, nothing else");
    assert_eq!(stats.banned(), 1);
    assert_eq!(stats.requests_refused(RefusedReason::Banned), 1);
    assert_eq!(stats.requests_served(RequestKind::Ids), sent as u64 - 1);
}

/// A store that lists its ids honestly but serves other bytes for them.
struct Liar(MemoryStore);

impl SyncStore for Liar {
    fn minute_digests(
        &self,
        from: u64,
        to: u64,
        p: &PartitionSet,
    ) -> Vec<(u64, vouch_net::Digest)> {
        self.0.minute_digests(from, to, p)
    }
    fn partition_digests(&self, minute: u64, p: &PartitionSet) -> Vec<(u32, vouch_net::Digest)> {
        self.0.partition_digests(minute, p)
    }
    fn ids(&self, minute: u64, partition: u32, after: Option<&Id>, max: usize) -> Vec<Id> {
        self.0.ids(minute, partition, after, max)
    }
    fn missing(&self, ids: &[Id]) -> Vec<Id> {
        self.0.missing(ids)
    }
    fn envelopes(&self, ids: &[Id], max_bytes: usize) -> Vec<Vec<u8>> {
        let mut out = self.0.envelopes(ids, max_bytes);
        for e in &mut out {
            e.push(b'!');
        }
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_serving_garbage_is_penalized_then_banned() {
    let liar = MemoryStore::new();
    fill(&liar, "l", 20, 2, &[4]);
    let mut g = node(Arc::new(Liar(liar)), "4", fast());
    let sc = Arc::new(MemoryStore::new());
    let mut c = node(sc.clone(), "4", fast());
    let addr = listen(&mut g).await;
    let g_id = g.local_peer_id();
    c.dial(&addr).unwrap();
    let stats = c.sync_stats().unwrap();
    let deadline = Instant::now() + DEADLINE;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut misbehaved = 0;
    while stats.banned() == 0 {
        tokio::select! {
            i = g.next() => { handle(&mut g, &MemoryStore::new(), i, false); }
            i = c.next() => {
                if let Some((peer, end)) = handle(&mut c, &sc, i, false) {
                    assert_eq!((peer, end), (g_id, RoundEnd::Misbehaved));
                    misbehaved += 1;
                }
            }
            _ = tick.tick() => { c.sync_round(SPAN.0, SPAN.1); }
            () = sleep_until(deadline) => panic!("not banned after {misbehaved} rounds"),
        }
    }
    assert!(misbehaved >= 4, "{misbehaved}");
    assert!(sc.is_empty(), "nothing it served was taken");
    assert_eq!(stats.envelopes_fetched(), 0);
    let score = c.peer_score(&g_id).unwrap();
    assert!(score <= vouch_net::peer_score_thresholds().graylist_threshold, "{score}");
    // Banned: no more rounds with it.
    assert_eq!(c.sync_round(SPAN.0, SPAN.1), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_envelopes_the_node_reports_ban_their_server() {
    let sg = Arc::new(MemoryStore::new());
    fill(&sg, "g", 30, 2, &[4]);
    let mut g = node(sg.clone(), "4", fast());
    let sc = Arc::new(MemoryStore::new());
    let mut c = node(sc.clone(), "4", fast());
    let addr = listen(&mut g).await;
    c.dial(&addr).unwrap();
    let (cs, gs) = (c.sync_stats().unwrap(), g.sync_stats().unwrap());
    let deadline = Instant::now() + DEADLINE;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    // c rejects all it fetches (30 penalties: banned); g then syncs with c
    // and is refused.
    while gs.refusals_received(RefusedReason::Banned) == 0 {
        tokio::select! {
            i = g.next() => { handle(&mut g, &sg, i, false); }
            i = c.next() => { handle(&mut c, &sc, i, true); }
            _ = tick.tick() => {
                c.sync_round(SPAN.0, SPAN.1);
                g.sync_round(SPAN.0, SPAN.1);
            }
            () = sleep_until(deadline) => panic!("g was not refused"),
        }
    }
    assert_eq!(cs.banned(), 1);
    assert!(cs.penalties() >= 4);
    assert!(sc.is_empty());
}

/// A TCP relay on 127.0.0.1 to `to` that counts the bytes it carries both
/// ways (what sync costs on the wire: noise, yamux and stream negotiation
/// included).
async fn counting_relay(to: std::net::SocketAddr) -> (u16, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let bytes = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&bytes);
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let Ok(outbound) = tokio::net::TcpStream::connect(to).await else { continue };
            let (ri, wi) = inbound.into_split();
            let (ro, wo) = outbound.into_split();
            tokio::spawn(pipe(ri, wo, Arc::clone(&counter)));
            tokio::spawn(pipe(ro, wi, Arc::clone(&counter)));
        }
    });
    (port, bytes)
}

async fn pipe(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    counter: Arc<AtomicU64>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 || w.write_all(&buf[..n]).await.is_err() {
            break;
        }
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
    let _ = w.shutdown().await;
}

/// The steady state: both stores equal over 7 open minutes × 3 partitions ×
/// 1,200 ids. A round is one `Minutes` exchange and nothing more; prints
/// what a round costs per peer, payload and on the wire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equal_stores_cost_one_small_exchange_a_round() {
    const PER_CELL: usize = 1200;
    let (sa, sb) = (Arc::new(MemoryStore::new()), Arc::new(MemoryStore::new()));
    for m in SPAN.0..=SPAN.1 {
        for p in [3, 30, 60] {
            for i in 0..PER_CELL {
                sa.insert(m, p, envelope(m, p, "x", i));
                sb.insert(m, p, envelope(m, p, "x", i));
            }
        }
    }
    let mut a = node(sa.clone(), "3,30,60", fast());
    let mut b = node(sb.clone(), "3,30,60", fast());
    let addr = listen(&mut b).await;
    let b_id = b.local_peer_id();
    let Some(Protocol::Tcp(port)) = addr.iter().nth(1) else { panic!("{addr}") };
    let (relay, wire) = counting_relay(([127, 0, 0, 1], port).into()).await;
    let via: Multiaddr = format!("/ip4/127.0.0.1/tcp/{relay}/p2p/{b_id}").parse().unwrap();
    a.dial(&via).unwrap();

    const ROUNDS: u64 = 20;
    let (ta, tb) = (a.sync_stats().unwrap(), b.sync_stats().unwrap());
    let deadline = Instant::now() + DEADLINE;
    let mut tick = tokio::time::interval(Duration::from_millis(60));
    let (mut done, mut start) = (0u64, None);
    while done < ROUNDS {
        tokio::select! {
            i = a.next() => {
                if let Some((_, end)) = handle(&mut a, &sa, i, false) {
                    assert_eq!(end, RoundEnd::Complete);
                    if start.is_some() {
                        done += 1;
                    }
                }
            }
            i = b.next() => { handle(&mut b, &sb, i, false); }
            _ = tick.tick() => {
                // Measure from the first round on (identify and the
                // gossipsub subscriptions have gone through by then).
                if a.sync_round(SPAN.0, SPAN.1) == 1 && start.is_none() {
                    start = Some((wire.load(Ordering::Relaxed), ta.bytes_sent() + ta.bytes_received()));
                }
            }
            () = sleep_until(deadline) => panic!("{done} rounds"),
        }
    }
    let (wire0, payload0) = start.unwrap();
    let payload = (ta.bytes_sent() + ta.bytes_received() - payload0) as u64 / ROUNDS;
    let on_wire = (wire.load(Ordering::Relaxed) - wire0) / ROUNDS;
    assert_eq!(ta.requests_made(RequestKind::Minutes), ROUNDS);
    for k in [RequestKind::Partitions, RequestKind::Ids, RequestKind::Fetch] {
        assert_eq!(ta.requests_made(k), 0, "{k:?}");
    }
    assert_eq!(tb.requests_served(RequestKind::Minutes), ROUNDS);
    // 7 digests of ~45 bytes and the framing of two small CBOR messages.
    assert!(payload < 1024, "{payload} bytes of payload a round");
    let gossip_per_minute = 3 * PER_CELL as u64 * 2_000;
    let rounds_per_minute = 60_000 / SyncConfig::default().round_interval_ms;
    println!(
        "steady state, 7 minutes × 3 partitions × {PER_CELL} ids: {payload} B payload and \
         {on_wire} B on the wire per round per peer; at a round every {} s that is {} B/min \
         per peer, {:.3}% of {gossip_per_minute} B/min of gossip (2 KB envelopes)",
        SyncConfig::default().round_interval_ms / 1000,
        on_wire * rounds_per_minute,
        100.0 * (on_wire * rounds_per_minute) as f64 / gossip_per_minute as f64,
    );
}
