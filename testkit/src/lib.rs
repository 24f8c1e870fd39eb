//! What Vouch's tests and benchmarks share, in one dev-only crate (never a
//! normal dependency, never published).
//!
//! - In memory: signing keys from a number ([`keys`]), principals with a
//!   delegate and its certificate ([`actor`]), authority snapshots
//!   ([`authority`]), the real go-livepeer fixtures ([`fixtures`]),
//!   go-livepeer-shaped events ([`livepeer`]), the SLA engine's test world
//!   ([`sla`]) and the benchmarks' traffic ([`traffic`]), bearer tokens
//!   ([`jwt`]), and the SDK's test transports and envelope checks
//!   ([`publisher`]), and the command line of a benchmark ([`bench`]).
//! - Processes on 127.0.0.1, killed when dropped: the `vouch` command line
//!   and identities it makes ([`cli`]), a `vouch node` and its HTTP API
//!   ([`node`]), a `vouch subscribe` ([`subscriber`]), any child that
//!   announces itself ([`process`]), a `vouch bridge streamr` and what the
//!   bridge tests share ([`bridge`]), and the outside programs some tests
//!   talk to: ganache ([`ganache`]), mosquitto ([`mosquitto`]), a private
//!   Streamr network with Streamr's own SDK clients ([`streamr`]) and
//!   ClickHouse ([`clickhouse`]). The OpenAPI checks are in [`openapi`].
//! - On the wire: a libp2p peer that speaks only `/vouch/1/sync`, as a
//!   flooder would ([`sync`]).
//!
//! Dependencies point one way: this crate builds on `vouch-schema`,
//! `vouch-delegation`, `vouch-net`, `vouch-sla` and `vouch-sdk`, never on the verifier
//! (whose tests use it). Those crates take it as a dev-dependency, which
//! cargo allows for integration tests and benches; a crate's own unit tests
//! (`#[cfg(test)]` in its `src/`) must not use it, as their binary would link
//! that crate twice (the SDK's `#[no_mangle]` C ABI then clashes at link
//! time). What needs the `vouch` binary takes its path, as only a test of
//! the verifier's package can name it: `Vouch::at(env!("CARGO_BIN_EXE_vouch"))`.
// A helper's panic is the failure of the test that called it.
#![allow(clippy::unwrap_used)]

pub mod actor;
pub mod authority;
pub mod bench;
pub mod bridge;
pub mod cli;
pub mod clickhouse;
pub mod fixtures;
pub mod ganache;
pub mod jwt;
pub mod keys;
pub mod livepeer;
pub mod mosquitto;
pub mod node;
pub mod openapi;
pub mod process;
pub mod publisher;
pub mod sla;
pub mod streamr;
pub mod subscriber;
pub mod sync;
pub mod traffic;

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long any single wait in a test may take (generous: CI machines are
/// slow, and the suite runs many processes at once).
pub const WAIT: Duration = Duration::from_secs(90);

/// Wall-clock time, Unix milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// Wall-clock time, Unix seconds.
pub fn now_secs() -> u64 {
    now_ms() / 1000
}

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A TCP port on 127.0.0.1 that was free when asked (bound, then
/// released): good enough for tests, which retry where it matters.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port()
}
