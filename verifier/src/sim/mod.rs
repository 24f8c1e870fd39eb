//! A simulated Livepeer network for `vouch demo` and `vouch loadtest`:
//! orchestrators with behaviour profiles ([`Profile`]), gateways in several
//! regions, their generated identities and certificates ([`network`]), the
//! go-livepeer-shaped events of one session ([`events`]), and the load-test
//! gateway's probe schedule ([`probe`]).
//!
//! Everything random comes from a seeded [`rng::SplitMix64`], so the same seed
//! gives the same network, the same sessions and the same probe order. The
//! events have the shapes the SLA engine is tested against
//! (`sla/tests/common/mod.rs`), stamped with real time by the caller.
//!
//! This module does not publish anything: the `vouch` binary hands the events
//! to the SDK's publisher (the verifier's library never uses the SDK).

pub mod events;
pub mod network;
pub mod probe;
pub mod rng;
pub mod timeline;

pub use events::{Profile, SessionPlan, TimedEvent};
pub use network::{Identity, Network, NetworkSpec};
pub use probe::{Probe, ProbeError, ScheduleParams, Strategy, Target};
pub use rng::SplitMix64;
pub use timeline::Timeline;
