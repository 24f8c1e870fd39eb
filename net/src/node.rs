//! The receiving side that `vouch node` and `vouch subscribe` share: a swarm
//! subscribed to a set of topics that hands every message to its owner for
//! a verdict (gossipsub forwards nothing before it, DESIGN.md §5), and the
//! connection bookkeeping both do the same way. A verifier's node also runs
//! sync ([`crate::sync`], [`GossipNode::with_sync`]) in the same task.

use std::collections::HashSet;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;
use libp2p::connection_limits::Exceeded;
use libp2p::gossipsub::{
    self, FailedMessages, IdentTopic, MessageAcceptance, MessageId, TopicHash,
};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{DialError, ListenError, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, TransportError, identify, identity};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use crate::metrics;
use crate::sync::{self, SyncDriver, SyncEvent, SyncSetup, SyncStats};
use crate::{ConnectionCaps, NetError, Node, NodeEvent, build_swarm_with_caps};

/// What the swarm hands its owner. Everything else (connections, identify,
/// gossipsub's mesh upkeep) [`GossipNode::next`] handles itself.
#[derive(Debug)]
pub enum Inbound {
    /// A message on a subscribed topic. It is neither forwarded nor
    /// penalized until the owner reports a verdict ([`GossipNode::report`]).
    Message {
        /// gossipsub's (content-addressed) message id.
        id: MessageId,
        /// The peer it came from, which the verdict scores.
        source: PeerId,
        /// The topic it arrived on.
        topic: TopicHash,
        /// The message: an encoded envelope (or a revocation, on the control topic).
        data: Vec<u8>,
    },
    /// Messages gossipsub could not send to `peer` in time (its queue was
    /// full, or they waited past the publish timeout): lost for that peer.
    SlowPeer {
        /// The peer that did not take them.
        peer_id: PeerId,
        /// How many, by queue.
        failed_messages: FailedMessages,
    },
    /// Sync fetched envelopes or ended a round (only with
    /// [`GossipNode::with_sync`]).
    Sync(SyncEvent),
}

/// Gossip connection counters: how many are open, and how many incoming ones
/// the [`ConnectionCaps`] refused (so an operator sees when the caps are hit).
#[derive(Debug, Default)]
pub struct ConnectionCounters {
    established: AtomicU64,
    refused: AtomicU64,
}

impl ConnectionCounters {
    /// Connections established now.
    pub fn established(&self) -> u64 {
        self.established.load(Ordering::Relaxed)
    }

