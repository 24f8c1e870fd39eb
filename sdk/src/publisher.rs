//! The publisher: a bounded queue in front of one background worker that
//! redacts, batches, numbers, signs and sends.
//!
//! ```text
//! publish(event) ──► bounded queue ──► worker thread: (parse) → redact → stamp provenance
//!   (never blocks;     (capacity,         → validate → encode → batch (max_events,
//!    drops counted)     drop policy)        linger, max_bytes) → number → sign → transport
//! ```
//!
//! **Parsing off the caller's thread.** go-livepeer's `(type, JSON)` pairs
//! ([`Publisher::publish_go_livepeer`], the C ABI's `vouch_publish`) are
//! queued as bytes after two cheap checks (family name, size); the worker
//! parses them. A caller pays a copy, not a JSON parse; malformed JSON is
//! counted in `dropped_invalid` and reported to the error hook
//! ([`Publisher::set_error_hook`]) when the worker finds it.
//!
//! **Never blocking.** `publish` takes a mutex held only for a queue push or a
//! worker's pop of at most one batch, never across I/O, encoding or signing;
//! when the queue is full it drops by the configured [`DropPolicy`] and
//! counts the loss. It wakes the worker only when the worker is asleep and
//! has something to do, so the common call makes no system call.
//!
//! **Numbering** (DESIGN.md §3.1): one message chain per publisher, with a
//! random 20-character alphanumeric chain id. Each envelope's timestamp is the
//! publisher clock in ms when it is sealed; `seq` is 0 for a new timestamp and
//! counts up within one; `prev` is the previous envelope's `(timestamp, seq)`.
//! Numbering is never backdated: if the clock goes back, the last timestamp
//! is reused and `seq` incremented. An envelope the transport refuses never
//! existed on the wire, so the chain does not advance past it: subscribers
//! see no gap they could never fill, and the loss shows in
//! `Stats::dropped_transport`.
//!
//! **Provenance**: events without a `gateway_region` get the certificate's
//! region; events without an `origin` get `production`, except that a
//! load-test delegate (`Role::Loadtest`) always publishes `synthetic`.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k256::ecdsa::SigningKey;
use vouch_delegation::{Policy, Role, SignedDelegation};
use vouch_schema::batch::BatchWriter;
use vouch_schema::crypto::batch_lanes;
use vouch_schema::{Address, Envelope, Event, MessageId, MessageRef, Origin, SharedError};

use crate::adapter::{self, AdapterError};
use crate::config::FileReadError;
use crate::config::{
    ConfigError, DEFAULT_MAX_BATCH_BYTES, DropPolicy, MIN_MAX_BATCH_BYTES, PublisherConfig,
    TransportConfig, TransportKind,
};
use crate::redact::{RedactionConfig, Redactor};
use crate::stats::{Counters, ErrorHook, ErrorKind, Stats};
use crate::transport::file::FileTransport;
use crate::transport::{Outgoing, Transport, TransportError, TransportIo, TransportProbe};

/// The stream path every Vouch stream id ends with.
pub const STREAM_PATH: &str = "/livepeer/telemetry";

/// Length of the random message chain id.
pub const CHAIN_ID_LEN: usize = 20;

/// How long dropping a [`Publisher`] (without `close`) waits for the worker
/// to send what is queued.
pub const DROP_CLOSE_TIMEOUT: Duration = Duration::from_millis(200);

/// Largest certificate file read, in bytes.
const MAX_CERTIFICATE_FILE_BYTES: u64 = 64 * 1024;

/// Largest password or pseudonym key file read, in bytes.
const MAX_SECRET_FILE_BYTES: u64 = 4096;

/// Who signs, as what, and where: the delegate key, the certificate that
/// authorizes it, and the stream and partition it publishes to.
pub struct Signer {
    /// The delegate's hot key.
    pub key: SigningKey,
    /// The certificate naming this key as its delegate.
    pub certificate: SignedDelegation,
    /// The Streamr stream id, normally [`Signer::default_stream_id`].
    pub stream_id: String,
    /// The partition (0–99), normally [`Signer::default_partition`].
    pub partition: u32,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is a secret: only its address is printed.
        f.debug_struct("Signer")
            .field("address", &vouch_delegation::keys::address(&self.key))
            .field("principal", &self.certificate.principal)
            .field("role", &self.certificate.role)
            .field("stream_id", &self.stream_id)
            .field("partition", &self.partition)
            .finish()
    }
}

impl Signer {
    /// A signer with the default stream id and partition of `certificate`.
    pub fn new(key: SigningKey, certificate: SignedDelegation) -> Signer {
        let stream_id = Signer::default_stream_id(&certificate);
        let partition = Signer::default_partition(&certificate);
        Signer { key, certificate, stream_id, partition }
    }

    /// `0x<principal>/livepeer/telemetry`, lowercase: the principal's own stream.
    pub fn default_stream_id(certificate: &SignedDelegation) -> String {
        format!("{}{STREAM_PATH}", certificate.principal)
    }

    /// Streamr's `partition_for_key(100, region)` of the certificate's
    /// region, or 0 when the region is empty.
    pub fn default_partition(certificate: &SignedDelegation) -> u32 {
        if certificate.region.is_empty() {
            0
        } else {
            vouch_schema::streamr::partition_for_key(
                vouch_schema::limits::MAX_PARTITIONS,
                &certificate.region,
            )
        }
    }

    /// Loads the key and certificate a configuration names, with its stream
    /// id and partition (or their defaults).
    pub fn load(config: &PublisherConfig) -> Result<Signer, PublisherError> {
        let password = match &config.key_password_file {
            Some(path) => Some(read_password(path)?),
            None => None,
        };
        let key = vouch_delegation::keys::load_signing_key(&config.key_file, password.as_deref())
            .map_err(|e| PublisherError::Key(e.into()))?;
        let certificate = read_certificate(&config.certificate)?;
        let mut signer = Signer::new(key, certificate);
        if let Some(id) = &config.stream_id {
            signer.stream_id = id.clone();
        }
        if let Some(p) = config.partition {
            signer.partition = p;
        }
        Ok(signer)
    }

