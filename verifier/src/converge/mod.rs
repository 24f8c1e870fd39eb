//! Convergence: how verifiers come to hold the same envelopes and prove it.
//!
//! Gossip alone loses messages (a verifier down, partitioned or slow misses
//! them for good), so verifiers also reconcile what they accepted, minute by
//! minute, with their peers (sync), and commit to it when a minute seals
//! (signed checkpoints, [`vouch_delegation::SignedCheckpoint`]). This module
//! holds what both need: the [`index`] of accepted envelope ids by minute
//! and partition (what sync compares and serves, what a checkpoint's Merkle
//! root is computed over), and the [`book`] of own and peers' checkpoints
//! (what agreement is computed from).

pub mod book;
pub mod checkpointer;
pub mod index;
pub mod report;
pub mod store;

pub use book::{Added, Agreement, BookLimits, CheckpointBook, Disagreement};
pub use checkpointer::{
    CheckpointConfig, CheckpointSigner, ConvergeStats, Convergence, LogHead, SignerError,
    buckets_hash,
};
pub use index::{EnvelopeIndex, IndexLimits};
pub use store::LogSyncStore;
pub use vouch_net::{Digest, PartitionSet};

/// One minute, ms.
pub const MINUTE_MS: u64 = 60_000;

/// The minute (since the Unix epoch) of a timestamp in ms.
pub fn minute_of(ms: u64) -> u64 {
    ms / MINUTE_MS
}
