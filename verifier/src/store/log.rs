//! The append-only, blake3-chained segment log (DESIGN.md §7).
//!
//! # On-disk format
//!
//! A log is a directory of segment files named `seg-<first index, 20
//! digits>.vlog` plus a `HEAD` file. Each segment starts with a header of
//! [`HEADER_BYTES`] bytes:
//!
//! ```text
//! header = "VLOG" ‖ u8 version (1) ‖ 3 zero bytes ‖ u64be first record index
//!          ‖ anchor (32 bytes: chain hash before the first record)
//!          ‖ first 8 bytes of blake3(all previous header bytes)
//! ```
//!
//! followed by frames:
//!
//! ```text
//! frame = u32be(len) ‖ u8 kind ‖ payload (len bytes, len ≤ MAX_PAYLOAD_BYTES)
//!         ‖ check (first 8 bytes of h_i)
//! h_i   = blake3(h_{i-1} ‖ blake3(kind ‖ payload)),   h_{-1} = 32 zero bytes
//! ```
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

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The first bytes of every segment file.
pub const MAGIC: [u8; 4] = *b"VLOG";
/// The segment format version written and accepted.
pub const FORMAT_VERSION: u8 = 1;
/// Bytes of a segment header.
pub const HEADER_BYTES: u64 = 4 + 1 + 3 + 8 + 32 + CHECK_BYTES as u64;
/// Bytes a frame adds to its payload: length prefix, kind byte, check.
pub const FRAME_OVERHEAD_BYTES: u64 = 4 + 1 + CHECK_BYTES as u64;
/// The largest payload of one frame (1 MiB).
pub const MAX_PAYLOAD_BYTES: usize = 1 << 20;
/// The default size at which a new segment is started (64 MiB).
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
/// The chain hash before the very first record, `h_{-1}`.
pub const GENESIS_HASH: [u8; 32] = [0; 32];
/// Name of the file holding the last committed record.
pub const HEAD_FILE: &str = "HEAD";

const CHECK_BYTES: usize = 8;
const HEAD_MAGIC: [u8; 4] = *b"VHED";
const HEAD_BYTES: usize = 4 + 8 + 32 + CHECK_BYTES;
const HEAD_TMP_FILE: &str = "HEAD.tmp";
/// Name of the file a [`SegmentLog`] holds an exclusive lock on while open.
pub const LOCK_FILE: &str = "LOCK";
/// How many times a busy writer lock is retried before [`LogError::Locked`].
pub const LOCK_RETRIES: u32 = 20;
/// The pause between tries of a busy writer lock.
pub const LOCK_RETRY_DELAY: Duration = Duration::from_millis(10);
const SEGMENT_PREFIX: &str = "seg-";
const SEGMENT_SUFFIX: &str = ".vlog";

/// The name of the segment file whose first record has index `first_index`.
pub fn segment_file_name(first_index: u64) -> String {
    format!("{SEGMENT_PREFIX}{first_index:020}{SEGMENT_SUFFIX}")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(SEGMENT_PREFIX)?.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// What a record is. The kind byte is covered by the chain hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RecordKind {
    /// An accepted envelope (its deterministic CBOR bytes).
    Envelope = 0,
    /// A revocation the verifier applied.
    Revocation = 1,
    /// The authority view the verifier used (recorded when it changes).
    AuthorityView = 2,
    /// What the scores depend on besides the envelopes: the SLA policy in
    /// force and every seal (`crate::scores::ScoreRecord`, JSON).
    Scores = 3,
    /// This verifier's checkpoint of a sealed minute
    /// (`vouch_delegation::SignedCheckpoint`; unsigned when it has no key).
    Checkpoint = 4,
    /// A peer verifier's signed checkpoint, as it arrived and verified.
    PeerCheckpoint = 5,
}

impl RecordKind {
    /// The kind for a stored byte, if it is one.
    pub fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            0 => Some(Self::Envelope),
            1 => Some(Self::Revocation),
            2 => Some(Self::AuthorityView),
            3 => Some(Self::Scores),
            4 => Some(Self::Checkpoint),
            5 => Some(Self::PeerCheckpoint),
            _ => None,
        }
    }

    /// The stored byte.
    pub fn as_byte(self) -> u8 {
        self as u8
    }
}

/// How a log is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// A new segment is started when the next frame would take the active
    /// one past this many bytes (a segment always holds at least one frame).
    pub segment_bytes: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { segment_bytes: DEFAULT_SEGMENT_BYTES }
    }
}

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