    /// The key's address.
    pub fn address(&self) -> Address {
        vouch_delegation::keys::address(&self.key)
    }
}

/// How the publisher batches, queues and redacts: [`PublisherConfig`]'s
/// `[batch]`, `[queue]` and `[redaction]` in resolved form.
#[derive(Clone, PartialEq, Eq)]
pub struct PublisherSettings {
    /// Most events per envelope (1 to 1,024).
    pub max_events: usize,
    /// Longest wait of a batch's first event before the batch is sealed.
    pub linger: Duration,
    /// Largest encoded batch, in bytes (see `config::BatchConfig::max_bytes`).
    pub max_bytes: usize,
    /// Most events in the queue.
    pub queue_capacity: usize,
    /// What a full queue drops.
    pub drop_policy: DropPolicy,
    /// What is removed before signing.
    pub redaction: RedactionConfig,
    /// The pseudonym key; `None` derives one from the signing key
    /// ([`crate::redact::derive_pseudonym_key`]).
    pub pseudonym_key: Option<[u8; 32]>,
}

impl std::fmt::Debug for PublisherSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublisherSettings")
            .field("max_events", &self.max_events)
            .field("linger", &self.linger)
            .field("max_bytes", &self.max_bytes)
            .field("queue_capacity", &self.queue_capacity)
            .field("drop_policy", &self.drop_policy)
            .field("redaction", &self.redaction)
            .field("pseudonym_key", &self.pseudonym_key.map(|_| "<secret>"))
            .finish()
    }
}

impl Default for PublisherSettings {
    /// The defaults of [`PublisherConfig`].
    fn default() -> Self {
        let batch = crate::config::BatchConfig::default();
        let queue = crate::config::QueueConfig::default();
        PublisherSettings {
            max_events: batch.max_events,
            linger: Duration::from_millis(batch.linger_ms),
            max_bytes: batch.max_bytes,
            queue_capacity: queue.capacity,
            drop_policy: queue.drop_policy,
            redaction: RedactionConfig::default(),
            pseudonym_key: None,
        }
    }
}

impl PublisherSettings {
    /// The settings of a configuration, reading its pseudonym key file if any.
    pub fn from_config(config: &PublisherConfig) -> Result<Self, PublisherError> {
        let pseudonym_key = match &config.redaction.pseudonym_key_file {
            Some(path) => Some(read_pseudonym_key(path)?),
            None => None,
        };
        Ok(PublisherSettings {
            max_events: config.batch.max_events,
            linger: Duration::from_millis(config.batch.linger_ms),
            max_bytes: config.batch.max_bytes,
            queue_capacity: config.queue.capacity,
            drop_policy: config.queue.drop_policy,
            redaction: config.redaction.clone(),
            pseudonym_key,
        })
    }

    fn validate(&self) -> Result<(), PublisherError> {
        let bad = |e: SettingsError| Err(PublisherError::Settings(e));
        if self.max_events == 0 || self.max_events > vouch_schema::limits::MAX_BATCH_EVENTS {
            return bad(SettingsError::MaxEvents(self.max_events));
        }
        if self.max_bytes < MIN_MAX_BATCH_BYTES || self.max_bytes > DEFAULT_MAX_BATCH_BYTES {
            return bad(SettingsError::MaxBytes(self.max_bytes));
        }
        if self.linger > Duration::from_millis(crate::config::MAX_LINGER_MS) {
            return bad(SettingsError::Linger(self.linger));
        }
        if self.queue_capacity == 0 || self.queue_capacity > crate::config::MAX_QUEUE_CAPACITY {
            return bad(SettingsError::QueueCapacity(self.queue_capacity));
        }
        if let Err(e) = self.redaction.validate() {
            return bad(e.into());
        }
        Ok(())
    }
}

