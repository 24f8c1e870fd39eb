//! The Vouch SDK: turns go-livepeer's own telemetry events into signed,
//! batched envelopes and publishes them without ever blocking its host.
//!
//! go-livepeer hands every event to `monitor.SendQueueEventAsync(type, data)`;
//! the SDK takes the same pair ([`adapter`]), strips what must never be
//! published ([`redact`]), queues it in a bounded queue ([`publisher`]),
//! batches, numbers and signs it with the delegate key, and hands the
//! envelope to a [`transport`] (libp2p gossipsub, or a file).

pub mod adapter;
pub mod config;
#[allow(unsafe_code)]
pub mod ffi;
pub mod gpu;
pub mod publisher;
pub mod redact;
pub mod stats;
pub mod transport;

pub use config::PublisherConfig;
pub use publisher::{PublishError, Publisher, PublisherError, PublisherSettings, Signer};
pub use stats::Stats;
