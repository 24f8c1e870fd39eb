//! The libp2p gossipsub transport (DESIGN.md §5).
//!
//! [`GossipTransport::start`] spawns one OS thread (`vouch-gossip`) running a
//! single-threaded tokio runtime and the libp2p swarm every Vouch node runs
//! ([`vouch_net`]: TCP + noise + yamux, identify, and gossipsub configured
//! the way the verifiers run it: `validate_messages`, anonymous mode,
//! content-addressed ids from [`vouch_schema::topic::message_id`], no flood
//! publishing, a frame limit that fits a 64 KiB envelope). The node has an
//! ephemeral ed25519 identity: who published a message is proven by the
//! envelope signature, never by the libp2p peer id.
//!
//! The caller's side never blocks: [`Transport::send`] is a `try_send` into a
//! bounded channel ([`TransportError::Full`] when it is full). The swarm task
//! publishes each envelope on `/vouch/1/telemetry/<partition>`; an envelope
//! that no peer can take yet (no peer subscribed to its topic, or every
//! peer's queue full) waits in a bounded pending buffer, oldest dropped first
//! and counted, and is republished, in order per topic, as soon as a peer
//! subscribes to the topic (and on a 100 ms tick as a fallback).
//!
//! gossipsub itself queues each message per peer and writes it later. When
//! that queue is full, or a message waited there past the publish timeout,
//! the message is dropped and reported in a `SlowPeer` event; what is still
//! queued when a connection or the swarm goes away is lost without any
//! event. So the transport counts the bytes written on every connection
//! ([`super::wire`]) and follows each envelope until it has left: it holds
//! new envelopes in its pending buffer while every peer of their topic is
//! [`GossipOptions::max_in_flight`] envelopes behind (backpressure that never
//! reaches the caller), `flush` waits until what was handed over has left,
//! `close` lingers (bounded) for it, and every envelope lost on the way is
//! counted: refused by full queues (`queue_full`), reported by `SlowPeer`
//! (`send_failed`), or abandoned by a closing connection or transport
//! (`unsent`).
//!
//! Bootstrap peers are dialled at start and re-dialled after every failure or
//! disconnection with exponential backoff (250 ms doubling to 10 s by
//! default; reset after a connection that lasted 10 s). A bootstrap address that ends in
//! `/p2p/<peer id>` is authenticated: a different peer at that address is a
//! failed dial.
//!
//! The node publishes without subscribing (by default): it uses gossipsub's
//! fanout, picking up to `mesh_n` subscribed peers per topic. A publisher
//! that subscribed would be grafted into the verifiers' meshes but, checking
//! nothing, would never forward anyone else's messages, weakening every
//! mesh it joined, and it would receive the whole partition's traffic for
//! nothing. [`GossipOptions::subscribe`] turns subscribing on (received
//! messages are then reported `Ignore`: neither forwarded nor penalized).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, PublishError, TopicHash};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, identity};
use tokio::sync::{mpsc, oneshot};
use vouch_net::{ConnectionCaps, MESH_N, Node, NodeEvent, peer_score_thresholds};
use vouch_schema::limits::{MAX_ENVELOPE_BYTES, MAX_PARTITIONS};
use vouch_schema::topic;

use super::wire::{CountingMuxer, InFlight, Wires, publish_frame_len};
use super::{Outgoing, Transport, TransportError, TransportIo};
use crate::config::TransportConfig;

/// Tunables of the gossip transport; [`GossipOptions::default`] suits production.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GossipOptions {
    /// Envelopes the caller may hand over before the swarm task takes them
    /// (the channel bound; `send` returns [`TransportError::Full`] beyond it).
    pub channel_capacity: usize,
    /// Envelopes kept while no peer can take them; the oldest is dropped (and
    /// counted in [`GossipStats::dropped_pending`]) beyond it.
    pub pending_capacity: usize,
    /// First re-dial delay after a bootstrap peer fails or disconnects.
    pub backoff_initial: Duration,
    /// Longest re-dial delay (the delay doubles up to this).
    pub backoff_max: Duration,
    /// Subscribe to the topics published to (see the module documentation
    /// for why the default is not to).
    pub subscribe: bool,
    /// How long `close` waits for the network thread to stop after flushing.
    pub stop_timeout: Duration,
    /// Envelopes that may wait in gossipsub's send queue for one peer (of
    /// its 5,000) before new ones are held in the pending buffer instead:
    /// few enough that they leave within gossipsub's 5 s publish timeout.
    pub max_in_flight: usize,
}

impl Default for GossipOptions {
    fn default() -> Self {
        GossipOptions {
            channel_capacity: 1024,
            pending_capacity: 1024,
            backoff_initial: Duration::from_millis(250),
            backoff_max: Duration::from_secs(10),
            subscribe: false,
            stop_timeout: Duration::from_secs(2),
            max_in_flight: 512,
        }
    }
}

