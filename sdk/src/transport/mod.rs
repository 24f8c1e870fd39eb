//! Where signed envelopes go: one trait, several transports.
//!
//! The publisher's worker calls [`Transport::send`] with each encoded
//! envelope. A transport never blocks the worker for long: it hands the bytes
//! to its own bounded buffer (and background task, for the network) and
//! reports a full buffer as [`TransportError::Full`], which the publisher
//! counts as a drop.

use std::time::Instant;

use vouch_schema::SharedError;

pub mod file;
pub mod gossip;
mod wire;

/// One signed, encoded envelope ready to leave the box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The envelope's partition: selects the gossip topic `/vouch/1/telemetry/<partition>`.
    pub partition: u32,
    /// The deterministic CBOR encoding of the envelope.
    pub bytes: Vec<u8>,
}

/// Why a transport did not take or deliver an envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The transport's own bounded buffer is full; the envelope was not taken.
    #[error("transport buffer full")]
    Full,
    /// The transport has been closed.
    #[error("transport closed")]
    Closed,
    /// An I/O failure (file transport) or a network failure.
    #[error("transport I/O: {0}")]
    Io(#[source] TransportIo),
    /// A deadline passed before everything was delivered.
    #[error("deadline passed with {0} envelopes undelivered")]
    Deadline(usize),
}

/// What failed under [`TransportError::Io`]. The typed cause is kept
/// (behind [`SharedError`] where it is not `Clone`), so callers can match on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportIo {
    /// A file operation on the frame file failed.
    #[error("{}: {source}", path.display())]
    File {
        /// The frame file.
        path: std::path::PathBuf,
        /// The operating system's error.
        source: SharedError<std::io::Error>,
    },
    /// The existing frame file does not end on a frame boundary.
    #[error(transparent)]
    Frames(#[from] file::FrameError),
    /// An envelope of no bytes or over [`MAX_ENVELOPE_BYTES`](vouch_schema::limits::MAX_ENVELOPE_BYTES).
    #[error("envelope of {len} bytes is not in 1..={}", vouch_schema::limits::MAX_ENVELOPE_BYTES)]
    EnvelopeSize {
        /// Its length.
        len: usize,
    },
    /// A partition at or over [`MAX_PARTITIONS`](vouch_schema::limits::MAX_PARTITIONS).
    #[error("partition {partition} is not in 0..{}", vouch_schema::limits::MAX_PARTITIONS)]
    Partition {
        /// The envelope's partition.
        partition: u32,
    },
    /// A gossip buffer capacity of 0.
    #[error("gossip buffer capacities must be at least 1")]
    ZeroCapacity,
    /// The gossip thread could not be spawned.
    #[error("spawning the gossip thread: {0}")]
    Spawn(#[source] SharedError<std::io::Error>),
    /// The gossip thread ended before reporting that it is ready.
    #[error("the gossip thread failed to start")]
    StartFailed,
    /// The gossip thread did not stop within the close deadline.
    #[error("the gossip thread did not stop in time")]
    StopTimeout,
    /// The gossip thread panicked.
    #[error("the gossip thread panicked")]
    ThreadPanicked,
    /// A listen or bootstrap address that is not a multiaddr.
    #[error("{what} address {given:?}: {source}")]
    Address {
        /// `listen` or `bootstrap`.
        what: &'static str,
        /// The address as configured.
        given: String,
        /// Why it does not parse.
        source: SharedError<libp2p::multiaddr::Error>,
    },
    /// The gossip thread's runtime could not be built.
    #[error("gossip runtime: {0}")]
    Runtime(#[source] SharedError<std::io::Error>),
    /// The swarm could not be built.
    #[error(transparent)]
    Swarm(SharedError<vouch_net::NetError>),
    /// A listen address could not be bound.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: libp2p::Multiaddr,
        /// libp2p's error.
        source: SharedError<libp2p::TransportError<std::io::Error>>,
    },
    /// The publisher's worker thread panicked while it owned the transport.
    #[error("publisher worker panicked")]
    WorkerPanicked,
}

impl From<TransportIo> for TransportError {
    fn from(e: TransportIo) -> TransportError {
        TransportError::Io(e)
    }
}

/// What a transport holds or has lost after `send` took an envelope: a
/// network transport buffers envelopes while no peer can take them and,
/// being bounded, drops the oldest; on the way to a peer more can be lost,
/// and each loss is counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportCounters {
    /// Envelopes taken that have not reached the network yet.
    pub pending: u64,
    /// Envelopes taken and later lost (a full buffer, a peer that could not
    /// take them in time, a connection or the transport closing first).
    pub dropped: u64,
}

/// Reads a transport's live counters from any thread.
pub type TransportProbe = std::sync::Arc<dyn Fn() -> TransportCounters + Send + Sync>;

/// A destination for signed envelopes.
pub trait Transport: Send + 'static {
    /// Takes one envelope without blocking for long.
    fn send(&mut self, envelope: Outgoing) -> Result<(), TransportError>;

    /// Waits, until `deadline` at the latest, for everything taken so far to
    /// be delivered (written and synced, or handed to the network).
    fn flush(&mut self, deadline: Instant) -> Result<(), TransportError>;

    /// Flushes until `deadline`, then releases the transport's resources.
    fn close(&mut self, deadline: Instant) -> Result<(), TransportError>;

    /// A short label for statistics and logs, e.g. `gossip` or `file`.
    fn kind(&self) -> &'static str;

    /// Live counters of what the transport buffers or drops after `send`,
    /// for transports that buffer at all (the publisher reports them in its
    /// stats). `None`: everything `send` takes is delivered or refused at once.
    fn probe(&self) -> Option<TransportProbe> {
        None
    }
}