/// Why a publisher cannot be made, flushed or closed. Messages are stable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublisherError {
    /// The configuration is invalid.
    #[error("publisher config: {0}")]
    Config(#[from] ConfigError),
    /// The signing key could not be loaded.
    #[error("cannot load the signing key: {0}")]
    Key(#[source] SharedError<vouch_delegation::keys::KeyError>),
    /// A password or pseudonym key file could not be read.
    #[error("cannot read {path}: {reason}")]
    SecretFile {
        /// The file.
        path: String,
        /// Why.
        #[source]
        reason: SecretFileError,
    },
    /// The certificate could not be read, or is not valid now.
    #[error("certificate: {0}")]
    Certificate(#[source] CertificateFileError),
    /// The key is not the certificate's delegate.
    #[error("signing key {key} is not the certificate's delegate {delegate}")]
    KeyMismatch {
        /// The key's address.
        key: Address,
        /// The delegate the certificate names.
        delegate: Address,
    },
    /// The stream id or partition cannot be signed.
    #[error("invalid stream id or partition: {0}")]
    Identity(#[source] IdentityError),
    /// Settings out of range.
    #[error("invalid publisher settings: {0}")]
    Settings(#[source] SettingsError),
    /// The gossip transport is not available (reserved for builds without it).
    #[error("the gossip transport is not available")]
    GossipUnavailable,
    /// The transport failed to start, flush or close.
    #[error("transport: {0}")]
    Transport(#[from] TransportError),
    /// The worker thread could not be started.
    #[error("cannot start the publisher thread: {0}")]
    Spawn(#[source] SharedError<std::io::Error>),
    /// A flush or close deadline passed first.
    #[error("deadline passed with {0} events unsent")]
    Deadline(u64),
    /// The publisher is closed (or its worker stopped).
    #[error("publisher is closed")]
    Closed,
}

/// What is wrong with a password or pseudonym key file ([`PublisherError::SecretFile`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretFileError {
    /// It could not be read.
    #[error(transparent)]
    Read(#[from] FileReadError),
    /// It is not text.
    #[error("not UTF-8")]
    NotUtf8,
    /// A pseudonym key that is not 64 hex digits.
    #[error("not 64 hex digits")]
    NotHex,
}

/// Why the certificate cannot be used ([`PublisherError::Certificate`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateFileError {
    /// It does not verify now (signature, validity window).
    #[error(transparent)]
    Invalid(#[from] vouch_delegation::CertificateError),
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The certificate file.
        path: std::path::PathBuf,
        /// Why.
        source: FileReadError,
    },
    /// Wallet JSON that is not UTF-8.
    #[error("{}: wallet JSON is not UTF-8", path.display())]
    NotUtf8 {
        /// The certificate file.
        path: std::path::PathBuf,
    },
    /// Wallet JSON that is not a signed delegation.
    #[error("{}: {source}", path.display())]
    Wallet {
        /// The certificate file.
        path: std::path::PathBuf,
        /// Why.
        source: vouch_delegation::wallet::WalletError,
    },
    /// CBOR that is not a certificate.
    #[error("{}: {source}", path.display())]
    Decode {
        /// The certificate file.
        path: std::path::PathBuf,
        /// Why.
        source: vouch_delegation::DecodeError,
    },
}

/// Why the stream id or partition cannot be signed ([`PublisherError::Identity`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The stream id is not one an envelope may carry.
    #[error(transparent)]
    StreamId(#[from] vouch_schema::EnvelopeError),
    /// A partition at or over [`MAX_PARTITIONS`](vouch_schema::limits::MAX_PARTITIONS).
    #[error("partition {0} is not in 0..100")]
    Partition(u32),
}

/// Which publisher setting is out of range ([`PublisherError::Settings`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// `max_events` is 0 or over the batch limit.
    #[error("max_events {0} is not in 1..=1024")]
    MaxEvents(usize),
    /// `max_bytes` is outside its range.
    #[error("max_bytes {0} is not in {MIN_MAX_BATCH_BYTES}..={DEFAULT_MAX_BATCH_BYTES}")]
    MaxBytes(usize),
    /// `linger` is over one minute.
    #[error("linger {0:?} is over one minute")]
    Linger(Duration),
    /// The queue capacity is 0 or over its limit.
    #[error("queue capacity {0} is out of range")]
    QueueCapacity(usize),
    /// The extra redaction rules are unusable.
    #[error(transparent)]
    Redaction(#[from] crate::redact::RedactionRuleError),
}

/// Why one event was not taken. Messages are stable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The queue is full and the policy is `drop_newest`: this event was dropped.
    #[error("queue full: event dropped")]
    QueueFull,
    /// The publisher is closing or closed.
    #[error("publisher is closed")]
    Closed,
    /// The go-livepeer input is not an event.
    #[error("{0}")]
    Adapter(#[from] AdapterError),
}

/// Publishes events as signed envelopes, from any number of threads,
/// without ever blocking them. See the module docs.
pub struct Publisher {
    shared: Arc<Shared>,
    worker: Option<JoinHandle<()>>,
    /// The transport's own counters (what it buffers or drops after `send`).
    probe: Option<TransportProbe>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").field("stats", &self.stats()).finish_non_exhaustive()
    }
}

/// State shared by callers and the worker.
struct Shared {
    state: Mutex<State>,
    /// The worker waits here for work.
    wake: Condvar,
    /// Flushers and closers wait here for the worker.
    done: Condvar,
    counters: Counters,
    capacity: usize,
    policy: DropPolicy,
}

struct State {
    queue: VecDeque<Pending>,
    /// Callers wake the worker when the queue reaches this length.
    wake_at: usize,
    flush_requested: u64,
    flush_deadline: Option<Instant>,
    flush_done: u64,
    flush_result: Result<(), TransportError>,
    /// Set by `close` (or drop): no more events are taken.
    closing: bool,
    close_deadline: Option<Instant>,
    /// Set by the worker when it has stopped.
    exited: bool,
    close_result: Result<(), TransportError>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Publisher {
    /// Loads the key and certificate, builds the configured transport and
    /// starts the worker.
    pub fn new(config: &PublisherConfig) -> Result<Publisher, PublisherError> {
        config.validate()?;
        let signer = Signer::load(config)?;
        let settings = PublisherSettings::from_config(config)?;
        check_signer(&signer)?;
        let transport = build_transport(&config.transport)?;
        Publisher::with_transport(signer, settings, transport)
    }

    /// Starts a publisher over any transport. Checks that the key is the
    /// certificate's delegate, that the principal signed the certificate and
    /// that it is valid now, and that the stream id and partition can be signed.
    pub fn with_transport(
        signer: Signer,
        settings: PublisherSettings,
        transport: Box<dyn Transport>,
    ) -> Result<Publisher, PublisherError> {
        settings.validate()?;
        check_signer(&signer)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::with_capacity(settings.queue_capacity.min(1 << 16)),
                wake_at: usize::MAX,
                flush_requested: 0,
                flush_deadline: None,
                flush_done: 0,
                flush_result: Ok(()),
                closing: false,
                close_deadline: None,
                exited: false,
                close_result: Ok(()),
            }),
            wake: Condvar::new(),
            done: Condvar::new(),
            counters: Counters::default(),
            capacity: settings.queue_capacity,
            policy: settings.drop_policy,
        });
        let probe = transport.probe();
        let mut worker = Worker::new(Arc::clone(&shared), signer, &settings, transport);
        let handle = std::thread::Builder::new()
            .name("vouch-publisher".into())
            .spawn(move || worker.run_guarded())
            .map_err(|e| PublisherError::Spawn(e.into()))?;
        Ok(Publisher { shared, worker: Some(handle), probe })
    }

    /// Queues one event and returns at once. A full queue drops an event by
    /// the configured policy: `drop_newest` drops this one and returns
    /// [`PublishError::QueueFull`]; `drop_oldest` evicts the oldest queued
    /// event and returns `Ok`. Either way the drop is counted.
    pub fn publish(&self, event: Event) -> Result<(), PublishError> {
        self.enqueue(Pending::Event(event))
    }

    /// Queues one item by the rules of [`Publisher::publish`].
    fn enqueue(&self, item: Pending) -> Result<(), PublishError> {
        let sh = &*self.shared;
        let mut st = sh.lock();
        if st.closing || st.exited {
            return Err(PublishError::Closed);
        }
        let mut evicted = None;
        if st.queue.len() >= sh.capacity {
            match sh.policy {
                DropPolicy::DropNewest => {
                    drop(st);
                    Counters::add(&sh.counters.dropped_queue_full, 1);
                    return Err(PublishError::QueueFull);
                }
                DropPolicy::DropOldest => evicted = st.queue.pop_front(),
            }
        }
        st.queue.push_back(item);
        Counters::add(&sh.counters.queued, 1);
        let notify = st.queue.len() >= st.wake_at;
        if notify {
            st.wake_at = usize::MAX;
        }
        drop(st);
        Counters::add(&sh.counters.published_events, 1);
        if evicted.is_some() {
            sh.counters.unqueue(1);
            Counters::add(&sh.counters.dropped_queue_full, 1);
        }
        if notify {
            sh.wake.notify_one();
        }
        // The evicted event, if any, is freed here, outside the lock.
        drop(evicted);
        Ok(())
    }

    /// Queues go-livepeer's `(type, data JSON)` pair: the worker converts it
    /// ([`adapter::from_go_livepeer`], stamped with the time of this call when
    /// `data` has none), redacts and publishes it. An invalid family name or
    /// JSON over [`adapter::MAX_EVENT_JSON_BYTES`] is refused here as
    /// [`PublishError::Adapter`]; JSON that does not parse into an event is
    /// found by the worker. Both are counted in `dropped_invalid`; the
    /// worker's findings also go to the error hook.
    pub fn publish_go_livepeer(&self, family: &str, data_json: &[u8]) -> Result<(), PublishError> {
        match adapter::check_pair(family, data_json) {
            Ok(()) => self.enqueue(Pending::GoLivepeer(RawEvent {
                family: family.into(),
                json: data_json.into(),
                observed_ms: now_ms(),
            })),
            Err(e) => {
                Counters::add(&self.shared.counters.dropped_invalid, 1);
                self.shared.counters.set_error(ErrorKind::InvalidEvent, &e);
                Err(PublishError::Adapter(e))
            }
        }
    }

    /// Sets the hook that hears of every problem the publisher records after
    /// `publish` returned (events the worker found invalid, transport
    /// failures, certificate expiry); `None` removes it. See [`ErrorHook`].
    pub fn set_error_hook(&self, hook: Option<ErrorHook>) {
        self.shared.counters.set_hook(hook);
    }

    /// Waits, at most `timeout`, until every event published before the call
    /// has been signed and handed to the transport and the transport has
    /// flushed. Events the transport refused count as handled (see
    /// [`Stats::dropped_transport`]).
    pub fn flush(&self, timeout: Duration) -> Result<(), PublisherError> {
        let deadline = deadline_after(timeout);
        let sh = &*self.shared;
        let mut st = sh.lock();
        if st.closing || st.exited {
            return Err(PublisherError::Closed);
        }
        st.flush_requested += 1;
        let generation = st.flush_requested;
        st.flush_deadline = Some(st.flush_deadline.map_or(deadline, |d| d.max(deadline)));
        sh.wake.notify_one();
        loop {
            if st.flush_done >= generation {
                return st.flush_result.clone().map_err(PublisherError::Transport);
            }
            if st.exited {
                return Err(PublisherError::Closed);
            }
            let now = Instant::now();
            if now >= deadline {
                drop(st);
                return Err(PublisherError::Deadline(self.stats().queued));
            }
            st = sh.done.wait_timeout(st, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        let mut stats = self.shared.counters.snapshot();
        if let Some(probe) = &self.probe {
            let t = probe();
            stats.transport_pending = t.pending;
            stats.transport_dropped = t.dropped;
        }
        stats
    }

    /// Stops taking events, sends what is queued and closes the transport,
    /// within `timeout`, and returns the final counters. If the deadline
    /// passes first, what is left is abandoned and
    /// [`PublisherError::Deadline`] carries how many events that was; a
    /// worker stuck inside the transport is left behind, never waited for.
    pub fn close(mut self, timeout: Duration) -> Result<Stats, PublisherError> {
        self.shutdown(timeout)
    }

    fn shutdown(&mut self, timeout: Duration) -> Result<Stats, PublisherError> {
        let Some(handle) = self.worker.take() else {
            return Err(PublisherError::Closed);
        };
        let deadline = deadline_after(timeout);
        let sh = &*self.shared;
        let mut st = sh.lock();
        st.closing = true;
        st.close_deadline = Some(deadline);
        sh.wake.notify_one();
        while !st.exited {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            st = sh.done.wait_timeout(st, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
        }
        let exited = st.exited;
        let close_result = st.close_result.clone();
        drop(st);
        // A worker left behind must not call into a caller that has moved on
        // (C callers free the callback's data after close).
        sh.counters.set_hook(None);
        if !exited {
            // The worker is stuck in the transport: leave it behind.
            drop(handle);
            return Err(PublisherError::Deadline(self.stats().queued));
        }
        let _ = handle.join();
        let stats = self.stats();
        close_result.map_err(PublisherError::Transport)?;
        if stats.queued > 0 {
            return Err(PublisherError::Deadline(stats.queued));
        }
        Ok(stats)
    }
}

impl Drop for Publisher {
    /// Closes with [`DROP_CLOSE_TIMEOUT`] if `close` was not called.
    fn drop(&mut self) {
        if self.worker.is_some() {
            let _ = self.shutdown(DROP_CLOSE_TIMEOUT);
        }
    }
}

/// Builds the transport a configuration names.
pub fn build_transport(config: &TransportConfig) -> Result<Box<dyn Transport>, PublisherError> {
    match config.kind {
        TransportKind::File => {
            let path = config.path.as_ref().ok_or(ConfigError::Invalid {
                field: "transport.path",
                reason: "required when transport.kind = \"file\"".into(),
            })?;
            Ok(Box::new(FileTransport::create(path)?))
        }
        TransportKind::Gossip => start_gossip(config),
    }
}

/// Starts the libp2p gossipsub transport.
fn start_gossip(config: &TransportConfig) -> Result<Box<dyn Transport>, PublisherError> {
    Ok(Box::new(crate::transport::gossip::GossipTransport::start(config)?))
}

/// Checks the signer: key matches delegate, certificate signed by its
/// principal and valid now, stream id and partition signable.
fn check_signer(signer: &Signer) -> Result<(), PublisherError> {
    let cert = &signer.certificate;
    let key = signer.address();
    if key != cert.delegate {
        return Err(PublisherError::KeyMismatch { key, delegate: cert.delegate });
    }
    let policy = Policy { max_lifetime_secs: u64::MAX, ..Policy::default() };
    cert.verify(&cert.network, now_ms() / 1000, &policy)
        .map_err(|e| PublisherError::Certificate(e.into()))?;
    vouch_schema::envelope::check_stream_id(&signer.stream_id)
        .map_err(|e| PublisherError::Identity(e.into()))?;
    if signer.partition >= vouch_schema::limits::MAX_PARTITIONS {
        return Err(PublisherError::Identity(IdentityError::Partition(signer.partition)));
    }
    Ok(())
}

/// Reads a certificate: CBOR, or signed wallet JSON.
fn read_certificate(path: &Path) -> Result<SignedDelegation, PublisherError> {
    let path_buf = || path.to_owned();
    let fail = |e: CertificateFileError| PublisherError::Certificate(e);
    let bytes = read_small(path, MAX_CERTIFICATE_FILE_BYTES)
        .map_err(|source| fail(CertificateFileError::Read { path: path_buf(), source }))?;
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| fail(CertificateFileError::NotUtf8 { path: path_buf() }))?;
        return vouch_delegation::wallet::import_delegation(text)
            .map_err(|source| fail(CertificateFileError::Wallet { path: path_buf(), source }));
    }
    SignedDelegation::decode(&bytes)
        .map_err(|source| fail(CertificateFileError::Decode { path: path_buf(), source }))
}

/// Reads a password file: its first line, without the line ending.
fn read_password(path: &Path) -> Result<String, PublisherError> {
    let fail = |reason: SecretFileError| PublisherError::SecretFile {
        path: path.display().to_string(),
        reason,
    };
    let bytes = read_small(path, MAX_SECRET_FILE_BYTES).map_err(|e| fail(e.into()))?;
    let text = String::from_utf8(bytes).map_err(|_| fail(SecretFileError::NotUtf8))?;
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

/// Reads a pseudonym key file: 64 hex digits (`0x` optional).
fn read_pseudonym_key(path: &Path) -> Result<[u8; 32], PublisherError> {
    let fail = |reason: SecretFileError| PublisherError::SecretFile {
        path: path.display().to_string(),
        reason,
    };
    let bytes = read_small(path, MAX_SECRET_FILE_BYTES).map_err(|e| fail(e.into()))?;
    let text = std::str::from_utf8(&bytes).map_err(|_| fail(SecretFileError::NotUtf8))?.trim();
    let digits = text.strip_prefix("0x").unwrap_or(text);
    let mut key = [0u8; 32];
    hex::decode_to_slice(digits, &mut key).map_err(|_| fail(SecretFileError::NotHex))?;
    Ok(key)
}

fn read_small(path: &Path, limit: u64) -> Result<Vec<u8>, FileReadError> {
    let io = |e: std::io::Error| FileReadError::Io(e.into());
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > limit {
        return Err(FileReadError::TooLarge { len, limit });
    }
    std::fs::read(path).map_err(io)
}

/// `now + timeout`, saturating at about a year for huge timeouts.
fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout.min(MAX_WAIT)).unwrap_or(now)
}

/// The longest wait a deadline is set for.
const MAX_WAIT: Duration = Duration::from_secs(365 * 24 * 3600);

/// Milliseconds since the Unix epoch by the system clock (0 before 1970).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A random chain id of [`CHAIN_ID_LEN`] ASCII letters and digits.
fn random_chain_id() -> String {
    use rand_core::{OsRng, RngCore};
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(CHAIN_ID_LEN);
    while out.len() < CHAIN_ID_LEN {
        let mut buf = [0u8; 32];
        OsRng.fill_bytes(&mut buf);
        // Rejection sampling keeps the distribution uniform: 248 = 4 * 62.
        for b in buf.into_iter().filter(|b| *b < 248) {
            if out.len() < CHAIN_ID_LEN {
                out.push(char::from(ALPHABET[usize::from(b % 62)]));
            }
        }
    }
    out
}

/// Streamr numbering of one message chain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Chain {
    last: Option<MessageRef>,
}