/// A snapshot of the gossip transport's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct GossipStats {
    /// Envelopes taken by `send`.
    pub accepted: u64,
    /// Envelopes handed to gossipsub for at least one peer.
    pub published: u64,
    /// Envelopes waiting for a peer (in the pending buffer now).
    pub pending: u64,
    /// Envelopes dropped from a full pending buffer (oldest first).
    pub dropped_pending: u64,
    /// Envelopes gossipsub already had (same topic and bytes): not re-sent.
    pub duplicates: u64,
    /// Envelopes gossipsub refused outright (e.g. too large); see `last_error`.
    pub rejected: u64,
    /// Envelopes lost because the send queue of every peer of their topic was
    /// full (gossipsub keeps a refused message as seen, so it cannot be retried).
    pub queue_full: u64,
    /// Further sends to one peer that gossipsub reported lost (`SlowPeer`): its
    /// queue was full (another peer may still have taken the envelope) or the
    /// envelope waited there past the publish timeout. Counted per peer.
    pub send_failed: u64,
    /// Envelopes still waiting when the transport closed (in its pending
    /// buffer or a peer's send queue), or in a peer's send queue when the
    /// connection to it closed (at most one count per envelope).
    pub unsent: u64,
    /// Envelopes handed to gossipsub that have not left for a peer yet (the
    /// longest backlog of any peer).
    pub in_flight: u64,
    /// Peers connected now.
    pub connected_peers: u64,
    /// The last network or publishing error, if any.
    pub last_error: Option<String>,
}

/// Publishes envelopes over libp2p gossipsub from a dedicated network thread.
#[derive(Debug)]
pub struct GossipTransport {
    tx: Option<mpsc::Sender<Outgoing>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    peer_id: PeerId,
    stop_timeout: Duration,
}

impl GossipTransport {
    /// Starts the network thread with default [`GossipOptions`]: listens on
    /// `config.listen` (if any) and dials every `config.bootstrap` address.
    pub fn start(config: &TransportConfig) -> Result<GossipTransport, TransportError> {
        GossipTransport::start_with(config, GossipOptions::default())
    }

