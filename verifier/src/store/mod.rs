//! Durable storage of the verifier (DESIGN.md §7).
//!
//! [`log`] is the append-only, blake3-chained segment log of everything the
//! verifier accepted (envelopes, revocations, the authority view it used).
//! It is the source of truth: derived state can be rebuilt from it.

pub mod log;

pub use log::{
    CommitInfo, LogConfig, LogError, LogReader, Position, Problem, PruneBefore, PruneInfo, Record,
    RecordKind, Recovery, SegmentLog, VerifySummary, segment_file_name, verify,
};
