//! `vouch authority …`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::json;
use vouch_delegation::authority::{onchain, snapshot};
use vouch_schema::Address;

use super::{Exit, print_json, runtime};

#[derive(Debug, Subcommand)]
pub(crate) enum AuthorityCommand {
    /// Read Livepeer's active set from the chain into a snapshot file.
    Snapshot(SnapshotArgs),
}

#[derive(Debug, Args)]
pub(crate) struct SnapshotArgs {
    /// Ethereum JSON-RPC endpoint (Arbitrum One for the live network).
    #[arg(long)]
    rpc: String,
    /// Livepeer's Controller contract.
    #[arg(long, default_value_t = onchain::ARBITRUM_ONE_CONTROLLER)]
    controller: Address,
    /// Gateway addresses to allow (repeatable): gateways are not in the bonding pool.
    #[arg(long = "gateway")]
    gateways: Vec<Address>,
    /// Give up after this long.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Where to write the snapshot (JSON).
    #[arg(long)]
    out: PathBuf,
}

pub(crate) fn run(cmd: AuthorityCommand) -> Result<Exit> {
    let AuthorityCommand::Snapshot(a) = cmd;
    let opts =
        onchain::ChainOptions { timeout: a.timeout, gateways: a.gateways, ..Default::default() };
    let view = runtime()?.block_on(onchain::fetch_view(&a.rpc, a.controller, &opts))?;
    snapshot::write(&a.out, &view, None)?;
    print_json(&json!({
        "source": view.source,
        "principals": view.principals.len(),
        "view_hash": hex::encode(view.hash()),
        "out": a.out,
    }));
    Ok(Exit::Ok)
}
