//! Sync (`/vouch/1/sync`): verifiers reconcile, minute by minute, the sets
//! of envelopes they accepted and fetch what they lack, because gossip
//! loses messages (a verifier down, partitioned or slow misses them for
//! good). A libp2p request-response protocol beside gossipsub, as Ethereum
//! consensus clients run `BlocksByRange` beside gossip.
//!
//! - [`wire`]: the messages, [`Digest`], [`PartitionSet`] and the bounds.
//! - [`codec`]: one bounded CBOR message each way on a stream.
//! - [`SyncStore`]: what the node holds (the verifier's envelope index and
//!   log); [`MemoryStore`] for tests.
//! - [`Reconciler`]: a round with one peer as a pure state machine.
//! - [`SyncStats`]: the `vouch_sync_*` metrics.
//!
//! A node turns sync on with [`crate::GossipNode::with_sync`], starts rounds
//! with [`crate::GossipNode::sync_round`] (every few seconds, over the
//! minutes it has not sealed), gets fetched envelopes as
//! [`SyncEvent::Fetched`] for its validation pipeline, and reports each
//! invalid one with [`crate::GossipNode::penalize`]. Requests from peers are
//! answered by the sync layer itself, from the store, on blocking threads.
//!
//! What bounds what: a request is at most [`MAX_REQUEST_BYTES`] and a
//! response [`MAX_RESPONSE_BYTES`] (the codec reads no further); a span at
//! most [`MAX_SPAN_MINUTES`], a fetch [`MAX_FETCH_IDS`] ids, an id list
//! [`MAX_IDS_PER_RESPONSE`]. Each peer's requests go through a token bucket
//! ([`SyncConfig::serve_rate`]); at most [`SyncConfig::max_serving`] are
//! answered at once and at most [`SyncConfig::max_streams_per_connection`]
//! streams are open on a connection. A node syncs with at most
//! [`SyncConfig::max_syncing_peers`] peers at once, one request outstanding
//! each, paced below the peer's rate, and fetches at most
//! [`SyncConfig::max_fetch_per_round`] ids a round. Peers that break a
//! bound, flood, answer garbage or serve invalid envelopes are penalized
//! (gossipsub's application score, then a ban from sync: see `penalty.rs`).

pub mod codec;
mod driver;
mod penalty;
pub mod reconciler;
mod server;
mod stats;
mod store;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use libp2p::PeerId;
use libp2p::request_response::{self, ProtocolSupport};

pub use codec::{CodecError, RequestFrame, SyncCodec};
pub(crate) use driver::{PROTOCOL_PENALTY, SyncDriver, behaviour};
pub use reconciler::{
    Claim, FetchClaims, Misbehaviour, Next, Outcome, Reconciler, RoundCounts, RoundEnd, RoundLimits,
};
pub use server::answer;
pub use stats::SyncStats;
pub use store::{MemoryStore, SyncStore};
pub use wire::{
    Digest, Id, MAX_FETCH_IDS, MAX_IDS_PER_RESPONSE, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES,
    MAX_SPAN_MINUTES, PARTITION_BYTES, PROTOCOL, PartitionSet, RefusedReason, RequestKind,
    SyncRequest, SyncResponse,
};

/// What sync hands the node.
#[derive(Debug)]
pub enum SyncEvent {
    /// Envelopes fetched from `peer` that the local store lacked: the node
    /// validates each as it would a gossiped one and calls
    /// [`crate::GossipNode::penalize`] for each invalid one. Their ids are
    /// not fetched again for [`SyncConfig::refetch_after_ms`], so the node
    /// has that long to index the valid ones.
    Fetched {
        /// The peer that served them.
        peer: PeerId,
        /// Each envelope's bytes (its id is blake3 of them, and was asked for).
        envelopes: Vec<Vec<u8>>,
    },
    /// A round with `peer` ended.
    RoundEnded {
        /// The peer.
        peer: PeerId,
        /// How.
        end: RoundEnd,
        /// What it did.
        counts: RoundCounts,
    },
}