    /// Starts the network thread with explicit options.
    pub fn start_with(
        config: &TransportConfig,
        options: GossipOptions,
    ) -> Result<GossipTransport, TransportError> {
        if options.channel_capacity == 0 || options.pending_capacity == 0 {
            return Err(TransportIo::ZeroCapacity.into());
        }
        let listen = parse_addrs(&config.listen, "listen")?;
        let bootstrap = parse_addrs(&config.bootstrap, "bootstrap")?;
        let key = identity::Keypair::generate_ed25519();
        let peer_id = key.public().to_peer_id();
        let shared = Arc::new(Shared::default());
        let (tx, rx) = mpsc::channel(options.channel_capacity);
        let (stop_tx, stop_rx) = oneshot::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let thread_shared = Arc::clone(&shared);
        let stop_timeout = options.stop_timeout;
        let thread = std::thread::Builder::new()
            .name("vouch-gossip".into())
            .spawn(move || {
                let shared = Arc::clone(&thread_shared);
                network_thread(
                    key,
                    listen,
                    bootstrap,
                    options,
                    rx,
                    stop_rx,
                    thread_shared,
                    ready_tx,
                );
                shared.running.store(false, Ordering::SeqCst);
                shared.notify();
            })
            .map_err(|e| TransportError::from(TransportIo::Spawn(e.into())))?;
        // Setup (runtime, transport, listeners) is synchronous and quick;
        // wait for its verdict so a bad listen address fails `start`.
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(TransportIo::StartFailed.into());
            }
        }
        Ok(GossipTransport {
            tx: Some(tx),
            stop: Some(stop_tx),
            thread: Some(thread),
            shared,
            peer_id,
            stop_timeout,
        })
    }

    /// This node's (ephemeral) libp2p peer id.
    pub fn peer_id(&self) -> String {
        self.peer_id.to_string()
    }

    /// The addresses this node listens on now, each ending in `/p2p/<peer id>`
    /// (empty until the listeners are up, and when none were configured).
    pub fn listen_addrs(&self) -> Vec<String> {
        self.shared.lock_listen().iter().map(ToString::to_string).collect()
    }

    /// Publishes `bytes` unchanged on the control topic (`/vouch/1/control`,
    /// where verifiers take revocations); same rules as [`Transport::send`].
    pub fn send_control(&mut self, bytes: Vec<u8>) -> Result<(), TransportError> {
        self.take(Outgoing { partition: CONTROL_PARTITION, bytes })
    }

    /// Envelopes taken that have not left yet: in the channel, in the
    /// pending buffer, or in gossipsub's queues. A caller that may wait (a
    /// command-line tool, unlike the SDK's) keeps this under
    /// [`GossipOptions::pending_capacity`] so that nothing is dropped.
    pub fn undelivered(&self) -> usize {
        self.shared.undelivered()
    }

    /// Checks the size and hands `envelope` to the network thread.
    fn take(&mut self, envelope: Outgoing) -> Result<(), TransportError> {
        let len = envelope.bytes.len();
        if len == 0 || len > MAX_ENVELOPE_BYTES {
            return Err(TransportIo::EnvelopeSize { len }.into());
        }
        let Some(tx) = self.tx.as_ref() else { return Err(TransportError::Closed) };
        // Count first, so `accepted` is never behind what the task settles.
        self.shared.accepted.fetch_add(1, Ordering::SeqCst);
        match tx.try_send(envelope) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.shared.accepted.fetch_sub(1, Ordering::SeqCst);
                Err(match e {
                    mpsc::error::TrySendError::Full(_) => TransportError::Full,
                    mpsc::error::TrySendError::Closed(_) => TransportError::Closed,
                })
            }
        }
    }

    /// The transport's counters now.
    pub fn stats(&self) -> GossipStats {
        let s = &self.shared;
        GossipStats {
            accepted: s.accepted.load(Ordering::SeqCst),
            published: s.published.load(Ordering::SeqCst),
            pending: s.pending.load(Ordering::SeqCst),
            dropped_pending: s.dropped_pending.load(Ordering::SeqCst),
            duplicates: s.duplicates.load(Ordering::SeqCst),
            rejected: s.rejected.load(Ordering::SeqCst),
            queue_full: s.queue_full.load(Ordering::SeqCst),
            send_failed: s.send_failed.load(Ordering::SeqCst),
            unsent: s.unsent.load(Ordering::SeqCst),
            in_flight: s.in_flight.load(Ordering::SeqCst),
            connected_peers: s.connected_peers.load(Ordering::SeqCst),
            last_error: s.last_error.lock().unwrap_or_else(PoisonError::into_inner).clone(),
        }
    }

    /// Signals the network thread to stop and waits for it until `until`.
    fn stop_thread(&mut self, until: Instant) -> Result<(), TransportError> {
        self.tx = None;
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(thread) = self.thread.take() else { return Ok(()) };
        let mut guard = self.shared.wake.lock().unwrap_or_else(PoisonError::into_inner);
        while self.shared.running.load(Ordering::SeqCst) {
            let now = Instant::now();
            if now >= until {
                // Detach: the thread exits on its own once the swarm drops.
                return Err(TransportIo::StopTimeout.into());
            }
            let wait = (until - now).min(Duration::from_millis(50));
            guard = match self.shared.woken.wait_timeout(guard, wait) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        drop(guard);
        thread.join().map_err(|_| TransportIo::ThreadPanicked.into())
    }
}

impl Transport for GossipTransport {
    fn send(&mut self, envelope: Outgoing) -> Result<(), TransportError> {
        if envelope.partition >= MAX_PARTITIONS {
            return Err(TransportIo::Partition { partition: envelope.partition }.into());
        }
        self.take(envelope)
    }

    /// Waits until every envelope taken so far has left for the peers it
    /// was handed to gossipsub for (or was dropped and counted), or
    /// `deadline` passes.
    fn flush(&mut self, deadline: Instant) -> Result<(), TransportError> {
        if self.tx.is_none() {
            return Err(TransportError::Closed);
        }
        let mut guard = self.shared.wake.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let undelivered = self.shared.undelivered();
            if undelivered == 0 {
                return Ok(());
            }
            if !self.shared.running.load(Ordering::SeqCst) {
                return Err(TransportError::Closed);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(TransportError::Deadline(undelivered));
            }
            // The task wakes us on progress; the short cap covers a missed wake-up.
            let wait = (deadline - now).min(Duration::from_millis(20));
            guard = match self.shared.woken.wait_timeout(guard, wait) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }

    /// Flushes until `deadline`, then stops the network thread (waiting at
    /// most [`GossipOptions::stop_timeout`] more). Envelopes that have not
    /// left when the thread stops (pending, or in gossipsub's queues) are
    /// counted in `unsent`. Closing twice is harmless.
    fn close(&mut self, deadline: Instant) -> Result<(), TransportError> {
        if self.tx.is_none() && self.thread.is_none() {
            return Ok(());
        }
        let flushed = self.flush(deadline);
        let stopped = self.stop_thread(Instant::now() + self.stop_timeout);
        flushed.and(stopped)
    }

