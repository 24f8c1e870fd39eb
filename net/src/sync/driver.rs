//! Sync inside the swarm's task: the server side (admission, answers on
//! blocking threads) and the client side (a [`Reconciler`] per peer in a
//! round, paced, its steps on blocking threads), and penalties.
//!
//! Every store call runs on tokio's blocking pool, never on the swarm's
//! task: answering a fetch reads envelopes from the verifier's log on disk,
//! and the index behind the digests is shared with the ingest worker. The
//! swarm's task only admits, dispatches and collects ([`Done`]); a request
//! waits for its answer at most the request timeout, and the number of
//! answers being computed is capped (`max_serving`), as is the number of
//! rounds (`max_syncing_peers`, one request outstanding each).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use libp2p::PeerId;
use libp2p::request_response::{self, OutboundFailure, OutboundRequestId, ResponseChannel};

use super::codec::{CodecError, RequestFrame};
use super::penalty::{Penalties, PenaltyLimits};
use super::reconciler::{FetchClaims, Misbehaviour, Next, Outcome, Reconciler, RoundLimits};
use super::server::{Bucket, Gate, GateLimits, Turned, answer};
use super::stats::{FailureKind, SyncStats};
use super::wire::{
    Id, PROTOCOL, PartitionSet, RefusedReason, RequestKind, SyncRequest, SyncResponse,
};
use super::{RoundEnd, SyncConfig, SyncEvent, SyncStore};
use crate::Node;

/// Penalty for a request over the peer's rate: forty refused requests (past
/// the burst) ban a flooder, while an honest client, which paces itself
/// below the server's rate, is never refused.
const RATE_PENALTY: f64 = 0.1;

/// Penalty for a request or answer that breaks the protocol (over a bound,
/// not CBOR, an envelope not asked for), and for each invalid envelope.
pub(crate) const PROTOCOL_PENALTY: f64 = 1.0;

/// Blocking work finished.
pub(crate) enum Done {
    /// An answer to an inbound request (`None`: the store panicked).
    Served {
        channel: ResponseChannel<SyncResponse>,
        kind: RequestKind,
        response: Option<SyncResponse>,
    },
    /// A round's step (`None`: the store panicked).
    Stepped { peer: PeerId, step: Option<Box<Step>> },
}

/// A reconciler and what it made of an answer.
pub(crate) type Step = (Reconciler, Result<Outcome, Misbehaviour>);

/// What a round waits for.
#[derive(Debug)]
enum Waiting {
    /// The answer to this request.
    Answer(OutboundRequestId),
    /// Its step on a blocking thread (the reconciler is there).
    Step,
    /// A token of the peer's pacing bucket, to send this request.
    Token(SyncRequest, Instant),
}

/// A round in progress with one peer.
#[derive(Debug)]
struct Round {
    /// `None` while a step runs on a blocking thread.
    reconciler: Option<Reconciler>,
    waiting: Waiting,
}

/// A connected peer that speaks `/vouch/1/sync`.
#[derive(Debug)]
struct SyncPeer {
    last_round: Option<Instant>,
    /// Paces our requests to it below its serving rate.
    bucket: Bucket,
}

