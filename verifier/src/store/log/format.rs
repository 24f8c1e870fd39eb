//! The on-disk format (see [`super`]): segment file names, the segment
//! header, the chain hash each frame's check is cut from, and `HEAD`, read
//! and replaced atomically.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use super::{LogError, io_err};

/// The first bytes of every segment file.
pub const MAGIC: [u8; 4] = *b"VLOG";
/// The segment format version written. Version 1 (the payload hashed with
/// its kind byte, see [`payload_digest`]) is still read, and a log that
/// holds it goes on in it until its active segment is full.
pub const FORMAT_VERSION: u8 = 2;
/// The oldest segment format version read.
pub(super) const OLDEST_VERSION: u8 = 1;
/// Bytes of a segment header.
pub const HEADER_BYTES: u64 = 4 + 1 + 3 + 8 + 32 + CHECK_BYTES as u64;
/// Bytes a frame adds to its payload: length prefix, kind byte, check.
pub const FRAME_OVERHEAD_BYTES: u64 = 4 + 1 + CHECK_BYTES as u64;
/// The largest payload of one frame (1 MiB).
pub const MAX_PAYLOAD_BYTES: usize = 1 << 20;
/// The default size at which a new segment is started (64 MiB).
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
/// The default tail of committed bytes left in the page cache (16 MiB):
/// at a saturated node's rate (about 100 MB/s) a sixth of a second of frames, at a
/// typical one minutes of them, which is what a follower or a syncing peer
/// reads back.
pub const DEFAULT_CACHED_TAIL_BYTES: u64 = 16 << 20;
/// The chain hash before the very first record, `h_{-1}`.
pub const GENESIS_HASH: [u8; 32] = [0; 32];
/// Name of the file holding the last committed record.
pub const HEAD_FILE: &str = "HEAD";

/// Bytes of the check that ends a frame, a header and `HEAD`.
pub(super) const CHECK_BYTES: usize = 8;
const HEAD_MAGIC: [u8; 4] = *b"VHED";
const HEAD_BYTES: usize = 4 + 8 + 32 + CHECK_BYTES;
/// Where a new `HEAD` is written before it replaces the old one.
pub(super) const HEAD_TMP_FILE: &str = "HEAD.tmp";
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

/// What is wrong with the `HEAD` file ([`LogError::BadHead`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeadProblem {
    /// The file is not [`HEAD_BYTES`] long.
    #[error("{found} bytes, expected {HEAD_BYTES}")]
    Length {
        /// Its length.
        found: usize,
    },
    /// The magic or the file's own check does not match.
    #[error("bad magic or checksum")]
    Checksum,
    /// A committed index with no segment to hold it.
    #[error("committed index {committed} but no segments")]
    NoSegments {
        /// The committed index `HEAD` names.
        committed: u64,
    },
    /// A committed index before the first segment (pruned past it).
    #[error("committed index {committed} is before the first segment ({first})")]
    BeforeFirstSegment {
        /// The committed index `HEAD` names.
        committed: u64,
        /// The first segment's first index.
        first: u64,
    },
    /// Committed records that the only segment starts after.
    #[error("committed up to index {committed_next} but the only segment starts at {first}")]
    AfterCommitted {
        /// The index after the last committed record.
        committed_next: u64,
        /// The only segment's first index.
        first: u64,
    },
}

/// What is wrong with a frame or segment header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The header does not start with `VLOG`.
    #[error("bad segment magic")]
    BadMagic,
    /// The header's version is not one this release reads (1 to [`FORMAT_VERSION`]).
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

pub(super) fn check_of(bytes: &[u8]) -> [u8; CHECK_BYTES] {
    let hash = blake3::hash(bytes);
    let mut out = [0u8; CHECK_BYTES];
    out.copy_from_slice(&hash.as_bytes()[..CHECK_BYTES]);
    out
}