impl Chain {
    /// The number of the next message at clock `now_ms`: never before the
    /// last one, `seq` 0 on a new timestamp.
    pub(crate) fn next(&self, now_ms: u64) -> MessageRef {
        Chain::after(self.last, now_ms)
    }

    /// The number that follows `last` at clock `now_ms` (see [`Chain::next`]).
    fn after(last: Option<MessageRef>, now_ms: u64) -> MessageRef {
        match last {
            Some(last) if now_ms <= last.timestamp => {
                if last.seq < i32::MAX as u32 {
                    MessageRef { timestamp: last.timestamp, seq: last.seq + 1 }
                } else {
                    MessageRef { timestamp: last.timestamp + 1, seq: 0 }
                }
            }
            _ => MessageRef { timestamp: now_ms, seq: 0 },
        }
    }

    /// The previous message's number (the next message's `prev`).
    pub(crate) fn prev(&self) -> Option<MessageRef> {
        self.last
    }

    /// Records that `sent` went out.
    pub(crate) fn commit(&mut self, sent: MessageRef) {
        self.last = Some(sent);
    }
}

/// One queued item: an event, or go-livepeer's bytes for the worker to parse.
// The queue held `Event`s inline before raw pairs existed; boxing the event
// would add an allocation to every typed `publish` to save queue slots.
#[allow(clippy::large_enum_variant)]
enum Pending {
    /// Built by the caller.
    Event(Event),
    /// Checked for family and size only.
    GoLivepeer(RawEvent),
}