    fn probe(&self) -> Option<super::TransportProbe> {
        let shared = Arc::clone(&self.shared);
        Some(Arc::new(move || super::TransportCounters {
            pending: shared.pending.load(Ordering::SeqCst)
                + shared.in_flight.load(Ordering::SeqCst),
            dropped: shared.dropped_pending.load(Ordering::SeqCst)
                + shared.queue_full.load(Ordering::SeqCst)
                + shared.send_failed.load(Ordering::SeqCst)
                + shared.unsent.load(Ordering::SeqCst),
        }))
    }

    fn kind(&self) -> &'static str {
        "gossip"
    }
}

impl Drop for GossipTransport {
    fn drop(&mut self) {
        // Never block in drop: signal the thread and let it finish alone.
        self.tx = None;
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// State shared between the caller's side and the network thread.
#[derive(Debug)]
struct Shared {
    accepted: AtomicU64,
    published: AtomicU64,
    pending: AtomicU64,
    dropped_pending: AtomicU64,
    duplicates: AtomicU64,
    rejected: AtomicU64,
    queue_full: AtomicU64,
    send_failed: AtomicU64,
    unsent: AtomicU64,
    in_flight: AtomicU64,
    connected_peers: AtomicU64,
    running: AtomicBool,
    last_error: Mutex<Option<String>>,
    listen: Mutex<Vec<Multiaddr>>,
    /// `flush` and `close` wait on `woken`; the network thread notifies it.
    wake: Mutex<()>,
    woken: Condvar,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            accepted: AtomicU64::new(0),
            published: AtomicU64::new(0),
            pending: AtomicU64::new(0),
            dropped_pending: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            queue_full: AtomicU64::new(0),
            send_failed: AtomicU64::new(0),
            unsent: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            connected_peers: AtomicU64::new(0),
            running: AtomicBool::new(true),
            last_error: Mutex::new(None),
            listen: Mutex::new(Vec::new()),
            wake: Mutex::new(()),
            woken: Condvar::new(),
        }
    }
}

impl Shared {
    /// Envelopes taken but not yet published or dropped (in the channel or
    /// pending), plus those published that have not left yet.
    fn undelivered(&self) -> usize {
        // Read the settled counters first: `accepted` only grows, so this
        // never undercounts.
        let settled = self.published.load(Ordering::SeqCst)
            + self.dropped_pending.load(Ordering::SeqCst)
            + self.duplicates.load(Ordering::SeqCst)
            + self.rejected.load(Ordering::SeqCst)
            + self.queue_full.load(Ordering::SeqCst);
        let accepted = self.accepted.load(Ordering::SeqCst);
        let in_flight = self.in_flight.load(Ordering::SeqCst);
        usize::try_from(accepted.saturating_sub(settled) + in_flight).unwrap_or(usize::MAX)
    }

    fn notify(&self) {
        self.woken.notify_all();
    }

    fn set_error(&self, error: String) {
        *self.last_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(error);
    }

    fn lock_listen(&self) -> std::sync::MutexGuard<'_, Vec<Multiaddr>> {
        self.listen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn parse_addrs(addrs: &[String], what: &'static str) -> Result<Vec<Multiaddr>, TransportError> {
    addrs
        .iter()
        .map(|a| {
            a.parse::<Multiaddr>().map_err(|e| {
                TransportIo::Address { what, given: a.clone(), source: e.into() }.into()
            })
        })
        .collect()
}

/// Body of the `vouch-gossip` thread: set up, report readiness, run until stopped.
#[allow(clippy::too_many_arguments)]
fn network_thread(
    key: identity::Keypair,
    listen: Vec<Multiaddr>,
    bootstrap: Vec<Multiaddr>,
    options: GossipOptions,
    rx: mpsc::Receiver<Outgoing>,
    stop: oneshot::Receiver<()>,
    shared: Arc<Shared>,
    ready: std::sync::mpsc::SyncSender<Result<(), TransportError>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(TransportIo::Runtime(e.into()).into()));
            return;
        }
    };
    let wires = Wires::default();
    runtime.block_on(async move {
        let counted = wires.clone();
        let mut swarm = match vouch_net::build_swarm_wrapping(
            key,
            format!("vouch-sdk/{}", env!("CARGO_PKG_VERSION")),
            vouch_net::all_topic_hashes(),
            ConnectionCaps::default(),
            move |peer, muxer| CountingMuxer::new(muxer, counted.register(peer)),
        ) {
            Ok(swarm) => swarm,
            Err(e) => {
                let _ = ready.send(Err(TransportIo::Swarm(e.into()).into()));
                return;
            }
        };
        for addr in listen {
            if let Err(e) = swarm.listen_on(addr.clone()) {
                let source = e.into();
                let _ = ready.send(Err(TransportIo::Listen { addr, source }.into()));
                return;
            }
        }
        let _ = ready.send(Ok(()));
        let mut task = Task::new(swarm, bootstrap, options, shared, wires);
        task.run(rx, stop).await;
    });
}

