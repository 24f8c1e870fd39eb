//! From gossip to the log: a bounded queue that sheds its oldest message
//! when full, and the worker thread that validates, appends, group-commits,
//! and only then tells gossip what it decided.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use libp2p::PeerId;
use libp2p::gossipsub::{MessageAcceptance, MessageId};
use tokio::sync::mpsc;
use vouch_delegation::SignedRevocation;
use vouch_delegation::authority::{Authority, AuthorityView};

use crate::store::{RecordKind, SegmentLog};
use crate::validate::{Outcome, Pipeline, Unverified};

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
    pub(crate) received_at_ms: u64,
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
    /// `linger` after the first for more. `None` once closed.
    fn take(&self, max: usize, linger: Duration) -> Option<Vec<Item>> {
        let mut inner = self.lock();
        while inner.items.is_empty() {
            if inner.closed {
                return None;
            }
            inner = self.ready.wait(inner).unwrap_or_else(|p| p.into_inner());
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
    /// Records committed to the log (all kinds).
    pub log_records: u64,
    /// Commits done.
    pub commits: u64,
}

/// Counters shared between the worker, the swarm task and the HTTP server.
#[derive(Debug, Default)]
pub struct Metrics {
    snapshot: Mutex<IngestSnapshot>,
    /// Messages shed from a full queue.
    pub shed: AtomicU64,
    /// Verdicts the swarm could not deliver (message already gone from its cache).
    pub verdicts_dropped: AtomicU64,
}

impl Metrics {
    /// A copy of the latest snapshot.
    pub fn snapshot(&self) -> IngestSnapshot {
        self.snapshot.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn publish(&self, snapshot: IngestSnapshot) {
        *self.snapshot.lock().unwrap_or_else(|p| p.into_inner()) = snapshot;
    }
}

/// The worker's state: pipeline, log and the authority whose view it records.
pub(crate) struct Worker {
    pub(crate) pipeline: Pipeline,
    pub(crate) log: SegmentLog,
    pub(crate) authority: Arc<dyn Authority>,
    pub(crate) config: IngestConfig,
    pub(crate) queue: Arc<Queue>,
    pub(crate) verdicts: mpsc::Sender<Vec<Verdict>>,
    pub(crate) metrics: Arc<Metrics>,
    /// Hash of the authority view last recorded in the log.
    pub(crate) recorded_view: Option<[u8; 32]>,
    /// The view last checked (hashing is skipped while it stays the same `Arc`).
    pub(crate) checked_view: Option<Arc<AuthorityView>>,
    pub(crate) control: BTreeMap<(Outcome, &'static str), u64>,
    pub(crate) commits: u64,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn acceptance(outcome: Outcome) -> MessageAcceptance {
    match outcome {
        Outcome::Accept => MessageAcceptance::Accept,
        Outcome::Reject => MessageAcceptance::Reject,
        Outcome::Ignore => MessageAcceptance::Ignore,
    }
}

impl Worker {
    /// Records the authority view if its hash differs from the one last recorded.
    pub(crate) fn record_authority(&mut self) -> Result<(), NodeError> {
        let view = self.authority.current();
        if self.checked_view.as_ref().is_some_and(|v| Arc::ptr_eq(v, &view)) {
            return Ok(());
        }
        self.checked_view = Some(Arc::clone(&view));
        let hash = view.hash();
        if self.recorded_view != Some(hash) {
            self.log.append(RecordKind::AuthorityView, &view.canonical_json())?;
            self.recorded_view = Some(hash);
            tracing::info!(hash = %hex::encode(hash), source = %view.source, "authority view recorded");
        }
        Ok(())
    }

    /// Runs until the queue closes; ends with a final commit.
    pub(crate) fn run(mut self) -> Result<(), NodeError> {
        self.record_authority()?;
        self.commit()?;
        let linger = Duration::from_millis(self.config.commit_interval_ms);
        let max = self.config.commit_max_records.max(1);
        while let Some(group) = self.queue.take(max, linger) {
            self.group(group)?;
        }
        self.commit()?;
        tracing::info!(records = self.log.committed_records(), "log committed at shutdown");
        Ok(())
    }

    fn commit(&mut self) -> Result<(), NodeError> {
        if self.log.pending_records() > 0 {
            self.log.commit()?;
            self.commits += 1;
        }
        self.metrics.publish(IngestSnapshot {
            outcomes: self.pipeline.snapshot(),
            control: self.control.clone(),
            evictions: self.pipeline.stats().eviction_snapshot(),
            log_records: self.log.committed_records(),
            commits: self.commits,
        });
        Ok(())
    }

    /// Validates a group, appends what passed, commits once, then reports.
    fn group(&mut self, group: Vec<Item>) -> Result<(), NodeError> {
        self.record_authority()?;
        let mut verdicts = Vec::with_capacity(group.len());
        let mut accepted = Vec::new();
        for item in group {
            let now = now_ms();
            let outcome = if item.control {
                self.control(&item.data)?
            } else {
                let msg =
                    Unverified::from_topic(item.data.clone(), &item.topic, item.received_at_ms);
                match self.pipeline.validate(msg, now) {
                    Ok(_) => {
                        self.log.append(RecordKind::Envelope, &item.data)?;
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
        // Accept is reported only once the records are durable.
        self.commit()?;
        verdicts.extend(accepted);
        if self.verdicts.blocking_send(verdicts).is_err() {
            tracing::debug!("swarm task gone; verdicts dropped");
        }
        Ok(())
    }

    /// A control-topic message: a revocation, applied and logged.
    fn control(&mut self, data: &[u8]) -> Result<Outcome, NodeError> {
        let (outcome, reason) = match SignedRevocation::decode(data) {
            Err(_) => (Outcome::Reject, "malformed"),
            Ok(signed) => match signed.verify(&self.pipeline.config().network) {
                Err(_) => (Outcome::Reject, "bad_signature"),
                Ok(verified) => match self.pipeline.apply_revocation(&verified) {
                    Err(_) => (Outcome::Ignore, "revocations_full"),
                    Ok(()) => {
                        self.log.append(RecordKind::Revocation, data)?;
                        (Outcome::Accept, "revocation")
                    }
                },
            },
        };
        *self.control.entry((outcome, reason)).or_default() += 1;
        Ok(outcome)
    }
}

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
            received_at_ms: 0,
        }
    }

    #[test]
    fn worker_reports_rejects_and_records_the_view_once() {
        use crate::store::{LogConfig, LogReader};
        use vouch_delegation::authority::CachedAuthority;

        let dir = tempfile::TempDir::new().unwrap();
        let (log, _) = SegmentLog::open(dir.path(), LogConfig::default()).unwrap();
        let authority: Arc<dyn Authority> =
            Arc::new(CachedAuthority::new(AuthorityView::new("test", [])));
        let queue = Arc::new(Queue::new(8));
        let (tx, mut rx) = mpsc::channel(8);
        let metrics = Arc::new(Metrics::default());
        let worker = Worker {
            pipeline: Pipeline::new(Default::default(), Arc::clone(&authority)),
            log,
            authority,
            config: IngestConfig::default(),
            queue: Arc::clone(&queue),
            verdicts: tx,
            metrics: Arc::clone(&metrics),
            recorded_view: None,
            checked_view: None,
            control: BTreeMap::new(),
            commits: 0,
        };
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
            LogReader::open(dir.path(), 0).unwrap().map(|r| r.unwrap().kind).collect();
        assert_eq!(kinds, [RecordKind::AuthorityView], "only the view, recorded once");
    }

    #[test]
    fn queue_sheds_oldest_and_groups() {
        let q = Queue::new(2);
        assert!(q.push(item(1)).is_none());
        assert!(q.push(item(2)).is_none());
        assert_eq!(q.push(item(3)).unwrap().data, vec![1]);
        let group = q.take(10, Duration::ZERO).unwrap();
        assert_eq!(group.iter().map(|i| i.data[0]).collect::<Vec<_>>(), [2, 3]);
        q.push(item(4));
        q.close();
        assert!(q.take(10, Duration::ZERO).is_none(), "closed: stop without waiting");
    }
}
