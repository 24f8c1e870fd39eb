//! `vouch streamr …`: the principal's Streamr stream and its PUBLISH grants
//! in Streamr's StreamRegistry, lined up with Vouch's certificates.
//!
//! `create`, `grant` and `revoke` prepare a registry transaction for the
//! principal's wallet (an `eth_sendTransaction` request; with `--registry-rpc`
//! or the nonce and fee flags also the unsigned EIP-1559 transaction), from
//! the same documents Vouch uses: `grant` reads a certificate and grants
//! PUBLISH until its `notAfter`, `revoke` reads a Vouch revocation. `sign`
//! signs such a document offline with the principal's key; `check` reads
//! the registry and says whether it agrees with a verifier's authority
//! (exit 1 when not).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use vouch_delegation::authority::snapshot;
use vouch_delegation::stream_registry::{self, PreparedTx, TxParams};
use vouch_delegation::{Policy, SignedRevocation};
use vouch_schema::Address;
use vouch_verifier::bridge::permissions::{self, CheckOptions, Known};

use vouch_verifier::clock::now_secs;

use super::{Exit, NetworkArgs, PasswordArgs, print_json, read_certificate, read_input, runtime};

#[derive(Debug, Subcommand)]
pub(crate) enum StreamrCommand {
    /// Prepare the transaction creating 0x<principal>/livepeer/telemetry (public SUBSCRIBE, 100 partitions).
    Create(CreateArgs),
    /// Prepare the transaction granting a certificate's delegate PUBLISH until the certificate's notAfter.
    Grant(GrantArgs),
    /// Prepare the transaction withdrawing a revoked delegate's permissions (from its Vouch revocation).
    Revoke(RevokeArgs),
    /// Sign a prepared transaction with the principal's key, offline.
    Sign(SignArgs),
    /// Check that a verifier's authority and the streams' on-chain permissions agree (exit 1 if not).
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub(crate) struct RegistryArgs {
    /// The StreamRegistry contract (default: Streamr's, on Polygon).
    #[arg(long, default_value_t = stream_registry::POLYGON_STREAM_REGISTRY)]
    registry: Address,
    /// The registry's chain id (default: Polygon).
    #[arg(long, default_value_t = stream_registry::POLYGON_CHAIN_ID)]
    registry_chain_id: u64,
    /// The stream path after 0x<principal>.
    #[arg(long, default_value = vouch_sdk::publisher::STREAM_PATH)]
    path: String,
}

#[derive(Debug, Args)]
pub(crate) struct TxArgs {
    /// Fill nonce, gas and fees from the registry chain's JSON-RPC endpoint (needs no key).
    #[arg(long, conflicts_with = "nonce")]
    registry_rpc: Option<String>,
    /// The principal's next nonce (with the gas and fee flags: an unsigned transaction offline).
    #[arg(long, requires_all = ["gas_limit", "max_fee_per_gas", "max_priority_fee_per_gas"])]
    nonce: Option<u64>,
    /// Gas limit.
    #[arg(long)]
    gas_limit: Option<u64>,
    /// maxFeePerGas, wei.
    #[arg(long)]
    max_fee_per_gas: Option<u128>,
    /// maxPriorityFeePerGas, wei.
    #[arg(long)]
    max_priority_fee_per_gas: Option<u128>,
    /// Give up on the JSON-RPC endpoint after this long.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    rpc_timeout: Duration,
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// The principal (the stream's owner, who sends the transaction).
    #[arg(long)]
    principal: Address,
    /// No public SUBSCRIBE (Streamr then expects encrypted content).
    #[arg(long)]
    private: bool,
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(flatten)]
    tx: TxArgs,
}

/// What a call about one delegate needs besides its document.
#[derive(Debug, Args)]
pub(crate) struct DelegateCallArgs {
    #[command(flatten)]
    network: NetworkArgs,
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(flatten)]
    tx: TxArgs,
}

