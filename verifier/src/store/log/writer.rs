//! [`SegmentLog`]: appending records, group commit (frames, then
//! `fdatasync`, then `HEAD`), and the recovery of a torn tail on open.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::cache;
use super::format::{
    CHECK_BYTES, DEFAULT_CACHED_TAIL_BYTES, DEFAULT_SEGMENT_BYTES, FORMAT_VERSION,
    FRAME_OVERHEAD_BYTES, GENESIS_HASH, HEAD_TMP_FILE, HEADER_BYTES, Hashed, Head, HeadProblem,
    MAX_PAYLOAD_BYTES, Problem, RecordKind, chain, encode_header, list_segments, payload_digest,
    read_head, segment_file_name, sync_dir, write_head,
};
use super::reader::{Cursor, Step};
use super::{LogError, Position, io_err};

/// Name of the file a [`SegmentLog`] holds an exclusive lock on while open.
pub const LOCK_FILE: &str = "LOCK";
/// How many times a busy writer lock is retried before [`LogError::Locked`].
pub const LOCK_RETRIES: u32 = 20;
/// The pause between tries of a busy writer lock.
pub const LOCK_RETRY_DELAY: Duration = Duration::from_millis(10);
/// How a log is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// A new segment is started when the next frame would take the active
    /// one past this many bytes (a segment always holds at least one frame).
    pub segment_bytes: u64,
    /// Committed bytes the log leaves in the page cache: after each commit,
    /// what lies further back than this in the active segment is dropped
    /// (see [`cache`](super::cache)), and a finished segment is dropped
    /// whole when the next one starts. `u64::MAX` drops nothing (the
    /// kernel decides, as for any file).
    pub cached_tail_bytes: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            cached_tail_bytes: DEFAULT_CACHED_TAIL_BYTES,
        }
    }
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
    /// Committed bytes this call dropped from the page cache
    /// ([`LogConfig::cached_tail_bytes`]).
    pub uncached_bytes: u64,
}

/// A commit whose records are written and whose sync is under way
/// ([`SegmentLog::start_commit`]); hand it to [`SegmentLog::finish_commit`].
#[derive(Debug)]
#[must_use = "records count as committed only once finish_commit returns Ok"]
pub struct Syncing {
    job: SyncJob,
    /// What the commit makes durable (its page-cache drop still to come).
    info: CommitInfo,
    /// The log's next index and chain hash once it is durable.
    next: u64,
    hash: [u8; 32],
}

impl Syncing {
    /// Records this commit makes durable.
    pub fn records(&self) -> u64 {
        self.info.records
    }
}

/// Where a commit's sync runs.
#[derive(Debug)]
enum SyncJob {
    /// On a thread of its own.
    Thread(std::thread::JoinHandle<Result<(), LogError>>),
    /// Already over (nothing to sync, or no thread could be started).
    Done(Result<(), LogError>),
}

/// What makes a written commit durable, owned, for the sync thread.
struct Durable {
    /// The active segment (a second descriptor of the writer's file).
    file: io::Result<File>,
    path: PathBuf,
    dir: PathBuf,
    /// A segment was created by the commit: its directory entry is synced too.
    created: bool,
    head: Head,
}

