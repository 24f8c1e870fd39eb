//! The log follower every sink is built on.
//!
//! A [`Follower`] reads committed records of the segment log from a cursor
//! onward (only what a `commit` made durable, so only accepted envelopes),
//! decodes the envelope records into [`AcceptedEnvelope`]s and skips the
//! other kinds. It keeps its own cursor and never touches the writer: a
//! sink that falls behind, stops or crashes costs ingestion nothing and
//! resumes from wherever it says it got to.
//!
//! Reading is synchronous ([`Follower::read_available`]); the async
//! [`Follower::next_batch`] runs it on the blocking pool and polls for new
//! commits every [`FollowConfig::poll_interval`] until something arrives
//! or [`Shutdown`] fires.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::watch;
use vouch_delegation::{Role, SignedDelegation};
use vouch_schema::{Address, BatchError, Envelope, EnvelopeError, Event, TelemetryBatch};

use crate::store::{LogError, LogReader, Position, RecordKind};

/// How a [`Follower`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowConfig {
    /// Pause between looks at `HEAD` while there is nothing new.
    pub poll_interval: Duration,
    /// Most log records one batch reads (envelopes and other kinds alike).
    pub max_records: usize,
    /// A batch ends once it holds this many events (so it holds fewer than
    /// `max_events` plus one envelope's worth, at most 1024).
    pub max_events: usize,
}

impl Default for FollowConfig {
    fn default() -> Self {
        FollowConfig {
            poll_interval: Duration::from_millis(200),
            max_records: 256,
            max_events: 16_384,
        }
    }
}

/// One accepted envelope, decoded, with where it is in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedEnvelope {
    /// Its record's position (index, segment, offset, chain hash).
    pub position: Position,
    /// blake3 of the envelope's bytes as stored (the node's content hash).
    pub envelope_hash: [u8; 32],
    /// The principal who delegated the signing key (from the certificate).
    pub principal: Address,
    /// The signing key's address: the envelope's Streamr publisher.
    pub delegate: Address,
    /// The role the certificate granted.
    pub role: Role,
    /// The region the certificate declares for the delegate's box.
    pub region: String,
    /// The envelope itself (identity, numbering, signature; `content` is
    /// the encoded batch the events came from).
    pub envelope: Envelope,
    /// The batch's events, in order.
    pub events: Vec<Event>,
}

/// What one read produced: the envelopes, and where to resume.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Batch {
    /// Envelopes read, in log order (records of other kinds are skipped).
    pub envelopes: Vec<AcceptedEnvelope>,
    /// Log records consumed, envelopes or not.
    pub records: u64,
    /// The index after the last record consumed: the cursor to resume at.
    pub next_index: u64,
}

/// Why a record of kind envelope does not decode. A verified log holds no
/// such record; the follower reports it instead of panicking.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// The envelope bytes.
    #[error("envelope: {0}")]
    Envelope(#[from] EnvelopeError),
    /// The envelope's content.
    #[error("batch: {0}")]
    Batch(#[from] BatchError),
    /// The batch's delegation certificate.
    #[error("certificate: {0}")]
    Certificate(#[from] vouch_delegation::DecodeError),
}

/// Why following stopped. Messages are stable.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// Reading the log failed (I/O, damage, a pruned range).
    #[error("reading the log: {0}")]
    Log(#[from] LogError),
    /// An envelope record does not decode. The cursor has moved past it:
    /// reading again continues with the next record.
    #[error("log record {index} (segment {segment}, byte {offset}): {problem}")]
    Malformed {
        /// The record's index.
        index: u64,
        /// Its segment (first index of the segment file).
        segment: u64,
        /// Byte offset of its frame in the segment.
        offset: u64,
        /// What does not decode.
        problem: Malformed,
    },
    /// The blocking read task panicked or was cancelled.
    #[error("log reader task: {0}")]
    Task(#[source] tokio::task::JoinError),
}

/// Tells followers and sinks to stop (see [`shutdown_channel`]).
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

impl ShutdownTrigger {
    /// Fires the signal; every [`Shutdown`] sees it.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }
}

/// A cloneable stop signal. Dropping the [`ShutdownTrigger`] fires it too.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
    /// The sender of a signal that never fires, kept alive with it.
    _never: Option<std::sync::Arc<watch::Sender<bool>>>,
}

/// A connected trigger and signal.
pub fn shutdown_channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), Shutdown { rx, _never: None })
}

impl Shutdown {
    /// A signal that fires when `future` completes (e.g. SIGTERM). Must be
    /// called inside a tokio runtime, which runs the watching task.
    pub fn on(future: impl Future<Output = ()> + Send + 'static) -> Shutdown {
        let (trigger, shutdown) = shutdown_channel();
        tokio::spawn(async move {
            future.await;
            trigger.trigger();
        });
        shutdown
    }

