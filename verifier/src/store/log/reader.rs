//! Reading frames back: a cursor over one segment that recomputes the
//! chain as it goes, and [`LogReader`], committed records across segments.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::format::{
    CHECK_BYTES, FRAME_OVERHEAD_BYTES, HEADER_BYTES, Header, MAX_PAYLOAD_BYTES, Problem,
    RecordKind, chain, decode_header, list_segments, payload_digest, read_head, segment_file_name,
};
use super::{LogError, Position, Record, io_err};

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
pub(super) enum Step {
    /// A whole frame whose check matched.
    Record(Record),
    /// The end of the segment file, between frames.
    End,
    /// A bad or cut-off frame at `offset`.
    Bad { offset: u64, problem: Problem },
}

/// Reads one segment's frames in order, recomputing the chain from its anchor.
#[derive(Debug)]
pub(super) struct Cursor {
    path: PathBuf,
    /// The segment's file name.
    pub(super) name: String,
    segment: u64,
    reader: BufReader<File>,
    file_len: u64,
    /// Where the next frame starts.
    pub(super) offset: u64,
    /// The next frame's record index.
    pub(super) index: u64,
    /// The chain hash after the last frame read (the anchor before any).
    pub(super) hash: [u8; 32],
    /// The segment's header.
    pub(super) header: Header,
}

impl Cursor {
    /// Opens a segment and checks its header. The inner error is a header problem.
    pub(super) fn open(dir: &Path, segment: u64) -> Result<Result<Cursor, Problem>, LogError> {
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

    /// Takes the file's length again (the active segment grows under a
    /// reader that follows the log) and drops what the buffer read ahead.
    /// Bytes past the last committed frame may have been read ahead while
    /// they were a write that never committed; a writer that restarts after
    /// a crash cuts them off and writes other frames in their place, which
    /// the next read must see.
    fn refresh(&mut self) -> Result<(), LogError> {
        self.file_len = self.reader.get_ref().metadata().map_err(io_err(&self.path))?.len();
        self.reader.seek(SeekFrom::Start(self.offset)).map_err(io_err(&self.path))?;
        Ok(())
    }

    /// [`Cursor::open`], a bad header being the error that names its segment.
    pub(super) fn open_checked(dir: &Path, segment: u64) -> Result<Cursor, LogError> {
        Cursor::open(dir, segment)?.map_err(|problem| LogError::Corrupt {
            segment: segment_file_name(segment),
            offset: 0,
            problem,
        })
    }

    /// The error naming this segment and `offset`.
    pub(super) fn corrupt(&self, offset: u64, problem: Problem) -> LogError {
        LogError::Corrupt { segment: self.name.clone(), offset, problem }
    }

    /// Reads the next frame, checking its chain hash.
    pub(super) fn next(&mut self) -> Result<Step, LogError> {
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
        let version = self.header.version;
        let digest = payload_digest(version, prefix[4], &payload, None);
        let hash = chain(version, &self.hash, prefix[4], &digest);
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

/// Iterates committed records in order, across segments, from a given index.
///
/// It reads what `HEAD` says was committed when it was opened and checks
/// every frame's chain hash as it goes; it stops after the first error.
/// Open the log with [`SegmentLog::open`](super::SegmentLog::open) first after a crash. To resume
/// later (an export, say), reopen at [`LogReader::next_index`]; to go on
/// reading what was committed since, call [`LogReader::follow`].
#[derive(Debug)]
pub struct LogReader {
    dir: PathBuf,
    segments: Vec<u64>,
    next_segment: usize,
    cursor: Option<Cursor>,
    from: u64,
    end: u64,
    /// The iterator has ended: at `end`, or after an error.
    done: bool,
    /// It ended with an error, so [`LogReader::follow`] does not restart it.
    failed: bool,
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
        Ok(LogReader {
            dir,
            segments,
            next_segment,
            cursor: None,
            from,
            end,
            done: from >= end,
            failed: false,
        })
    }

    /// Extends the reader to what is committed now (`HEAD` read again), so
    /// that it yields the records committed since it was opened or last
    /// followed, from where it stands. A follower of a live log calls this
    /// whenever the reader runs dry: reopening at [`LogReader::next_index`]
    /// would read the segment again from its start to find its place (the
    /// chain is checked from each segment's anchor), which at a 64 MiB
    /// segment is tens of milliseconds a poll. A reader that stopped at an
    /// error stays stopped. Returns the new [`LogReader::end`].
    pub fn follow(&mut self) -> Result<u64, LogError> {
        if self.failed {
            return Ok(self.end);
        }
        // HEAD first: every record it counts is in a file listed and sized
        // after it (the writer syncs frames before it replaces HEAD).
        let end = read_head(&self.dir)?.map_or(0, |h| h.index + 1);
        if end <= self.end {
            return Ok(self.end);
        }
        self.segments = list_segments(&self.dir)?;
        self.next_segment = match &mut self.cursor {
            Some(cursor) => {
                cursor.refresh()?;
                self.segments.partition_point(|&s| s <= cursor.segment)
            }
            None => self.segments.partition_point(|&s| s <= self.from).saturating_sub(1),
        };
        self.end = end;
        self.done = self.from >= end;
        Ok(end)
    }

    /// Moves the reader forward to record `to` (nothing when `to` is not
    /// past [`LogReader::next_index`]). When `to` lies in a later segment
    /// than the one being read, the segments between are not read at all:
    /// the reader goes on from the anchor of `to`'s segment. A reader
    /// picking records scattered over the log (sync's envelope fetch) reads
    /// the segments that hold them, not everything from the first to the
    /// last.
    pub fn skip_to(&mut self, to: u64) {
        if to <= self.from {
            return;
        }
        self.from = to;
        let target = self.segments.partition_point(|&s| s <= to).saturating_sub(1);
        let Some(&start) = self.segments.get(target) else { return };
        if self.cursor.as_ref().is_some_and(|c| c.segment < start) {
            self.cursor = None;
        }
        if self.cursor.is_none() {
            self.next_segment = self.next_segment.max(target);
        }
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
                let cursor = Cursor::open_checked(&self.dir, segment)?;
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
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}