/// One configured bootstrap peer and its re-dial state.
#[derive(Debug)]
struct Bootstrap {
    addr: Multiaddr,
    /// The peer id, when the address ends in `/p2p/<peer id>`.
    peer: Option<PeerId>,
    state: DialState,
    delay: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DialState {
    /// Dial when this instant passes.
    Waiting(Instant),
    Dialing(ConnectionId),
    /// Connected to this peer since this instant.
    Connected(PeerId, Instant),
}

/// Longest the network thread keeps running after a stop while envelopes
/// are still in gossipsub's queues (well under the default stop timeout of
/// 2 s); what has not left by then is counted in `unsent`.
const LINGER_MAX: Duration = Duration::from_millis(1500);

/// After the last envelope left, how long the thread keeps the connections
/// open so the muxer and the socket pass on what they buffer.
const LINGER_QUIET: Duration = Duration::from_millis(200);

/// How often backlogs are re-read while envelopes are in flight or pending.
const BUSY_TICK: Duration = Duration::from_millis(10);

/// The internal partition number of the control topic (never a telemetry
/// partition: `send` refuses partitions from `MAX_PARTITIONS` up).
const CONTROL_PARTITION: u32 = u32::MAX;

/// A connection that lasted this long resets the re-dial backoff; shorter
/// ones (a peer that accepts and then drops us) keep backing off.
const STABLE_CONNECTION: Duration = Duration::from_secs(10);

/// What happened to one publish attempt.
enum Attempt {
    Done,
    /// No peer could take it now: keep it for later.
    Retry,
}

/// The swarm task: everything it owns lives on the network thread.
struct Task {
    swarm: Swarm<Node>,
    bootstrap: Vec<Bootstrap>,
    options: GossipOptions,
    shared: Arc<Shared>,
    /// Envelopes waiting for a peer, in arrival order.
    pending: VecDeque<Outgoing>,
    /// How many of `pending` each partition has (to keep per-topic order).
    pending_per_partition: HashMap<u32, usize>,
    topics: HashMap<u32, TopicHash>,
    subscribed: HashSet<u32>,
    /// Bytes written per connection.
    wires: Wires,
    /// Envelopes handed to gossipsub per peer, until they leave.
    in_flight: InFlight,
}

impl Task {
    fn new(
        swarm: Swarm<Node>,
        bootstrap: Vec<Multiaddr>,
        options: GossipOptions,
        shared: Arc<Shared>,
        wires: Wires,
    ) -> Task {
        let now = Instant::now();
        let bootstrap = bootstrap
            .into_iter()
            .map(|addr| {
                let peer = match addr.iter().last() {
                    Some(Protocol::P2p(peer)) => Some(peer),
                    _ => None,
                };
                Bootstrap {
                    addr,
                    peer,
                    state: DialState::Waiting(now),
                    delay: options.backoff_initial,
                }
            })
            .collect();
        Task {
            swarm,
            bootstrap,
            options,
            shared,
            pending: VecDeque::new(),
            pending_per_partition: HashMap::new(),
            topics: HashMap::new(),
            subscribed: HashSet::new(),
            wires,
            in_flight: InFlight::default(),
        }
    }

    async fn run(&mut self, mut rx: mpsc::Receiver<Outgoing>, mut stop: oneshot::Receiver<()>) {
        self.redial_due();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // After a stop (or when the caller is gone) the swarm keeps running,
        // like SO_LINGER, until what was handed to gossipsub has left (and
        // LINGER_QUIET more), at most LINGER_MAX.
        let mut stopped_at: Option<Instant> = None;
        let mut left_at: Option<Instant> = None;
        loop {
            let busy = !self.pending.is_empty() || self.in_flight.max_backlog() > 0;
            tokio::select! {
                _ = &mut stop, if stopped_at.is_none() => stopped_at = Some(Instant::now()),
                msg = rx.recv(), if stopped_at.is_none() => match msg {
                    Some(out) => self.offer(out),
                    None => stopped_at = Some(Instant::now()),
                },
                event = self.swarm.select_next_some() => self.on_event(event),
                () = tokio::time::sleep(BUSY_TICK), if busy || stopped_at.is_some() => {
                    self.settle();
                    if !self.pending.is_empty() {
                        self.drain();
                    }
                }
                _ = tick.tick() => {
                    self.redial_due();
                    if !self.pending.is_empty() {
                        self.drain();
                    }
                }
            }
            self.settle();
            self.shared.notify();
            if let Some(at) = stopped_at {
                let now = Instant::now();
                if self.in_flight.max_backlog() > 0 {
                    left_at = None;
                } else {
                    left_at.get_or_insert(now);
                }
                let quiet = left_at.is_some_and(|t| now.duration_since(t) >= LINGER_QUIET);
                if quiet || now.duration_since(at) >= LINGER_MAX {
                    break;
                }
            }
        }
        // Whatever has not left by now is lost with the swarm: count it.
        let waiting = self.pending.len() as u64;
        self.pending.clear();
        self.pending_per_partition.clear();
        self.shared.pending.store(0, Ordering::SeqCst);
        let abandoned = self.in_flight.abandon() + waiting;
        if abandoned > 0 {
            self.shared.unsent.fetch_add(abandoned, Ordering::SeqCst);
            self.shared.set_error(format!(
                "{abandoned} envelopes had not left for a peer when the transport closed"
            ));
        }
        self.shared.in_flight.store(0, Ordering::SeqCst);
        self.shared.notify();
    }