    /// Incoming connections refused by the caps so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    fn connected(&self) {
        self.established.fetch_add(1, Ordering::Relaxed);
    }

    fn disconnected(&self) {
        let _ = self
            .established
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| Some(n.saturating_sub(1)));
    }

    /// Counts `error` if it is a refusal by the connection caps.
    fn incoming_failed(&self, error: &ListenError) {
        if let ListenError::Denied { cause } = error
            && cause.downcast_ref::<Exceeded>().is_some()
        {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Collector for ConnectionCounters {
    /// `vouch_p2p_connections` and `vouch_p2p_connections_refused_total`.
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> std::fmt::Result {
        metrics::gauge(
            &mut enc,
            "vouch_p2p_connections",
            "Gossip connections established.",
            self.established(),
        )?;
        metrics::counter(
            &mut enc,
            "vouch_p2p_connections_refused_total",
            "Incoming gossip connections refused by [p2p.limits].",
            self.refused(),
        )
    }
}

/// A subscribing gossip node whose owner judges every message: the swarm
/// of `vouch node` and `vouch subscribe`.
pub struct GossipNode {
    swarm: Swarm<Node>,
    connections: Arc<ConnectionCounters>,
    sync: Option<SyncDriver>,
}

impl GossipNode {
    /// Builds the swarm ([`build_swarm_with_caps`]), scoring and subscribing
    /// to `topics`. `agent` names the program in identify.
    pub fn new(
        key: identity::Keypair,
        agent: String,
        topics: &[IdentTopic],
        caps: ConnectionCaps,
    ) -> Result<GossipNode, NetError> {
        let swarm = build_swarm_with_caps(key, agent, topics.iter().map(IdentTopic::hash), caps)?;
        GossipNode::subscribed(swarm, topics, None)
    }

    /// [`GossipNode::new`] with sync on: the node answers peers' sync
    /// requests from `setup.store`, and syncs with them when asked
    /// ([`GossipNode::sync_round`]).
    pub fn with_sync(
        key: identity::Keypair,
        agent: String,
        topics: &[IdentTopic],
        caps: ConnectionCaps,
        setup: SyncSetup,
    ) -> Result<GossipNode, NetError> {
        let SyncSetup { store, partitions, config } = setup;
        config.validate()?;
        let stats = Arc::new(SyncStats::default());
        let behaviour = sync::behaviour(&config, Arc::clone(&stats));
        let hashes = topics.iter().map(IdentTopic::hash);
        let swarm = crate::build_swarm_with_sync(key, agent, hashes, caps, behaviour)?;
        let driver = SyncDriver::new(config, partitions, store, stats);
        GossipNode::subscribed(swarm, topics, Some(driver))
    }

    fn subscribed(
        mut swarm: Swarm<Node>,
        topics: &[IdentTopic],
        sync: Option<SyncDriver>,
    ) -> Result<GossipNode, NetError> {
        for t in topics {
            swarm
                .behaviour_mut()
                .gossipsub
                .subscribe(t)
                .map_err(|source| NetError::Subscribe { topic: t.to_string(), source })?;
        }
        Ok(GossipNode { swarm, connections: Arc::default(), sync })
    }

    /// This node's peer id.
    pub fn local_peer_id(&self) -> PeerId {
        *self.swarm.local_peer_id()
    }

    /// The connection counters, live.
    pub fn connections(&self) -> Arc<ConnectionCounters> {
        Arc::clone(&self.connections)
    }

    /// Listens on every address and waits until each listener reports its
    /// actual address (port 0 resolved): returns them, each ending in
    /// `/p2p/<peer id>`. The caller bounds the wait.
    pub async fn listen(&mut self, addrs: &[Multiaddr]) -> Result<Vec<Multiaddr>, NetError> {
        let mut waiting = HashSet::new();
        for addr in addrs {
            let id = self.swarm.listen_on(addr.clone()).map_err(|e| NetError::Listen {
                addr: addr.clone(),
                // libp2p's wrapper displays nothing of an I/O error: unwrap it.
                source: match e {
                    TransportError::Other(e) => e,
                    TransportError::MultiaddrNotSupported(_) => {
                        io::Error::new(io::ErrorKind::Unsupported, "not a TCP address")
                    }
                },
            })?;
            waiting.insert(id);
        }
        let mut listening = Vec::new();
        while !waiting.is_empty() {
            match self.swarm.select_next_some().await {
                SwarmEvent::NewListenAddr { listener_id, address } => {
                    waiting.remove(&listener_id);
                    listening.push(address.with(Protocol::P2p(self.local_peer_id())));
                }
                SwarmEvent::ListenerClosed { reason: Err(source), addresses, .. } => {
                    return Err(NetError::ListenerClosed { addresses, source });
                }
                SwarmEvent::ListenerError { error, .. } => {
                    return Err(NetError::Listener { source: error });
                }
                event => {
                    // No peer knows the address yet, so no message is due;
                    // one that came anyway is let go, never left unjudged.
                    if let Some(Inbound::Message { id, source, .. }) = self.observe(event) {
                        self.report(&id, &source, MessageAcceptance::Ignore);
                    }
                }
            }
        }
        Ok(listening)
    }

    /// Dials `addr` (a bootstrap peer).
    pub fn dial(&mut self, addr: &Multiaddr) -> Result<(), DialError> {
        self.swarm.dial(addr.clone())
    }

    /// Drives the swarm (and sync) until it has something for the owner.
    /// Cancel-safe: an event is taken from the swarm, or finished sync work
    /// from its queue, only when it is handled.
    pub async fn next(&mut self) -> Inbound {
        loop {
            let Some(sync) = self.sync.as_mut() else {
                let event = self.swarm.select_next_some().await;
                if let Some(inbound) = self.observe(event) {
                    return inbound;
                }
                continue;
            };
            if let Some(event) = sync.events.pop_front() {
                return Inbound::Sync(event);
            }
            let wake = sync.next_wake();
            let far = std::time::Instant::now() + std::time::Duration::from_secs(3600);
            tokio::select! {
                event = self.swarm.select_next_some() => {
                    if let Some(inbound) = self.observe(event) {
                        return inbound;
                    }
                }
                done = sync.next_done() => sync.on_done(self.swarm.behaviour_mut(), done),
                () = tokio::time::sleep_until(wake.unwrap_or(far).into()), if wake.is_some() => {
                    sync.wake(self.swarm.behaviour_mut());
                }
            }
        }
    }

    /// Publishes `data` on `topic` (a verifier's own checkpoints on the
    /// control topic). False when gossipsub refuses it (no peer subscribed,
    /// or a duplicate).
    pub fn publish(&mut self, topic: &IdentTopic, data: Vec<u8>) -> bool {
        match self.swarm.behaviour_mut().gossipsub.publish(topic.clone(), data) {
            Ok(_) => true,
            Err(e) => {
                tracing::debug!(%e, %topic, "not published");
                false
            }
        }
    }

    /// Starts a sync round over the minutes `from_minute..=to_minute` with
    /// every sync peer that is not in one and was not synced with for the
    /// round interval (up to the configured number at once), and updates
    /// peers' gossip scores from their decaying sync penalties. Call it
    /// every second or few with the minutes not sealed yet; rounds go on
    /// in [`GossipNode::next`]. Returns the rounds started (0 without sync).
    pub fn sync_round(&mut self, from_minute: u64, to_minute: u64) -> usize {
        match self.sync.as_mut() {
            Some(sync) => sync.start_rounds(self.swarm.behaviour_mut(), from_minute, to_minute),
            None => 0,
        }
    }

    /// Penalizes `peer` for an envelope it served by sync that failed
    /// validation ([`SyncEvent::Fetched`]): lowers its gossipsub score as
    /// an invalid gossip message would, and past a threshold bans it from
    /// sync for a while. Does nothing without sync.
    pub fn penalize(&mut self, peer: &PeerId) {
        if let Some(sync) = self.sync.as_mut() {
            sync.penalize(self.swarm.behaviour_mut(), *peer, sync::PROTOCOL_PENALTY);
        }
    }

    /// Gives up the fetch claims on `ids` ([`SyncEvent::Fetched`] envelopes
    /// the owner dropped before validating them), so the next round fetches
    /// them again instead of waiting out [`sync::SyncConfig::refetch_after_ms`].
    /// Does nothing without sync.
    pub fn release_sync_claims(&mut self, ids: impl IntoIterator<Item = sync::Id>) {
        if let Some(sync) = self.sync.as_mut() {
            sync.release(ids);
        }
    }

    /// Sync's counters (`vouch_sync_*`), live; `None` without sync.
    pub fn sync_stats(&self) -> Option<Arc<SyncStats>> {
        self.sync.as_ref().map(SyncDriver::stats)
    }

    /// Connected peers known to speak sync.
    pub fn sync_peers(&self) -> usize {
        self.sync.as_ref().map_or(0, SyncDriver::peers)
    }

    /// The peer's gossipsub score, if gossipsub knows the peer.
    pub fn peer_score(&self, peer: &PeerId) -> Option<f64> {
        self.swarm.behaviour().gossipsub.peer_score(peer)
    }

    /// Reports the verdict on a message [`Inbound::Message`] gave: Accept
    /// forwards it, Reject drops it and applies the P4 penalty to `source`,
    /// Ignore drops it. False when gossipsub no longer holds the message
    /// (a verdict dropped it already, or it expired from the cache).
    pub fn report(
        &mut self,
        id: &MessageId,
        source: &PeerId,
        acceptance: MessageAcceptance,
    ) -> bool {
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(id, source, acceptance)
    }

    /// Handles one swarm event: returns what the owner must see.
    fn observe(&mut self, event: SwarmEvent<NodeEvent>) -> Option<Inbound> {
        match event {
            SwarmEvent::Behaviour(NodeEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => Some(Inbound::Message {
                id: message_id,
                source: propagation_source,
                topic: message.topic,
                data: message.data,
            }),
            SwarmEvent::Behaviour(NodeEvent::Gossipsub(gossipsub::Event::SlowPeer {
                peer_id,
                failed_messages,
            })) => Some(Inbound::SlowPeer { peer_id, failed_messages }),
            SwarmEvent::ConnectionEstablished { peer_id, endpoint, .. } => {
                self.connections.connected();
                tracing::info!(%peer_id, address = %endpoint.get_remote_address(), "connected");
                None
            }
            SwarmEvent::Behaviour(NodeEvent::Sync(event)) => {
                // What it produces for the owner waits in the driver's queue,
                // which `next` empties first.
                if let Some(sync) = self.sync.as_mut() {
                    sync.on_event(self.swarm.behaviour_mut(), event);
                }
                None
            }
            SwarmEvent::Behaviour(NodeEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                if let Some(sync) = self.sync.as_mut() {
                    sync.identified(peer_id, &info.protocols);
                }
                None
            }
            SwarmEvent::ConnectionClosed { peer_id, cause, num_established, .. } => {
                if num_established == 0
                    && let Some(sync) = self.sync.as_mut()
                {
                    sync.disconnected(&peer_id);
                }
                self.connections.disconnected();
                tracing::info!(%peer_id, ?cause, "disconnected");
                None
            }
            SwarmEvent::IncomingConnectionError { send_back_addr, error, .. } => {
                self.connections.incoming_failed(&error);
                tracing::debug!(%send_back_addr, %error, "incoming connection failed");
                None
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::warn!(?peer_id, %error, "dial failed");
                None
            }
            _ => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::Partitions;

    fn node(partitions: &str) -> GossipNode {
        let topics = partitions.parse::<Partitions>().unwrap().topics();
        let key = identity::Keypair::generate_ed25519();
        GossipNode::new(key, "test".into(), &topics, ConnectionCaps::default()).unwrap()
    }

    #[test]
    fn listen_errors_name_the_address_and_the_cause() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mut n = node("0");
            let udp: Multiaddr = "/ip4/127.0.0.1/udp/0".parse().unwrap();
            let err = n.listen(std::slice::from_ref(&udp)).await.unwrap_err();
            assert!(matches!(&err, NetError::Listen { addr, .. } if *addr == udp), "{err:?}");
            assert_eq!(err.to_string(), "listening on /ip4/127.0.0.1/udp/0: not a TCP address");
        });
    }

    #[test]
    fn a_message_waits_for_its_verdict_and_connections_are_counted() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mut receiver = node("3");
            let addrs = receiver.listen(&["/ip4/127.0.0.1/tcp/0".parse().unwrap()]).await.unwrap();
            assert_eq!(addrs.len(), 1);
            assert!(addrs[0].to_string().ends_with(&format!("/p2p/{}", receiver.local_peer_id())));

            let mut sender = node("3");
            sender.dial(&addrs[0]).unwrap();
            let topic = crate::telemetry_topic_hash(3);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            // Publish once the sender sees the receiver on the topic.
            let inbound = loop {
                tokio::select! {
                    inbound = receiver.next() => break inbound,
                    _ = sender.next() => {}
                    () = tokio::time::sleep(Duration::from_millis(50)) => {
                        let _ = sender.swarm.behaviour_mut().gossipsub.publish(topic.clone(), b"hi".to_vec());
                    }
                    () = tokio::time::sleep_until(deadline) => panic!("no message"),
                }
            };
            let Inbound::Message { id, source, topic: got, data } = inbound else {
                panic!("{inbound:?}")
            };
            assert_eq!((got, data.as_slice(), source), (topic, &b"hi"[..], sender.local_peer_id()));
            assert_eq!(receiver.connections().established(), 1);
            assert!(receiver.report(&id, &source, MessageAcceptance::Ignore));
            assert!(!receiver.report(&id, &source, MessageAcceptance::Ignore), "dropped already");
        });
    }
}