    /// A signal that never fires (a bounded run, a test).
    pub fn never() -> Shutdown {
        let (tx, rx) = watch::channel(false);
        Shutdown { rx, _never: Some(std::sync::Arc::new(tx)) }
    }

    /// Whether it has fired.
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow() || self.rx.has_changed().is_err()
    }

    /// Resolves once it has fired (at once if it already has).
    pub async fn wait(&mut self) {
        // An error means the trigger was dropped, which also means stop.
        let _ = self.rx.wait_for(|stop| *stop).await;
    }

    /// Sleeps for `duration`; `false` if the signal fired first.
    pub async fn sleep(&mut self, duration: Duration) -> bool {
        tokio::select! {
            () = self.wait() => false,
            () = tokio::time::sleep(duration) => true,
        }
    }
}

/// Reads accepted envelopes from a log directory, from a cursor onward.
#[derive(Debug)]
pub struct Follower {
    dir: PathBuf,
    config: FollowConfig,
    next: u64,
    /// Kept open while it has records left, since opening one rescans its
    /// segment from the start to check the chain up to the cursor.
    reader: Option<LogReader>,
    /// A malformed record met after a batch had content: reported by the
    /// next read, so the envelopes before it are not lost.
    pending: Option<FollowError>,
}

impl Follower {
    /// A follower of the log in `dir` whose first record will be `from`.
    pub fn new(dir: impl AsRef<Path>, from: u64, config: FollowConfig) -> Follower {
        Follower { dir: dir.as_ref().to_owned(), config, next: from, reader: None, pending: None }
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The limits in force; a sink may tighten them between reads.
    pub fn config_mut(&mut self) -> &mut FollowConfig {
        &mut self.config
    }

    /// The cursor: the index of the next record it will read.
    pub fn next_index(&self) -> u64 {
        self.next
    }

    /// Moves the cursor (a sink re-reads from what its store holds).
    pub fn seek(&mut self, index: u64) {
        if index != self.next {
            self.next = index;
            self.reader = None;
            self.pending = None;
        }
    }

    /// The log's committed end (`HEAD`): index after the last committed
    /// record, 0 for an empty or not yet created log.
    pub fn committed_end(&self) -> Result<u64, FollowError> {
        if !self.dir.exists() {
            return Ok(0);
        }
        // Opened past any index, a reader reads only `HEAD` and yields nothing.
        Ok(LogReader::open(&self.dir, u64::MAX)?.end())
    }

    /// Reads what is committed now, without waiting: at most
    /// [`FollowConfig::max_records`] records, stopping early once it holds
    /// [`FollowConfig::max_events`] events. An empty batch means the
    /// follower is at the committed end (or the log does not exist yet).
    pub fn read_available(&mut self) -> Result<Batch, FollowError> {
        if let Some(e) = self.pending.take() {
            return Err(e);
        }
        let mut batch = Batch { next_index: self.next, ..Batch::default() };
        let max = self.config.max_records.max(1) as u64;
        let mut events = 0;
        while batch.records < max && events < self.config.max_events.max(1) {
            if self.reader.is_none() {
                if !self.dir.exists() {
                    break;
                }
                let reader = LogReader::open(&self.dir, self.next)?;
                if reader.end() <= self.next {
                    break;
                }
                self.reader = Some(reader);
            }
            let Some(reader) = self.reader.as_mut() else { break };
            let record = match reader.next() {
                None => {
                    // Exhausted up to the HEAD it last read: take the new one
                    // and go on from here (reopening would re-read the
                    // segment up to the cursor).
                    match reader.follow() {
                        Ok(end) if end > self.next => continue,
                        Ok(_) => break,
                        Err(e) => {
                            self.reader = None;
                            return Err(e.into());
                        }
                    }
                }
                Some(Err(e)) => {
                    self.reader = None;
                    return Err(e.into());
                }
                Some(Ok(record)) => record,
            };
            self.next = record.position.index + 1;
            batch.records += 1;
            batch.next_index = self.next;
            if record.kind != RecordKind::Envelope {
                continue;
            }
            let position = record.position;
            match decode(position, &record.payload) {
                Ok(envelope) => {
                    events += envelope.events.len();
                    batch.envelopes.push(envelope);
                }
                Err(problem) => {
                    let e = FollowError::Malformed {
                        index: position.index,
                        segment: position.segment,
                        offset: position.offset,
                        problem,
                    };
                    if batch.envelopes.is_empty() {
                        return Err(e);
                    }
                    // Hand out what came before it first; this batch ends
                    // before the bad record, and the next read reports it.
                    batch.records -= 1;
                    batch.next_index = position.index;
                    self.pending = Some(e);
                    return Ok(batch);
                }
            }
        }
        Ok(batch)
    }

    /// Waits for the next non-empty read, polling `HEAD` every
    /// [`FollowConfig::poll_interval`]. `None` once `shutdown` fires.
    /// The batch may hold no envelopes when the records read were of other
    /// kinds; its `next_index` has still moved.
    pub async fn next_batch(
        &mut self,
        shutdown: &mut Shutdown,
    ) -> Result<Option<Batch>, FollowError> {
        loop {
            if shutdown.is_triggered() {
                return Ok(None);
            }
            let batch = self.read_blocking().await?;
            if batch.records > 0 {
                return Ok(Some(batch));
            }
            if !shutdown.sleep(self.config.poll_interval).await {
                return Ok(None);
            }
        }
    }

    /// [`Follower::read_available`] on the blocking pool, so that file reads
    /// and decoding never stall the runtime's workers (the node's gossip).
    pub async fn read_blocking(&mut self) -> Result<Batch, FollowError> {
        self.read_blocking_then(|result| result).await?
    }

    /// [`Follower::read_blocking`], then `then` on the read's result, on the
    /// same blocking thread (a sink encodes its rows there). The outer error
    /// is only [`FollowError::Task`].
    pub async fn read_blocking_then<T: Send + 'static>(
        &mut self,
        then: impl FnOnce(Result<Batch, FollowError>) -> T + Send + 'static,
    ) -> Result<T, FollowError> {
        let mut this = Follower {
            dir: self.dir.clone(),
            config: self.config,
            next: self.next,
            reader: self.reader.take(),
            pending: self.pending.take(),
        };
        let (this, out) = tokio::task::spawn_blocking(move || {
            let result = this.read_available();
            (this, then(result))
        })
        .await
        .map_err(FollowError::Task)?;
        self.next = this.next;
        self.reader = this.reader;
        self.pending = this.pending;
        Ok(out)
    }
}

