//! The Vouch verifier: checks every envelope before anything reaches state
//! ([`validate`]) and keeps what it accepted in an append-only, hash-chained
//! log ([`store`]). The `vouch` binary (`src/main.rs`) is its command line.
pub mod validate;

pub mod converge;

pub mod store;

pub mod node;

pub mod sink;

pub mod api;

pub mod http_server;

pub mod scores;

pub mod bridge;

pub mod replay;

pub mod sim;