/// The sync state of a [`crate::GossipNode`].
pub(crate) struct SyncDriver {
    config: SyncConfig,
    own: PartitionSet,
    store: Arc<dyn SyncStore>,
    stats: Arc<SyncStats>,
    claims: Arc<Mutex<FetchClaims>>,
    gate: Gate,
    penalties: Penalties,
    peers: HashMap<PeerId, SyncPeer>,
    rounds: HashMap<PeerId, Round>,
    work: FuturesUnordered<BoxFuture<'static, Done>>,
    /// Events for the owner, handed out before the swarm is polled again
    /// (at most two per finished step).
    pub(crate) events: VecDeque<SyncEvent>,
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The request-response behaviour of `/vouch/1/sync` with `config`'s
/// request timeout and streams per connection, counting bytes in `stats`.
pub(crate) fn behaviour(
    config: &SyncConfig,
    stats: Arc<SyncStats>,
) -> request_response::Behaviour<super::SyncCodec> {
    super::protocol_behaviour(
        stats,
        ms(config.request_timeout_ms),
        config.max_streams_per_connection,
    )
}

impl SyncDriver {
    pub(crate) fn new(
        config: SyncConfig,
        own: PartitionSet,
        store: Arc<dyn SyncStore>,
        stats: Arc<SyncStats>,
    ) -> SyncDriver {
        let gate = Gate::new(GateLimits {
            rate: config.serve_rate,
            burst: f64::from(config.serve_burst),
            max_serving: config.max_serving,
            max_peers: config.max_peers,
        });
        let penalties = Penalties::new(PenaltyLimits {
            ban_at: config.ban_at,
            ban_for: ms(config.ban_ms),
            decay_to_tenth: Duration::from_secs(600),
            max_peers: config.max_peers,
        });
        let claims = FetchClaims::new(ms(config.refetch_after_ms), config.max_claims);
        SyncDriver {
            config,
            own,
            store,
            stats,
            claims: Arc::new(Mutex::new(claims)),
            gate,
            penalties,
            peers: HashMap::new(),
            rounds: HashMap::new(),
            work: FuturesUnordered::new(),
            events: VecDeque::new(),
        }
    }

    pub(crate) fn stats(&self) -> Arc<SyncStats> {
        Arc::clone(&self.stats)
    }

    /// Gives up the fetch claims on `ids`.
    pub(crate) fn release(&mut self, ids: impl IntoIterator<Item = Id>) {
        let mut claims = self.claims.lock().unwrap_or_else(PoisonError::into_inner);
        for id in ids {
            claims.release(&id);
        }
    }

    /// Connected peers known to speak sync.
    pub(crate) fn peers(&self) -> usize {
        self.peers.len()
    }

    /// The next finished blocking work, or pending forever when none runs.
    pub(crate) async fn next_done(&mut self) -> Done {
        if self.work.is_empty() {
            return std::future::pending().await;
        }
        match self.work.next().await {
            Some(done) => done,
            None => std::future::pending().await,
        }
    }

    /// When the earliest paced request may go.
    pub(crate) fn next_wake(&self) -> Option<Instant> {
        self.rounds
            .values()
            .filter_map(|r| match r.waiting {
                Waiting::Token(_, at) => Some(at),
                _ => None,
            })
            .min()
    }

    fn update_gauges(&self, now: Instant) {
        self.stats.set_gauges(self.gate.serving(), self.rounds.len(), self.penalties.banned(now));
    }

    /// A peer said (identify) which protocols it speaks.
    pub(crate) fn identified(&mut self, peer: PeerId, protocols: &[libp2p::StreamProtocol]) {
        if !protocols.contains(&PROTOCOL) || self.peers.contains_key(&peer) {
            return;
        }
        if self.peers.len() >= self.config.max_peers {
            self.stats.peers_were_full();
            return;
        }
        let bucket = Bucket::full(f64::from(self.config.client_burst), Instant::now());
        self.peers.insert(peer, SyncPeer { last_round: None, bucket });
    }

    /// The last connection to `peer` closed. Its round, if any, ends when
    /// its outstanding request fails.
    pub(crate) fn disconnected(&mut self, peer: &PeerId) {
        self.peers.remove(peer);
    }

