//! The swarm every Vouch node runs: TCP + noise + yamux, and the [`Node`]
//! behaviour (gossipsub with [`crate::gossipsub_config`] and peer scoring,
//! identify, connection caps, and sync where the node serves it).
//!
//! Nodes have ed25519 identities, but who published a message is proven by
//! the envelope signature, never by the libp2p peer id.

use std::time::Duration;

use libp2p::core::Negotiated;
use libp2p::core::muxing::StreamMuxer;
use libp2p::gossipsub::{self, TopicHash};
use libp2p::{PeerId, Swarm, identify, identity, noise, request_response, tcp, yamux};

use crate::NetError;
use crate::params::{gossipsub_config, peer_score_params, peer_score_thresholds};

pub use behaviour::{Node, NodeEvent};

// The derive generates `NodeEvent` (one variant per behaviour) without docs.
#[allow(missing_docs)]
mod behaviour {
    use libp2p::swarm::NetworkBehaviour;
    use libp2p::swarm::behaviour::toggle::Toggle;
    use libp2p::{connection_limits, gossipsub, identify, request_response};

    use crate::sync::SyncCodec;

    /// The swarm's behaviour: gossipsub for telemetry, identify for peer info.
    /// Shared with every Vouch node (the SDK's publisher, `vouch subscribe`,
    /// the verifier) so that all of them speak the same gossip.
    #[derive(NetworkBehaviour)]
    pub struct Node {
        /// Telemetry and control topics.
        pub gossipsub: gossipsub::Behaviour,
        /// Lets peers learn each other's addresses and agent versions.
        pub identify: identify::Behaviour,
        /// Refuses connections beyond [`crate::ConnectionCaps`], so that
        /// peers cannot spend every file descriptor of the process.
        pub limits: connection_limits::Behaviour,
        /// `/vouch/1/sync` ([`crate::sync`]): on for verifiers, off for the
        /// SDK's publisher and `vouch subscribe` (which then neither serve
        /// nor advertise it).
        pub sync: Toggle<request_response::Behaviour<SyncCodec>>,
    }
}

/// Caps on a swarm's connections (libp2p's `connection_limits`): past them a
/// new connection is refused before its handshake completes (an incoming one
/// is reported as `SwarmEvent::IncomingConnectionError` with
/// `ListenError::Denied`). Every connection holds a file descriptor; the
/// verifier reserves [`ConnectionCaps::max_descriptors`] of them for gossip.
/// The defaults leave room for hundreds of publishers and verifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionCaps {
    /// Established connections dialled by peers.
    pub max_established_incoming: u32,
    /// Established connections this node dialled.
    pub max_established_outgoing: u32,
    /// Incoming connections still in their handshake.
    pub max_pending_incoming: u32,
    /// Outgoing dials still in progress.
    pub max_pending_outgoing: u32,
    /// Established connections with any one peer (simultaneous dials open a
    /// second one now and then; more is waste or abuse).
    pub max_established_per_peer: u32,
}

impl Default for ConnectionCaps {
    fn default() -> Self {
        ConnectionCaps {
            max_established_incoming: 256,
            max_established_outgoing: 64,
            max_pending_incoming: 64,
            max_pending_outgoing: 32,
            max_established_per_peer: 4,
        }
    }
}

impl ConnectionCaps {
    /// The most sockets these caps let the swarm hold at once.
    pub fn max_descriptors(&self) -> u64 {
        [
            self.max_established_incoming,
            self.max_established_outgoing,
            self.max_pending_incoming,
            self.max_pending_outgoing,
        ]
        .iter()
        .map(|&n| u64::from(n))
        .sum()
    }

    fn behaviour(&self) -> libp2p::connection_limits::Behaviour {
        libp2p::connection_limits::Behaviour::new(
            libp2p::connection_limits::ConnectionLimits::default()
                .with_max_established_incoming(Some(self.max_established_incoming))
                .with_max_established_outgoing(Some(self.max_established_outgoing))
                .with_max_pending_incoming(Some(self.max_pending_incoming))
                .with_max_pending_outgoing(Some(self.max_pending_outgoing))
                .with_max_established_per_peer(Some(self.max_established_per_peer)),
        )
    }
}

/// The stream muxer of one connection as [`build_swarm_wrapping`] hands it
/// over: yamux over noise over TCP.
pub type TcpMuxer = yamux::Muxer<Negotiated<noise::Output<Negotiated<tcp::tokio::TcpStream>>>>;

/// Builds a Vouch swarm: TCP + noise + yamux, identify, and gossipsub with
/// [`gossipsub_config`] and peer scoring over `score_topics`.
/// `agent` names the program in identify (e.g. `vouch-sdk/0.1.0`).
/// Connections are capped by [`ConnectionCaps::default`].
pub fn build_swarm(
    key: identity::Keypair,
    agent: String,
    score_topics: impl IntoIterator<Item = TopicHash>,
) -> Result<Swarm<Node>, NetError> {
    build_swarm_with_caps(key, agent, score_topics, ConnectionCaps::default())
}

/// [`build_swarm`] with connection caps of the caller's choosing (the
/// verifier's `[p2p.limits]`).
pub fn build_swarm_with_caps(
    key: identity::Keypair,
    agent: String,
    score_topics: impl IntoIterator<Item = TopicHash>,
    caps: ConnectionCaps,
) -> Result<Swarm<Node>, NetError> {
    build_swarm_wrapping(key, agent, score_topics, caps, |_, muxer| muxer)
}

