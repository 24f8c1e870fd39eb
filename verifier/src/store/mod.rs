//! Durable storage of the verifier (DESIGN.md §7).
//!
//! [`log`] is the append-only, blake3-chained segment log of everything the
//! verifier accepted (envelopes, revocations, the authority view it used).
//! It is the source of truth: derived state can be rebuilt from it.
//! [`state`] is that derived state, in redb, and [`snapshot`] the SLA
//! engine's state beside it.

pub mod log;
pub mod snapshot;
pub mod state;

pub use log::{
    CommitInfo, Hashed, LogConfig, LogError, LogReader, Position, Problem, PruneBefore, PruneInfo,
    Record, RecordKind, Recovery, SegmentLog, Syncing, VerifySummary, segment_file_name, verify,
};
pub use snapshot::{SNAPSHOT_FILE, Snapshot, SnapshotError, SnapshotFile};
pub use state::{STATE_FILE, StateError, StateStore, StateWrite};
