//! A simulated Livepeer network for `vouch demo` and `vouch loadtest`:
//! orchestrators with behaviour profiles ([`Profile`]), gateways in several
//! regions, their generated identities and certificates ([`network`]), the
//! go-livepeer-shaped events of one session ([`events`]), events waiting for
//! their time ([`timeline`]), and the load-test gateway's probe schedule and
//! the [`Prober`] that runs it ([`probe`]).
//!
//! Everything random comes from a seeded [`rng::SplitMix64`], so the same seed
//! gives the same network, the same sessions and the same probe order. The
//! events have the shapes the SLA engine is tested against
//! (`testkit/src/sla.rs`), stamped with real time by the caller.
//!
//! This module does not publish anything: [`crate::demo`] and `vouch
//! loadtest` hand the events to the SDK's publisher.

pub mod events;
pub mod network;
pub mod probe;
pub mod rng;
pub mod timeline;

pub use events::{Profile, SessionPlan, TimedEvent};
pub use network::{Identity, Network, NetworkSpec};
pub use probe::{Probe, ProbeError, Prober, ScheduleParams, Strategy, Target};
pub use rng::SplitMix64;
pub use timeline::Timeline;