impl Durable {
    /// `fdatasync` of the segment, the directory when a segment was created,
    /// then the atomic `HEAD` update.
    fn make(self) -> Result<(), LogError> {
        let file = self.file.map_err(io_err(&self.path))?;
        file.sync_data().map_err(io_err(&self.path))?;
        if self.created {
            sync_dir(&self.dir)?;
        }
        write_head(&self.dir, self.head)
    }
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

/// Writes `frames` in order and returns how many bytes that was. A vectored
/// write takes as many frame parts as the kernel allows in one call (std
/// caps the count at `IOV_MAX`); a short write resumes where it stopped.
fn write_frames(file: &mut File, frames: &[Frame]) -> io::Result<u64> {
    let mut slices: Vec<io::IoSlice<'_>> = frames
        .iter()
        .flat_map(|f| [&f.head[..], &f.payload, &f.check].map(io::IoSlice::new))
        .collect();
    let mut rest = &mut slices[..];
    let mut written = 0u64;
    while !rest.is_empty() {
        match file.write_vectored(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                written += n as u64;
                io::IoSlice::advance_slices(&mut rest, n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}

/// Frames buffered for one segment by [`SegmentLog::append`].
#[derive(Debug)]
struct Chunk {
    segment: u64,
    /// The header, when this chunk starts a new segment.
    header: Option<Vec<u8>>,
    /// Written with vectored writes: a group of large records never
    /// regrows (and re-copies) one large buffer.
    frames: Vec<Frame>,
}

/// One buffered frame in its three parts, so that an owned payload is
/// written where it already lies ([`SegmentLog::append_owned`]).
#[derive(Debug)]
struct Frame {
    /// `u32be(len) ‖ kind`.
    head: [u8; 5],
    payload: Vec<u8>,
    /// The first bytes of the chain hash.
    check: [u8; CHECK_BYTES],
}

/// The append-only segment log, open for writing. See the module docs for
/// the format and the durability contract. One `SegmentLog` at a time may
/// have a directory open (an exclusive lock on [`LOCK_FILE`], released by
/// the kernel if the process dies); [`LogReader`](super::LogReader) and
/// [`verify`](super::verify()) take no lock.
#[derive(Debug)]
pub struct SegmentLog {
    /// Holds the exclusive lock on [`LOCK_FILE`] until dropped.
    _lock: File,
    pub(super) dir: PathBuf,
    config: LogConfig,
    /// First indexes of the segments on disk, ascending; the last is active.
    pub(super) segments: Vec<u64>,
    active: File,
    /// Committed length of the active segment.
    active_len: u64,
    /// Where the active segment's cached part starts: everything before it
    /// was dropped from the page cache.
    cached_from: u64,
    committed_next: u64,
    committed_hash: [u8; 32],
    pending: Vec<Chunk>,
    pending_records: u64,
    tip_next: u64,
    tip_hash: [u8; 32],
    tip_segment: u64,
    tip_len: u64,
    /// The format the tip segment's frames are chained in: the current one,
    /// except in a version 1 segment an older release left active, which
    /// goes on in its own format until it is full.
    tip_version: u8,
    last: Option<Position>,
    /// A commit failed: the log refuses further use until reopened.
    pub(super) poisoned: bool,
    /// A commit's sync is under way ([`SegmentLog::start_commit`]).
    syncing: bool,
}

impl SegmentLog {
    /// Opens (creating if needed) the log in `dir` and recovers it: anything
    /// beyond the last committed record per `HEAD` (a torn frame, a damaged
    /// or uncommitted last segment, frames whose commit never returned) is
    /// truncated and reported. Committed records of the last segment are
    /// checked; earlier segments are trusted here and checked by
    /// [`verify`](super::verify()).
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
                    return Err(LogError::BadHead(HeadProblem::NoSegments {
                        committed: head.index,
                    }));
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
        let (keep_len, tip_version);
        if active_first >= committed_next {
            // Nothing committed in it: keep (or rewrite) just its header.
            if active_first > committed_next {
                return Err(LogError::BadHead(HeadProblem::AfterCommitted {
                    committed_next,
                    first: active_first,
                }));
            }
            // A header of an older format is rewritten too: the segment
            // holds no frame chained in it yet.
            let expected_anchor = recovery.last_hash;
            let header_ok = old_len >= HEADER_BYTES
                && match Cursor::open(&dir, active_first)? {
                    Ok(cursor) => {
                        cursor.header.anchor == expected_anchor
                            && cursor.header.version == FORMAT_VERSION
                    }
                    Err(_) => false,
                };
            tip_version = FORMAT_VERSION;
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
            let mut cursor = Cursor::open_checked(&dir, active_first)?;
            tip_version = cursor.header.version;
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
            cached_from: 0,
            committed_next,
            committed_hash: recovery.last_hash,
            pending: Vec::new(),
            pending_records: 0,
            tip_next: committed_next,
            tip_hash: recovery.last_hash,
            tip_segment: active_first,
            tip_len: keep_len,
            tip_version,
            last: None,
            poisoned: false,
            syncing: false,
        };
        Ok((log, recovery))
    }

    /// Buffers a record (a copy of `payload`) and returns where it will be.
    /// Nothing is durable (or accepted) until [`SegmentLog::commit`] returns `Ok`.
    pub fn append(&mut self, kind: RecordKind, payload: &[u8]) -> Result<Position, LogError> {
        self.append_owned(kind, payload.to_vec())
    }

    /// [`SegmentLog::append`] of a payload the caller gives up: it is written
    /// from where it lies, not copied (an envelope is tens of KiB).
    pub fn append_owned(
        &mut self,
        kind: RecordKind,
        payload: Vec<u8>,
    ) -> Result<Position, LogError> {
        self.append_frame(kind, payload, None)
    }

    /// [`SegmentLog::append_owned`] of a payload hashed already: the chain
    /// takes that hash rather than hash the payload again (an envelope's
    /// id, which a verifier computes before it validates the envelope).
    pub fn append_hashed(
        &mut self,
        kind: RecordKind,
        payload: Hashed,
    ) -> Result<Position, LogError> {
        let (bytes, hash) = payload.into_parts();
        self.append_frame(kind, bytes, Some(hash))
    }

    /// Buffers a frame; `blake3` is the payload's hash when known.
    fn append_frame(
        &mut self,
        kind: RecordKind,
        payload: Vec<u8>,
        blake3: Option<[u8; 32]>,
    ) -> Result<Position, LogError> {
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
            self.tip_version = FORMAT_VERSION;
            self.pending.push(Chunk {
                segment: self.tip_segment,
                header: Some(encode_header(self.tip_next, &self.tip_hash)),
                frames: Vec::new(),
            });
        } else if self.pending.last().is_none_or(|c| c.segment != self.tip_segment) {
            self.pending.push(Chunk {
                segment: self.tip_segment,
                header: None,
                frames: Vec::new(),
            });
        }
        let (version, kind_byte) = (self.tip_version, kind.as_byte());
        let digest = payload_digest(version, kind_byte, &payload, blake3.as_ref());
        let hash = chain(version, &self.tip_hash, kind_byte, &digest);
        let position = Position {
            index: self.tip_next,
            segment: self.tip_segment,
            offset: self.tip_len,
            hash,
        };
        if let Some(chunk) = self.pending.last_mut() {
            let mut head = [0u8; 5];
            head[..4].copy_from_slice(&(payload.len() as u32).to_be_bytes());
            head[4] = kind.as_byte();
            let mut check = [0u8; CHECK_BYTES];
            check.copy_from_slice(&hash[..CHECK_BYTES]);
            chunk.frames.push(Frame { head, payload, check });
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
        let syncing = self.begin_commit(false)?;
        self.finish_commit(syncing)
    }

    /// The first half of [`SegmentLog::commit`]: writes every buffered record
    /// and starts making them durable on a thread of its own, so that the
    /// caller can go on working (appending included) while the disk syncs.
    /// Nothing counts as committed until [`SegmentLog::finish_commit`]
    /// returns `Ok` for it, and one commit is under way at a time
    /// ([`LogError::CommitUnderWay`]). Readers may see the records sooner:
    /// the sync thread replaces `HEAD` as soon as they are durable, which
    /// can be before `finish_commit` is called. They never see a record
    /// before it is durable, nor part of a commit.
    pub fn start_commit(&mut self) -> Result<Syncing, LogError> {
        self.begin_commit(true)
    }

    /// Writes the pending records and makes them durable: on a thread of
    /// its own when `on_thread`, else here (a plain [`SegmentLog::commit`]
    /// would only wait for the thread).
    fn begin_commit(&mut self, on_thread: bool) -> Result<Syncing, LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        if self.syncing {
            return Err(LogError::CommitUnderWay);
        }
        if self.pending.is_empty() {
            return Ok(Syncing {
                job: SyncJob::Done(Ok(())),
                info: CommitInfo { records: 0, bytes: 0, last: None, uncached_bytes: 0 },
                next: self.committed_next,
                hash: self.committed_hash,
            });
        }
        let (bytes, uncached, created) = match self.write_pending() {
            Ok(written) => written,
            Err(e) => {
                self.poisoned = true;
                return Err(e);
            }
        };
        let info = CommitInfo {
            records: self.pending_records,
            bytes,
            last: self.last,
            uncached_bytes: uncached,
        };
        self.pending_records = 0;
        let job = if on_thread {
            let durable = self.durable(created);
            match std::thread::Builder::new()
                .name("vouch-log-sync".into())
                .spawn(move || durable.make())
            {
                Ok(handle) => SyncJob::Thread(handle),
                // No thread to be had: sync here (the closure, and the
                // descriptor it held, went with the failed spawn).
                Err(_) => SyncJob::Done(self.durable(created).make()),
            }
        } else {
            SyncJob::Done(self.durable(created).make())
        };
        self.syncing = true;
        Ok(Syncing { job, info, next: self.tip_next, hash: self.tip_hash })
    }

    /// What makes the written records durable, for the sync thread.
    fn durable(&self, created: bool) -> Durable {
        Durable {
            file: self.active.try_clone(),
            path: self.dir.join(segment_file_name(self.tip_segment)),
            dir: self.dir.clone(),
            created,
            head: Head { index: self.tip_next - 1, hash: self.tip_hash },
        }
    }

    /// The second half of [`SegmentLog::commit`]: waits until the records
    /// [`SegmentLog::start_commit`] wrote are durable, and only then counts
    /// them as committed. After an error the log refuses further use
    /// ([`LogError::Poisoned`]); reopen it to recover.
    pub fn finish_commit(&mut self, syncing: Syncing) -> Result<CommitInfo, LogError> {
        let Syncing { job, mut info, next, hash } = syncing;
        if info.records == 0 {
            return Ok(info);
        }
        self.syncing = false;
        let done = match job {
            SyncJob::Thread(handle) => handle.join().unwrap_or(Err(LogError::SyncLost)),
            SyncJob::Done(done) => done,
        };
        if let Err(e) = done {
            self.poisoned = true;
            return Err(e);
        }
        // Only now are the pages clean, so that dropping them loses nothing.
        let keep_from =
            cache::page_floor(self.active_len.saturating_sub(self.config.cached_tail_bytes));
        if keep_from > self.cached_from {
            info.uncached_bytes += cache::drop_range(&self.active, self.cached_from, keep_from);
            self.cached_from = keep_from;
        }
        self.committed_next = next;
        self.committed_hash = hash;
        Ok(info)
    }

    /// Writes the pending frames (a finished segment is synced before the
    /// next starts); returns the bytes written, the bytes dropped from the
    /// page cache with a finished segment, and whether a segment was created.
    fn write_pending(&mut self) -> Result<(u64, u64, bool), LogError> {
        let mut created = false;
        let mut bytes = 0u64;
        let mut uncached = 0u64;
        for chunk in std::mem::take(&mut self.pending) {
            let path = self.dir.join(segment_file_name(chunk.segment));
            if let Some(header) = &chunk.header {
                // Finish the old segment before starting the next.
                self.active.sync_data().map_err(io_err(&path))?;
                if self.config.cached_tail_bytes != u64::MAX {
                    uncached += cache::drop_range(&self.active, self.cached_from, self.active_len);
                }
                self.cached_from = 0;
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
            let written = write_frames(&mut self.active, &chunk.frames).map_err(io_err(&path))?;
            bytes += written;
            self.active_len += written;
        }
        Ok((bytes, uncached, created))
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
