//! From gossip to the log: a bounded queue that sheds its oldest message
//! when full, and the worker thread that validates, appends, group-commits,
//! and only then tells gossip what it decided.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use libp2p::PeerId;
use libp2p::gossipsub::{MessageAcceptance, MessageId};
use tokio::sync::mpsc;
use vouch_delegation::VerifiedRevocation;
use vouch_delegation::authority::{Authority, AuthorityView};

use vouch_schema::Envelope;
use vouch_schema::merkle::{Hash, envelope_id};

use crate::clock::now_ms;
use crate::converge::{Added, Convergence, Disagreement, LogHead, minute_of};
use crate::scores::{Folded, PolicyFiles, ScoreRecord, Scores, Step};
use crate::sink::aggregates::AggregateExport;
use crate::store::{
    CommitInfo, Hashed, LogReader, PruneBefore, RecordKind, SegmentLog, SnapshotFile, StateStore,
    StateWrite, Syncing,
};
use crate::validate::rules::ControlKind;
use crate::validate::{
    ACCEPTED, Outcome, Pipeline, REVOCATION, Restored, Unverified, ValidationError, Verified,
};

use super::NodeError;
use super::config::{GroupBound, IngestConfig};
use super::prepare::{Message, prepare};

/// A gossip message waiting for validation.
#[derive(Debug)]
pub(crate) struct Item {
    /// gossipsub's id, for the verdict.
    pub(crate) id: MessageId,
    /// The peer it came from.
    pub(crate) source: PeerId,
    /// The topic it arrived on.
    pub(crate) topic: String,
    /// Whether that is the control topic.
    pub(crate) control: bool,
    /// The message.
    pub(crate) data: Vec<u8>,
}

/// Envelopes sync fetched from a peer, waiting for validation.
#[derive(Debug)]
pub(crate) struct Synced {
    /// The peer that served them (penalized for each one that no honest
    /// verifier would hold).
    pub(crate) peer: PeerId,
    /// The envelopes (at most one sync response).
    pub(crate) envelopes: Vec<Vec<u8>>,
}

/// What to report for one message: a verdict to gossipsub for a gossip
/// message (`id`), or, for a synced envelope (no id), a penalty for the
/// peer that served it when `acceptance` is Reject.
#[derive(Debug)]
pub(crate) struct Verdict {
    pub(crate) id: Option<MessageId>,
    pub(crate) source: PeerId,
    pub(crate) acceptance: MessageAcceptance,
}

/// What the worker takes from the queue at once: gossip messages, and at
/// most one synced batch (so catching up never starves live gossip).
#[derive(Debug, Default)]
struct Group {
    items: Vec<Item>,
    synced: Option<Synced>,
}

/// The bounded queue between the swarm task and the worker.
#[derive(Debug)]
pub(crate) struct Queue {
    inner: Mutex<QueueInner>,
    ready: Condvar,
    capacity: usize,
    /// Most bytes of gossip messages held (a message alone may exceed it).
    capacity_bytes: usize,
    sync_capacity: usize,
}

#[derive(Debug, Default)]
struct QueueInner {
    items: VecDeque<Item>,
    /// Bytes of the messages in `items`, in all and by the peer they came from.
    bytes: usize,
    by_source: HashMap<PeerId, usize>,
    synced: VecDeque<Synced>,
    closed: bool,
    /// What wakes the worker waiting in [`Queue::take`] (`None` while it is
    /// not waiting): this many messages or bytes queued. Below it a push
    /// leaves the worker asleep, so a group that lingers for more messages
    /// is not woken by each one (at a node's full ingest rate that was a
    /// context switch per message, for the worker to go back to sleep).
    wake: Option<GroupBound>,
}

impl QueueInner {
    /// Whether what is queued now ends the worker's wait.
    fn wakes(&self) -> bool {
        self.wake.is_some_and(|w| self.items.len() >= w.records || self.bytes >= w.bytes)
    }

    fn add(&mut self, item: &Item) {
        self.bytes += item.data.len();
        *self.by_source.entry(item.source).or_default() += item.data.len();
    }

    fn remove(&mut self, item: &Item) {
        self.bytes -= item.data.len();
        if let Some(b) = self.by_source.get_mut(&item.source) {
            *b -= item.data.len();
            if *b == 0 {
                self.by_source.remove(&item.source);
            }
        }
    }

