//! [`verify`]: the whole chain of a log recomputed and held against every
//! segment header and `HEAD`.

use std::path::Path;

use super::LogError;
use super::format::{GENESIS_HASH, HeadProblem, Problem, list_segments, read_head};
use super::reader::{Cursor, Step};

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

/// Recomputes the whole chain of the log in `dir` and checks it against
/// every segment header and `HEAD`.
///
/// The first present segment's anchor is trusted (it is where a pruned
/// prefix ended, or [`GENESIS_HASH`] for a segment starting at index 0);
/// every later header must continue the chain exactly. The error names the
/// first bad header or frame by segment file name and byte offset. An
/// empty or missing-segments directory verifies as an empty log unless
/// `HEAD` says records were committed. It takes no lock: run it on a log no
/// writer is appending to (or after [`SegmentLog::open`](super::SegmentLog::open) recovered it), or
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
        let mut cursor = Cursor::open_checked(dir, segment)?;
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
                return Err(LogError::BadHead(HeadProblem::NoSegments { committed: head.index }));
            }
            return Err(LogError::Corrupt {
                segment: last_name,
                offset: last_end,
                problem: Problem::MissingCommitted { head: head.index, next },
            });
        }
        if head.index < summary.first_index {
            return Err(LogError::BadHead(HeadProblem::BeforeFirstSegment {
                committed: head.index,
                first: summary.first_index,
            }));
        }
    }
    Ok(summary)
}