    /// Starts a round over `from..=to` with each sync peer that is not in
    /// one, not banned and not synced with for the round interval, up to
    /// `max_syncing_peers` rounds at once, least recently synced first.
    /// Also decays penalties into gossipsub's scores. Returns the rounds
    /// started.
    pub(crate) fn start_rounds(&mut self, node: &mut Node, from: u64, to: u64) -> usize {
        let now = Instant::now();
        for (peer, score) in self.penalties.decay(now) {
            node.gossipsub.set_application_score(&peer, score);
        }
        let interval = ms(self.config.round_interval_ms);
        let room = self.config.max_syncing_peers.saturating_sub(self.rounds.len());
        let mut due: Vec<(Option<Instant>, PeerId)> = self
            .peers
            .iter()
            .filter(|(p, s)| {
                !self.rounds.contains_key(*p)
                    && !self.penalties.is_banned(p, now)
                    && s.last_round.is_none_or(|t| now.saturating_duration_since(t) >= interval)
            })
            .map(|(p, s)| (s.last_round, *p))
            .collect();
        due.sort_unstable();
        let limits = RoundLimits { max_fetch: self.config.max_fetch_per_round };
        let mut started = 0;
        for (_, peer) in due.into_iter().take(room) {
            let Some((reconciler, request)) = Reconciler::start(from, to, self.own, limits) else {
                break;
            };
            if let Some(p) = self.peers.get_mut(&peer) {
                p.last_round = Some(now);
            }
            let round = Round { reconciler: Some(reconciler), waiting: Waiting::Step };
            self.rounds.insert(peer, round);
            self.send(node, peer, request, now);
            started += 1;
        }
        self.update_gauges(now);
        started
    }

    /// Sends `request` to `peer` if its pacing bucket allows, or holds it
    /// until a token is due ([`SyncDriver::wake`]).
    fn send(&mut self, node: &mut Node, peer: PeerId, request: SyncRequest, now: Instant) {
        let (rate, burst) = (self.config.client_rate, f64::from(self.config.client_burst));
        let Some(sync_peer) = self.peers.get_mut(&peer) else {
            // Disconnected meanwhile.
            self.end_round(peer, RoundEnd::Failed);
            return;
        };
        let Some(round) = self.rounds.get_mut(&peer) else { return };
        if !sync_peer.bucket.take(rate, burst, now) {
            let at = sync_peer.bucket.next_token(rate, burst, now);
            round.waiting = Waiting::Token(request, at);
            return;
        }
        let Some(behaviour) = node.sync.as_mut() else { return };
        self.stats.made(request.kind());
        round.waiting = Waiting::Answer(behaviour.send_request(&peer, request.into()));
    }

    /// Sends the paced requests whose token is due.
    pub(crate) fn wake(&mut self, node: &mut Node) {
        let now = Instant::now();
        let due: Vec<PeerId> = self
            .rounds
            .iter()
            .filter(|(_, r)| matches!(r.waiting, Waiting::Token(_, at) if at <= now))
            .map(|(p, _)| *p)
            .collect();
        for peer in due {
            let Some(round) = self.rounds.get_mut(&peer) else { continue };
            if let Waiting::Token(request, _) = std::mem::replace(&mut round.waiting, Waiting::Step)
            {
                self.send(node, peer, request, now);
            }
        }
    }

    /// Ends `peer`'s round with `end`: the ids it still had queued are
    /// released, and the owner is told.
    /// A round cut short by its fetch budget after fetching something is
    /// due again at once (catching up goes on at the pace of the requests,
    /// not of the round interval); one the claim bound stopped before it
    /// fetched anything waits the interval like any other.
    fn end_round(&mut self, peer: PeerId, end: RoundEnd) {
        let Some(round) = self.rounds.remove(&peer) else { return };
        let counts = match round.reconciler {
            Some(mut r) => {
                r.abandon(&mut self.claims.lock().unwrap_or_else(PoisonError::into_inner));
                r.counts()
            }
            None => Default::default(),
        };
        if end == RoundEnd::Budget
            && counts.fetched > 0
            && let Some(p) = self.peers.get_mut(&peer)
        {
            p.last_round = None;
        }
        self.stats.compared(counts.ids_compared);
        self.stats.recently_fetched(counts.recently_fetched);
        for _ in 0..counts.claims_full {
            self.stats.claims_were_full();
        }
        self.stats.round_ended(end);
        self.update_gauges(Instant::now());
        self.events.push_back(SyncEvent::RoundEnded { peer, end, counts });
    }

