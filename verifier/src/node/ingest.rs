//! From gossip to the log: a bounded queue that sheds its oldest message
//! when full, and the worker thread that validates, appends, group-commits,
//! and only then tells gossip what it decided.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use libp2p::PeerId;
use libp2p::gossipsub::{MessageAcceptance, MessageId};
use tokio::sync::mpsc;
use vouch_delegation::VerifiedRevocation;
use vouch_delegation::authority::{Authority, AuthorityView};

use vouch_schema::Envelope;
use vouch_schema::merkle::envelope_id;

use crate::clock::now_ms;
use crate::converge::{Added, Convergence, Disagreement, LogHead, minute_of};
use crate::scores::{Folded, PolicyFiles, ScoreRecord, Scores, Step};
use crate::sink::aggregates::AggregateExport;
use crate::store::{
    LogReader, PruneBefore, RecordKind, SegmentLog, SnapshotFile, StateError, StateStore,
    StateWrite,
};
use crate::validate::rules::ControlKind;
use crate::validate::{Outcome, Pipeline, REVOCATION, Restored, Unverified, ValidationError};

use super::NodeError;
use super::config::IngestConfig;

/// A gossip message waiting for validation.
#[derive(Debug)]
pub(crate) struct Item {
    pub(crate) id: MessageId,
    pub(crate) source: PeerId,
    pub(crate) topic: String,
    pub(crate) control: bool,
    pub(crate) data: Vec<u8>,
}

/// What to report to gossipsub for one message.
#[derive(Debug)]
pub(crate) struct Verdict {
    pub(crate) id: MessageId,
    pub(crate) source: PeerId,
    pub(crate) acceptance: MessageAcceptance,
}

/// The bounded queue between the swarm task and the worker.
#[derive(Debug)]
pub(crate) struct Queue {
    inner: Mutex<QueueInner>,
    ready: Condvar,
    capacity: usize,
}

#[derive(Debug, Default)]
struct QueueInner {
    items: VecDeque<Item>,
    closed: bool,
}