/// What [`SegmentLog::open`] found and discarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Bytes removed beyond the last committed record (torn or uncommitted
    /// frames, damaged or uncommitted segment headers).
    pub truncated_bytes: u64,
    /// Whole segment files removed because they held nothing committed.
    pub removed_segments: u64,
    /// Records in the log, counting any pruned prefix: the next index.
    pub records: u64,
    /// The chain hash after the last record (the anchor of an empty log).
    pub last_hash: [u8; 32],
}

/// What one [`SegmentLog::commit`] made durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    /// Records made durable by this call.
    pub records: u64,
    /// Bytes written by this call (frames and any new segment headers).
    pub bytes: u64,
    /// The last record now committed, if this call committed any.
    pub last: Option<Position>,
}

/// Which old segments [`SegmentLog::prune_before`] removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruneBefore {
    /// Segments all of whose records have an index below this.
    Index(u64),
    /// Segments last written before this time.
    Modified(SystemTime),
}

/// What [`SegmentLog::prune_before`] removed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PruneInfo {
    /// Segment files removed.
    pub removed_segments: u64,
    /// Their total size.
    pub removed_bytes: u64,
    /// Index of the first record still in the log.
    pub first_index: u64,
}

/// What [`verify`] checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifySummary {
    /// Segment files checked.
    pub segments: u64,
    /// Index of the first record present (above 0 when a prefix was pruned).
    pub first_index: u64,
    /// The chain hash the first present segment is anchored to (trusted).
    pub anchor: [u8; 32],
    /// Records checked.
    pub records: u64,
    /// The chain hash after the last record.
    pub last_hash: [u8; 32],
    /// The last committed index per `HEAD`, if the log has one.
    pub head_index: Option<u64>,
    /// Whole, valid records beyond `HEAD` (written but never committed;
    /// the next open truncates them).
    pub uncommitted: u64,
}

/// What is wrong with a frame or segment header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The header does not start with `VLOG`.
    #[error("bad segment magic")]
    BadMagic,
    /// The header's version is not [`FORMAT_VERSION`].
    #[error("unsupported segment version {0}")]
    BadVersion(u8),
    /// The header's own check does not match its bytes.
    #[error("segment header checksum mismatch")]
    HeaderChecksum,
    /// The header's first index differs from the file name's.
    #[error("header says first index {header} but the file name says {name}")]
    NameMismatch {
        /// From the file name.
        name: u64,
        /// From the header.
        header: u64,
    },
    /// The segment does not start where the previous one ended.
    #[error("segment starts at index {found}, expected {expected}")]
    IndexGap {
        /// The index after the previous segment's last record.
        expected: u64,
        /// The header's first index.
        found: u64,
    },
    /// The header's anchor is not the chain hash the previous segment ended with.
    #[error("segment anchor does not match the chain hash of the previous segment")]
    AnchorMismatch,
    /// A length prefix over [`MAX_PAYLOAD_BYTES`].
    #[error("frame declares {0} payload bytes, over the limit of {MAX_PAYLOAD_BYTES}")]
    BadLength(u32),
    /// A kind byte that is not a [`RecordKind`].
    #[error("unknown record kind {0}")]
    UnknownKind(u8),
    /// The file ends inside a header or frame.
    #[error("truncated: {needed} bytes needed, {available} present")]
    Truncated {
        /// Bytes the header or frame needs.
        needed: u64,
        /// Bytes present from its start to the end of the file.
        available: u64,
    },
    /// The frame's check differs from the recomputed chain hash.
    #[error("checksum/chain mismatch")]
    ChainMismatch,
    /// The chain hash at the `HEAD` index differs from the one `HEAD` records.
    #[error("chain hash differs from the one HEAD records")]
    HeadMismatch,
    /// The log ends before the last record `HEAD` says was committed.
    #[error("log ends at index {next}, before committed index {head}")]
    MissingCommitted {
        /// The last committed index per `HEAD`.
        head: u64,
        /// The index after the last record present.
        next: u64,
    },
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
    BadHead(String),
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
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> LogError + '_ {
    move |source| LogError::Io { path: path.to_owned(), source }
}

fn check_of(bytes: &[u8]) -> [u8; CHECK_BYTES] {
    let hash = blake3::hash(bytes);
    let mut out = [0u8; CHECK_BYTES];
    out.copy_from_slice(&hash.as_bytes()[..CHECK_BYTES]);
    out
}

