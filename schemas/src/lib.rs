//! The Vouch wire format.
//!
//! An [`Envelope`] is one signed message: deterministic CBOR with small
//! integer keys whose identity, numbering and signature are Streamr's, so the
//! same bytes verify on Streamr without re-signing ([`streamr`]). Its content
//! is a CBOR [`TelemetryBatch`] of go-livepeer-shaped [`Event`]s. The format is
//! written down for other languages in `schemas/telemetry.cddl`, with golden
//! vectors under `schemas/vectors/`.

mod address;
pub mod cbor;
pub mod crypto;
mod error;
pub use error::SharedError;

pub use address::{Address, AddressError};
pub use crypto::{Signature, SignatureError};

/// Hard limits of the wire format.
pub mod limits {
    /// Largest encoded envelope, in bytes (also gossipsub's maximum message size).
    pub const MAX_ENVELOPE_BYTES: usize = 64 * 1024;
    /// Most events in one batch.
    pub const MAX_BATCH_EVENTS: usize = 1024;
    /// Longest message chain id, in characters.
    pub const MAX_MSG_CHAIN_ID: usize = 32;
    /// Streamr's partition count limit: partitions are 0..=99.
    pub const MAX_PARTITIONS: u32 = 100;
}

pub mod envelope;
pub use envelope::{Envelope, EnvelopeError, MessageId, MessageRef};
pub mod batch;
mod body;
pub mod event;
mod event_view;
pub mod streamr;
pub use batch::{BatchError, DecodedBatch, TelemetryBatch};
pub use body::{Body, BodyRef, Lazy, Members, Tree};
pub use event::{Event, EventError, EventRef, Family, Origin};
pub mod bridge;
pub mod merkle;
pub mod topic;

#[cfg(any(test, feature = "oracle"))]
#[doc(hidden)]
pub mod oracle;
