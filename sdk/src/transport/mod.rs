//! Where signed envelopes go: one trait, several transports.
//!
//! The publisher's worker calls [`Transport::send`] with each encoded
//! envelope. A transport never blocks the worker for long: it hands the bytes
//! to its own bounded buffer (and background task, for the network) and
//! reports a full buffer as [`TransportError::Full`], which the publisher
//! counts as a drop.

use std::time::Instant;

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
    Io(String),
    /// A deadline passed before everything was delivered.
    #[error("deadline passed with {0} envelopes undelivered")]
    Deadline(usize),
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