impl Queue {
    pub(crate) fn new(capacity: usize) -> Queue {
        Queue {
            inner: Mutex::new(QueueInner::default()),
            ready: Condvar::new(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `item`; returns the oldest message if it had to be shed for it.
    pub(crate) fn push(&self, item: Item) -> Option<Item> {
        let mut inner = self.lock();
        let shed = if inner.items.len() >= self.capacity { inner.items.pop_front() } else { None };
        inner.items.push_back(item);
        drop(inner);
        self.ready.notify_one();
        shed
    }

    /// No more pushes: the worker drains what it holds and stops.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    /// Blocks for the next group: up to `max` messages, waiting at most
    /// `linger` after the first for more. An empty group after `idle` with
    /// nothing queued (so the worker can do its periodic work). `None` once
    /// closed.
    fn take(&self, max: usize, linger: Duration, idle: Duration) -> Option<Vec<Item>> {
        let mut inner = self.lock();
        let idle_until = Instant::now() + idle;
        while inner.items.is_empty() {
            if inner.closed {
                return None;
            }
            let left = idle_until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Some(Vec::new());
            }
            inner = self.ready.wait_timeout(inner, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        if inner.closed {
            return None;
        }
        let deadline = Instant::now() + linger;
        while inner.items.len() < max && !inner.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            inner = self.ready.wait_timeout(inner, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        let n = inner.items.len().min(max);
        Some(inner.items.drain(..n).collect())
    }
}

/// What `/metrics` and `/v1/ingest/stats` show; published by the worker after every group.
#[derive(Debug, Clone, Default)]
pub struct IngestSnapshot {
    /// Telemetry outcomes: (outcome, reason, count).
    pub outcomes: Vec<(Outcome, &'static str, u64)>,
    /// Control-topic outcomes: (outcome, reason) → count.
    pub control: BTreeMap<(Outcome, &'static str), u64>,
    /// Guard evictions: (bound, count).
    pub evictions: Vec<(&'static str, u64)>,
    /// Accepted envelopes whose `prev` was not the newest position accepted
    /// on their chain (messages lost or reordered before them; DESIGN.md §6).
    pub chain_gaps: u64,
    /// Records committed to the log (all kinds).
    pub log_records: u64,
    /// Index of the first record still in the log (raised by retention).
    pub log_first_index: u64,
    /// Commits done.
    pub commits: u64,
    /// Writes of derived state to redb.
    pub state_writes: u64,
    /// Size of the redb state file after the last write.
    pub state_file_bytes: u64,
    /// Size of the last SLA engine snapshot written.
    pub snapshot_bytes: u64,
    /// Segments removed by retention since start.
    pub pruned_segments: u64,
    /// What the start-up pass over the log re-applied.
    pub warm_up: WarmUp,
}

/// Counters shared between the worker, the swarm task and the HTTP server.
#[derive(Debug, Default)]
pub struct Metrics {
    snapshot: Mutex<IngestSnapshot>,
    /// Messages shed from a full queue.
    pub shed: AtomicU64,
    /// Verdicts the swarm could not deliver (message already gone from its cache).
    pub verdicts_dropped: AtomicU64,
    /// Why ingestion stopped before shutdown, once it has (`/healthz` says so).
    stopped: OnceLock<String>,
    /// Messages gossipsub could not send to a peer (its send queue full, or
    /// waiting past the timeout), from `SlowPeer` events.
    pub gossip_send_failed: AtomicU64,
}

impl Metrics {
    /// Records that ingestion stopped for `reason` (the first reason stays).
    pub fn mark_ingest_stopped(&self, reason: String) {
        let _ = self.stopped.set(reason);
    }

    /// Why ingestion stopped, if it has.
    pub fn ingest_stopped(&self) -> Option<&str> {
        self.stopped.get().map(String::as_str)
    }

    /// A copy of the latest snapshot.
    pub fn snapshot(&self) -> IngestSnapshot {
        self.snapshot.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn publish(&self, snapshot: IngestSnapshot) {
        *self.snapshot.lock().unwrap_or_else(|p| p.into_inner()) = snapshot;
    }
}

/// The worker's state: pipeline, log, derived state and the authority whose
/// view it records.
pub(crate) struct Worker {
    pipeline: Pipeline,
    log: SegmentLog,
    state: StateStore,
    authority: Arc<dyn Authority>,
    config: IngestConfig,
    retention: Option<Duration>,
    queue: Arc<Queue>,
    verdicts: mpsc::Sender<Vec<Verdict>>,
    metrics: Arc<Metrics>,
    /// Hash of the authority view last recorded in the log.
    recorded_view: Option<[u8; 32]>,
    /// The view last checked (hashing is skipped while it stays the same `Arc`).
    checked_view: Option<Arc<AuthorityView>>,
    control: BTreeMap<(Outcome, &'static str), u64>,
    commits: u64,
    /// State derived from committed records, not yet written to redb.
    pending: StateWrite,
    last_state_write: Instant,
    /// The UTC minute of the last commit (a minute row is written per new minute).
    last_minute: Option<u64>,
    last_prune: Option<Instant>,
    /// What the start-up pass over the log did.
    warmed: WarmUp,
    state_writes: u64,
    pruned_segments: u64,
    sla: WorkerSla,
    drop_principal: Option<vouch_schema::Address>,
    last_sla_checkpoint: Instant,
    /// Size of the last SLA snapshot written.
    last_snapshot_bytes: u64,
    /// Size of the redb file after the last state write.
    state_file_bytes: u64,
}

/// The worker's share of the scores: the engine it feeds after every
/// commit, the policy files it records, where its snapshot goes, and how
/// far the snapshot it came back from reaches (if it did not, the whole log
/// is re-read into it).
pub(crate) struct WorkerSla {
    pub(crate) scores: Arc<Scores>,
    pub(crate) files: PolicyFiles,
    pub(crate) snapshot: SnapshotFile,
    /// Log records the snapshot on disk covers (0 without one).
    pub(crate) applied: u64,
    /// Whether the engine was restored from that snapshot.
    pub(crate) restored: bool,
    pub(crate) checkpoint_every: Duration,
    /// Where sealed buckets go (ClickHouse), when a sink is configured.
    pub(crate) aggregates: Option<Arc<AggregateExport>>,
    /// The envelope index and this verifier's checkpoint signer.
    pub(crate) converge: Arc<Convergence>,
    /// Messages for the control topic (own signed checkpoints); full means dropped, counted.
    pub(crate) publish: mpsc::Sender<Vec<u8>>,
}

/// Sealed minutes whose envelope ids stay indexed (what sync still serves
/// and what tells a late copy from a new envelope).
const INDEX_SEALED_MINUTES: u64 = 60;

/// What the start-up pass over the log tail did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WarmUp {
    /// Records read.
    pub records: u64,
    /// Envelopes re-applied to the duplicate guards (inside the replay window).
    pub readmitted: u64,
    /// Revocations re-applied.
    pub revocations: u64,
    /// Envelopes fed to the SLA engine (past its checkpoint).
    pub scored: u64,
}

/// How long the worker waits for messages before doing its periodic work
/// (recording a refreshed authority view, writing state, retention).
const IDLE_WAKE: Duration = Duration::from_millis(500);

/// How often retention is applied.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);


fn acceptance(outcome: Outcome) -> MessageAcceptance {
    match outcome {
        Outcome::Accept => MessageAcceptance::Accept,
        Outcome::Reject => MessageAcceptance::Reject,
        Outcome::Ignore => MessageAcceptance::Ignore,
    }
}

fn state_err(e: StateError) -> NodeError {
    NodeError::State(e.to_string())
}

/// The state key of a revocation: principal ‖ delegate.
fn revocation_key(r: &VerifiedRevocation) -> [u8; 40] {
    let mut key = [0u8; 40];
    key[..20].copy_from_slice(&r.principal().0);
    key[20..].copy_from_slice(&r.delegate().0);
    key
}

/// What a [`Worker`] is made of: the subsystems it drives, opened by the
/// node before it starts.
pub(crate) struct WorkerParts {
    /// The validation pipeline every queued message goes through.
    pub(crate) pipeline: Pipeline,
    /// The opened log; the worker is its only writer.
    pub(crate) log: SegmentLog,
    /// The derived state (redb).
    pub(crate) state: StateStore,
    /// The authority whose views are recorded in the log.
    pub(crate) authority: Arc<dyn Authority>,
    /// Group commit and state write bounds.
    pub(crate) config: IngestConfig,
    /// Raw segments older than this are pruned (`None`: kept forever).
    pub(crate) retention: Option<Duration>,
    /// Where gossip's messages wait.
    pub(crate) queue: Arc<Queue>,
    /// Where each committed group's verdicts go back to gossip.
    pub(crate) verdicts: mpsc::Sender<Vec<Verdict>>,
    /// The counters `/metrics` and `/stats` read.
    pub(crate) metrics: Arc<Metrics>,
    /// The scores it feeds.
    pub(crate) sla: WorkerSla,
    /// A principal whose envelopes it leaves out (test-only `[faults]`;
    /// always `None` in a build without `fault-injection`).
    pub(crate) drop_principal: Option<vouch_schema::Address>,
}

impl Worker {
    /// A worker over an opened log and state; nothing runs until [`Worker::run`].
    pub(crate) fn new(parts: WorkerParts) -> Worker {
        Worker {
            pipeline: parts.pipeline,
            log: parts.log,
            state: parts.state,
            authority: parts.authority,
            config: parts.config,
            retention: parts.retention,
            queue: parts.queue,
            verdicts: parts.verdicts,
            metrics: parts.metrics,
            recorded_view: None,
            checked_view: None,
            control: BTreeMap::new(),
            commits: 0,
            pending: StateWrite::default(),
            last_state_write: Instant::now(),
            last_minute: None,
            last_prune: None,
            warmed: WarmUp::default(),
            state_writes: 0,
            pruned_segments: 0,
            sla: parts.sla,
            drop_principal: parts.drop_principal,
            last_sla_checkpoint: Instant::now(),
            last_snapshot_bytes: 0,
            state_file_bytes: 0,
        }
    }

    /// Records the authority view if its hash differs from the one last recorded.
    pub(crate) fn record_authority(&mut self) -> Result<(), NodeError> {
        let view = self.authority.current();
        if self.checked_view.as_ref().is_some_and(|v| Arc::ptr_eq(v, &view)) {
            return Ok(());
        }
        self.checked_view = Some(Arc::clone(&view));
        let hash = view.hash();
        if self.recorded_view != Some(hash) {
            let json = view.canonical_json();
            self.log.append(RecordKind::AuthorityView, &json)?;
            self.sla.scores.set_authority(&view);
            self.pending.views.push((hash, json));
            self.recorded_view = Some(hash);
            tracing::info!(hash = %hex::encode(hash), source = %view.source, "authority view recorded");
        }
        Ok(())
    }

    /// Runs until the queue closes; ends with a final commit and state write.
    pub(crate) fn run(mut self) -> Result<(), NodeError> {
        self.prune()?;
        self.warm_up()?;
        self.record_authority()?;
        self.log.append(RecordKind::Scores, &self.sla.files.record().encode())?;
        self.commit()?;
        let linger = Duration::from_millis(self.config.commit_interval_ms);
        let max = self.config.commit_max_records.max(1);
        while let Some(group) = self.queue.take(max, linger, IDLE_WAKE) {
            self.group(group)?;
        }
        self.commit()?;
        self.write_state(true)?;
        tracing::info!(records = self.log.committed_records(), "log committed at shutdown");
        Ok(())
    }

    /// Re-applies what the state does not hold: stored revocations, then the
    /// log from the first record that may still matter, the start of the
    /// replay window (duplicate guards) or the end of what the state covers,
    /// whichever is earlier.
    fn warm_up(&mut self) -> Result<(), NodeError> {
        let now = now_ms();
        for bytes in self.state.revocations().map_err(state_err)? {
            self.revocation(&bytes, Restored::State, now);
        }
        let end = self.log.committed_records();
        let first = self.log.first_index();
        let applied = self.sla.applied;
        let applied = if applied > end {
            tracing::warn!(applied, end, "state covers more than the log holds; re-reading it all");
            first
        } else {
            applied
        };
        let window_minute = now.saturating_sub(self.pipeline.config().replay_window_ms) / 60_000;
        let guard_from = self.state.first_index_since(window_minute).map_err(state_err)?;
        // The SLA engine re-reads from its checkpoint, or everything.
        let sla_from = if self.sla.restored { applied } else { first };
        let from = guard_from.unwrap_or(applied).min(applied).min(sla_from).max(first);
        // Records past `applied` have no minute rows yet (the process that
        // committed them died before its state write): file them under this
        // minute, which is conservative (a later restart re-reads them while
        // this minute is inside the window).
        if applied < end {
            self.pending.minutes.push((now / 60_000, applied.max(first)));
        }
        let started = Instant::now();
        for record in LogReader::open(self.log.dir(), from)? {
            let record = record?;
            self.warmed.records += 1;
            let index = record.position.index;
            if index >= sla_from {
                match self.sla.scores.fold_logged(record.kind, &record.payload) {
                    Ok(Folded::Scored) => self.warmed.scored += 1,
                    Ok(_) => {}
                    Err(e) => tracing::warn!(index, %e, "logged record not scored"),
                }
            }
            match record.kind {
                RecordKind::Envelope => {
                    match self.pipeline.readmit(&record.payload, now) {
                        Ok(true) => self.warmed.readmitted += 1,
                        Ok(false) => {}
                        Err(e) => tracing::warn!(index, %e, "logged envelope not re-applied"),
                    }
                    self.index_logged(&record.payload, index);
                }
                RecordKind::Revocation => {
                    if self.revocation(&record.payload, Restored::Log, now) {
                        self.warmed.revocations += 1;
                    }
                }
                RecordKind::AuthorityView => {
                    if let Ok(view) = serde_json::from_slice::<AuthorityView>(&record.payload) {
                        self.pending.views.push((view.hash(), record.payload));
                    }
                }
                // Folded above (the book lives with the scores' snapshot).
                RecordKind::Scores | RecordKind::Checkpoint | RecordKind::PeerCheckpoint => {}
            }
        }
        self.pipeline.finish_restore(now);
        self.write_state(true)?;
        tracing::info!(
            from,
            scored = self.warmed.scored,
            end,
            records = self.warmed.records,
            readmitted = self.warmed.readmitted,
            revocations = self.warmed.revocations,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "state caught up with the log"
        );
        Ok(())
    }

    /// Re-applies a revocation read back at start (see
    /// [`Pipeline::restore_revocation`]); one from the log is queued for the
    /// state too (the state may not have caught up with it). Returns whether
    /// it changed what is in force.
    fn revocation(&mut self, bytes: &[u8], from: Restored, now: u64) -> bool {
        match self.pipeline.restore_revocation(bytes, from, now) {
            Ok(verified) => {
                if from == Restored::Log {
                    self.pending.revocations.push((revocation_key(&verified), bytes.to_vec()));
                }
                true
            }
            Err(e) => {
                tracing::debug!(?from, %e, "stored revocation not re-applied");
                false
            }
        }
    }

    /// Writes what the state is missing; with `full`, also the SLA
    /// engine's snapshot, which covers every committed record (the worker
    /// feeds the engine right after each commit, so nothing is in between).
    fn write_state(&mut self, full: bool) -> Result<(), NodeError> {
        let w = std::mem::take(&mut self.pending);
        self.state.write(w).map_err(state_err)?;
        self.state_file_bytes = std::fs::metadata(self.state.path()).map_or(0, |m| m.len());
        if full {
            let applied = self.log.committed_records();
            let bytes = self.sla.scores.snapshot();
            self.sla
                .snapshot
                .write(applied, &bytes)
                .map_err(|e| NodeError::State(e.to_string()))?;
            self.last_snapshot_bytes = bytes.len() as u64;
            self.last_sla_checkpoint = Instant::now();
        }
        self.state_writes += 1;
        self.last_state_write = Instant::now();
        Ok(())
    }

    /// Removes segments older than the retention period (at most hourly).
    fn prune(&mut self) -> Result<(), NodeError> {
        let Some(retention) = self.retention else { return Ok(()) };
        if self.last_prune.is_some_and(|t| t.elapsed() < PRUNE_EVERY) {
            return Ok(());
        }
        self.last_prune = Some(Instant::now());
        let Some(cutoff) = SystemTime::now().checked_sub(retention) else { return Ok(()) };
        let info = self.log.prune_before(PruneBefore::Modified(cutoff))?;
        if info.removed_segments > 0 {
            self.pruned_segments += info.removed_segments;
            tracing::info!(
                segments = info.removed_segments,
                bytes = info.removed_bytes,
                first_index = info.first_index,
                "retention removed old segments"
            );
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<(), NodeError> {
        if self.log.pending_records() > 0 {
            let first = self.log.committed_records();
            self.log.commit()?;
            self.commits += 1;
            let minute = now_ms() / 60_000;
            if self.last_minute != Some(minute) {
                self.last_minute = Some(minute);
                self.pending.minutes.push((minute, first));
            }
        }
        if self.last_state_write.elapsed() >= Duration::from_millis(self.config.state_interval_ms) {
            let full = self.last_sla_checkpoint.elapsed() >= self.sla.checkpoint_every
                && self.log.pending_records() == 0;
            self.write_state(full)?;
            self.prune()?;
        }
        self.metrics.publish(IngestSnapshot {
            outcomes: self.pipeline.snapshot(),
            control: self.control.clone(),
            evictions: self.pipeline.stats().eviction_snapshot(),
            chain_gaps: self.pipeline.stats().gaps(),
            log_records: self.log.committed_records(),
            log_first_index: self.log.first_index(),
            commits: self.commits,
            state_writes: self.state_writes,
            state_file_bytes: self.state_file_bytes,
            snapshot_bytes: self.last_snapshot_bytes,
            pruned_segments: self.pruned_segments,
            warm_up: self.warmed,
        });
        Ok(())
    }

    /// Validates a group, appends what passed, commits once, then reports.
    fn group(&mut self, group: Vec<Item>) -> Result<(), NodeError> {
        self.record_authority()?;
        let mut verdicts = Vec::with_capacity(group.len());
        let mut accepted = Vec::new();
        let mut to_score = Vec::new();
        for item in group {
            let now = now_ms();
            let outcome = if item.control {
                self.control(&item.data)?
            } else {
                let msg = Unverified::from_topic(item.data.clone(), &item.topic);
                match self.pipeline.validate(msg, now) {
                    Ok(verified)
                        if self.drop_principal == Some(verified.certificate().principal()) =>
                    {
                        Outcome::Accept
                    }
                    Ok(verified) => {
                        let at = self.log.append(RecordKind::Envelope, &item.data)?;
                        to_score.push((verified, at.index, envelope_id(&item.data)));
                        Outcome::Accept
                    }
                    Err(e) => {
                        let (outcome, reason) = e.outcome();
                        tracing::debug!(%e, reason, "message not accepted");
                        outcome
                    }
                }
            };
            let verdict =
                Verdict { id: item.id, source: item.source, acceptance: acceptance(outcome) };
            if outcome == Outcome::Accept {
                accepted.push(verdict);
            } else {
                verdicts.push(verdict);
            }
        }
        // Accept is reported, and scored, only once the records are durable.
        self.commit()?;
        for (v, log_index, id) in &to_score {
            let e = v.envelope();
            let minute = minute_of(e.id.timestamp);
            self.sla.converge.index().insert(*id, minute, e.id.partition, *log_index);
            self.sla.scores.ingest_verified(v);
        }
        self.seal()?;
        verdicts.extend(accepted);
        if !verdicts.is_empty() && self.verdicts.blocking_send(verdicts).is_err() {
            tracing::debug!("swarm task gone; verdicts dropped");
        }
        Ok(())
    }

    /// Seals the minutes the clock allows; a seal that advanced is recorded
    /// in the log and committed at once, so the log always holds every seal
    /// the engine's state reflects (what `vouch replay` redoes).
    fn seal(&mut self) -> Result<(), NodeError> {
        let now = now_ms();
        let before = self.sla.scores.sealed_end_ms();
        if let Some(sealed) = self.sla.scores.seal(now) {
            self.log.append(RecordKind::Scores, &ScoreRecord::SlaSeal { now_ms: now }.encode())?;
            self.commit()?;
            tracing::debug!(buckets = sealed.len(), "minutes sealed");
            let after = self.sla.scores.sealed_end_ms();
            // A first seal covers all time before it: nothing was watched then.
            if before > 0 {
                self.checkpoint_minutes(minute_of(before), minute_of(after), &sealed)?;
            }
            if let Some(export) = &self.sla.aggregates {
                export.offer(&sealed, now);
            }
        }
        Ok(())
    }

    /// This verifier's checkpoints of the minutes `[from, to)` just sealed
    /// (those still indexed): logged, folded into the book (naming the peers
    /// that disagree), and gossiped when signed.
    fn checkpoint_minutes(
        &mut self,
        from: u64,
        to: u64,
        sealed: &[vouch_sla::SealedBucket],
    ) -> Result<(), NodeError> {
        let converge = Arc::clone(&self.sla.converge);
        let from = from.max(to.saturating_sub(INDEX_SEALED_MINUTES));
        let policy = self.sla.scores.read().policy().hash.clone();
        let view = self.recorded_view.unwrap_or_default();
        let head =
            LogHead { records: self.log.committed_records(), hash: self.log.committed_hash() };
        let mut made = 0;
        for minute in from..to {
            let signed = converge.make(minute, sealed, &policy, view, head);
            let bytes = signed.encode();
            self.log.append(RecordKind::Checkpoint, &bytes)?;
            let step = Step::Checkpoint { signed: &signed, own: true };
            if let Ok(Folded::OwnCheckpoint(found)) = self.sla.scores.fold(step) {
                self.disagreements(&found);
            }
            if !signed.certificate.is_empty() && self.sla.publish.try_send(bytes).is_err() {
                converge.stats.unsent.fetch_add(1, Ordering::Relaxed);
            }
            made += 1;
        }
        if made > 0 {
            self.commit()?;
        }
        converge.index().prune_before(to.saturating_sub(INDEX_SEALED_MINUTES));
        Ok(())
    }

    /// Counts and reports peers whose checkpoints say something else than ours.
    fn disagreements(&self, found: &[Disagreement]) {
        for d in found {
            self.sla.converge.stats.disagreements.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                verifier = %d.verifier,
                minute = d.minute,
                theirs = d.envelopes.0,
                ours = d.envelopes.1,
                buckets_differ = d.buckets_differ,
                "a verifier's checkpoint disagrees with ours"
            );
        }
    }

    /// A control-topic message: a revocation, checked by the pipeline
    /// (outcomes from its one table, counted apart from telemetry), and
    /// logged and stored only when it changed what is in force.
    fn control(&mut self, data: &[u8]) -> Result<Outcome, NodeError> {
        if ControlKind::of(data) == ControlKind::Checkpoint {
            return self.peer_checkpoint(data);
        }
        let (outcome, reason) = match self.pipeline.validate_revocation(data, now_ms()) {
            Ok(verified) => {
                self.log.append(RecordKind::Revocation, data)?;
                self.pending.revocations.push((revocation_key(&verified), data.to_vec()));
                (Outcome::Accept, REVOCATION)
            }
            Err(e) => {
                let (outcome, reason) = e.outcome();
                tracing::debug!(%e, reason, "control message not accepted");
                (outcome, reason)
            }
        };
        *self.control.entry((outcome, reason)).or_default() += 1;
        Ok(outcome)
    }
}

impl Worker {
    /// A peer verifier's checkpoint from the control topic: verified (its
    /// certificate, signature and verifier standing), then, when new, logged
    /// and folded into the book, naming a disagreement with ours.
    fn peer_checkpoint(&mut self, data: &[u8]) -> Result<Outcome, NodeError> {
        let checked = self.pipeline.validate_checkpoint(data).and_then(|verified| {
            let step = Step::Checkpoint { signed: verified.signed(), own: false };
            match self.sla.scores.fold(step) {
                Ok(Folded::PeerCheckpoint(Added::New(found))) => Ok(found),
                Ok(Folded::PeerCheckpoint(Added::Full)) => Err(ValidationError::CheckpointsFull),
                _ => Err(ValidationError::CheckpointKnown),
            }
        });
        let (outcome, reason) = match checked {
            Ok(found) => {
                self.log.append(RecordKind::PeerCheckpoint, data)?;
                self.sla.converge.stats.peers.fetch_add(1, Ordering::Relaxed);
                self.disagreements(found.as_slice());
                (Outcome::Accept, CHECKPOINT)
            }
            Err(e) => {
                let (outcome, reason) = e.outcome();
                tracing::debug!(%e, reason, "checkpoint not accepted");
                (outcome, reason)
            }
        };
        *self.control.entry((outcome, reason)).or_default() += 1;
        Ok(outcome)
    }

    /// Indexes an envelope read back from the log (its id, minute, partition and position).
    fn index_logged(&self, payload: &[u8], log_index: u64) {
        if let Ok(e) = Envelope::decode(payload) {
            let minute = minute_of(e.id.timestamp);
            self.sla.converge.index().insert(
                envelope_id(payload),
                minute,
                e.id.partition,
                log_index,
            );
        }
    }
}

/// The reason label of an accepted peer checkpoint.
pub const CHECKPOINT: &str = "checkpoint";

/// Counts a shed message.
pub(crate) fn count_shed(metrics: &Metrics) {
    metrics.shed.fetch_add(1, Ordering::Relaxed);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn item(n: u8) -> Item {
        Item {
            id: MessageId::new(&[n]),
            source: PeerId::random(),
            topic: String::new(),
            control: false,
            data: vec![n],
        }
    }

    #[test]
    fn worker_reports_rejects_and_records_the_view_once() {
        use crate::store::LogConfig;
        use vouch_delegation::authority::CachedAuthority;

        let dir = tempfile::TempDir::new().unwrap();
        let (log, _) = SegmentLog::open(dir.path().join("log"), LogConfig::default()).unwrap();
        let authority: Arc<dyn Authority> =
            Arc::new(CachedAuthority::new(AuthorityView::new("test", [])));
        let queue = Arc::new(Queue::new(8));
        let (tx, mut rx) = mpsc::channel(8);
        let metrics = Arc::new(Metrics::default());
        let state = StateStore::open(dir.path().join("state.redb")).unwrap();
        let worker = Worker::new(WorkerParts {
            pipeline: Pipeline::new(Default::default(), Arc::clone(&authority)),
            log,
            state,
            authority,
            config: IngestConfig::default(),
            retention: None,
            queue: Arc::clone(&queue),
            verdicts: tx,
            metrics: Arc::clone(&metrics),
            sla: WorkerSla {
                scores: Arc::new(Scores::open(&PolicyFiles::default(), None).unwrap().0),
                files: PolicyFiles::default(),
                snapshot: SnapshotFile::in_dir(dir.path()),
                applied: 0,
                restored: false,
                checkpoint_every: Duration::from_secs(60),
                aggregates: None,
                converge: Arc::new(Convergence::new(
                    vouch_delegation::Eip712Network::arbitrum_one(),
                    crate::converge::Partitions::all(),
                    None,
                    &Default::default(),
                )),
                publish: mpsc::channel(1).0,
            },
            drop_principal: None,
        });
        let mut garbage = item(1);
        garbage.topic = vouch_schema::topic::telemetry_topic(0);
        let mut control = item(2);
        control.control = true;
        queue.push(garbage);
        queue.push(control);
        let thread = std::thread::spawn(move || worker.run());
        let verdicts = rx.blocking_recv().unwrap();
        queue.close();
        thread.join().unwrap().unwrap();
        let outcomes: Vec<_> = verdicts.iter().map(|v| v.acceptance).collect();
        assert_eq!(outcomes.len(), 2);
        assert!(outcomes.iter().all(|a| matches!(a, MessageAcceptance::Reject)), "{outcomes:?}");
        let snap = metrics.snapshot();
        assert_eq!(snap.outcomes, vec![(Outcome::Reject, "malformed", 1)]);
        assert_eq!(snap.control.get(&(Outcome::Reject, "malformed")), Some(&1));
        let kinds: Vec<_> =
            LogReader::open(dir.path().join("log"), 0).unwrap().map(|r| r.unwrap().kind).collect();
        assert_eq!(
            kinds,
            [RecordKind::AuthorityView, RecordKind::Scores, RecordKind::Scores],
            "the view recorded once, the SLA policy, the first seal"
        );
    }

    #[test]
    fn queue_sheds_oldest_and_groups() {
        let q = Queue::new(2);
        assert!(q.push(item(1)).is_none());
        assert!(q.push(item(2)).is_none());
        assert_eq!(q.push(item(3)).unwrap().data, vec![1]);
        let group = q.take(10, Duration::ZERO, Duration::ZERO).unwrap();
        assert_eq!(group.iter().map(|i| i.data[0]).collect::<Vec<_>>(), [2, 3]);
        q.push(item(4));
        q.close();
        assert!(
            q.take(10, Duration::ZERO, Duration::ZERO).is_none(),
            "closed: stop without waiting"
        );
        assert_eq!(Queue::new(1).take(1, Duration::ZERO, Duration::ZERO).unwrap().len(), 0, "idle");
    }
}