/// go-livepeer's `(type, data JSON)` pair as the caller handed it over.
struct RawEvent {
    family: Box<str>,
    json: Box<[u8]>,
    /// When it was published: the event time if `data` has no timestamp.
    observed_ms: u64,
}

impl Pending {
    /// The event, parsing it if it came as bytes.
    fn into_event(self) -> Result<Event, AdapterError> {
        match self {
            Pending::Event(event) => Ok(event),
            Pending::GoLivepeer(raw) => {
                adapter::from_go_livepeer(&raw.family, &raw.json, raw.observed_ms)
            }
        }
    }
}

/// What the worker should do next.
enum Step {
    /// Events were taken into `incoming`.
    Events,
    /// Seal the batch: number it and set it aside for signing.
    Seal,
    /// Sign the sealed batches (their hashing side by side) and send them.
    Sign,
    /// Every event of the active flush is sent: flush the transport.
    FlushTransport,
    /// Stop (closing and drained, or the close deadline passed).
    Exit,
}

/// An active flush request.
struct FlushJob {
    generation: u64,
    deadline: Instant,
    /// Queued events that must still be taken before it completes.
    left: usize,
}

/// A batch sealed and numbered, waiting to be signed with the others
/// sealed just before or after it.
struct Sealed {
    number: MessageRef,
    /// The number of the batch sealed before it, as `number` was given.
    prev: Option<MessageRef>,
    content: Vec<u8>,
    events: u64,
}

