//! A peer that speaks nothing but `/vouch/1/sync`: no gossipsub, no
//! identify, so a node never counts it as a sync peer of its own, only
//! answers (or refuses) what it asks. What a flooder looks like to a node.

use std::sync::Arc;
use std::time::Duration;

use libp2p::request_response;
use libp2p::{Swarm, noise, tcp, yamux};
use vouch_net::sync::{SyncCodec, protocol_behaviour};
use vouch_net::SyncStats;

/// A swarm with a fresh identity, TCP with noise and yamux, and the sync
/// protocol alone (requests time out after 30 s, 8 streams a connection).
/// It must run inside a tokio runtime.
pub fn raw_client() -> Swarm<request_response::Behaviour<SyncCodec>> {
    libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
        .unwrap()
        .with_behaviour(|_| {
            let stats = Arc::new(SyncStats::default());
            protocol_behaviour(stats, Duration::from_secs(30), 8)
        })
        .unwrap()
        .build()
}