    /// Retires what left and publishes the gauge.
    fn settle(&mut self) {
        self.in_flight.settle(&self.wires);
        self.shared.in_flight.store(self.in_flight.max_backlog() as u64, Ordering::SeqCst);
    }

    fn topic(&mut self, partition: u32) -> TopicHash {
        self.topics
            .entry(partition)
            .or_insert_with(|| match partition {
                CONTROL_PARTITION => vouch_net::control_topic().hash(),
                p => vouch_net::telemetry_topic_hash(p),
            })
            .clone()
    }

    /// The peers a publish on `topic` goes to: connected, subscribed to it,
    /// and not scored below the publish threshold.
    fn recipients(&self, topic: &TopicHash) -> Vec<PeerId> {
        let gossipsub = &self.swarm.behaviour().gossipsub;
        let threshold = peer_score_thresholds().publish_threshold;
        gossipsub
            .all_peers()
            .filter(|(_, topics)| topics.contains(&topic))
            .map(|(peer, _)| *peer)
            .filter(|peer| gossipsub.peer_score(peer).is_none_or(|s| s >= threshold))
            .collect()
    }

    /// A new envelope from the caller: publish it now unless older ones of
    /// its topic are still waiting.
    fn offer(&mut self, out: Outgoing) {
        if self.options.subscribe
            && out.partition != CONTROL_PARTITION
            && self.subscribed.insert(out.partition)
        {
            let t = IdentTopic::new(topic::telemetry_topic(out.partition));
            if let Err(e) = self.swarm.behaviour_mut().gossipsub.subscribe(&t) {
                self.shared.set_error(format!("subscribing to {t}: {e}"));
            }
        }
        if self.pending_per_partition.get(&out.partition).copied().unwrap_or(0) > 0 {
            self.push_pending(out);
            return;
        }
        if let Attempt::Retry = self.try_publish(&out) {
            self.push_pending(out);
        }
    }

    fn try_publish(&mut self, out: &Outgoing) -> Attempt {
        let topic = self.topic(out.partition);
        let recipients = self.recipients(&topic);
        // Backpressure: while every peer is far behind, the envelope waits
        // here (bounded, counted) rather than in gossipsub's queues, where
        // it would time out.
        if !recipients.is_empty()
            && recipients
                .iter()
                .all(|p| self.in_flight.backlog(p) >= self.options.max_in_flight.max(1))
        {
            return Attempt::Retry;
        }
        let frame = publish_frame_len(topic.as_str(), out.bytes.len());
        let counter = match self.swarm.behaviour_mut().gossipsub.publish(topic, out.bytes.clone()) {
            Ok(_) => {
                // With more peers on the topic than a publish goes to
                // (`MESH_N`), gossipsub picks some at random, and the
                // envelope is not followed.
                if recipients.len() <= MESH_N {
                    self.in_flight.sent(&recipients, frame, &self.wires);
                }
                &self.shared.published
            }
            Err(PublishError::NoPeersSubscribedToTopic) => return Attempt::Retry,
            Err(PublishError::AllQueuesFull(n)) => {
                // gossipsub now holds the message as seen: a retry would be
                // refused as a duplicate. It is lost; count it.
                self.shared.set_error(format!("the send queues of all {n} peers are full"));
                self.in_flight.refused(&recipients);
                &self.shared.queue_full
            }
            Err(PublishError::Duplicate) => &self.shared.duplicates,
            Err(e) => {
                tracing::warn!(error = %e, "gossipsub refused an envelope");
                self.shared.set_error(format!("publish: {e}"));
                &self.shared.rejected
            }
        };
        counter.fetch_add(1, Ordering::SeqCst);
        Attempt::Done
    }