/// Decodes one envelope record: envelope, batch, certificate.
pub fn decode(position: Position, payload: &[u8]) -> Result<AcceptedEnvelope, Malformed> {
    let envelope = Envelope::decode(payload)?;
    let batch = TelemetryBatch::decode(&envelope.content)?;
    let certificate = SignedDelegation::decode(&batch.certificate)?;
    Ok(AcceptedEnvelope {
        position,
        envelope_hash: *blake3::hash(payload).as_bytes(),
        principal: certificate.principal,
        delegate: envelope.id.publisher,
        role: certificate.role,
        region: certificate.region,
        events: batch.events,
        envelope,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::{LogConfig, SegmentLog};

    #[test]
    fn a_missing_log_reads_as_empty() {
        let dir = tempfile::TempDir::new().unwrap();
        let mut f = Follower::new(dir.path().join("nope"), 0, FollowConfig::default());
        assert_eq!(f.read_available().unwrap().records, 0);
        assert_eq!(f.committed_end().unwrap(), 0);
    }

    #[test]
    fn a_malformed_envelope_is_named_and_skipped() {
        let dir = tempfile::TempDir::new().unwrap();
        let (mut log, _) = SegmentLog::open(dir.path(), LogConfig::default()).unwrap();
        log.append(RecordKind::AuthorityView, b"view").unwrap();
        log.append(RecordKind::Envelope, b"\xa0not an envelope").unwrap();
        log.commit().unwrap();
        let mut f = Follower::new(dir.path(), 0, FollowConfig::default());
        let err = f.read_available().unwrap_err();
        assert!(matches!(err, FollowError::Malformed { index: 1, .. }), "{err}");
        assert!(err.to_string().starts_with("log record 1 (segment 0, byte "), "{err}");
        assert_eq!(f.next_index(), 2);
        assert_eq!(f.read_available().unwrap().records, 0);
        assert_eq!(f.committed_end().unwrap(), 2);
    }

    /// A follower at the committed end reads what later commits add, across
    /// segment rolls, from where it stands.
    #[test]
    fn a_follower_at_the_end_reads_later_commits() {
        let dir = tempfile::TempDir::new().unwrap();
        // One record a segment: every commit rolls.
        let config = LogConfig { segment_bytes: 1, ..LogConfig::default() };
        let (mut log, _) = SegmentLog::open(dir.path(), config).unwrap();
        let mut f = Follower::new(dir.path(), 0, FollowConfig::default());
        let mut next = 0;
        for n in 1..=4u64 {
            for _ in 0..n {
                log.append(RecordKind::AuthorityView, b"view").unwrap();
            }
            log.commit().unwrap();
            next += n;
            let batch = f.read_available().unwrap();
            assert_eq!((batch.records, batch.next_index), (n, next));
            assert_eq!(f.read_available().unwrap().records, 0);
        }
        assert_eq!(f.next_index(), next);
    }
}
