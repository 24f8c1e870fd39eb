//! The append-only, blake3-chained segment log (DESIGN.md §7).
//!
//! # On-disk format
//!
//! A log is a directory of segment files named `seg-<first index, 20
//! digits>.vlog` plus a `HEAD` file. Each segment starts with a header of
//! [`HEADER_BYTES`] bytes:
//!
//! ```text
//! header = "VLOG" ‖ u8 version (2) ‖ 3 zero bytes ‖ u64be first record index
//!          ‖ anchor (32 bytes: chain hash before the first record)
//!          ‖ first 8 bytes of blake3(all previous header bytes)
//! ```
//!
//! followed by frames:
//!
//! ```text
//! frame = u32be(len) ‖ u8 kind ‖ payload (len bytes, len ≤ MAX_PAYLOAD_BYTES)
//!         ‖ check (first 8 bytes of h_i)
//! h_i   = blake3(h_{i-1} ‖ kind ‖ blake3(payload)),   h_{-1} = 32 zero bytes
//! ```
//!
//! An envelope record's `blake3(payload)` is its envelope id, the one
//! gossip deduplication, sync and the checkpoints' Merkle leaves use: a
//! verifier hashes each envelope once for all of them ([`Hashed`]).
//! Version 1 chained `h_i = blake3(h_{i-1} ‖ blake3(kind ‖ payload))`; its
//! segments are still read, and a log whose active segment is version 1
//! goes on in it until that segment is full (the chain's format is the
//! segment's, named in its header).
//!
//! The length prefix is the SDK file sink's (`vouch_sdk::transport::file`):
//! the same big-endian `u32` followed by the record; the log adds the kind
//! byte and the check. The check lets [`verify`] name the exact frame a
//! flipped byte is in; the header's anchor ties each segment to the one
//! before it, so a pruned prefix still anchors the chain.
//!
//! `HEAD` holds the last committed record (index and chain hash), replaced
//! atomically (write `HEAD.tmp`, fsync, rename, fsync the directory) by every
//! commit:
//!
//! ```text
//! HEAD = "VHED" ‖ u64be last committed index ‖ h_index (32 bytes)
//!        ‖ first 8 bytes of blake3(all previous bytes)
//! ```
//!
//! # Durability
//!
//! [`SegmentLog::append`] only buffers. [`SegmentLog::commit`] writes the
//! buffered frames, `fdatasync`s the segment(s), fsyncs the directory when
//! it created a segment, replaces `HEAD`, and only then returns: **a record
//! counts as accepted only after the `commit` that covers it returned `Ok`.**
//! On [`SegmentLog::open`], whatever lies beyond `HEAD` (a torn frame, a
//! half-written segment header, whole frames whose commit never returned) is
//! truncated and reported in [`Recovery`], never kept; damage to records
//! that `HEAD` says were committed is an error instead.
//!
//! # Where what is
//!
//! `cache.rs`: dropping durable frames from the page cache behind a tail
//! window ([`LogConfig::cached_tail_bytes`]). `format.rs`: file names, the segment header, the chain hash and `HEAD`.
//! `reader.rs`: frames read back with their chain recomputed, and
//! [`LogReader`]. `verify.rs`: [`verify`] of a whole log. `writer.rs`:
//! [`SegmentLog`]'s append, group commit and recovery on open. `prune.rs`:
//! removing whole old segments. The files use only std, blake3,
//! thiserror and (on Linux, for the page cache) rustix, so the fuzz crate compiles them as they are
//! (`fuzz/fuzz_targets/log_segment.rs`).

use std::io;
use std::path::{Path, PathBuf};

mod cache;
mod format;
mod prune;
mod reader;
mod verify;
mod writer;

pub use format::{
    DEFAULT_CACHED_TAIL_BYTES, DEFAULT_SEGMENT_BYTES, FORMAT_VERSION, FRAME_OVERHEAD_BYTES,
    GENESIS_HASH, HEAD_FILE, HEADER_BYTES, Hashed, HeadProblem, MAGIC, MAX_PAYLOAD_BYTES, Problem,
    RecordKind, segment_file_name,
};
pub use prune::{PruneBefore, PruneInfo};
pub use reader::LogReader;
pub use verify::{VerifySummary, verify};
pub use writer::{
    CommitInfo, LOCK_FILE, LOCK_RETRIES, LOCK_RETRY_DELAY, LogConfig, Recovery, SegmentLog, Syncing,
};

/// Where a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Position {
    /// The record's index in the whole log, from 0.
    pub index: u64,
    /// The segment it is in, by the segment's first index (see [`segment_file_name`]).
    pub segment: u64,
    /// Byte offset of its frame in that segment file.
    pub offset: u64,
    /// The chain hash `h_index` after this record.
    pub hash: [u8; 32],
}

/// One record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Where it is, with its chain hash.
    pub position: Position,
    /// What it is.
    pub kind: RecordKind,
    /// Its bytes.
    pub payload: Vec<u8>,
}

/// Why a log operation failed. Messages are stable.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A file system operation failed.
    #[error("log i/o on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A payload over [`MAX_PAYLOAD_BYTES`] was appended.
    #[error("payload of {len} bytes exceeds the frame limit of {MAX_PAYLOAD_BYTES}")]
    PayloadTooLarge {
        /// Its length.
        len: usize,
    },
    /// A segment is damaged; names the first bad header or frame.
    #[error("{segment} at byte {offset}: {problem}")]
    Corrupt {
        /// The segment's file name.
        segment: String,
        /// Byte offset of the bad header (0) or frame in it.
        offset: u64,
        /// What is wrong.
        problem: Problem,
    },
    /// The `HEAD` file is unreadable or inconsistent with the segments.
    #[error("log HEAD: {0}")]
    BadHead(#[source] HeadProblem),
    /// A reader asked for a record no longer (or never) in the log.
    #[error("record {index} is not in the log (it holds {first}..{next})")]
    NotInLog {
        /// The index asked for.
        index: u64,
        /// First index present.
        first: u64,
        /// Index after the last committed record.
        next: u64,
    },
    /// Another [`SegmentLog`] (in this or another process) has the log open.
    #[error("log {path} is open elsewhere")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// A commit failed earlier; the log must be reopened to recover.
    #[error("log is unusable after a failed commit; reopen it")]
    Poisoned,
    /// A commit was started while another's sync was still under way
    /// ([`SegmentLog::start_commit`]); finish that one first.
    #[error("a commit is already under way; finish it first")]
    CommitUnderWay,
    /// The thread syncing a commit stopped without an answer.
    #[error("the log's sync thread stopped without an answer")]
    SyncLost,
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> LogError + '_ {
    move |source| LogError::Io { path: path.to_owned(), source }
}