    fn push_pending(&mut self, out: Outgoing) {
        *self.pending_per_partition.entry(out.partition).or_insert(0) += 1;
        self.pending.push_back(out);
        self.shared.pending.fetch_add(1, Ordering::SeqCst);
        while self.pending.len() > self.options.pending_capacity {
            let Some(old) = self.pending.pop_front() else { break };
            self.forget_pending(old.partition);
            self.shared.dropped_pending.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn forget_pending(&mut self, partition: u32) {
        if let Some(n) = self.pending_per_partition.get_mut(&partition) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.pending_per_partition.remove(&partition);
            }
        }
        self.shared.pending.fetch_sub(1, Ordering::SeqCst);
    }

    /// Republishes pending envelopes in order; a topic that still has no
    /// peer keeps its envelopes (and later ones) for the next try.
    fn drain(&mut self) {
        let mut blocked = HashSet::new();
        let mut kept = VecDeque::with_capacity(self.pending.len());
        while let Some(out) = self.pending.pop_front() {
            if blocked.contains(&out.partition) {
                kept.push_back(out);
                continue;
            }
            match self.try_publish(&out) {
                Attempt::Done => self.forget_pending(out.partition),
                Attempt::Retry => {
                    blocked.insert(out.partition);
                    kept.push_back(out);
                }
            }
        }
        self.pending = kept;
    }