#[derive(Debug, Args)]
pub(crate) struct GrantArgs {
    /// The delegate's certificate (CBOR or signed wallet JSON).
    #[arg(long)]
    cert: PathBuf,
    #[command(flatten)]
    call: DelegateCallArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RevokeArgs {
    /// The Vouch revocation (`vouch delegate revoke --out`), published to the
    /// verifiers on the control topic as well.
    #[arg(long)]
    revocation: PathBuf,
    #[command(flatten)]
    call: DelegateCallArgs,
}

#[derive(Debug, Args)]
pub(crate) struct SignArgs {
    /// A document `vouch streamr create|grant|revoke` printed, with nonce and fees.
    prepared: PathBuf,
    /// The principal's key: a hex key file or an encrypted keystore.
    #[arg(long)]
    principal_key: PathBuf,
    #[command(flatten)]
    password: PasswordArgs,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// JSON-RPC endpoint of the registry's chain.
    #[arg(long)]
    registry_rpc: String,
    #[command(flatten)]
    registry: RegistryArgs,
    /// A verifier's log: its certificates, revocations and authority view.
    #[arg(long)]
    log: Option<PathBuf>,
    /// A certificate to check as well (repeatable).
    #[arg(long)]
    cert: Vec<PathBuf>,
    /// A revocation to apply as well (repeatable).
    #[arg(long)]
    revocation: Vec<PathBuf>,
    /// The authority view (default: the last one the log recorded).
    #[arg(long)]
    authority_snapshot: Option<PathBuf>,
    #[command(flatten)]
    network: NetworkArgs,
    /// Judge at this Unix time instead of now.
    #[arg(long)]
    at: Option<u64>,
    /// Also list on-chain publishers Vouch does not know, scanning the
    /// registry's logs from this block (the stream's creation block).
    #[arg(long)]
    from_block: Option<u64>,
    /// Give up on each chain read after this long.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    rpc_timeout: Duration,
}

pub(crate) fn run(cmd: StreamrCommand) -> Result<Exit> {
    match cmd {
        StreamrCommand::Create(a) => {
            let tx = stream_registry::create_stream(
                a.principal,
                &a.registry.path,
                a.registry.registry,
                a.registry.registry_chain_id,
                !a.private,
            )?;
            let stream = stream_registry::stream_id(a.principal, &a.registry.path);
            prepared(tx, &a.tx, json!({"action": "create", "stream_id": stream}))
        }
        StreamrCommand::Grant(a) => grant(a),
        StreamrCommand::Revoke(a) => revoke(a),
        StreamrCommand::Sign(a) => sign(a),
        StreamrCommand::Check(a) => check(a),
    }
}

/// Fills nonce and fees as asked and prints the document, `extra` first.
fn prepared(mut tx: PreparedTx, args: &TxArgs, extra: Value) -> Result<Exit> {
    if let Some(url) = &args.registry_rpc {
        let params = runtime()?.block_on(stream_registry::fill_params(url, &tx, args.rpc_timeout));
        tx.params = Some(params.context("reading nonce and fees")?);
    } else if let (Some(nonce), Some(gas_limit), Some(max_fee), Some(priority)) =
        (args.nonce, args.gas_limit, args.max_fee_per_gas, args.max_priority_fee_per_gas)
    {
        tx.params = Some(TxParams {
            nonce,
            gas_limit,
            max_fee_per_gas: max_fee,
            max_priority_fee_per_gas: priority,
        });
    }
    let mut doc = extra;
    if let (Some(out), Value::Object(fields)) = (doc.as_object_mut(), tx.to_json()) {
        out.extend(fields);
    }
    print_json(&doc);
    Ok(Exit::Ok)
}

fn grant(a: GrantArgs) -> Result<Exit> {
    let cert = read_certificate(&a.cert)?;
    cert.verify(&a.call.network.network(), now_secs(), &Policy::default())
        .with_context(|| format!("{} is not a certificate Vouch accepts now", a.cert.display()))?;
    let extra = json!({"publish_until": cert.not_after});
    let tx =
        |path: &str, registry, chain| stream_registry::grant_publish(&cert, path, registry, chain);
    for_delegate("grant", (cert.principal, cert.delegate), &a.call, tx, extra)
}

/// Prepares a call about one (principal, delegate) pair and prints it with
/// `extra` and the action, stream and delegate.
fn for_delegate(
    action: &str,
    (principal, delegate): (Address, Address),
    call: &DelegateCallArgs,
    tx: impl FnOnce(&str, Address, u64) -> Result<PreparedTx, stream_registry::RegistryError>,
    mut extra: Value,
) -> Result<Exit> {
    let registry = &call.registry;
    let prepared_tx = tx(&registry.path, registry.registry, registry.registry_chain_id)?;
    extra["action"] = json!(action);
    extra["stream_id"] = json!(stream_registry::stream_id(principal, &registry.path));
    extra["delegate"] = json!(delegate);
    prepared(prepared_tx, &call.tx, extra)
}

/// Reads a revocation file (CBOR, as `vouch delegate revoke` writes it).
fn read_revocation(path: &Path) -> Result<SignedRevocation> {
    let bytes = read_input(path, vouch_delegation::MAX_ENCODED_BYTES)?;
    SignedRevocation::decode(&bytes)
        .with_context(|| format!("{} is not a revocation", path.display()))
}

fn revoke(a: RevokeArgs) -> Result<Exit> {
    let revocation = read_revocation(&a.revocation)?;
    let verified = revocation
        .verify(&a.call.network.network())
        .with_context(|| format!("{} is not signed by its principal", a.revocation.display()))?;
    let extra = json!({"revocation": {
        "hash": hex::encode(verified.hash()),
        "revoked_at": revocation.revoked_at,
        "publish": "vouch publish --raw REVOCATION --control --bootstrap …",
    }});
    let pair = (revocation.principal, revocation.delegate);
    let tx = |path: &str, registry, chain| {
        stream_registry::revoke_publish(&revocation, path, registry, chain)
    };
    for_delegate("revoke", pair, &a.call, tx, extra)
}

fn sign(a: SignArgs) -> Result<Exit> {
    let text = read_input(&a.prepared, 1 << 20)?;
    let doc: Value = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not JSON", a.prepared.display()))?;
    let tx = PreparedTx::from_json(&doc)?;
    let call = stream_registry::describe(&tx.data)?;
    let key = a.password.load_key(&a.principal_key)?;
    let raw = format!("0x{}", hex::encode(stream_registry::sign(&tx, &key)?));
    eprintln!("signed for chain {} to {}: {call}", tx.chain_id, tx.to);
    print_json(&json!({
        "from": tx.from,
        "call": call,
        "raw_transaction": raw,
        "eth_sendRawTransaction": {
            "jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction", "params": [raw],
        },
    }));
    Ok(Exit::Ok)
}

fn check(a: CheckArgs) -> Result<Exit> {
    let mut known = match &a.log {
        Some(dir) => Known::from_log(dir).with_context(|| format!("reading {}", dir.display()))?,
        None => Known::default(),
    };
    for path in &a.cert {
        known.certificates.push(read_certificate(path)?);
    }
    for path in &a.revocation {
        known.revocations.push(read_revocation(path)?);
    }
    if let Some(path) = &a.authority_snapshot {
        known.view = Some(snapshot::load(path)?);
    }
    if known.certificates.is_empty() && known.revocations.is_empty() {
        bail!("nothing to check: give --log and/or --cert/--revocation");
    }
    let opts = CheckOptions {
        rpc: a.registry_rpc.clone(),
        registry: a.registry.registry,
        path: a.registry.path.clone(),
        network: a.network.network(),
        policy: Policy::default(),
        now: a.at.unwrap_or_else(now_secs),
        from_block: a.from_block,
        timeout: a.rpc_timeout,
    };
    let streams = runtime()?.block_on(permissions::check(&known, &opts))?;
    let agree = streams.iter().all(permissions::StreamCheck::agrees);
    print_json(&json!({
        "agree": agree,
        "at": opts.now,
        "registry": opts.registry,
        "authority": known.view.as_ref().map(|v| v.source.clone()),
        "streams": streams,
    }));
    if agree {
        Ok(Exit::Ok)
    } else {
        eprintln!("the verifier's authority and the on-chain permissions disagree");
        Ok(Exit::CheckFailed)
    }
}
