//! `vouch bridge streamr`: carry accepted envelopes between a verifier and
//! a Streamr network (through the sidecar running Streamr's SDK; or a
//! Streamr node's MQTT plugin with `--mqtt`), in both directions, without
//! re-signing (see `vouch_verifier::bridge`), and `vouch bridge streamr export`.
//!
//! Once running, the bridge prints one JSON line to stdout, `{"http", "link",
//! "mqtt", "log", "streams", "peer_id", "p2p_listen"}`, and runs until SIGINT
//! or SIGTERM (exit 0).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use vouch_verifier::bridge::{self, StreamrBridgeConfig};

use super::Exit;
use super::serve::{announce, server_runtime, shutdown_signal};

#[derive(Debug, Subcommand)]
pub(crate) enum BridgeCommand {
    /// Bridge to a Streamr network with Streamr's own SDK (or a node's MQTT plugin).
    Streamr(StreamrArgs),
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct StreamrArgs {
    #[command(subcommand)]
    action: Option<StreamrAction>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum StreamrAction {
    /// Write a log's accepted envelopes to stdout as Streamr storage-resend
    /// frames (u32 big-endian length ‖ StreamMessage protobuf).
    Export(ExportArgs),
}

#[derive(Debug, Args)]
struct ExportArgs {
    /// The verifier's log directory (`<data dir>/log`).
    log_dir: PathBuf,
    /// First log record index to export.
    #[arg(long, default_value_t = 0)]
    from: u64,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Configuration file with a `[bridge.streamr]` section. Flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Feed a Streamr node's MQTT plugin instead of joining the network:
    /// mqtt://HOST[:PORT] (Streamr re-signs what it receives there).
    #[arg(long)]
    mqtt: Option<String>,
    /// The StreamrClient configuration (JSON file) the sidecar runs.
    #[arg(long)]
    streamr_config: Option<PathBuf>,
    /// The sidecar script (interop/streamr-sidecar/sidecar.mjs).
    #[arg(long)]
    sidecar: Option<PathBuf>,
    /// Inbound: a stream partition to subscribe to (repeatable; default all 100).
    #[arg(long)]
    partition: Vec<u32>,
    /// Give the sidecar's Streamr node a fixed peer descriptor (no region lookup).
    #[arg(long)]
    fixed_peer: bool,
    /// Outbound: the co-located verifier's log directory to follow.
    #[arg(long)]
    log: Option<PathBuf>,
    /// Outbound: the cursor file (default: streamr-bridge.cursor beside the log).
    #[arg(long)]
    cursor: Option<PathBuf>,
    /// Inbound: a stream id (an MQTT topic filter on the feed) to subscribe to (repeatable; replaces the config's).
    #[arg(long)]
    stream: Vec<String>,
    /// Inbound: a verifier to gossip accepted envelopes to (repeatable; adds to the config's).
    #[arg(long)]
    bootstrap: Vec<String>,
    /// Inbound: gossip multiaddr to listen on (repeatable; replaces the config's).
    #[arg(long)]
    p2p_listen: Vec<String>,
    /// Inbound: a verifier log whose revocations the inbound pipeline applies (default: --log).
    #[arg(long)]
    revocations_log: Option<PathBuf>,
    /// Inbound: authority snapshot file (JSON); overrides the config's authority.
    #[arg(long)]
    authority_snapshot: Option<PathBuf>,
    /// A `vouch node` configuration to take the authority, validation and log from.
    #[arg(long)]
    node_config: Option<PathBuf>,
    /// Where /metrics, /healthz and /v1/bridge/stats are served; port 0 picks one.
    #[arg(long)]
    http_listen: Option<SocketAddr>,
    /// MQTT client id.
    #[arg(long)]
    client_id: Option<String>,
}

pub(crate) fn run(cmd: BridgeCommand) -> Result<Exit> {
    match cmd {
        BridgeCommand::Streamr(args) => match args.action {
            Some(StreamrAction::Export(e)) => export(e),
            None => run_streamr(args.run),
        },
    }
}

fn export(args: ExportArgs) -> Result<Exit> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let summary = bridge::export::export(&args.log_dir, args.from, &mut out)
        .with_context(|| format!("exporting {}", args.log_dir.display()))?;
    drop(out);
    eprintln!("{}", serde_json::to_string(&summary).unwrap_or_default());
    Ok(Exit::Ok)
}

fn run_streamr(args: RunArgs) -> Result<Exit> {
    let mut config = match &args.config {
        Some(path) => StreamrBridgeConfig::from_file(path)?,
        None => StreamrBridgeConfig::default(),
    };
    if let Some(v) = args.mqtt {
        config.mqtt = Some(v);
    }
    if let Some(v) = args.streamr_config {
        config.network.client_file = Some(v);
    }
    if let Some(v) = args.sidecar {
        config.network.sidecar = Some(v);
    }
    if !args.partition.is_empty() {
        config.network.partitions = args.partition;
    }
    config.network.fixed_peer |= args.fixed_peer;
    if let Some(v) = args.log {
        config.log = Some(v);
    }
    if let Some(v) = args.cursor {
        config.cursor = Some(v);
    }
    if let Some(v) = args.revocations_log {
        config.revocations_log = Some(v);
    }
    if !args.stream.is_empty() {
        config.streams = args.stream;
    }
    config.bootstrap.extend(args.bootstrap);
    if !args.p2p_listen.is_empty() {
        config.p2p_listen = args.p2p_listen;
    }
    if let Some(v) = args.authority_snapshot {
        config.authority.snapshot = Some(v);
    }
    if let Some(v) = args.node_config {
        config.node_config = Some(v);
    }
    if let Some(v) = args.http_listen {
        config.http_listen = v;
    }
    if let Some(v) = args.client_id {
        config.client_id = Some(v);
    }
    if config.password.is_none() {
        config.password = std::env::var("VOUCH_MQTT_PASSWORD").ok();
    }
    server_runtime()?.block_on(bridge::run_streamr(config, announce, shutdown_signal()))?;
    Ok(Exit::Ok)
}