    fn on_event(&mut self, event: SwarmEvent<NodeEvent>) {
        match event {
            SwarmEvent::Behaviour(NodeEvent::Gossipsub(gossipsub::Event::Subscribed {
                peer_id,
                topic,
            })) => {
                tracing::debug!(%peer_id, %topic, "peer subscribed");
                let partition = match topic.as_str() {
                    topic::CONTROL_TOPIC => Some(CONTROL_PARTITION),
                    t => topic::telemetry_partition(t),
                };
                let waiting =
                    partition.is_some_and(|p| self.pending_per_partition.contains_key(&p));
                if waiting {
                    self.drain();
                }
            }
            SwarmEvent::Behaviour(NodeEvent::Gossipsub(gossipsub::Event::SlowPeer {
                peer_id,
                failed_messages,
            })) => {
                // Publishes are non-priority messages; priority ones are
                // subscriptions and mesh control, never envelopes.
                let failed = failed_messages.non_priority as u64;
                let new = self.in_flight.failed(&peer_id, failed);
                self.shared.send_failed.fetch_add(new, Ordering::SeqCst);
                tracing::warn!(%peer_id, ?failed_messages, "a peer could not take envelopes in time");
                self.shared.set_error(format!("{failed} envelopes could not be sent to {peer_id}"));
            }
            SwarmEvent::Behaviour(NodeEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                ..
            })) => {
                // Only when subscribed: we do not check others' envelopes, so
                // neither forward nor penalize them.
                self.swarm.behaviour_mut().gossipsub.report_message_validation_result(
                    &message_id,
                    &propagation_source,
                    MessageAcceptance::Ignore,
                );
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                let full = address.with(Protocol::P2p(*self.swarm.local_peer_id()));
                tracing::info!(address = %full, "listening");
                self.shared.lock_listen().push(full);
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                let full = address.with(Protocol::P2p(*self.swarm.local_peer_id()));
                self.shared.lock_listen().retain(|a| *a != full);
            }
            SwarmEvent::ConnectionEstablished { peer_id, connection_id, endpoint, .. } => {
                tracing::info!(%peer_id, address = %endpoint.get_remote_address(), "connected");
                let now = Instant::now();
                for b in &mut self.bootstrap {
                    if b.state == DialState::Dialing(connection_id) {
                        b.state = DialState::Connected(peer_id, now);
                    }
                }
                self.update_peer_count();
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established, cause, .. } => {
                tracing::info!(%peer_id, ?cause, "disconnected");
                if num_established == 0 {
                    // gossipsub's queue for the peer went with the connection:
                    // what its last bytes did not carry is lost.
                    self.settle();
                    let lost = self.in_flight.disconnected(&peer_id);
                    self.wires.forget(&peer_id);
                    if lost > 0 {
                        self.shared.unsent.fetch_add(lost, Ordering::SeqCst);
                        self.shared.set_error(format!(
                            "{lost} envelopes had not left for {peer_id} when it disconnected"
                        ));
                    }
                    let (now, initial, max) =
                        (Instant::now(), self.options.backoff_initial, self.options.backoff_max);
                    for b in &mut self.bootstrap {
                        let DialState::Connected(peer, since) = b.state else { continue };
                        if peer != peer_id {
                            continue;
                        }
                        if now.duration_since(since) >= STABLE_CONNECTION {
                            b.delay = initial;
                        }
                        b.state = DialState::Waiting(now + b.delay);
                        b.delay = (b.delay * 2).min(max);
                    }
                }
                self.update_peer_count();
            }
            SwarmEvent::OutgoingConnectionError { connection_id, error, .. } => {
                let max = self.options.backoff_max;
                let now = Instant::now();
                for b in &mut self.bootstrap {
                    if b.state == DialState::Dialing(connection_id) {
                        tracing::debug!(address = %b.addr, %error, retry_in = ?b.delay, "dial failed");
                        self.shared.set_error(format!("dialing {}: {error}", b.addr));
                        b.state = DialState::Waiting(now + b.delay);
                        b.delay = (b.delay * 2).min(max);
                    }
                }
            }
            _ => {}
        }
    }

    fn update_peer_count(&self) {
        let n = self.swarm.connected_peers().count() as u64;
        self.shared.connected_peers.store(n, Ordering::SeqCst);
    }

    /// Dials every bootstrap peer whose backoff has passed.
    fn redial_due(&mut self) {
        let now = Instant::now();
        let max = self.options.backoff_max;
        for b in &mut self.bootstrap {
            let DialState::Waiting(at) = b.state else { continue };
            if at > now {
                continue;
            }
            let opts = match b.peer {
                Some(peer) => DialOpts::peer_id(peer)
                    .addresses(vec![b.addr.clone()])
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .build(),
                None => DialOpts::unknown_peer_id().address(b.addr.clone()).build(),
            };
            let id = opts.connection_id();
            match self.swarm.dial(opts) {
                Ok(()) => b.state = DialState::Dialing(id),
                Err(e) => match b.peer {
                    // Already connected (it dialled us, or another address did).
                    Some(peer) if self.swarm.is_connected(&peer) => {
                        b.state = DialState::Connected(peer, now);
                    }
                    _ => {
                        self.shared.set_error(format!("dialing {}: {e}", b.addr));
                        b.state = DialState::Waiting(now + b.delay);
                        b.delay = (b.delay * 2).min(max);
                    }
                },
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::TransportKind;

    fn config(listen: &[&str], bootstrap: &[&str]) -> TransportConfig {
        TransportConfig {
            kind: TransportKind::Gossip,
            path: None,
            listen: listen.iter().map(|s| s.to_string()).collect(),
            bootstrap: bootstrap.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn bad_addresses_fail_start() {
        assert!(matches!(
            GossipTransport::start(&config(&["not a multiaddr"], &[])),
            Err(TransportError::Io(_))
        ));
        assert!(matches!(
            GossipTransport::start(&config(&[], &["/ip4/1.2.3.4/tcp/x"])),
            Err(TransportError::Io(_))
        ));
    }

    #[test]
    fn listens_and_closes() {
        let mut t = GossipTransport::start(&config(&["/ip4/127.0.0.1/tcp/0"], &[])).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while t.listen_addrs().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let addrs = t.listen_addrs();
        assert_eq!(addrs.len(), 1);
        assert!(addrs[0].ends_with(&format!("/p2p/{}", t.peer_id())), "{addrs:?}");
        assert_eq!(t.kind(), "gossip");
        t.close(Instant::now() + Duration::from_secs(5)).unwrap();
        assert_eq!(t.send(Outgoing { partition: 0, bytes: vec![1] }), Err(TransportError::Closed));
        t.close(Instant::now()).unwrap();
    }

    #[test]
    fn send_validates_and_never_blocks() {
        let options =
            GossipOptions { channel_capacity: 4, pending_capacity: 8, ..Default::default() };
        // A port that was free a moment ago: nothing listens, the transport stalls.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let bootstrap = format!("/ip4/127.0.0.1/tcp/{port}");
        let mut t = GossipTransport::start_with(&config(&[], &[&bootstrap]), options).unwrap();
        assert!(matches!(
            t.send(Outgoing { partition: 0, bytes: vec![0; MAX_ENVELOPE_BYTES + 1] }),
            Err(TransportError::Io(_))
        ));
        assert!(matches!(
            t.send(Outgoing { partition: 100, bytes: vec![1] }),
            Err(TransportError::Io(_))
        ));
        let mut taken = 0u64;
        for i in 0..200u32 {
            let started = Instant::now();
            match t.send(Outgoing { partition: 3, bytes: i.to_be_bytes().to_vec() }) {
                Ok(()) => taken += 1,
                Err(TransportError::Full) => {}
                Err(e) => panic!("{e}"),
            }
            // Generous: a try_send, not a wait on the network.
            assert!(started.elapsed() < Duration::from_secs(1));
        }
        // The task settles what it took: at most 8 pending, the rest dropped.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = t.stats();
            if s.pending + s.dropped_pending == taken || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let s = t.stats();
        assert_eq!(s.accepted, taken);
        assert_eq!(s.published, 0);
        assert!(s.pending <= 8, "{s:?}");
        assert_eq!(s.pending + s.dropped_pending, taken, "{s:?}");
        assert!(
            matches!(t.flush(Instant::now()), Err(TransportError::Deadline(n)) if n as u64 == s.pending)
        );
        drop(t);
    }
}
