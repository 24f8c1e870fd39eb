//! The Vouch verifier, as a library; the `vouch` binary (`src/main.rs`,
//! commands in `src/cli/`) parses a command line and calls it.
//!
//! The path of an envelope: the node ([`node`]) takes it from gossip (or a
//! peer's sync) and runs the validation pipeline ([`validate`]) on it; what passes is
//! appended to the blake3-chained segment log and committed ([`store`]),
//! indexed for sync and signed checkpoints ([`converge`]), then scored by
//! the SLA engine ([`scores`]), whose answers the HTTP API
//! and dashboard serve ([`api`], over [`http_server`]). The log is the
//! source of truth: [`replay`] audits it and rebuilds the scores from it,
//! the sinks follow it ([`sink`]: NDJSON export, ClickHouse), and the
//! Streamr bridge carries it both ways ([`bridge`]). [`sim`] generates a
//! simulated Livepeer network, which [`demo`] runs on loopback against
//! real verifier processes. [`clock`] is the one place that reads the
//! wall clock for code that runs in real time.

pub mod api;
pub mod bridge;
pub mod clock;
pub mod config_file;
pub mod converge;
pub mod demo;
pub mod http_server;
pub mod node;
pub mod replay;
pub mod scores;
pub mod sim;
pub mod sink;
pub mod store;
pub mod validate;
