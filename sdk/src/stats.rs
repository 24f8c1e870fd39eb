//! Publisher statistics: what was taken, sent and lost, and why.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use serde::{Deserialize, Serialize};

/// A snapshot of a publisher's counters (serializes to JSON for the C ABI
/// and logs). Counts are events unless named otherwise. Every event that
/// `publish` accepted is, at any moment, exactly one of: queued, sent
/// (`sent_events`), evicted by `drop_oldest` (in `dropped_queue_full`), refused
/// by the transport (`dropped_transport`) or found invalid by the worker (in
/// `dropped_invalid`). `dropped_queue_full` and `dropped_invalid` also count
/// events that were never accepted (refused by `drop_newest`; malformed input
/// to `publish_go_livepeer`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Accepted and not yet sent or dropped (in the queue or in the batch
    /// being built). After a `close` whose deadline passed, the events it
    /// abandoned.
    pub queued: u64,
    /// Events `publish` accepted, ever.
    pub published_events: u64,
    /// Envelopes the transport took.
    pub sent_envelopes: u64,
    /// Events in those envelopes.
    pub sent_events: u64,
    /// Events lost to a full queue: refused (`drop_newest`) or evicted (`drop_oldest`).
    pub dropped_queue_full: u64,
    /// Events in envelopes the transport refused (buffer full, closed, I/O error).
    pub dropped_transport: u64,
    /// Events that could not be published: malformed input to
    /// `publish_go_livepeer`, events that fail validation, or too large for
    /// one envelope.
    pub dropped_invalid: u64,
    /// Envelopes the transport took and still holds (gossip: waiting for a
    /// peer, or handed to gossipsub and not yet written to a peer's connection).
    pub transport_pending: u64,
    /// Envelopes the transport took and later lost, every one counted (gossip:
    /// the oldest dropped from its full buffer while no peer could take them,
    /// refused by full peer send queues, reported lost by gossipsub after
    /// waiting too long for a slow peer, or still waiting when a connection or
    /// the transport closed; see `vouch_sdk::transport::gossip::GossipStats`).
    pub transport_dropped: u64,
    /// The most recent error, if any.
    pub last_error: Option<String>,
}

/// The live counters behind [`Stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) queued: AtomicU64,
    pub(crate) published_events: AtomicU64,
    pub(crate) sent_envelopes: AtomicU64,
    pub(crate) sent_events: AtomicU64,
    pub(crate) dropped_queue_full: AtomicU64,
    pub(crate) dropped_transport: AtomicU64,
    pub(crate) dropped_invalid: AtomicU64,
    last_error: Mutex<Option<String>>,
    hook: HookSlot,
}

/// What kind of problem a publisher recorded (the C ABI maps each to its
/// `VOUCH_ERR_*` code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// An event was dropped because it is not a valid event (malformed
    /// go-livepeer JSON found by the worker, an event that fails validation,
    /// or one too large for an envelope).
    InvalidEvent,
    /// The transport refused, lost or could not flush envelopes.
    Transport,
    /// The delegation certificate expired while publishing.
    Identity,
    /// The worker panicked and stopped.
    Panic,
    /// Anything else (a batch could not be signed).
    Internal,
}

/// Called with every problem a publisher records after `publish` returned,
/// on the thread that found it (usually the publisher's worker). It must
/// return quickly: the worker waits for it.
pub type ErrorHook = Arc<dyn Fn(ErrorKind, &str) + Send + Sync>;

/// The slot holding a publisher's [`ErrorHook`].
#[derive(Default)]
struct HookSlot(RwLock<Option<ErrorHook>>);

impl std::fmt::Debug for HookSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = self.0.read().unwrap_or_else(PoisonError::into_inner).is_some();
        f.debug_struct("HookSlot").field("set", &set).finish()
    }
}

impl Counters {
    /// Adds `n` to a counter.
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Marks `n` queued events as resolved (sent or dropped).
    pub(crate) fn unqueue(&self, n: u64) {
        self.queued.fetch_sub(n, Ordering::Relaxed);
    }

    /// Records the most recent error and hands it to the error hook, if one is set.
    pub(crate) fn set_error(&self, kind: ErrorKind, error: impl std::fmt::Display) {
        let text = error.to_string();
        tracing::debug!(error = %text, ?kind, "vouch publisher");
        // The hook is cloned out so that it runs with no lock held.
        let hook = self.hook.0.read().unwrap_or_else(PoisonError::into_inner).clone();
        if let Some(hook) = hook {
            hook(kind, &text);
        }
        *self.last_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(text);
    }

    /// Sets (or, with `None`, clears) the error hook.
    pub(crate) fn set_hook(&self, hook: Option<ErrorHook>) {
        *self.hook.0.write().unwrap_or_else(PoisonError::into_inner) = hook;
    }

    /// A snapshot.
    pub(crate) fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            queued: get(&self.queued),
            published_events: get(&self.published_events),
            sent_envelopes: get(&self.sent_envelopes),
            sent_events: get(&self.sent_events),
            dropped_queue_full: get(&self.dropped_queue_full),
            dropped_transport: get(&self.dropped_transport),
            dropped_invalid: get(&self.dropped_invalid),
            // Filled in by `Publisher::stats` from the transport's probe.
            transport_pending: 0,
            transport_dropped: 0,
            last_error: self.last_error.lock().unwrap_or_else(PoisonError::into_inner).clone(),
        }
    }
}
