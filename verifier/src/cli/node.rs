//! `vouch node`: run a verifier (see `examples/verifier.toml`).
//!
//! Flags override the configuration file. Once listening, the node prints
//! one JSON line to stdout, `{"peer_id", "p2p_listen": [multiaddr/p2p/id…],
//! "http": "http://HOST:PORT"}`, and runs until SIGINT or SIGTERM, when it
//! commits and fsyncs the log, writes its state and exits 0. The peer id is
//! kept in the data directory, so a restarted node keeps its addresses.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use vouch_verifier::node::{self, NodeConfig};

use super::Exit;
use super::serve::{announce, server_runtime, shutdown_signal};

#[derive(Debug, Args)]
pub(crate) struct NodeArgs {
    /// Configuration file (TOML; see examples/verifier.toml). Without it, defaults.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Directory of the log and state.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Gossip multiaddr to listen on (repeatable; replaces the config's list).
    #[arg(long)]
    p2p_listen: Vec<String>,
    /// HTTP API address; port 0 picks a free port.
    #[arg(long)]
    http_listen: Option<SocketAddr>,
    /// Peer to dial at start (repeatable; adds to the config's list).
    #[arg(long)]
    bootstrap: Vec<String>,
    /// Authority snapshot file (JSON); overrides the config's authority source.
    #[arg(long)]
    authority_snapshot: Option<PathBuf>,
    /// Delete the derived state (<data-dir>/state.redb) and rebuild it from the log.
    #[arg(long)]
    rebuild_state: bool,
}

pub(crate) fn run(args: NodeArgs) -> Result<Exit> {
    let mut config = match &args.config {
        Some(path) => NodeConfig::from_file(path)?,
        None => NodeConfig::default(),
    };
    if let Some(dir) = args.data_dir {
        config.data_dir = Some(dir);
    }
    if !args.p2p_listen.is_empty() {
        config.p2p.listen = args.p2p_listen;
    }
    if let Some(addr) = args.http_listen {
        config.http.listen = addr;
    }
    config.p2p.bootstrap.extend(args.bootstrap);
    config.rebuild_state = args.rebuild_state;
    if let Some(path) = args.authority_snapshot {
        config.authority.snapshot = Some(path);
    }
    server_runtime()?.block_on(node::run(config, announce, shutdown_signal()))?;
    Ok(Exit::Ok)
}