/// `h_i = blake3(h_{i-1} ‖ blake3(kind ‖ payload))`.
fn chain(prev: &[u8; 32], kind: u8, payload: &[u8]) -> [u8; 32] {
    let mut inner = blake3::Hasher::new();
    inner.update(&[kind]);
    inner.update(payload);
    let mut outer = blake3::Hasher::new();
    outer.update(prev);
    outer.update(inner.finalize().as_bytes());
    *outer.finalize().as_bytes()
}

fn encode_header(first_index: u64, anchor: &[u8; 32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES as usize);
    out.extend_from_slice(&MAGIC);
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&[0; 3]);
    out.extend_from_slice(&first_index.to_be_bytes());
    out.extend_from_slice(anchor);
    let check = check_of(&out);
    out.extend_from_slice(&check);
    out
}

/// A parsed segment header.
#[derive(Debug, Clone, Copy)]
struct Header {
    first_index: u64,
    anchor: [u8; 32],
}

fn decode_header(bytes: &[u8; HEADER_BYTES as usize], name_index: u64) -> Result<Header, Problem> {
    if bytes[..4] != MAGIC {
        return Err(Problem::BadMagic);
    }
    if bytes[4] != FORMAT_VERSION {
        return Err(Problem::BadVersion(bytes[4]));
    }
    let body = HEADER_BYTES as usize - CHECK_BYTES;
    if check_of(&bytes[..body]) != bytes[body..] || bytes[5..8] != [0; 3] {
        return Err(Problem::HeaderChecksum);
    }
    let mut index = [0u8; 8];
    index.copy_from_slice(&bytes[8..16]);
    let first_index = u64::from_be_bytes(index);
    if first_index != name_index {
        return Err(Problem::NameMismatch { name: name_index, header: first_index });
    }
    let mut anchor = [0u8; 32];
    anchor.copy_from_slice(&bytes[16..48]);
    Ok(Header { first_index, anchor })
}

/// The last committed record, as `HEAD` records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Head {
    index: u64,
    hash: [u8; 32],
}

fn read_head(dir: &Path) -> Result<Option<Head>, LogError> {
    let path = dir.join(HEAD_FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(&path)(e)),
    };
    if bytes.len() != HEAD_BYTES {
        return Err(LogError::BadHead(format!("{} bytes, expected {HEAD_BYTES}", bytes.len())));
    }
    let body = HEAD_BYTES - CHECK_BYTES;
    if bytes[..4] != HEAD_MAGIC || check_of(&bytes[..body]) != bytes[body..] {
        return Err(LogError::BadHead("bad magic or checksum".into()));
    }
    let mut index = [0u8; 8];
    index.copy_from_slice(&bytes[4..12]);
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&bytes[12..44]);
    Ok(Some(Head { index: u64::from_be_bytes(index), hash }))
}

fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

/// Takes the writer lock. A lock just released can still be held for a
/// moment by a child process forked (but not yet exec'd) in between, so a
/// busy lock is retried for up to [`LOCK_RETRIES`] × [`LOCK_RETRY_DELAY`].
fn lock_exclusive(lock: &File, path: &Path) -> Result<(), LogError> {
    for attempt in 0..=LOCK_RETRIES {
        match lock.try_lock() {
            Ok(()) => return Ok(()),
            Err(fs::TryLockError::WouldBlock) if attempt < LOCK_RETRIES => {
                std::thread::sleep(LOCK_RETRY_DELAY);
            }
            Err(fs::TryLockError::WouldBlock) => break,
            Err(fs::TryLockError::Error(e)) => return Err(io_err(path)(e)),
        }
    }
    Err(LogError::Locked { path: path.to_owned() })
}

/// Replaces `HEAD` atomically and durably.
fn write_head(dir: &Path, head: Head) -> Result<(), LogError> {
    let mut bytes = Vec::with_capacity(HEAD_BYTES);
    bytes.extend_from_slice(&HEAD_MAGIC);
    bytes.extend_from_slice(&head.index.to_be_bytes());
    bytes.extend_from_slice(&head.hash);
    let check = check_of(&bytes);
    bytes.extend_from_slice(&check);
    let tmp = dir.join(HEAD_TMP_FILE);
    let mut file = File::create(&tmp).map_err(io_err(&tmp))?;
    file.write_all(&bytes).and_then(|()| file.sync_data()).map_err(io_err(&tmp))?;
    drop(file);
    let path = dir.join(HEAD_FILE);
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    sync_dir(dir)
}