/// What a frame's chain step takes of its payload: `blake3(payload)`, so
/// that an envelope's record chains its envelope id (the id gossip, sync
/// and the checkpoints' Merkle leaves already use, computed once per
/// envelope); in version 1, `blake3(kind ‖ payload)`.
///
/// `known` is the payload's blake3 when the caller has it ([`Hashed`]).
pub(super) fn payload_digest(
    version: u8,
    kind: u8,
    payload: &[u8],
    known: Option<&[u8; 32]>,
) -> [u8; 32] {
    match (version, known) {
        (1, _) => {
            let mut inner = blake3::Hasher::new();
            inner.update(&[kind]);
            inner.update(payload);
            *inner.finalize().as_bytes()
        }
        (_, Some(hash)) => *hash,
        (_, None) => *blake3::hash(payload).as_bytes(),
    }
}

/// A payload and its blake3 hash, computed once. For an envelope that hash
/// is its id (`vouch_schema::merkle::envelope_id`), which a verifier needs
/// before it validates the envelope, and which the log then chains without
/// hashing tens of KiB again ([`SegmentLog::append_hashed`](super::SegmentLog::append_hashed)).
/// Made only by hashing, so the two always agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hashed {
    bytes: Vec<u8>,
    hash: [u8; 32],
}

impl Hashed {
    /// Hashes `bytes`.
    pub fn new(bytes: Vec<u8>) -> Hashed {
        let hash = *blake3::hash(&bytes).as_bytes();
        Hashed { bytes, hash }
    }

    /// The payload.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Its blake3 hash.
    pub fn hash(&self) -> &[u8; 32] {
        &self.hash
    }

    /// The payload, taken back.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The payload and its hash.
    pub(super) fn into_parts(self) -> (Vec<u8>, [u8; 32]) {
        (self.bytes, self.hash)
    }
}

/// `h_i = blake3(h_{i-1} ‖ kind ‖ d_i)`, with `d_i` the payload's
/// [`payload_digest`]; in version 1, `h_i = blake3(h_{i-1} ‖ d_i)` (its
/// digest covers the kind).
pub(super) fn chain(version: u8, prev: &[u8; 32], kind: u8, digest: &[u8; 32]) -> [u8; 32] {
    let mut outer = blake3::Hasher::new();
    outer.update(prev);
    if version != 1 {
        outer.update(&[kind]);
    }
    outer.update(digest);
    *outer.finalize().as_bytes()
}

/// A segment header in the current [`FORMAT_VERSION`].
pub(super) fn encode_header(first_index: u64, anchor: &[u8; 32]) -> Vec<u8> {
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
pub(super) struct Header {
    /// The format its frames are chained in.
    pub(super) version: u8,
    pub(super) first_index: u64,
    pub(super) anchor: [u8; 32],
}

pub(super) fn decode_header(
    bytes: &[u8; HEADER_BYTES as usize],
    name_index: u64,
) -> Result<Header, Problem> {
    if bytes[..4] != MAGIC {
        return Err(Problem::BadMagic);
    }
    let version = bytes[4];
    if !(OLDEST_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(Problem::BadVersion(version));
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
    Ok(Header { version, first_index, anchor })
}

/// The last committed record, as `HEAD` records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Head {
    pub(super) index: u64,
    pub(super) hash: [u8; 32],
}

pub(super) fn read_head(dir: &Path) -> Result<Option<Head>, LogError> {
    let path = dir.join(HEAD_FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(&path)(e)),
    };
    if bytes.len() != HEAD_BYTES {
        return Err(LogError::BadHead(HeadProblem::Length { found: bytes.len() }));
    }
    let body = HEAD_BYTES - CHECK_BYTES;
    if bytes[..4] != HEAD_MAGIC || check_of(&bytes[..body]) != bytes[body..] {
        return Err(LogError::BadHead(HeadProblem::Checksum));
    }
    let mut index = [0u8; 8];
    index.copy_from_slice(&bytes[4..12]);
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&bytes[12..44]);
    Ok(Some(Head { index: u64::from_be_bytes(index), hash }))
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

/// Replaces `HEAD` atomically and durably.
pub(super) fn write_head(dir: &Path, head: Head) -> Result<(), LogError> {
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
pub(super) fn list_segments(dir: &Path) -> Result<Vec<u64>, LogError> {
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
