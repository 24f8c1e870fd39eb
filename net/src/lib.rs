//! Vouch gossip networking: what every Vouch node shares, the SDK's
//! publisher and the verifiers alike (DESIGN.md §5).
//!
//! - [`swarm`]: the libp2p swarm (TCP + noise + yamux) and its [`Node`]
//!   behaviour: gossipsub, identify and [`ConnectionCaps`].
//! - [`params`]: gossipsub's configuration, peer scoring and the
//!   subscription filter, which publishers and verifiers must agree on.
//! - [`topics`]: the partition-list parser and every partition's topic hash.
//! - [`node`]: the receiving side of `vouch node` and `vouch subscribe`
//!   ([`GossipNode`]): subscribe, listen, dial, take each message for a
//!   verdict, count connections, and sync where it is on.
//! - [`sync`]: `/vouch/1/sync`, set reconciliation of accepted envelopes
//!   between verifiers beside gossip.
//! - [`metrics`]: how this crate and the verifier declare their Prometheus
//!   metrics (collectors in one registry).
//!
//! The publisher's side (a bounded pending buffer, re-dials with backoff,
//! following each envelope until it has left) is the SDK's gossip transport.

pub mod metrics;
pub mod node;
pub mod params;
pub mod swarm;
pub mod sync;
pub mod topics;

pub use node::{ConnectionCounters, GossipNode, Inbound};
pub use params::{
    APP_SPECIFIC_WEIGHT, MAX_PEER_TOPICS, MESH_N, gossipsub_config, peer_score_params,
    peer_score_thresholds,
};
pub use swarm::{
    ConnectionCaps, Node, NodeEvent, TcpMuxer, build_swarm, build_swarm_with_caps,
    build_swarm_with_sync, build_swarm_wrapping,
};
pub use sync::{
    Digest, MemoryStore, PartitionSet, SyncConfig, SyncEvent, SyncSetup, SyncStats, SyncStore,
};
pub use topics::{
    Partitions, PartitionsError, all_topic_hashes, control_topic, telemetry_topic_hash,
};

use libp2p::Multiaddr;

/// Why a swarm could not be set up, subscribe or listen.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The TCP + noise + yamux transport could not be built.
    #[error("TCP + noise + yamux: {0}")]
    Transport(#[source] libp2p::TransportBuilderError),
    /// The behaviour (gossipsub and its scoring, identify) could not be built.
    #[error("gossipsub: {0}")]
    Behaviour(#[source] libp2p::BehaviourBuilderError),
    /// gossipsub refused a subscription.
    #[error("subscribing to {topic}: {source}")]
    Subscribe {
        /// The topic.
        topic: String,
        /// gossipsub's reason.
        #[source]
        source: libp2p::gossipsub::SubscriptionError,
    },
    /// A listen address could not be used.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// The transport's reason (`Unsupported` for an address that is
        /// not TCP).
        #[source]
        source: std::io::Error,
    },
    /// A listener closed with an error before it reported its address.
    #[error("listener on {addresses:?} failed: {source}")]
    ListenerClosed {
        /// The addresses it had.
        addresses: Vec<Multiaddr>,
        /// Why it closed.
        #[source]
        source: std::io::Error,
    },
    /// The sync configuration cannot work.
    #[error(transparent)]
    SyncConfig(#[from] sync::SyncConfigError),
    /// A listener failed before it reported its address.
    #[error("listener failed: {source}")]
    Listener {
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}