/// The background worker: owns the transport, the key and the chain.
struct Worker {
    shared: Arc<Shared>,
    transport: Box<dyn Transport>,
    key: SigningKey,
    publisher: Address,
    stream_id: String,
    partition: u32,
    chain_id: String,
    chain: Chain,
    redactor: Redactor,
    region: Option<String>,
    loadtest: bool,
    not_after_secs: u64,
    expiry_reported: bool,
    max_events: usize,
    linger: Duration,
    max_bytes: usize,
    /// The batch being built: its encoded events, under the certificate.
    batch: BatchWriter,
    /// Batches sealed, not yet signed: at most [`Worker::lanes`] (plus one
    /// sealed by an event that did not fit), signed together once that
    /// many are held or no full batch waits in the queue.
    sealed: Vec<Sealed>,
    /// Signature payloads this CPU hashes side by side ([`batch_lanes`]);
    /// 1 signs each batch as it is sealed.
    lanes: usize,
    /// Contents of batches sent, emptied, for the next ones to seal into
    /// (at most `lanes`): under load a batch of ~28 KB a few hundred times
    /// a second, whose allocation and release among the events' many small
    /// ones cost the system allocator more than the copy.
    spare: Vec<Vec<u8>>,
    batch_deadline: Instant,
    incoming: Vec<Pending>,
    /// The current event's encoding, reused from event to event.
    encoded: Vec<u8>,
    flush: Option<FlushJob>,
    flush_seen: u64,
    closing: Option<Instant>,
}

impl Worker {
    fn new(
        shared: Arc<Shared>,
        signer: Signer,
        settings: &PublisherSettings,
        transport: Box<dyn Transport>,
    ) -> Worker {
        let pseudonym_key = settings
            .pseudonym_key
            .unwrap_or_else(|| crate::redact::derive_pseudonym_key(&signer.key));
        let cert = &signer.certificate;
        Worker {
            shared,
            transport,
            publisher: signer.address(),
            stream_id: signer.stream_id.clone(),
            partition: signer.partition,
            chain_id: random_chain_id(),
            chain: Chain::default(),
            redactor: Redactor::new(&settings.redaction, pseudonym_key),
            region: (!cert.region.is_empty()).then(|| cert.region.clone()),
            loadtest: cert.role == Role::Loadtest,
            not_after_secs: cert.not_after,
            expiry_reported: false,
            max_events: settings.max_events,
            linger: settings.linger,
            max_bytes: settings.max_bytes,
            batch: BatchWriter::with_capacity(&cert.encode(), settings.max_bytes),
            sealed: Vec::new(),
            lanes: batch_lanes(),
            spare: Vec::new(),
            batch_deadline: Instant::now(),
            incoming: Vec::with_capacity(settings.max_events),
            encoded: Vec::with_capacity(1024),
            flush: None,
            flush_seen: 0,
            closing: None,
            key: signer.key,
        }
    }