/// First indexes of the segment files in `dir`, ascending. Other files are ignored.
fn list_segments(dir: &Path) -> Result<Vec<u64>, LogError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        if let Some(index) = entry.file_name().to_str().and_then(parse_segment_name) {
            out.push(index);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Reads `buf.len()` bytes unless the file ends first; returns how many were read.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// One step of a [`Cursor`].
enum Step {
    Record(Record),
    End,
    Bad { offset: u64, problem: Problem },
}

/// Reads one segment's frames in order, recomputing the chain from its anchor.
#[derive(Debug)]
struct Cursor {
    path: PathBuf,
    name: String,
    segment: u64,
    reader: BufReader<File>,
    file_len: u64,
    offset: u64,
    index: u64,
    hash: [u8; 32],
    header: Header,
}

impl Cursor {
    /// Opens a segment and checks its header. The inner error is a header problem.
    fn open(dir: &Path, segment: u64) -> Result<Result<Cursor, Problem>, LogError> {
        let name = segment_file_name(segment);
        let path = dir.join(&name);
        let file = File::open(&path).map_err(io_err(&path))?;
        let file_len = file.metadata().map_err(io_err(&path))?.len();
        let mut reader = BufReader::with_capacity(64 << 10, file);
        let mut bytes = [0u8; HEADER_BYTES as usize];
        let got = read_up_to(&mut reader, &mut bytes).map_err(io_err(&path))?;
        if got < bytes.len() {
            return Ok(Err(Problem::Truncated { needed: HEADER_BYTES, available: got as u64 }));
        }
        let header = match decode_header(&bytes, segment) {
            Ok(header) => header,
            Err(problem) => return Ok(Err(problem)),
        };
        Ok(Ok(Cursor {
            path,
            name,
            segment,
            reader,
            file_len,
            offset: HEADER_BYTES,
            index: header.first_index,
            hash: header.anchor,
            header,
        }))
    }

    fn corrupt(&self, offset: u64, problem: Problem) -> LogError {
        LogError::Corrupt { segment: self.name.clone(), offset, problem }
    }

    fn next(&mut self) -> Result<Step, LogError> {
        let at = self.offset;
        let available = self.file_len.saturating_sub(at);
        if available == 0 {
            return Ok(Step::End);
        }
        let bad = |problem| Ok(Step::Bad { offset: at, problem });
        let mut prefix = [0u8; 5];
        let got = read_up_to(&mut self.reader, &mut prefix).map_err(io_err(&self.path))?;
        if got < prefix.len() {
            return bad(Problem::Truncated { needed: FRAME_OVERHEAD_BYTES, available });
        }
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        if len as usize > MAX_PAYLOAD_BYTES {
            return bad(Problem::BadLength(len));
        }
        let Some(kind) = RecordKind::from_byte(prefix[4]) else {
            return bad(Problem::UnknownKind(prefix[4]));
        };
        let needed = FRAME_OVERHEAD_BYTES + u64::from(len);
        if available < needed {
            return bad(Problem::Truncated { needed, available });
        }
        // Bounded: len ≤ MAX_PAYLOAD_BYTES and the file holds that many bytes.
        let mut payload = vec![0u8; len as usize];
        let mut check = [0u8; CHECK_BYTES];
        let got = read_up_to(&mut self.reader, &mut payload)
            .and_then(|a| Ok(a + read_up_to(&mut self.reader, &mut check)?))
            .map_err(io_err(&self.path))?;
        if (got as u64) < needed - 5 {
            // The file shrank under us.
            return bad(Problem::Truncated { needed, available: got as u64 + 5 });
        }
        let hash = chain(&self.hash, prefix[4], &payload);
        if hash[..CHECK_BYTES] != check {
            return bad(Problem::ChainMismatch);
        }
        let position = Position { index: self.index, segment: self.segment, offset: at, hash };
        self.offset += needed;
        self.index += 1;
        self.hash = hash;
        Ok(Step::Record(Record { position, kind, payload }))
    }
}

/// Recomputes the whole chain of the log in `dir` and checks it against
/// every segment header and `HEAD`.
///
/// The first present segment's anchor is trusted (it is where a pruned
/// prefix ended, or [`GENESIS_HASH`] for a segment starting at index 0);
/// every later header must continue the chain exactly. The error names the
/// first bad header or frame by segment file name and byte offset. An
/// empty or missing-segments directory verifies as an empty log unless
/// `HEAD` says records were committed. It takes no lock: run it on a log no
/// writer is appending to (or after [`SegmentLog::open`] recovered it), or
/// a frame being written may be reported as truncated.
pub fn verify(dir: impl AsRef<Path>) -> Result<VerifySummary, LogError> {
    let dir = dir.as_ref();
    let head = read_head(dir)?;
    let segments = list_segments(dir)?;
    let mut summary = VerifySummary {
        segments: 0,
        first_index: 0,
        anchor: GENESIS_HASH,
        records: 0,
        last_hash: GENESIS_HASH,
        head_index: head.map(|h| h.index),
        uncommitted: 0,
    };
    let mut expected: Option<(u64, [u8; 32])> = None;
    let mut last_name = String::new();
    let mut last_end = 0;
    for &segment in &segments {
        let mut cursor = match Cursor::open(dir, segment)? {
            Ok(cursor) => cursor,
            Err(problem) => {
                return Err(LogError::Corrupt {
                    segment: segment_file_name(segment),
                    offset: 0,
                    problem,
                });
            }
        };
        match expected {
            None => {
                summary.first_index = cursor.header.first_index;
                summary.anchor = cursor.header.anchor;
                if cursor.header.first_index == 0 && cursor.header.anchor != GENESIS_HASH {
                    return Err(cursor.corrupt(0, Problem::AnchorMismatch));
                }
            }
            Some((index, hash)) => {
                if cursor.header.first_index != index {
                    let found = cursor.header.first_index;
                    return Err(cursor.corrupt(0, Problem::IndexGap { expected: index, found }));
                }
                if cursor.header.anchor != hash {
                    return Err(cursor.corrupt(0, Problem::AnchorMismatch));
                }
            }
        }
        summary.segments += 1;
        loop {
            match cursor.next()? {
                Step::Record(record) => {
                    let pos = record.position;
                    if let Some(head) = head {
                        if pos.index == head.index && pos.hash != head.hash {
                            return Err(cursor.corrupt(pos.offset, Problem::HeadMismatch));
                        }
                        if pos.index > head.index {
                            summary.uncommitted += 1;
                        }
                    } else {
                        summary.uncommitted += 1;
                    }
                    summary.records += 1;
                }
                Step::End => break,
                Step::Bad { offset, problem } => return Err(cursor.corrupt(offset, problem)),
            }
        }
        summary.last_hash = cursor.hash;
        expected = Some((cursor.index, cursor.hash));
        last_name = cursor.name;
        last_end = cursor.offset;
    }
    let next = expected.map_or(0, |(index, _)| index);
    if let Some(head) = head {
        if next <= head.index {
            if segments.is_empty() {
                return Err(LogError::BadHead(format!(
                    "committed index {} but no segments",
                    head.index
                )));
            }
            return Err(LogError::Corrupt {
                segment: last_name,
                offset: last_end,
                problem: Problem::MissingCommitted { head: head.index, next },
            });
        }
        if head.index < summary.first_index {
            return Err(LogError::BadHead(format!(
                "committed index {} is before the first segment ({})",
                head.index, summary.first_index
            )));
        }
    }
    Ok(summary)
}

/// Iterates committed records in order, across segments, from a given index.
///
/// It reads what `HEAD` says was committed when it was opened and checks
/// every frame's chain hash as it goes; it stops after the first error.
/// Open the log with [`SegmentLog::open`] first after a crash. To resume
/// later (an export, say), reopen at [`LogReader::next_index`].
#[derive(Debug)]
pub struct LogReader {
    dir: PathBuf,
    segments: Vec<u64>,
    next_segment: usize,
    cursor: Option<Cursor>,
    from: u64,
    end: u64,
    done: bool,
}

impl LogReader {
    /// Starts reading at record `from`. `from` at or past the end yields
    /// nothing; `from` before the first present record (pruned) is
    /// [`LogError::NotInLog`].
    pub fn open(dir: impl AsRef<Path>, from: u64) -> Result<LogReader, LogError> {
        let dir = dir.as_ref().to_owned();
        let end = read_head(&dir)?.map_or(0, |h| h.index + 1);
        let segments = list_segments(&dir)?;
        let first = segments.first().copied().unwrap_or(0);
        if from < first && from < end {
            return Err(LogError::NotInLog { index: from, first, next: end });
        }
        // The last segment starting at or before `from`.
        let next_segment = segments.partition_point(|&s| s <= from).saturating_sub(1);
        Ok(LogReader { dir, segments, next_segment, cursor: None, from, end, done: from >= end })
    }

    /// Index of the next record the reader will yield.
    pub fn next_index(&self) -> u64 {
        self.from
    }

    /// Index after the last record this reader will yield: the log's
    /// committed end per `HEAD` when the reader was opened (a follower's
    /// lag is `end` of a fresh reader minus its cursor).
    pub fn end(&self) -> u64 {
        self.end
    }

    fn step(&mut self) -> Result<Option<Record>, LogError> {
        loop {
            if self.from >= self.end {
                return Ok(None);
            }
            let Some(cursor) = self.cursor.as_mut() else {
                let Some(&segment) = self.segments.get(self.next_segment) else {
                    return Err(LogError::NotInLog {
                        index: self.from,
                        first: self.segments.first().copied().unwrap_or(0),
                        next: self.end,
                    });
                };
                self.next_segment += 1;
                let cursor = match Cursor::open(&self.dir, segment)? {
                    Ok(cursor) => cursor,
                    Err(problem) => {
                        return Err(LogError::Corrupt {
                            segment: segment_file_name(segment),
                            offset: 0,
                            problem,
                        });
                    }
                };
                if cursor.header.first_index > self.from {
                    let expected = self.from;
                    let found = cursor.header.first_index;
                    return Err(cursor.corrupt(0, Problem::IndexGap { expected, found }));
                }
                self.cursor = Some(cursor);
                continue;
            };
            match cursor.next()? {
                Step::Record(record) if record.position.index < self.from => {}
                Step::Record(record) => {
                    self.from += 1;
                    return Ok(Some(record));
                }
                Step::End => self.cursor = None,
                Step::Bad { offset, problem } => return Err(cursor.corrupt(offset, problem)),
            }
        }
    }
}

impl Iterator for LogReader {
    type Item = Result<Record, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.step() {
            Ok(Some(record)) => Some(Ok(record)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Frames buffered for one segment by [`SegmentLog::append`].
#[derive(Debug)]
struct Chunk {
    segment: u64,
    /// The header, when this chunk starts a new segment.
    header: Option<Vec<u8>>,
    bytes: Vec<u8>,
}

/// The append-only segment log, open for writing. See the module docs for
/// the format and the durability contract. One `SegmentLog` at a time may
/// have a directory open (an exclusive lock on [`LOCK_FILE`], released by
/// the kernel if the process dies); [`LogReader`] and [`verify`] take no lock.
#[derive(Debug)]
pub struct SegmentLog {
    /// Holds the exclusive lock on [`LOCK_FILE`] until dropped.
    _lock: File,
    dir: PathBuf,
    config: LogConfig,
    /// First indexes of the segments on disk, ascending; the last is active.
    segments: Vec<u64>,
    active: File,
    /// Committed length of the active segment.
    active_len: u64,
    committed_next: u64,
    committed_hash: [u8; 32],
    pending: Vec<Chunk>,
    pending_records: u64,
    tip_next: u64,
    tip_hash: [u8; 32],
    tip_segment: u64,
    tip_len: u64,
    last: Option<Position>,
    poisoned: bool,
}

impl SegmentLog {
    /// Opens (creating if needed) the log in `dir` and recovers it: anything
    /// beyond the last committed record per `HEAD` (a torn frame, a damaged
    /// or uncommitted last segment, frames whose commit never returned) is
    /// truncated and reported. Committed records of the last segment are
    /// checked; earlier segments are trusted here and checked by [`verify`].
    pub fn open(
        dir: impl AsRef<Path>,
        config: LogConfig,
    ) -> Result<(SegmentLog, Recovery), LogError> {
        let dir = dir.as_ref().to_owned();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        lock_exclusive(&lock, &lock_path)?;
        let tmp = dir.join(HEAD_TMP_FILE);
        match fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&tmp)(e)),
        }
        let head = read_head(&dir)?;
        let committed_next = head.map_or(0, |h| h.index + 1);
        let mut segments = list_segments(&dir)?;
        let mut recovery = Recovery {
            truncated_bytes: 0,
            removed_segments: 0,
            records: committed_next,
            last_hash: head.map_or(GENESIS_HASH, |h| h.hash),
        };
        let mut dir_changed = false;
        // Segments holding nothing committed go, unless nothing else is left.
        while segments.len() > 1 && segments.last().is_some_and(|&s| s >= committed_next) {
            let Some(segment) = segments.pop() else { break };
            let path = dir.join(segment_file_name(segment));
            let len = fs::metadata(&path).map_err(io_err(&path))?.len();
            fs::remove_file(&path).map_err(io_err(&path))?;
            recovery.truncated_bytes += len;
            recovery.removed_segments += 1;
            dir_changed = true;
        }
        let active_first = match segments.last() {
            Some(&s) => s,
            None => {
                if let Some(head) = head {
                    return Err(LogError::BadHead(format!(
                        "committed index {} but no segments",
                        head.index
                    )));
                }
                dir_changed = true;
                0
            }
        };
        let path = dir.join(segment_file_name(active_first));
        let old_len = match fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io_err(&path)(e)),
        };
        let keep_len;
        if active_first >= committed_next {
            // Nothing committed in it: keep (or rewrite) just its header.
            if active_first > committed_next {
                return Err(LogError::BadHead(format!(
                    "committed up to index {committed_next} but the only segment starts at {active_first}"
                )));
            }
            let expected_anchor = recovery.last_hash;
            let header_ok = old_len >= HEADER_BYTES
                && match Cursor::open(&dir, active_first)? {
                    Ok(cursor) => cursor.header.anchor == expected_anchor,
                    Err(_) => false,
                };
            if header_ok {
                keep_len = HEADER_BYTES;
            } else {
                let header = encode_header(active_first, &expected_anchor);
                let mut file = File::create(&path).map_err(io_err(&path))?;
                file.write_all(&header).and_then(|()| file.sync_all()).map_err(io_err(&path))?;
                recovery.truncated_bytes += old_len;
                keep_len = HEADER_BYTES;
                dir_changed = true;
            }
        } else {
            let mut cursor = match Cursor::open(&dir, active_first)? {
                Ok(cursor) => cursor,
                Err(problem) => {
                    return Err(LogError::Corrupt {
                        segment: segment_file_name(active_first),
                        offset: 0,
                        problem,
                    });
                }
            };
            while cursor.index < committed_next {
                match cursor.next()? {
                    Step::Record(_) => {}
                    Step::End => {
                        let (offset, next) = (cursor.offset, cursor.index);
                        let head = committed_next - 1;
                        return Err(
                            cursor.corrupt(offset, Problem::MissingCommitted { head, next })
                        );
                    }
                    Step::Bad { offset, problem } => return Err(cursor.corrupt(offset, problem)),
                }
            }
            if cursor.hash != recovery.last_hash {
                let offset = cursor.offset;
                return Err(cursor.corrupt(offset, Problem::HeadMismatch));
            }
            keep_len = cursor.offset;
        }
        let active =
            OpenOptions::new().read(true).append(true).open(&path).map_err(io_err(&path))?;
        let len = active.metadata().map_err(io_err(&path))?.len();
        if len > keep_len {
            active.set_len(keep_len).map_err(io_err(&path))?;
            active.sync_all().map_err(io_err(&path))?;
            recovery.truncated_bytes += len - keep_len;
        }
        if dir_changed {
            sync_dir(&dir)?;
        }
        if segments.is_empty() {
            segments.push(active_first);
        }
        let log = SegmentLog {
            _lock: lock,
            dir,
            config,
            segments,
            active,
            active_len: keep_len,
            committed_next,
            committed_hash: recovery.last_hash,
            pending: Vec::new(),
            pending_records: 0,
            tip_next: committed_next,
            tip_hash: recovery.last_hash,
            tip_segment: active_first,
            tip_len: keep_len,
            last: None,
            poisoned: false,
        };
        Ok((log, recovery))
    }

    /// Buffers a record and returns where it will be. Nothing is durable
    /// (or accepted) until [`SegmentLog::commit`] returns `Ok`.
    pub fn append(&mut self, kind: RecordKind, payload: &[u8]) -> Result<Position, LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(LogError::PayloadTooLarge { len: payload.len() });
        }
        let frame_len = FRAME_OVERHEAD_BYTES + payload.len() as u64;
        if self.tip_len > HEADER_BYTES
            && self.tip_len.saturating_add(frame_len) > self.config.segment_bytes
        {
            self.tip_segment = self.tip_next;
            self.tip_len = HEADER_BYTES;
            self.pending.push(Chunk {
                segment: self.tip_segment,
                header: Some(encode_header(self.tip_next, &self.tip_hash)),
                bytes: Vec::new(),
            });
        } else if self.pending.last().is_none_or(|c| c.segment != self.tip_segment) {
            self.pending.push(Chunk { segment: self.tip_segment, header: None, bytes: Vec::new() });
        }
        let hash = chain(&self.tip_hash, kind.as_byte(), payload);
        let position = Position {
            index: self.tip_next,
            segment: self.tip_segment,
            offset: self.tip_len,
            hash,
        };
        if let Some(chunk) = self.pending.last_mut() {
            chunk.bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            chunk.bytes.push(kind.as_byte());
            chunk.bytes.extend_from_slice(payload);
            chunk.bytes.extend_from_slice(&hash[..CHECK_BYTES]);
        }
        self.tip_next += 1;
        self.tip_hash = hash;
        self.tip_len += frame_len;
        self.pending_records += 1;
        self.last = Some(position);
        Ok(position)
    }

    /// Writes every buffered record, makes it durable (`fdatasync` of the
    /// segment files, an fsync of the directory when a segment was created,
    /// then an atomic `HEAD` update), and only then returns. Records count
    /// as accepted once this returns `Ok`. After an error the log refuses
    /// further use ([`LogError::Poisoned`]); reopen it to recover.
    pub fn commit(&mut self) -> Result<CommitInfo, LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        if self.pending.is_empty() {
            return Ok(CommitInfo { records: 0, bytes: 0, last: None });
        }
        match self.write_pending() {
            Ok(bytes) => {
                let info = CommitInfo { records: self.pending_records, bytes, last: self.last };
                self.pending_records = 0;
                self.committed_next = self.tip_next;
                self.committed_hash = self.tip_hash;
                Ok(info)
            }
            Err(e) => {
                self.poisoned = true;
                Err(e)
            }
        }
    }

    fn write_pending(&mut self) -> Result<u64, LogError> {
        let mut created = false;
        let mut bytes = 0u64;
        for chunk in std::mem::take(&mut self.pending) {
            let path = self.dir.join(segment_file_name(chunk.segment));
            if let Some(header) = &chunk.header {
                // Finish the old segment before starting the next.
                self.active.sync_data().map_err(io_err(&path))?;
                let file = OpenOptions::new()
                    .read(true)
                    .append(true)
                    .create_new(true)
                    .open(&path)
                    .map_err(io_err(&path))?;
                self.active = file;
                self.active.write_all(header).map_err(io_err(&path))?;
                self.segments.push(chunk.segment);
                self.active_len = 0;
                bytes += header.len() as u64;
                self.active_len += header.len() as u64;
                created = true;
            }
            self.active.write_all(&chunk.bytes).map_err(io_err(&path))?;
            bytes += chunk.bytes.len() as u64;
            self.active_len += chunk.bytes.len() as u64;
        }
        let active_path = self.dir.join(segment_file_name(self.tip_segment));
        self.active.sync_data().map_err(io_err(&active_path))?;
        if created {
            sync_dir(&self.dir)?;
        }
        write_head(&self.dir, Head { index: self.tip_next - 1, hash: self.tip_hash })?;
        Ok(bytes)
    }

    /// Removes whole old segments matching `cutoff`, oldest first, stopping
    /// at the first that does not match; the active (last) segment is never
    /// removed. The chain stays anchored by the next segment's header.
    pub fn prune_before(&mut self, cutoff: PruneBefore) -> Result<PruneInfo, LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        let mut info = PruneInfo::default();
        while self.segments.len() > 1 {
            let segment = self.segments[0];
            let path = self.dir.join(segment_file_name(segment));
            let meta = fs::metadata(&path).map_err(io_err(&path))?;
            let remove = match cutoff {
                PruneBefore::Index(index) => self.segments[1] <= index,
                PruneBefore::Modified(time) => meta.modified().map_err(io_err(&path))? < time,
            };
            if !remove {
                break;
            }
            fs::remove_file(&path).map_err(io_err(&path))?;
            self.segments.remove(0);
            info.removed_segments += 1;
            info.removed_bytes += meta.len();
        }
        if info.removed_segments > 0 {
            sync_dir(&self.dir)?;
        }
        info.first_index = self.first_index();
        Ok(info)
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Index of the first record still on disk (above 0 after pruning).
    pub fn first_index(&self) -> u64 {
        self.segments.first().copied().unwrap_or(0)
    }

    /// Index the next committed record will have: the number of records
    /// committed, counting any pruned prefix.
    pub fn committed_records(&self) -> u64 {
        self.committed_next
    }

    /// Chain hash after the last committed record.
    pub fn committed_hash(&self) -> [u8; 32] {
        self.committed_hash
    }

    /// Records appended but not yet committed.
    pub fn pending_records(&self) -> u64 {
        self.pending_records
    }

    /// First indexes of the segment files, ascending (see [`segment_file_name`]).
    pub fn segments(&self) -> &[u64] {
        &self.segments
    }

    /// Bytes in the active segment, committed.
    pub fn active_segment_bytes(&self) -> u64 {
        self.active_len
    }
}