    /// Sheds the oldest message of the peer holding the most bytes: a peer
    /// that floods fills the queue with its own messages and loses those,
    /// not the others' (among peers holding as many, the oldest message goes).
    fn shed_heaviest(&mut self) -> Option<Item> {
        let most = *self.by_source.values().max()?;
        let at = self.items.iter().position(|i| self.by_source.get(&i.source) == Some(&most))?;
        let item = self.items.remove(at)?;
        self.remove(&item);
        Some(item)
    }
}

impl Queue {
    /// A queue of at most `capacity` gossip messages of at most
    /// `capacity_bytes` in all, and `sync_capacity` synced batches.
    pub(crate) fn new(capacity: usize, capacity_bytes: usize, sync_capacity: usize) -> Queue {
        Queue {
            inner: Mutex::new(QueueInner::default()),
            ready: Condvar::new(),
            capacity: capacity.max(1),
            capacity_bytes,
            sync_capacity: sync_capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes of gossip messages waiting now.
    pub(crate) fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Queues `item`; returns the messages shed to make room for it (by
    /// count or by bytes): the oldest of whichever peer holds the most bytes.
    pub(crate) fn push(&self, item: Item) -> Vec<Item> {
        let mut inner = self.lock();
        let mut shed = Vec::new();
        while !inner.items.is_empty()
            && (inner.items.len() >= self.capacity
                || inner.bytes + item.data.len() > self.capacity_bytes)
        {
            match inner.shed_heaviest() {
                Some(old) => shed.push(old),
                None => break,
            }
        }
        inner.add(&item);
        inner.items.push_back(item);
        let wake = inner.wakes();
        drop(inner);
        if wake {
            self.ready.notify_one();
        }
        shed
    }

    /// Queues a synced batch; returns the oldest if it had to be shed for it.
    pub(crate) fn push_synced(&self, batch: Synced) -> Option<Synced> {
        let mut inner = self.lock();
        let shed =
            if inner.synced.len() >= self.sync_capacity { inner.synced.pop_front() } else { None };
        inner.synced.push_back(batch);
        drop(inner);
        self.ready.notify_one();
        shed
    }

    /// Whether synced batches fill their queue (new rounds wait until not).
    pub(crate) fn synced_full(&self) -> bool {
        self.lock().synced.len() >= self.sync_capacity
    }

    /// Whether synced batches are waiting.
    fn has_synced(&self) -> bool {
        !self.lock().synced.is_empty()
    }

    /// No more pushes: the worker drains what it holds and stops.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    /// Blocks for the next group: gossip messages up to `max`, waiting at
    /// most `linger` after the first for more, and the oldest synced batch.
    /// An empty group after `idle` with nothing queued (so the worker can do
    /// its periodic work). `None` once closed.
    fn take(&self, max: GroupBound, linger: Duration, idle: Duration) -> Option<Group> {
        let mut inner = self.lock();
        let idle_until = Instant::now() + idle;
        // Any message wakes an idle worker.
        inner.wake = Some(GroupBound { records: 1, bytes: usize::MAX });
        while inner.items.is_empty() && inner.synced.is_empty() {
            if inner.closed {
                inner.wake = None;
                return None;
            }
            let left = idle_until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                inner.wake = None;
                return Some(Group::default());
            }
            inner = self.ready.wait_timeout(inner, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        if inner.closed {
            inner.wake = None;
            return None;
        }
        // A lingering group is woken once it is full (or by a synced batch,
        // or by closing), else at its deadline.
        inner.wake = Some(max);
        let deadline = Instant::now() + linger;
        while inner.synced.is_empty() && !inner.wakes() && !inner.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            inner = self.ready.wait_timeout(inner, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        inner.wake = None;
        let n = max.fit(inner.items.iter().map(|i| i.data.len()));
        let items: Vec<Item> = inner.items.drain(..n).collect();
        for item in &items {
            inner.remove(item);
        }
        Some(Group { items, synced: inner.synced.pop_front() })
    }
}

/// What `/metrics` and `/v1/ingest/stats` show; published by the worker after every group.
#[derive(Debug, Clone, Default)]
pub struct IngestSnapshot {
    /// Telemetry outcomes: (outcome, reason, count).
    pub outcomes: Vec<(Outcome, &'static str, u64)>,
    /// Control-topic outcomes: (outcome, reason) → count.
    pub control: BTreeMap<(Outcome, &'static str), u64>,
    /// Outcomes of envelopes fetched by sync: (outcome, reason) → count;
    /// accepted ones of minutes already sealed are (Accept, `late`).
    pub synced: BTreeMap<(Outcome, &'static str), u64>,
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
    /// Committed log bytes dropped from the page cache.
    pub uncached_bytes: u64,
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
    /// Synced batches shed from a full queue.
    pub sync_batches_shed: AtomicU64,
    /// Bytes of gossip messages waiting in the queue (as of the last push or take).
    pub queue_bytes: AtomicU64,
    /// Whether the node is still catching up with its peers after a start
    /// (it seals nothing meanwhile).
    pub catching_up: std::sync::atomic::AtomicBool,
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
    synced: BTreeMap<(Outcome, &'static str), u64>,
    /// Ids of the envelopes appended in the group being validated (indexed
    /// once it is committed).
    appended: HashSet<Hash>,
    /// The last group, written to the log and syncing while the next one
    /// is validated; reported and scored once durable.
    in_flight: Option<InFlight>,
    /// Whether the node is past its catch-up after start (sealing allowed).
    caught_up: bool,
    /// Whether the group being validated holds a synced batch whose
    /// envelopes are not validated yet: it has left the queue, so until it
    /// is validated (and then scored with its group) a catching-up node
    /// must not seal, though the previous group finishes meanwhile.
    synced_in_hand: bool,
    commits: u64,
    uncached_bytes: u64,
    /// [`IngestConfig::hash_threads`], resolved once (finding the cores
    /// reads the cgroup's CPU quota, too dear for every group).
    hash_threads: usize,
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
    last_sla_snapshot: Instant,
    /// Size of the last SLA snapshot written.
    last_snapshot_bytes: u64,
    /// Size of the redb file after the last state write.
    state_file_bytes: u64,
}

/// A group whose records are written and whose sync is under way.
struct InFlight {
    syncing: Syncing,
    /// Log index of its first record.
    first: u64,
    /// Its verdicts, rejections first, sent once it is durable.
    verdicts: Vec<Verdict>,
    /// Its accepted envelopes with their log indexes and ids, scored and
    /// indexed once it is durable.
    to_score: Vec<(Verified, u64, Hash)>,
    /// Its envelopes' ids, held until they are indexed.
    ids: HashSet<Hash>,
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
    pub(crate) snapshot_every: Duration,
    /// Where sealed buckets go (ClickHouse), when a sink is configured.
    pub(crate) aggregates: Option<Arc<AggregateExport>>,
    /// The envelope index and this verifier's checkpoint signer.
    pub(crate) converge: Arc<Convergence>,
    /// Messages for the control topic (own signed checkpoints); full means dropped, counted.
    pub(crate) publish: mpsc::Sender<Vec<u8>>,
}

/// Sealed minutes whose envelope ids stay indexed (what sync still serves
/// and what tells a late copy from a new envelope).
pub(crate) const INDEX_SEALED_MINUTES: u64 = 60;

/// What the start-up pass over the log tail did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WarmUp {
    /// Records read.
    pub records: u64,
    /// Envelopes re-applied to the duplicate guards (inside the replay window).
    pub readmitted: u64,
    /// Revocations re-applied.
    pub revocations: u64,
    /// Envelopes fed to the SLA engine (past its snapshot).
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
            synced: BTreeMap::new(),
            appended: HashSet::new(),
            in_flight: None,
            caught_up: false,
            synced_in_hand: false,
            commits: 0,
            uncached_bytes: 0,
            hash_threads: parts.config.hash_threads(),
            pending: StateWrite::default(),
            last_state_write: Instant::now(),
            last_minute: None,
            last_prune: None,
            warmed: WarmUp::default(),
            state_writes: 0,
            pruned_segments: 0,
            sla: parts.sla,
            drop_principal: parts.drop_principal,
            last_sla_snapshot: Instant::now(),
            last_snapshot_bytes: 0,
            state_file_bytes: 0,
        }
    }

    /// Records the authority view in force now if its hash differs from the
    /// one last recorded.
    pub(crate) fn record_authority(&mut self) -> Result<(), NodeError> {
        self.record_view(self.authority.current())
    }

    /// Records `view` if its hash differs from the one last recorded.
    fn record_view(&mut self, view: Arc<AuthorityView>) -> Result<(), NodeError> {
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
        let max = self.config.group_bound();
        // While a group syncs, an empty queue is not waited on: the group
        // is finished (reported, scored) at once instead.
        let idle = |w: &Worker| if w.in_flight.is_some() { Duration::ZERO } else { IDLE_WAKE };
        while let Some(group) = self.queue.take(max, linger, idle(&self)) {
            self.metrics.queue_bytes.store(self.queue.bytes() as u64, Ordering::Relaxed);
            self.group(group)?;
        }
        self.finish_in_flight()?;
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
        for bytes in self.state.revocations()? {
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
        let guard_from = self.state.first_index_since(window_minute)?;
        // The SLA engine re-reads from its checkpoint, or everything.
        let sla_from = if self.sla.restored { applied } else { first };
        // The envelope index holds every envelope of the minutes not sealed
        // yet (what sync compares and the next checkpoints commit to); those
        // were committed in the minute before the first of them or later.
        let unsealed = minute_of(self.sla.scores.sealed_end_ms()).saturating_sub(1);
        let index_from = self.state.first_index_since(unsealed)?;
        let from = [guard_from, index_from]
            .into_iter()
            .flatten()
            .fold(applied.min(sla_from), u64::min)
            .max(first);
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
        self.state.write(w)?;
        self.state_file_bytes = std::fs::metadata(self.state.path()).map_or(0, |m| m.len());
        if full {
            let applied = self.log.committed_records();
            let bytes = self.sla.scores.snapshot();
            self.sla.snapshot.write(applied, &bytes)?;
            self.last_snapshot_bytes = bytes.len() as u64;
            self.last_sla_snapshot = Instant::now();
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

    /// Commits what is pending, then does what follows every commit.
    fn commit(&mut self) -> Result<(), NodeError> {
        let first = self.log.committed_records();
        let info = self.log.commit()?;
        self.committed(first, info)
    }

    /// What follows a commit whose first record has index `first`: the
    /// minute row, the periodic state write and pruning, and the metrics.
    fn committed(&mut self, first: u64, info: CommitInfo) -> Result<(), NodeError> {
        if info.records > 0 {
            self.uncached_bytes += info.uncached_bytes;
            self.commits += 1;
            let minute = now_ms() / 60_000;
            if self.last_minute != Some(minute) {
                self.last_minute = Some(minute);
                self.pending.minutes.push((minute, first));
            }
        }
        if self.last_state_write.elapsed() >= Duration::from_millis(self.config.state_interval_ms) {
            let full = self.last_sla_snapshot.elapsed() >= self.sla.snapshot_every
                && self.log.pending_records() == 0;
            self.write_state(full)?;
            self.prune()?;
        }
        self.metrics.publish(IngestSnapshot {
            outcomes: self.pipeline.snapshot(),
            control: self.control.clone(),
            synced: self.synced.clone(),
            evictions: self.pipeline.stats().eviction_snapshot(),
            chain_gaps: self.pipeline.stats().gaps(),
            log_records: self.log.committed_records(),
            log_first_index: self.log.first_index(),
            commits: self.commits,
            uncached_bytes: self.uncached_bytes,
            state_writes: self.state_writes,
            state_file_bytes: self.state_file_bytes,
            snapshot_bytes: self.last_snapshot_bytes,
            pruned_segments: self.pruned_segments,
            warm_up: self.warmed,
        });
        Ok(())
    }

    /// Validates a group, appends what passed and starts its commit; it is
    /// reported and scored once durable ([`Worker::finish`]), which is
    /// while the next group is validated when one is queued.
    ///
    /// While the previous group syncs, this one's telemetry is validated up
    /// to its first control message: validation needs nothing of the
    /// previous group's commit, while appending must wait for it (a seal
    /// that the previous group's scores bring is logged before this group's
    /// records, as `vouch replay` redoes it), and so must a control message
    /// (it is logged as it is judged).
    fn group(&mut self, group: Group) -> Result<(), NodeError> {
        self.synced_in_hand = group.synced.is_some();
        let view = self.authority.current();
        let mut prepared = prepare(group.items, self.hash_threads).peekable();
        let mut early = Vec::new();
        if self.in_flight.is_some() {
            while let Some(p) = prepared.next_if(|p| matches!(p.message, Message::Telemetry(_))) {
                if let Message::Telemetry(mut msg) = p.message {
                    let checked = self.check(&mut msg);
                    early.push((p.id, p.source, msg, checked));
                }
            }
            self.finish_in_flight()?;
        }
        self.record_view(view)?;
        let mut verdicts = Vec::with_capacity(early.len() + prepared.size_hint().0);
        let mut accepted = Vec::new();
        let mut to_score = Vec::new();
        let mut report = |id, source, outcome| {
            let verdict = Verdict { id: Some(id), source, acceptance: acceptance(outcome) };
            if outcome == Outcome::Accept {
                accepted.push(verdict);
            } else {
                verdicts.push(verdict);
            }
        };
        for (id, source, msg, checked) in early {
            report(id, source, self.telemetry(msg, checked, &mut to_score)?);
        }
        for p in prepared {
            let outcome = match p.message {
                Message::Control(data) => self.control(&data)?,
                Message::Telemetry(mut msg) => {
                    let checked = self.check(&mut msg);
                    self.telemetry(msg, checked, &mut to_score)?
                }
            };
            report(p.id, p.source, outcome);
        }
        if let Some(batch) = group.synced {
            for envelope in batch.envelopes {
                if self.synced_envelope(envelope, &mut to_score)? {
                    let reject = MessageAcceptance::Reject;
                    verdicts.push(Verdict { id: None, source: batch.peer, acceptance: reject });
                }
            }
        }
        // Validated and appended: they are scored when this group finishes,
        // before the seal that follows.
        self.synced_in_hand = false;
        verdicts.extend(accepted);
        let first = self.log.committed_records();
        let syncing = self.log.start_commit()?;
        let ids = std::mem::take(&mut self.appended);
        let group = InFlight { syncing, first, verdicts, to_score, ids };
        if group.syncing.records() == 0 {
            return self.finish(group);
        }
        self.in_flight = Some(group);
        Ok(())
    }

    /// Finishes the group in flight, if any.
    fn finish_in_flight(&mut self) -> Result<(), NodeError> {
        match self.in_flight.take() {
            Some(group) => self.finish(group),
            None => Ok(()),
        }
    }

    /// Waits until a group's records are durable; then (and only then)
    /// indexes and scores its envelopes, seals what the clock allows and
    /// reports its verdicts: an accept is reported only once durable.
    fn finish(&mut self, group: InFlight) -> Result<(), NodeError> {
        let info = self.log.finish_commit(group.syncing)?;
        self.committed(group.first, info)?;
        for (v, log_index, id) in &group.to_score {
            let minute = minute_of(v.id().timestamp);
            self.sla.converge.index().insert(*id, minute, v.id().partition, *log_index);
            self.sla.scores.ingest_verified(v);
        }
        self.seal()?;
        if !group.verdicts.is_empty() && self.verdicts.blocking_send(group.verdicts).is_err() {
            tracing::debug!("swarm task gone; verdicts dropped");
        }
        Ok(())
    }

    /// A gossiped envelope judged: refused when its id is held already
    /// (sync may have brought it first), else validated.
    fn check(&mut self, msg: &mut Unverified) -> Result<Verified, ValidationError> {
        if self.held(msg.id()) {
            Err(self.pipeline.refuse_held())
        } else {
            self.pipeline.validate(msg, now_ms())
        }
    }

    /// A gossiped envelope as [`Worker::check`] judged it: appended when it
    /// passed.
    fn telemetry(
        &mut self,
        msg: Unverified,
        checked: Result<Verified, ValidationError>,
        to_score: &mut Vec<(Verified, u64, Hash)>,
    ) -> Result<Outcome, NodeError> {
        match checked {
            Ok(verified) => {
                self.append_verified(verified, msg.into_hashed(), to_score)?;
                Ok(Outcome::Accept)
            }
            Err(e) => {
                let (outcome, reason) = e.outcome();
                tracing::debug!(%e, reason, "message not accepted");
                Ok(outcome)
            }
        }
    }
    /// An envelope sync fetched from a peer: refused when its id is held,
    /// else validated as a synced one ([`Pipeline::validate_synced`]) and,
    /// when it passes, appended (and counted `late` when its minute is
    /// sealed already). Returns whether the peer that served it is to blame.
    fn synced_envelope(
        &mut self,
        data: Vec<u8>,
        to_score: &mut Vec<(Verified, u64, Hash)>,
    ) -> Result<bool, NodeError> {
        let data = Hashed::new(data);
        let checked = if self.held(data.hash()) {
            Err(ValidationError::Duplicate)
        } else {
            self.pipeline.validate_synced(data.bytes(), self.sla.converge.partitions(), now_ms())
        };
        let (key, blame) = match checked {
            Ok(verified) => {
                let late = verified.id().timestamp < self.sla.scores.sealed_end_ms();
                self.append_verified(verified, data, to_score)?;
                ((Outcome::Accept, if late { LATE } else { ACCEPTED }), false)
            }
            Err(e) => {
                tracing::debug!(%e, "synced envelope not accepted");
                (e.outcome(), e.blames_sync_peer())
            }
        };
        *self.synced.entry(key).or_default() += 1;
        Ok(blame)
    }

    /// Whether an envelope id is held: indexed, appended in this group, or
    /// in the group in flight.
    fn held(&self, id: &Hash) -> bool {
        self.appended.contains(id)
            || self.in_flight.as_ref().is_some_and(|g| g.ids.contains(id))
            || self.sla.converge.index().contains(id)
    }

    /// Appends a verified envelope for the commit (unless a test-only fault
    /// leaves its principal out, whatever route it came by).
    fn append_verified(
        &mut self,
        verified: Verified,
        data: Hashed,
        to_score: &mut Vec<(Verified, u64, Hash)>,
    ) -> Result<(), NodeError> {
        if self.drop_principal == Some(verified.certificate().principal()) {
            return Ok(());
        }
        let id = *data.hash();
        let at = self.log.append_hashed(RecordKind::Envelope, data)?;
        self.appended.insert(id);
        to_score.push((verified, at.index, id));
        Ok(())
    }

    /// Seals the minutes the clock allows; a seal that advanced is recorded
    /// in the log and committed at once, so the log always holds every seal
    /// the engine's state reflects (what `vouch replay` redoes).
    fn seal(&mut self) -> Result<(), NodeError> {
        // After a start, nothing is sealed until the node has caught up with
        // its peers and validated what it fetched (queued, or taken into the
        // group being validated): a minute sealed without what was missed
        // while down would be checkpointed wrong for good.
        if !self.caught_up {
            if self.metrics.catching_up.load(Ordering::Relaxed)
                || self.queue.has_synced()
                || self.synced_in_hand
            {
                return Ok(());
            }
            self.caught_up = true;
        }
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

/// The reason label of an envelope accepted from sync after its minute was sealed.
pub const LATE: &str = "late";

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

    /// A worker over a log, state and snapshot in `dir`, the default
    /// policies, `view` as its authority, and every partition followed.
    fn worker(
        dir: &std::path::Path,
        view: AuthorityView,
        queue: &Arc<Queue>,
        verdicts: mpsc::Sender<Vec<Verdict>>,
        metrics: &Arc<Metrics>,
    ) -> Worker {
        use crate::store::LogConfig;
        use vouch_delegation::authority::CachedAuthority;

        let (log, _) = SegmentLog::open(dir.join("log"), LogConfig::default()).unwrap();
        let authority: Arc<dyn Authority> = Arc::new(CachedAuthority::new(view));
        let state = StateStore::open(dir.join("state.redb")).unwrap();
        Worker::new(WorkerParts {
            pipeline: Pipeline::new(Default::default(), Arc::clone(&authority)),
            log,
            state,
            authority,
            config: IngestConfig::default(),
            retention: None,
            queue: Arc::clone(queue),
            verdicts,
            metrics: Arc::clone(metrics),
            sla: WorkerSla {
                scores: Arc::new(Scores::open(&PolicyFiles::default(), None).unwrap().0),
                files: PolicyFiles::default(),
                snapshot: SnapshotFile::in_dir(dir),
                applied: 0,
                restored: false,
                snapshot_every: Duration::from_secs(60),
                aggregates: None,
                converge: Arc::new(Convergence::new(
                    vouch_delegation::Eip712Network::arbitrum_one(),
                    vouch_net::PartitionSet::all(),
                    None,
                    &Default::default(),
                )),
                publish: mpsc::channel(1).0,
            },
            drop_principal: None,
        })
    }

    fn log_kinds(dir: &std::path::Path) -> Vec<RecordKind> {
        LogReader::open(dir.join("log"), 0).unwrap().map(|r| r.unwrap().kind).collect()
    }

    #[test]
    fn worker_reports_rejects_and_records_the_view_once() {
        let dir = tempfile::TempDir::new().unwrap();
        let queue = Arc::new(Queue::new(8, 1 << 20, 1));
        let (tx, mut rx) = mpsc::channel(8);
        let metrics = Arc::new(Metrics::default());
        let worker = worker(dir.path(), AuthorityView::new("test", []), &queue, tx, &metrics);
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
        assert_eq!(
            log_kinds(dir.path()),
            [RecordKind::AuthorityView, RecordKind::Scores, RecordKind::Scores],
            "the view recorded once, the SLA policy, the first seal"
        );
    }

    /// A node catching up after a start seals nothing while a synced batch
    /// it has taken from the queue is not validated yet, even though the
    /// group before finishes meanwhile (its commit overlapped the next
    /// group's checks): the seal comes after the fetched envelopes, which
    /// are scored first.
    #[test]
    fn a_synced_batch_in_hand_holds_the_seal_until_its_group_is_scored() {
        use vouch_delegation::Role;
        use vouch_testkit::actor::{Actor, ChainSigner};
        use vouch_testkit::fixtures;

        let dir = tempfile::TempDir::new().unwrap();
        let valid = now_ms() / 1000 - 3600..now_ms() / 1000 + 86_400;
        let chain = |n: u32, name: &str| {
            let actor = Actor::numbered(n, Role::Gateway, "FRA", valid.clone());
            ChainSigner::with_actor(actor, 0, name, now_ms() - 10_000)
        };
        let (mut live, mut fetched) = (chain(1, "live"), chain(2, "fetched"));
        let view = AuthorityView::new("test", [live.actor.entry(), fetched.actor.entry()]);
        let queue = Arc::new(Queue::new(8, 1 << 20, 1));
        let (tx, _rx) = mpsc::channel(8);
        let mut worker = worker(dir.path(), view, &queue, tx, &Arc::new(Metrics::default()));
        let envelope = |c: &mut ChainSigner| c.next(|ts| fixtures::stamped(4, ts)).encode();

        let mut gossiped = item(1);
        gossiped.topic = vouch_schema::topic::telemetry_topic(0);
        gossiped.data = envelope(&mut live);
        worker.group(Group { items: vec![gossiped], synced: None }).unwrap();
        assert!(worker.in_flight.is_some(), "the gossiped envelope's commit is under way");
        let batch = Synced { peer: PeerId::random(), envelopes: vec![envelope(&mut fetched)] };
        worker.group(Group { items: Vec::new(), synced: Some(batch) }).unwrap();
        worker.finish_in_flight().unwrap();

        assert_eq!(
            log_kinds(dir.path()),
            [
                RecordKind::AuthorityView,
                RecordKind::Envelope,
                RecordKind::Envelope,
                RecordKind::Scores,
            ],
            "the fetched envelope is logged (and scored) before the first seal"
        );
        assert!(worker.caught_up);
    }

    /// A bound of `records` messages, however many bytes.
    fn most(records: usize) -> GroupBound {
        GroupBound { records, bytes: usize::MAX }
    }

    #[test]
    fn a_group_ends_at_its_records_or_its_bytes() {
        let bound = GroupBound { records: 3, bytes: 10 };
        assert_eq!(bound.fit([4, 4, 2, 1]), 3, "records bind");
        assert_eq!(bound.fit([4, 4, 3]), 2, "11 bytes would pass 10");
        assert_eq!(bound.fit([30, 1]), 1, "one message always fits");
        assert_eq!(bound.fit([]), 0);
        let sized = |n: u8, len: usize| Item { data: vec![n; len], ..item(n) };
        let q = Queue::new(100, 1 << 20, 1);
        for (n, len) in [(1, 6), (2, 4), (3, 6), (4, 30), (5, 1)] {
            assert!(q.push(sized(n, len)).is_empty());
        }
        let mut groups = Vec::new();
        while q.bytes() > 0 {
            let group = q.take(bound, Duration::ZERO, Duration::ZERO).unwrap();
            groups.push(group.items.iter().map(|i| i.data[0]).collect::<Vec<_>>());
        }
        assert_eq!(groups, [vec![1, 2], vec![3], vec![4], vec![5]]);
        let defaults = IngestConfig::default().group_bound();
        assert_eq!((defaults.records, defaults.bytes), (512, 4 << 20));
    }

    #[test]
    fn queue_sheds_oldest_and_groups() {
        let q = Queue::new(2, 1 << 20, 1);
        assert!(q.push(item(1)).is_empty());
        assert!(q.push(item(2)).is_empty());
        let shed = q.push(item(3));
        assert_eq!(shed.iter().map(|i| i.data.clone()).collect::<Vec<_>>(), [vec![1]]);
        let batch = |n: u8| Synced { peer: PeerId::random(), envelopes: vec![vec![n]] };
        assert!(q.push_synced(batch(7)).is_none());
        assert!(q.synced_full());
        let shed = q.push_synced(batch(8)).expect("the older batch is shed");
        assert_eq!(shed.envelopes, [vec![7]], "handed back, so its claims can be released");
        assert!(q.has_synced());
        let group = q.take(most(10), Duration::ZERO, Duration::ZERO).unwrap();
        assert_eq!(group.items.iter().map(|i| i.data[0]).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(group.synced.unwrap().envelopes, [vec![8]], "one batch a group");
        assert!(!q.has_synced());
        q.push(item(4));
        q.close();
        assert!(
            q.take(most(10), Duration::ZERO, Duration::ZERO).is_none(),
            "closed: stop without waiting"
        );
        let idle = Queue::new(1, 1, 1).take(most(1), Duration::ZERO, Duration::ZERO).unwrap();
        assert!(idle.items.is_empty() && idle.synced.is_none(), "idle");
    }

    #[test]
    fn a_flooding_peer_loses_its_own_messages() {
        let (flooder, honest) = (PeerId::random(), PeerId::random());
        let from = |source: PeerId, n: u8| Item { source, data: vec![n; 10], ..item(n) };
        let q = Queue::new(100, 50, 1);
        assert!(q.push(from(honest, 1)).is_empty());
        for n in 2..6 {
            assert!(q.push(from(flooder, n)).is_empty());
        }
        // Full (50 bytes): the flooder's oldest goes, the honest one stays.
        let shed = q.push(from(flooder, 6));
        assert_eq!(shed.iter().map(|i| i.data[0]).collect::<Vec<_>>(), [2]);
        let shed = q.push(from(honest, 7));
        assert_eq!(shed.iter().map(|i| i.data[0]).collect::<Vec<_>>(), [3]);
        let group = q.take(most(100), Duration::ZERO, Duration::ZERO).unwrap();
        assert_eq!(group.items.iter().map(|i| i.data[0]).collect::<Vec<_>>(), [1, 4, 5, 6, 7]);
        assert_eq!(q.bytes(), 0);
    }

    /// The worker sleeps through pushes that do not fill its group, so each
    /// wait must still end when one does: here an idle wait and a lingering
    /// group, both far longer than the test, end as soon as the messages
    /// that end them arrive (a wakeup lost would leave `take` asleep for an
    /// hour, and the test would fail at its minute).
    #[test]
    fn a_waiting_worker_wakes_when_its_group_fills() {
        let hour = Duration::from_secs(3600);
        let q = std::sync::Arc::new(Queue::new(100, 1 << 20, 1));
        let (tx, rx) = std::sync::mpsc::channel();
        let worker = {
            let q = std::sync::Arc::clone(&q);
            std::thread::spawn(move || {
                // Records bind the first group, bytes the second.
                for bound in [
                    GroupBound { records: 3, bytes: 1 << 20 },
                    GroupBound { records: 100, bytes: 5 },
                ] {
                    let group = q.take(bound, hour, hour).unwrap();
                    tx.send(group.items.iter().map(|i| i.data.len()).collect::<Vec<_>>()).unwrap();
                }
            })
        };
        let minute = Duration::from_secs(60);
        let sized = |n: u8, len: usize| Item { data: vec![n; len], ..item(n) };
        for n in 1..=3 {
            // Pushed one by one while the worker waits, idle and then lingering.
            std::thread::sleep(Duration::from_millis(20));
            assert!(q.push(sized(n, 1)).is_empty());
        }
        assert_eq!(
            rx.recv_timeout(minute).unwrap(),
            [1, 1, 1],
            "three messages fill the first group"
        );
        for (n, len) in [(4, 2), (5, 3)] {
            std::thread::sleep(Duration::from_millis(20));
            assert!(q.push(sized(n, len)).is_empty());
        }
        assert_eq!(rx.recv_timeout(minute).unwrap(), [2, 3], "five bytes fill the second");
        worker.join().unwrap();
    }

    #[test]
    fn queue_sheds_oldest_by_bytes() {
        let sized = |n: u8, len: usize| Item { data: vec![n; len], ..item(n) };
        let q = Queue::new(100, 10, 1);
        assert!(q.push(sized(1, 4)).is_empty());
        assert!(q.push(sized(2, 4)).is_empty());
        assert_eq!(q.bytes(), 8);
        let shed = q.push(sized(3, 4));
        assert_eq!(shed.iter().map(|i| i.data[0]).collect::<Vec<_>>(), [1], "12 > 10 bytes");
        assert_eq!(q.bytes(), 8);
        let shed = q.push(sized(4, 30));
        assert_eq!(shed.len(), 2, "a message larger than the bound replaces everything");
        assert_eq!(q.bytes(), 30, "and is still taken: one message always fits");
        let group = q.take(most(10), Duration::ZERO, Duration::ZERO).unwrap();
        assert_eq!(group.items.len(), 1);
        assert_eq!(q.bytes(), 0);
    }
}