    /// Runs the worker; a panic (in a transport, say) stops it cleanly
    /// instead of leaving callers waiting.
    fn run_guarded(&mut self) {
        let shared = Arc::clone(&self.shared);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run()));
        if result.is_err() {
            shared.counters.set_error(ErrorKind::Panic, "publisher worker panicked");
            let mut st = shared.lock();
            st.exited = true;
            st.closing = true;
            st.close_result = Err(TransportIo::WorkerPanicked.into());
            drop(st);
            shared.done.notify_all();
        }
    }

    fn run(&mut self) {
        loop {
            match self.next_step() {
                Step::Events => self.take_incoming(),
                Step::Seal => self.seal(),
                Step::Sign => self.sign_sealed(),
                Step::FlushTransport => self.finish_flush(),
                Step::Exit => break,
            }
        }
        let deadline = self.closing.unwrap_or_else(Instant::now);
        let result = self.transport.close(deadline);
        if let Err(e) = &result {
            self.shared.counters.set_error(ErrorKind::Transport, e);
        }
        let mut st = self.shared.lock();
        st.exited = true;
        st.close_result = result;
        drop(st);
        self.shared.done.notify_all();
    }

    /// Waits for and picks the next thing to do.
    fn next_step(&mut self) -> Step {
        let shared = Arc::clone(&self.shared);
        let mut st = shared.lock();
        loop {
            if st.flush_requested > self.flush_seen {
                self.flush_seen = st.flush_requested;
                self.flush = Some(FlushJob {
                    generation: st.flush_requested,
                    deadline: st.flush_deadline.unwrap_or_else(Instant::now),
                    left: st.queue.len(),
                });
            }
            if st.closing && self.closing.is_none() {
                self.closing = Some(st.close_deadline.unwrap_or_else(Instant::now));
            }
            let now = Instant::now();
            if self.closing.is_some_and(|d| now >= d) {
                return Step::Exit;
            }
            if let Some(job) = &mut self.flush {
                job.left = job.left.min(st.queue.len());
                if now >= job.deadline {
                    st.flush_done = job.generation;
                    let sealed: u64 = self.sealed.iter().map(|s| s.events).sum();
                    let left = st.queue.len() + self.batch.len() + sealed as usize;
                    st.flush_result = Err(TransportError::Deadline(left));
                    st.flush_deadline = None;
                    self.flush = None;
                    shared.done.notify_all();
                    continue;
                }
            }
            // Under load several full batches are sealed in a row: they are
            // signed together, up to the lanes of one hashing pass.
            if self.sealed.len() >= self.lanes {
                return Step::Sign;
            }
            let room = self.max_events - self.batch.len();
            if room > 0 && !st.queue.is_empty() {
                let n = room.min(st.queue.len());
                self.incoming.extend(st.queue.drain(..n));
                if let Some(job) = &mut self.flush {
                    job.left = job.left.saturating_sub(n);
                }
                return Step::Events;
            }
            let flush_ready = self.flush.as_ref().is_some_and(|j| j.left == 0);
            let urgent = self.closing.is_some() || flush_ready;
            if !self.batch.is_empty() && (room == 0 || urgent || now >= self.batch_deadline) {
                return Step::Seal;
            }
            // No full batch follows: what is sealed goes now.
            if !self.sealed.is_empty() {
                return Step::Sign;
            }
            if self.batch.is_empty() && flush_ready {
                return Step::FlushTransport;
            }
            if self.batch.is_empty() && self.closing.is_some() {
                // Closing, and the queue is empty (checked above).
                return Step::Exit;
            }
            // Nothing to do yet: sleep until woken or a deadline.
            st.wake_at = if self.batch.is_empty() { 1 } else { room };
            let deadlines = [
                (!self.batch.is_empty()).then_some(self.batch_deadline),
                self.flush.as_ref().map(|j| j.deadline),
                self.closing,
            ];
            st = match deadlines.into_iter().flatten().min() {
                Some(d) => {
                    shared
                        .wake
                        .wait_timeout(st, d.saturating_duration_since(now))
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                None => shared.wake.wait(st).unwrap_or_else(PoisonError::into_inner),
            };
            st.wake_at = usize::MAX;
        }
    }

    /// Redacts, stamps, validates and encodes the taken events into the batch.
    fn take_incoming(&mut self) {
        let mut incoming = std::mem::take(&mut self.incoming);
        for item in incoming.drain(..) {
            let mut event = match item.into_event() {
                Ok(event) => event,
                Err(e) => {
                    self.drop_invalid(e);
                    continue;
                }
            };
            self.redactor.apply(&mut event);
            if event.gateway_region.is_none() {
                event.gateway_region.clone_from(&self.region);
            }
            if self.loadtest {
                event.origin = Some(Origin::Synthetic);
            } else if event.origin.is_none() {
                event.origin = Some(Origin::Production);
            }
            if let Err(e) = event.validate() {
                self.drop_invalid(format!("invalid event: {e}"));
                continue;
            }
            // One buffer for every event's encoding (taken out of `self`
            // while `add` may seal).
            let mut encoded = std::mem::take(&mut self.encoded);
            encoded.clear();
            event.encode_into(&mut encoded);
            self.add(&encoded);
            // An event too large for any batch (refused above) must not
            // leave its size held for good: keep at most one batch's room.
            encoded.clear();
            encoded.shrink_to(self.max_bytes);
            self.encoded = encoded;
        }
        self.incoming = incoming;
    }

    /// Adds one encoded event to the batch, sealing the batch first when
    /// the event does not fit.
    fn add(&mut self, encoded: &[u8]) {
        if !self.batch.would_fit(encoded.len(), self.max_bytes) {
            // Send what is there and try the event in a batch of its own
            // (sealing empties the batch).
            self.seal();
            if !self.batch.would_fit(encoded.len(), self.max_bytes) {
                self.drop_invalid(format!(
                    "event of {} bytes does not fit in a batch of {} bytes",
                    encoded.len(),
                    self.max_bytes
                ));
                return;
            }
        }
        if self.batch.is_empty() {
            self.batch_deadline = deadline_after(self.linger);
        }
        self.batch.push(encoded);
    }

    fn drop_invalid(&self, why: impl std::fmt::Display) {
        let c = &self.shared.counters;
        c.unqueue(1);
        Counters::add(&c.dropped_invalid, 1);
        c.set_error(ErrorKind::InvalidEvent, why);
    }

    /// Seals the batch being built: numbers it after the last batch sealed
    /// and sets it aside for [`Worker::sign_sealed`].
    fn seal(&mut self) {
        let events = self.batch.len() as u64;
        if events == 0 {
            return;
        }
        let mut content = self.spare.pop().unwrap_or_default();
        self.batch.finish_into(&mut content);
        let now = now_ms();
        if !self.expiry_reported && now / 1000 >= self.not_after_secs {
            self.expiry_reported = true;
            self.shared
                .counters
                .set_error(ErrorKind::Identity, "the delegation certificate has expired");
        }
        let prev = self.sealed.last().map(|s| s.number).or(self.chain.prev());
        let number = Chain::after(prev, now);
        self.sealed.push(Sealed { number, prev, content, events });
    }

    /// The id of message `number` of this publisher's chain.
    fn message_id(&self, number: MessageRef) -> MessageId {
        MessageId {
            stream_id: self.stream_id.clone(),
            partition: self.partition,
            timestamp: number.timestamp,
            seq: number.seq,
            publisher: self.publisher,
            msg_chain_id: self.chain_id.clone(),
        }
    }

    /// Signs the sealed batches, their signature payloads hashed side by
    /// side, and sends them in order. A batch whose `prev` was not sent
    /// (its signing or sending failed) is numbered and signed again after
    /// the last one sent, so that what goes out links up without gaps.
    fn sign_sealed(&mut self) {
        let sealed = std::mem::take(&mut self.sealed);
        let mut counts = Vec::with_capacity(sealed.len());
        let unsigned: Vec<_> = sealed
            .into_iter()
            .map(|s| {
                counts.push(s.events);
                (self.message_id(s.number), s.prev, s.content)
            })
            .collect();
        let signed = Envelope::sign_all(unsigned, &self.key);
        for (envelope, n) in signed.into_iter().zip(counts) {
            let envelope = match envelope {
                Ok(e) if e.prev != self.chain.prev() => {
                    let number = self.chain.next(now_ms());
                    let id = self.message_id(number);
                    Envelope::sign(id, self.chain.prev(), e.content, &self.key)
                }
                signed => signed,
            };
            self.send(envelope, n);
        }
    }

    /// Sends one signed batch of `n` events (or counts why it was not).
    fn send(&mut self, envelope: Result<Envelope, vouch_schema::EnvelopeError>, n: u64) {
        let c = &self.shared.counters;
        let envelope = match envelope {
            Ok(envelope) => envelope,
            Err(e) => {
                c.unqueue(n);
                Counters::add(&c.dropped_invalid, n);
                c.set_error(ErrorKind::Internal, format!("cannot sign a batch: {e}"));
                return;
            }
        };
        let number = envelope.id.as_ref();
        let outgoing = Outgoing { partition: self.partition, bytes: envelope.encode() };
        if self.spare.len() < self.lanes {
            self.spare.push(envelope.content);
        }
        match self.transport.send(outgoing) {
            Ok(()) => {
                self.chain.commit(number);
                Counters::add(&c.sent_envelopes, 1);
                Counters::add(&c.sent_events, n);
                c.unqueue(n);
            }
            Err(e) => {
                c.unqueue(n);
                Counters::add(&c.dropped_transport, n);
                c.set_error(
                    ErrorKind::Transport,
                    format!("{} transport: {e}", self.transport.kind()),
                );
            }
        }
    }

    /// Flushes the transport for the active flush request and reports.
    fn finish_flush(&mut self) {
        let Some(job) = self.flush.take() else { return };
        let result = self.transport.flush(job.deadline);
        if let Err(e) = &result {
            self.shared.counters.set_error(ErrorKind::Transport, e);
        }
        let mut st = self.shared.lock();
        st.flush_done = st.flush_done.max(job.generation);
        st.flush_result = result;
        if st.flush_requested == job.generation {
            st.flush_deadline = None;
        }
        drop(st);
        self.shared.done.notify_all();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn numbering_never_goes_back() {
        let mut chain = Chain::default();
        let mut sent = Vec::new();
        for now in [100, 100, 101, 99, 99, 105, 105] {
            let n = chain.next(now);
            assert!(chain.prev().is_none_or(|p| p < n), "{now}");
            chain.commit(n);
            sent.push((n.timestamp, n.seq));
        }
        assert_eq!(sent, [(100, 0), (100, 1), (101, 0), (101, 1), (101, 2), (105, 0), (105, 1)]);
        let mut full = Chain { last: Some(MessageRef { timestamp: 7, seq: i32::MAX as u32 }) };
        assert_eq!(full.next(7), MessageRef { timestamp: 8, seq: 0 });
        full.commit(full.next(3));
        assert_eq!(full.prev(), Some(MessageRef { timestamp: 8, seq: 0 }));
    }

    #[test]
    fn publisher_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Publisher>();
        check::<Stats>();
    }

    #[test]
    fn chain_ids_are_random_alphanumerics() {
        let a = random_chain_id();
        assert_eq!(a.len(), CHAIN_ID_LEN);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(a, random_chain_id());
    }
}