    /// Penalizes `peer` by `weight`; mirrors the score into gossipsub.
    pub(crate) fn penalize(&mut self, node: &mut Node, peer: PeerId, weight: f64) {
        let now = Instant::now();
        let p = self.penalties.add(peer, weight, now);
        self.stats.penalized();
        if p.evicted {
            self.stats.peers_were_full();
        }
        node.gossipsub.set_application_score(&peer, p.score);
        if p.newly_banned {
            self.stats.banned_now();
            tracing::warn!(%peer, score = p.score, "peer banned from sync for a while");
        }
        self.update_gauges(now);
    }

    /// Handles an event of the request-response behaviour.
    pub(crate) fn on_event(
        &mut self,
        node: &mut Node,
        event: request_response::Event<RequestFrame, SyncResponse>,
    ) {
        use request_response::{Event, Message};
        match event {
            Event::Message { peer, message: Message::Request { request, channel, .. }, .. } => {
                match request {
                    RequestFrame::Request(request) => self.on_request(node, peer, request, channel),
                    // Not answered: dropping the channel closes the stream.
                    RequestFrame::Malformed(e) => self.on_malformed(node, peer, &e),
                }
            }
            Event::Message {
                peer, message: Message::Response { request_id, response }, ..
            } => {
                self.on_response(peer, request_id, response);
            }
            Event::OutboundFailure { peer, request_id, error, .. } => {
                self.on_failure(node, peer, request_id, error);
            }
            Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "sync request not answered");
            }
            Event::ResponseSent { .. } => {}
        }
    }

    fn refuse(
        &self,
        node: &mut Node,
        channel: ResponseChannel<SyncResponse>,
        reason: RefusedReason,
    ) {
        self.stats.refused(reason);
        if let Some(behaviour) = node.sync.as_mut() {
            let _ = behaviour.send_response(channel, SyncResponse::Refused { reason });
        }
    }

    /// A peer sent bytes that are not a request (see [`RequestFrame`]).
    fn on_malformed(&mut self, node: &mut Node, peer: PeerId, e: &CodecError) {
        tracing::debug!(%peer, %e, "malformed sync request");
        self.stats.malformed_request();
        self.penalize(node, peer, PROTOCOL_PENALTY);
    }

    fn on_request(
        &mut self,
        node: &mut Node,
        peer: PeerId,
        request: SyncRequest,
        channel: ResponseChannel<SyncResponse>,
    ) {
        let now = Instant::now();
        if self.penalties.is_banned(&peer, now) {
            return self.refuse(node, channel, RefusedReason::Banned);
        }
        if let Err(turned) = self.gate.take_token(peer, now) {
            match turned {
                Turned::RateLimited => self.penalize(node, peer, RATE_PENALTY),
                Turned::PeersFull => self.stats.peers_were_full(),
            }
            return self.refuse(node, channel, turned.reason());
        }
        if let Err(reason) = request.check() {
            tracing::debug!(%peer, ?request, %reason, "sync request out of bounds");
            self.penalize(node, peer, PROTOCOL_PENALTY);
            return self.refuse(node, channel, reason);
        }
        if !self.gate.start_serving() {
            return self.refuse(node, channel, RefusedReason::Busy);
        }
        let (store, own, kind) = (Arc::clone(&self.store), self.own, request.kind());
        let task = tokio::task::spawn_blocking(move || answer(&*store, &own, request));
        self.work.push(Box::pin(async move {
            Done::Served { channel, kind, response: task.await.ok() }
        }));
        self.update_gauges(now);
    }

    fn on_response(&mut self, peer: PeerId, id: OutboundRequestId, response: SyncResponse) {
        let Some(round) = self.rounds.get_mut(&peer) else { return };
        if !matches!(round.waiting, Waiting::Answer(w) if w == id) {
            return;
        }
        if let SyncResponse::Refused { reason } = &response {
            self.stats.refusal_received(*reason);
        }
        if self.penalties.is_banned(&peer, Instant::now()) {
            return self.end_round(peer, RoundEnd::Misbehaved);
        }
        let Some(mut reconciler) = round.reconciler.take() else { return };
        round.waiting = Waiting::Step;
        let (store, claims) = (Arc::clone(&self.store), Arc::clone(&self.claims));
        let task = tokio::task::spawn_blocking(move || {
            let mut claims = claims.lock().unwrap_or_else(PoisonError::into_inner);
            let result = reconciler.on_response(response, &*store, &mut claims, Instant::now());
            (reconciler, result)
        });
        self.work.push(Box::pin(async move {
            Done::Stepped { peer, step: task.await.ok().map(Box::new) }
        }));
    }

    fn on_failure(
        &mut self,
        node: &mut Node,
        peer: PeerId,
        id: OutboundRequestId,
        error: OutboundFailure,
    ) {
        let ours = self
            .rounds
            .get(&peer)
            .is_some_and(|r| matches!(r.waiting, Waiting::Answer(w) if w == id));
        let kind = match &error {
            OutboundFailure::Timeout => FailureKind::Timeout,
            OutboundFailure::ConnectionClosed | OutboundFailure::DialFailure => FailureKind::Closed,
            OutboundFailure::UnsupportedProtocols => FailureKind::Unsupported,
            OutboundFailure::Io(e) if CodecError::from_io(e).is_some() => FailureKind::Protocol,
            OutboundFailure::Io(_) => FailureKind::Io,
        };
        self.stats.failure(kind);
        tracing::debug!(%peer, %error, "sync request failed");
        match kind {
            FailureKind::Protocol => self.penalize(node, peer, PROTOCOL_PENALTY),
            FailureKind::Unsupported => {
                self.peers.remove(&peer);
            }
            _ => {}
        }
        if ours {
            let end =
                if kind == FailureKind::Protocol { RoundEnd::Misbehaved } else { RoundEnd::Failed };
            self.end_round(peer, end);
        }
    }

    /// Takes finished blocking work: sends an answer, or moves a round on.
    pub(crate) fn on_done(&mut self, node: &mut Node, done: Done) {
        match done {
            Done::Served { channel, kind, response } => {
                self.gate.served();
                self.update_gauges(Instant::now());
                let Some(behaviour) = node.sync.as_mut() else { return };
                let Some(response) = response else {
                    tracing::error!(kind = kind.as_str(), "the sync store failed answering");
                    return;
                };
                if behaviour.send_response(channel, response).is_ok() {
                    self.stats.served(kind);
                }
            }
            Done::Stepped { peer, step } => {
                let Some((reconciler, result)) = step.map(|s| *s) else {
                    tracing::error!(%peer, "the sync store failed in a round");
                    return self.end_round(peer, RoundEnd::Failed);
                };
                let Some(round) = self.rounds.get_mut(&peer) else { return };
                round.reconciler = Some(reconciler);
                match result {
                    Err(m) => {
                        tracing::warn!(%peer, %m, "sync peer misbehaved");
                        self.penalize(node, peer, PROTOCOL_PENALTY);
                        self.end_round(peer, RoundEnd::Misbehaved);
                    }
                    Ok(Outcome { fetched, next }) => {
                        if !fetched.is_empty() {
                            self.stats.fetched(fetched.len());
                            self.events.push_back(SyncEvent::Fetched { peer, envelopes: fetched });
                        }
                        match next {
                            Next::Request(request) => {
                                self.send(node, peer, request, Instant::now())
                            }
                            Next::Done(end) => self.end_round(peer, end),
                        }
                    }
                }
            }
        }
    }
}