/// [`build_swarm_with_caps`] with `/vouch/1/sync` on (a verifier's swarm;
/// [`crate::GossipNode::with_sync`] builds it).
pub fn build_swarm_with_sync(
    key: identity::Keypair,
    agent: String,
    score_topics: impl IntoIterator<Item = TopicHash>,
    caps: ConnectionCaps,
    sync: request_response::Behaviour<crate::sync::SyncCodec>,
) -> Result<Swarm<Node>, NetError> {
    build(key, agent, score_topics, caps, Some(sync), |_, muxer| muxer)
}

/// [`build_swarm_with_caps`], with `wrap` applied to every connection's
/// muxer once the remote peer is known: how the SDK's publisher counts the
/// bytes that really left for each peer.
pub fn build_swarm_wrapping<W, M>(
    key: identity::Keypair,
    agent: String,
    score_topics: impl IntoIterator<Item = TopicHash>,
    caps: ConnectionCaps,
    wrap: W,
) -> Result<Swarm<Node>, NetError>
where
    W: FnOnce(PeerId, TcpMuxer) -> M + Clone + Send + Unpin + 'static,
    M: StreamMuxer + Send + 'static,
    M::Substream: Send + 'static,
    M::Error: Send + Sync + 'static,
{
    build(key, agent, score_topics, caps, None, wrap)
}

/// The one swarm builder: sync on when `sync` is given.
fn build<W, M>(
    key: identity::Keypair,
    agent: String,
    score_topics: impl IntoIterator<Item = TopicHash>,
    caps: ConnectionCaps,
    sync: Option<request_response::Behaviour<crate::sync::SyncCodec>>,
    wrap: W,
) -> Result<Swarm<Node>, NetError>
where
    W: FnOnce(PeerId, TcpMuxer) -> M + Clone + Send + Unpin + 'static,
    M: StreamMuxer + Send + 'static,
    M::Substream: Send + 'static,
    M::Error: Send + Sync + 'static,
{
    use libp2p::Transport as _;
    let score = peer_score_params(score_topics);
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(|key| -> Result<_, Box<dyn std::error::Error + Send + Sync>> {
            Ok(tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
                .upgrade(libp2p::core::upgrade::Version::V1Lazy)
                .authenticate(noise::Config::new(key)?)
                .multiplex(yamux::Config::default())
                .map(move |(peer, muxer), _| (peer, wrap(peer, muxer))))
        })
        .map_err(NetError::Transport)?
        .with_behaviour(|key| behaviour(key, agent, score, caps, sync))
        .map_err(NetError::Behaviour)?
        // Publish-only peers (the SDK) never join a mesh, so gossipsub does
        // not keep their connections alive; keep them open regardless.
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    Ok(swarm)
}

/// Gossipsub with [`gossipsub_config`] and `score`, identify, `caps`, and
/// sync if given.
fn behaviour(
    key: &identity::Keypair,
    agent: String,
    score: gossipsub::PeerScoreParams,
    caps: ConnectionCaps,
    sync: Option<request_response::Behaviour<crate::sync::SyncCodec>>,
) -> Result<Node, Box<dyn std::error::Error + Send + Sync>> {
    let mut gossipsub = gossipsub::Behaviour::new_with_subscription_filter(
        gossipsub::MessageAuthenticity::Anonymous,
        gossipsub_config()?,
        crate::params::subscription_filter(),
    )?;
    gossipsub.with_peer_score(score, peer_score_thresholds())?;
    let identify = identify::Behaviour::new(
        identify::Config::new("/vouch/1".into(), key.public()).with_agent_version(agent),
    );
    Ok(Node { gossipsub, identify, limits: caps.behaviour(), sync: sync.into() })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use futures::StreamExt;
    use libp2p::swarm::SwarmEvent;

    use super::*;

    #[test]
    fn connections_beyond_the_caps_are_refused() {
        use libp2p::connection_limits::Exceeded;
        use libp2p::swarm::ListenError;

        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let caps = ConnectionCaps { max_established_incoming: 1, ..Default::default() };
            assert_eq!(caps.max_descriptors(), 1 + 64 + 64 + 32);
            let key = identity::Keypair::generate_ed25519;
            let mut server = build_swarm_with_caps(key(), "t".into(), [], caps).unwrap();
            server.listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap()).unwrap();
            let addr = loop {
                if let SwarmEvent::NewListenAddr { address, .. } = server.select_next_some().await {
                    break address;
                }
            };
            let mut a = build_swarm(key(), "a".into(), []).unwrap();
            let mut b = build_swarm(key(), "b".into(), []).unwrap();
            a.dial(addr.clone()).unwrap();
            b.dial(addr).unwrap();
            let (mut established, mut refused) = (0, 0);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while established + refused < 2 {
                let event = tokio::select! {
                    e = server.select_next_some() => e,
                    _ = a.select_next_some() => continue,
                    _ = b.select_next_some() => continue,
                    () = tokio::time::sleep_until(deadline) => panic!("{established} {refused}"),
                };
                match event {
                    SwarmEvent::ConnectionEstablished { .. } => established += 1,
                    SwarmEvent::IncomingConnectionError {
                        error: ListenError::Denied { cause },
                        ..
                    } if cause.downcast_ref::<Exceeded>().is_some() => refused += 1,
                    _ => {}
                }
            }
            assert_eq!((established, refused), (1, 1));
        });
    }
}