/// Sync's limits and pacing (the verifier's `[sync]`). The defaults suit a
/// few verifiers per region; the client's pace must stay below the
/// server's rate (both sides run the defaults), or the server refuses and
/// penalizes.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncConfig {
    /// Least time between two rounds with one peer, ms.
    pub round_interval_ms: u64,
    /// Rounds in progress at most (peers synced with at once).
    pub max_syncing_peers: usize,
    /// Ids fetched at most in one round with one peer.
    pub max_fetch_per_round: usize,
    /// How long a request waits for its answer (both ways), ms.
    pub request_timeout_ms: u64,
    /// Requests a second this node sends one peer, sustained.
    pub client_rate: f64,
    /// Requests this node sends one peer at once.
    pub client_burst: u32,
    /// Requests a second one peer may send this node, sustained.
    pub serve_rate: f64,
    /// Requests one peer may send this node at once.
    pub serve_burst: u32,
    /// Requests answered at once, all peers together.
    pub max_serving: usize,
    /// Sync streams open at once on one connection (both ways); more are
    /// dropped by libp2p.
    pub max_streams_per_connection: usize,
    /// Peers tracked at most in each per-peer table (rate buckets,
    /// penalties, sync peers).
    pub max_peers: usize,
    /// How long an id fetched (or being fetched) is not asked for again, ms.
    pub refetch_after_ms: u64,
    /// Ids being fetched or fetched recently, tracked at most.
    pub max_claims: usize,
    /// Penalties at which a peer is banned from sync.
    pub ban_at: f64,
    /// How long a ban lasts after the last penalty, ms.
    pub ban_ms: u64,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            round_interval_ms: 5_000,
            max_syncing_peers: 4,
            max_fetch_per_round: 4_096,
            request_timeout_ms: 10_000,
            client_rate: 10.0,
            client_burst: 20,
            serve_rate: 20.0,
            serve_burst: 40,
            max_serving: 8,
            max_streams_per_connection: 8,
            max_peers: 1_024,
            refetch_after_ms: 60_000,
            max_claims: 65_536,
            ban_at: 4.0,
            ban_ms: 600_000,
        }
    }
}

/// A [`SyncConfig`] value that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[sync] {field}: {reason}")]
pub struct SyncConfigError {
    /// The field.
    pub field: &'static str,
    /// What is wrong.
    pub reason: &'static str,
}

impl SyncConfig {
    /// Checks that every limit allows some work and every rate is a
    /// positive number.
    pub fn validate(&self) -> Result<(), SyncConfigError> {
        let positive = [
            ("round_interval_ms", self.round_interval_ms as f64),
            ("max_syncing_peers", self.max_syncing_peers as f64),
            ("max_fetch_per_round", self.max_fetch_per_round as f64),
            ("request_timeout_ms", self.request_timeout_ms as f64),
            ("client_rate", self.client_rate),
            ("client_burst", f64::from(self.client_burst)),
            ("serve_rate", self.serve_rate),
            ("serve_burst", f64::from(self.serve_burst)),
            ("max_serving", self.max_serving as f64),
            ("max_streams_per_connection", self.max_streams_per_connection as f64),
            ("max_peers", self.max_peers as f64),
            ("max_claims", self.max_claims as f64),
            ("ban_at", self.ban_at),
        ];
        for (field, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(SyncConfigError { field, reason: "must be a positive number" });
            }
        }
        Ok(())
    }
}

/// What [`crate::GossipNode::with_sync`] needs.
pub struct SyncSetup {
    /// What the node holds and serves.
    pub store: Arc<dyn SyncStore>,
    /// The partitions the node follows.
    pub partitions: PartitionSet,
    /// Limits and pacing.
    pub config: SyncConfig,
}

/// The request-response behaviour of `/vouch/1/sync` alone, counting bytes
/// in `stats`: for tools and tests that speak the protocol without a
/// [`crate::GossipNode`] (a node gets it from [`crate::GossipNode::with_sync`]).
pub fn protocol_behaviour(
    stats: Arc<SyncStats>,
    request_timeout: Duration,
    max_streams_per_connection: usize,
) -> request_response::Behaviour<SyncCodec> {
    request_response::Behaviour::with_codec(
        SyncCodec::new(stats),
        [(PROTOCOL, ProtocolSupport::Full)],
        request_response::Config::default()
            .with_request_timeout(request_timeout)
            .with_max_concurrent_streams(max_streams_per_connection),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_pace_below_the_server() {
        let c = SyncConfig::default();
        assert_eq!(c.validate(), Ok(()));
        assert!(c.client_rate * 2.0 <= c.serve_rate && c.client_burst * 2 <= c.serve_burst);
        let bad = SyncConfig { serve_rate: f64::NAN, ..SyncConfig::default() };
        assert_eq!(
            bad.validate().map_err(|e| e.to_string()),
            Err("[sync] serve_rate: must be a positive number".to_owned())
        );
        let bad = SyncConfig { max_serving: 0, ..SyncConfig::default() };
        assert_eq!(bad.validate().map_err(|e| e.field), Err("max_serving"));
    }
}
